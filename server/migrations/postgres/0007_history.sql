-- Version history (issue #17). Every update records who wrote it and when; compaction
-- moves the rows it folds into `room_history` instead of deleting them, and keeps each
-- snapshot it writes as a checkpoint. Retention prunes both.

-- Attribution of the live log, written by the group commit in the same INSERT.
ALTER TABLE room_updates ADD COLUMN written_at BIGINT  NOT NULL DEFAULT 0; -- unix ms
ALTER TABLE room_updates ADD COLUMN author TEXT;     -- the token's `sub`
ALTER TABLE room_updates ADD COLUMN key_id TEXT;     -- the API key (REST) or the token's key
ALTER TABLE room_updates ADD COLUMN conn_id BIGINT; -- the WebSocket connection
ALTER TABLE room_updates ADD COLUMN via TEXT;        -- socket | rest | restore | fork

-- Log rows a compaction folded, kept for the retention window.
CREATE TABLE room_history (
    seq         BIGINT  PRIMARY KEY,
    room_id     BIGINT  NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    checkpoint  BIGINT  NOT NULL, -- the upto_seq of the checkpoint that folded it
    written_at  BIGINT  NOT NULL,
    author      TEXT,
    key_id      TEXT,
    conn_id     BIGINT,
    via         TEXT,
    data        BYTEA   NOT NULL
);
CREATE INDEX room_history_by_room ON room_history (room_id, seq);

-- Every snapshot a compaction wrote. It holds exactly the rows with
-- `checkpoint <= upto_seq`; every row it does not hold has `seq >= low_seq`; every row it
-- holds was written at or before `max_at`. `base` = the rows it folded were pruned:
-- nothing before `max_at` can be rebuilt.
CREATE TABLE room_checkpoints (
    room_id     BIGINT  NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    upto_seq    BIGINT  NOT NULL,
    low_seq     BIGINT  NOT NULL,
    max_at      BIGINT  NOT NULL,
    base        BIGINT  NOT NULL DEFAULT 0,
    data        BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (room_id, upto_seq)
);

-- Names given to points in time ("before the big edit").
CREATE TABLE room_version_names (
    room_id     BIGINT  NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    at_ms       BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    PRIMARY KEY (room_id, at_ms, name)
);

-- Snapshots written before history existed become the first checkpoints: what they
-- folded is gone, so nothing before them can be rebuilt (`base`).
INSERT INTO room_checkpoints (room_id, upto_seq, low_seq, max_at, base, data, created_at)
SELECT s.room_id, s.upto_seq,
       COALESCE((SELECT MIN(u.seq) FROM room_updates u
                 WHERE u.room_id = s.room_id AND u.seq <= s.upto_seq), s.upto_seq + 1),
       s.updated_at, 1, s.data, s.updated_at
FROM room_snapshots s;
