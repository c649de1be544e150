-- Usage metering (the SQLite schema in Postgres types). The engine counts in memory and
-- flushes a batch every few seconds; each batch carries a random flush id, recorded here
-- in the same transaction as its counters, so a retried batch is applied once. Times are
-- unix milliseconds; hours and months are UTC. No foreign keys on purpose: usage outlives
-- the projects and rooms it describes. Names compare bytewise (COLLATE "C") like SQLite.

CREATE TABLE usage_flushes (
    flush_id    TEXT    COLLATE "C" PRIMARY KEY,
    applied_at  BIGINT  NOT NULL
);

CREATE INDEX usage_flushes_by_time ON usage_flushes (applied_at);

CREATE TABLE usage_hourly (
    project_id        TEXT    COLLATE "C" NOT NULL,
    room              TEXT    COLLATE "C" NOT NULL,
    hour_start        BIGINT  NOT NULL,
    messages_in       BIGINT  NOT NULL DEFAULT 0,
    messages_out      BIGINT  NOT NULL DEFAULT 0,
    bytes_in          BIGINT  NOT NULL DEFAULT 0,
    bytes_out         BIGINT  NOT NULL DEFAULT 0,
    connection_ms     BIGINT  NOT NULL DEFAULT 0,
    peak_connections  BIGINT  NOT NULL DEFAULT 0,
    active            BOOLEAN NOT NULL DEFAULT FALSE,
    storage_bytes     BIGINT,
    PRIMARY KEY (project_id, hour_start, room)
);

CREATE TABLE usage_project_hourly (
    project_id        TEXT    COLLATE "C" NOT NULL,
    hour_start        BIGINT  NOT NULL,
    peak_connections  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, hour_start)
);

CREATE TABLE usage_users (
    project_id   TEXT    COLLATE "C" NOT NULL,
    month_start  BIGINT  NOT NULL,
    user_id      TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (project_id, month_start, user_id)
);
