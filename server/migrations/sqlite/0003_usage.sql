-- Usage metering. The engine counts in memory and flushes a batch every few seconds;
-- each batch carries a random flush id, recorded here in the same transaction as its
-- counters, so a retried batch is applied once. Times are unix milliseconds; hours and
-- months are UTC. No foreign keys on purpose: usage outlives the projects and rooms it
-- describes (billing still needs a deleted project's hours).

CREATE TABLE usage_flushes (
    flush_id    TEXT    PRIMARY KEY,
    applied_at  INTEGER NOT NULL
);

-- Forgetting old flush ids.
CREATE INDEX usage_flushes_by_time ON usage_flushes (applied_at);

CREATE TABLE usage_hourly (
    project_id        TEXT    NOT NULL,
    room              TEXT    NOT NULL,
    hour_start        INTEGER NOT NULL, -- a multiple of 3600000
    messages_in       INTEGER NOT NULL DEFAULT 0, -- binary WebSocket messages received
    messages_out      INTEGER NOT NULL DEFAULT 0, -- … and sent
    bytes_in          INTEGER NOT NULL DEFAULT 0, -- their payload bytes
    bytes_out         INTEGER NOT NULL DEFAULT 0,
    connection_ms     INTEGER NOT NULL DEFAULT 0, -- connection time within the hour
    peak_connections  INTEGER NOT NULL DEFAULT 0, -- most open at once in the room (max)
    active            INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    storage_bytes     INTEGER, -- latest stored size measured in the hour; NULL: not measured
    PRIMARY KEY (project_id, hour_start, room)
) WITHOUT ROWID;

CREATE TABLE usage_project_hourly (
    project_id        TEXT    NOT NULL,
    hour_start        INTEGER NOT NULL,
    peak_connections  INTEGER NOT NULL DEFAULT 0, -- most open at once in the project (max)
    PRIMARY KEY (project_id, hour_start)
) WITHOUT ROWID;

-- Monthly active users: distinct token user ids (`sub`) per project and month.
CREATE TABLE usage_users (
    project_id   TEXT    NOT NULL,
    month_start  INTEGER NOT NULL,
    user_id      TEXT    NOT NULL,
    PRIMARY KEY (project_id, month_start, user_id)
) WITHOUT ROWID;
