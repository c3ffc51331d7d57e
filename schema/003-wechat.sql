-- 003: what qrpool-fetch processes share about WeChat: the minute quota ledger
-- and the access token cache.

-- One row per appid and quota window ("minute", aligned on the wall clock:
-- window_start_ms = floor(unix_ms / minute_ms) * minute_ms). Every process
-- reserves calls here in small chunks inside BEGIN IMMEDIATE, so together they
-- never take more than the budget; calls reserved but not made are given back.
CREATE TABLE quota_windows (
    appid TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    minute_ms INTEGER NOT NULL,         -- the window's length
    budget INTEGER NOT NULL,            -- quota_per_minute - reserve_per_minute
    taken INTEGER NOT NULL DEFAULT 0,   -- calls reserved (made, or still held)
    refused INTEGER NOT NULL DEFAULT 0, -- 45009/45011 answers received
    spent INTEGER NOT NULL DEFAULT 0,   -- 1: WeChat said the window is used up
    PRIMARY KEY (appid, window_start_ms)
) WITHOUT ROWID;

-- The access token per appid and source, shared by every process. A refresh
-- is leased (lease_until) so only one process calls the token endpoint; the
-- others keep using the current token or wait for the new one.
CREATE TABLE wechat_tokens (
    appid TEXT NOT NULL,
    source TEXT NOT NULL,               -- stable, classic, command, file
    token TEXT,                         -- NULL until fetched, or after it failed
    expires_at REAL,                    -- unix seconds
    refresh_after REAL,                 -- refresh ahead of expiry from then on
    lease_until REAL,                   -- a process is refreshing until then
    fetched_at REAL,
    refreshes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (appid, source)
) WITHOUT ROWID;
