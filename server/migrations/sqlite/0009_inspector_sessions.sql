-- A room's read-only setting (only `room:admin` connections and the REST API write
-- while it is on), and what the sessions page shows of each session: the browser's
-- user agent, the address it signed in from, and when it was last used (updated at
-- most once a minute). Sessions from before this migration show none of these.
ALTER TABLE rooms ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;

ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
