-- Rooms and their documents: a snapshot (one merged update) plus an append-only log of
-- updates written after it. Loading a room = snapshot + every log row with seq > upto_seq.
CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    project_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL, -- unix milliseconds
    UNIQUE (project_id, name)
);

CREATE TABLE room_snapshots (
    room_id     INTEGER PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    upto_seq    INTEGER NOT NULL, -- the snapshot contains every log row with seq <= upto_seq
    data        BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE room_updates (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    data        BLOB    NOT NULL
);

CREATE INDEX room_updates_by_room ON room_updates (room_id, seq);
