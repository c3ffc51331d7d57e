-- 005: bindings of handed-out codes to business parameters (qrpool-claim).
-- The system of record that qrpool-resolve falls back to when Redis misses.
--
-- A binding is committed before the consumer group's Kafka offset, so after a
-- crash a redelivered code is found here and skipped, never handed out twice.
-- request_id TEXT PRIMARY KEY keeps the rowid table (rows appended in binding
-- order) with the random id in its own unique index, as codes does.
CREATE TABLE bindings (
    request_id TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    params TEXT NOT NULL,               -- one JSON object, compact (as written to Redis)
    bound_at REAL NOT NULL,             -- unix seconds
    kafka_partition INTEGER NOT NULL,   -- where the code was consumed from
    kafka_offset INTEGER NOT NULL
);
