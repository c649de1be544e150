-- Security and cluster correctness (#14).
--
-- control_events: what one node tells every other (close these connections, this room
-- was deleted), recorded here as well as published on Redis, so that a node that
-- missed the Redis message (Redis down, a dropped connection) still applies it: every
-- clustered node polls this table. Rows are pruned after a day.
--
-- projects.public_rooms / public_scopes: what a publishable key's anonymous tokens may
-- reach when public access is on: a room pattern (an exact name or `prefix*`) and a
-- space-separated subset of `room:read room:presence:write room:write`.

CREATE TABLE control_events (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT    NOT NULL, -- a JSON control event
    at    INTEGER NOT NULL
);

CREATE INDEX control_events_by_at ON control_events (at);

ALTER TABLE projects ADD COLUMN public_rooms TEXT NOT NULL DEFAULT '*';
ALTER TABLE projects ADD COLUMN public_scopes TEXT NOT NULL DEFAULT 'room:read room:presence:write';
