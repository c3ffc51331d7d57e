-- 009: with each depth snapshot, what it measured: the pool's topic and
-- consumer group ("topic group"). The position it gives (end_offsets - depth
-- - lost) is that group's on that topic, so the report's rates compare a
-- pool's snapshots of its present topic and group only: a pool moved to the
-- online service's group (or another topic) is not read as codes consumed.
-- NULL in the snapshots taken before this column: taken as of the present.
ALTER TABLE depth_snapshots ADD COLUMN source TEXT;
