-- Membership by consent, and what belongs to a person rather than a tenant.
--
-- invitations: an owner or admin invites an email with a role; the invited person
-- accepts with the token from the link (kept only as its SHA-256), once, before it
-- expires, unless it was revoked. security_log: a user's own account events (logins,
-- failed logins), never shown to the tenants they are in. email_outbox: the emails the
-- server would send (invitation links, "someone tried to sign up with your email"),
-- for an operator's mailer to deliver; there is no mail server in the binary.

CREATE TABLE invitations (
    id          TEXT    PRIMARY KEY,                     -- inv_…
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,                        -- normalised
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash  BLOB    NOT NULL UNIQUE,                 -- SHA-256 of the token
    invited_by  TEXT    NOT NULL,                        -- a user id
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER,
    accepted_by TEXT,
    revoked_at  INTEGER
);

CREATE INDEX invitations_by_tenant ON invitations (tenant_id, created_at);

CREATE TABLE security_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    action  TEXT    NOT NULL, -- login.succeeded, login.failed, signup.attempted_existing
    ip      TEXT,
    details TEXT    NOT NULL, -- a JSON object
    at      INTEGER NOT NULL
);

CREATE INDEX security_log_by_user ON security_log (user_id, id);

CREATE TABLE email_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
