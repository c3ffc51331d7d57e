-- 002: one row per run of a stage, for the report and for operators.
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,                -- plan, fetch, render, publish, ...
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,           -- unix seconds
    ended_at REAL,                      -- NULL while running or after a crash
    items_in INTEGER NOT NULL DEFAULT 0,
    items_out INTEGER NOT NULL DEFAULT 0,
    exit_status INTEGER
);
CREATE INDEX runs_by_stage ON runs(stage, started_at);
