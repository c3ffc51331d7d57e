-- 001: plans and the codes they mint.
--
-- codes uses an INTEGER PRIMARY KEY, so rows are appended in insertion order;
-- the random request_id lives in its own unique index. (Random keys as the
-- table's own key make every insert land on a random page: about 6x slower.)
CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,        -- unix seconds
    from_time INTEGER NOT NULL,         -- start of the period the plan covers
    capacity INTEGER,                   -- wechat codes allowed; NULL: unbounded
    max_codes INTEGER,                  -- --max; NULL: none
    inputs TEXT NOT NULL,               -- the demand sources, as named on the command line
    granted INTEGER NOT NULL            -- codes minted by this plan
);

CREATE TABLE plan_pools (
    plan_id INTEGER NOT NULL REFERENCES plans(id),
    pool TEXT NOT NULL,
    demand INTEGER NOT NULL,            -- forecast over the pool's cover hours
    depth INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    target INTEGER NOT NULL,
    need INTEGER NOT NULL,
    granted INTEGER NOT NULL,
    PRIMARY KEY (plan_id, pool)
) WITHOUT ROWID;

CREATE TABLE plan_demand (
    plan_id INTEGER NOT NULL REFERENCES plans(id),
    pool TEXT NOT NULL,
    hour INTEGER NOT NULL,              -- unix seconds of the hour's start
    codes INTEGER NOT NULL,
    PRIMARY KEY (plan_id, pool, hour)
) WITHOUT ROWID;

CREATE TABLE codes (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    plan_id INTEGER REFERENCES plans(id),
    state TEXT NOT NULL DEFAULT 'planned'
        CHECK (state IN ('planned', 'fetched', 'published', 'failed')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    errcode INTEGER,                    -- WeChat errcode of the last refusal
    last_error TEXT,
    content_type TEXT,
    sha256 TEXT,                        -- hex digest of the stored image
    fetched_at INTEGER,                 -- when the image was fetched or rendered
    published_at INTEGER,
    kafka_partition INTEGER,
    kafka_offset INTEGER
);
CREATE INDEX codes_by_state ON codes(state, pool);

-- Image bytes apart from the row, so scans of codes stay small and the bytes
-- can be dropped once published.
CREATE TABLE images (
    code_id INTEGER PRIMARY KEY REFERENCES codes(id),
    bytes BLOB NOT NULL
);
