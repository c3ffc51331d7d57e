-- 008: with each depth snapshot, the smallest codes.id of the pool then still
-- planned or fetched (read before the depth was measured; the next id to be
-- made when there was none). A code published after the snapshot was one of
-- those, or made later: its id is at least floor_id. qrpool-plan's DB-only
-- estimate (Kafka unreachable) then counts the codes published since from
-- floor_id on, a range of the state index, instead of reading every code the
-- pool ever published. NULL in the snapshots taken before this column: those
-- are counted the old way.
ALTER TABLE depth_snapshots ADD COLUMN floor_id INTEGER;
