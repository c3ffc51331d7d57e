-- 006: what qrpool-report remembers between runs. One snapshot per pool and
-- report run, so consumption rates come from consecutive snapshots: the
-- group's committed position is end_offsets - depth - lost.
CREATE TABLE depth_snapshots (
    pool TEXT NOT NULL,
    taken_at REAL NOT NULL,             -- unix seconds
    end_offsets INTEGER NOT NULL,       -- sum of the topic's end offsets
    depth INTEGER NOT NULL,             -- codes not yet consumed
    lost INTEGER NOT NULL,              -- codes retention dropped unread
    PRIMARY KEY (pool, taken_at)
) WITHOUT ROWID;

-- Failed codes per pool and errcode over a recent period, without a scan.
CREATE INDEX codes_failed ON codes(state, updated_at) WHERE state = 'failed';
