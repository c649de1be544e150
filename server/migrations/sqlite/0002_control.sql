-- The control plane: users and their sessions, tenants and their members, projects, API
-- keys, token signing keys and the audit log. Ids are prefixed text (`usr_…`, `ten_…`,
-- `prj_…`, `key_…`); times are unix milliseconds. Secrets are never stored in the clear:
-- sessions and API keys are kept as the SHA-256 of the secret, passwords as argon2id.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE, -- normalised by the caller
    password_hash TEXT    NOT NULL,        -- argon2id PHC string
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash     BLOB    PRIMARY KEY, -- SHA-256 of the session id (the id is only in the cookie)
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE tenants (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    plan        TEXT    NOT NULL, -- free, pro, enterprise
    created_at  INTEGER NOT NULL
);

CREATE TABLE members (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- A user's tenants (the primary key only serves lookups by tenant).
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE projects (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    public_access INTEGER NOT NULL DEFAULT 0 CHECK (public_access IN (0, 1)),
    created_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id      TEXT    REFERENCES projects (id) ON DELETE CASCADE, -- NULL for PATs
    user_id         TEXT    REFERENCES users (id) ON DELETE CASCADE,    -- a PAT's owner
    kind            TEXT    NOT NULL CHECK (kind IN ('secret', 'publishable', 'pat')),
    name            TEXT    NOT NULL,
    display_prefix  TEXT    NOT NULL, -- the first characters, for listings
    hash            BLOB    NOT NULL UNIQUE, -- SHA-256 of the key: lookup by presented key
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    -- Project keys belong to a project and nobody; a PAT to a user and no project.
    CHECK ((kind = 'pat' AND project_id IS NULL AND user_id IS NOT NULL)
        OR (kind <> 'pat' AND project_id IS NOT NULL AND user_id IS NULL))
);

-- Listings: a project's keys, a user's PATs in a tenant (also what removing a member
-- revokes), newest first.
CREATE INDEX api_keys_by_project ON api_keys (project_id, created_at);
CREATE INDEX api_keys_by_user ON api_keys (tenant_id, user_id, created_at);

CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY,
    secret      BLOB    NOT NULL, -- Ed25519 seed, 32 bytes
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

-- No foreign keys here on purpose: the log outlives what it describes (a deleted project's
-- events stay readable), and it must never refuse an event.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT    NOT NULL,
    project_id  TEXT,
    actor       TEXT    NOT NULL, -- a user id, a key id, or 'system'
    action      TEXT    NOT NULL, -- dotted, e.g. key.created
    target      TEXT,
    ip          TEXT,
    details     TEXT    NOT NULL, -- a JSON object
    at          INTEGER NOT NULL
);

-- A tenant's events newest first, paged by id.
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
