-- Events of a project, webhooks to tenants and their delivery outbox.
--
-- events: what happened in a project (room.created, document.updated, key.rolled…), each
-- with a per-project sequence number drawn from event_counters in the transaction that
-- inserts it, so a project's events commit in seq order and a feed reader that asks for
-- `seq > cursor` never skips one. Pruned after the retention period.
-- webhooks: a tenant's endpoints (URL, the event types it wants, its signing secret and,
-- during a roll, the previous one until it expires).
-- webhook_deliveries: the durable outbox, one row per (event, endpoint), written in the
-- same transaction as the event. A node claims a due row by setting lease_until in a
-- conditional UPDATE, so on many nodes each attempt is made by one.

CREATE TABLE event_counters (
    project_id TEXT    COLLATE "C" PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    last_seq   BIGINT  NOT NULL
);

CREATE TABLE events (
    id         TEXT    COLLATE "C" PRIMARY KEY, -- evt_…
    project_id TEXT    COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq        BIGINT  NOT NULL,
    type       TEXT    NOT NULL,
    room       TEXT,                                  -- the room, for room events
    data       TEXT    NOT NULL,                      -- a JSON object
    created_at BIGINT  NOT NULL,
    UNIQUE (project_id, seq)
);

CREATE INDEX events_by_age ON events (created_at);

CREATE TABLE webhooks (
    id                  TEXT    COLLATE "C" PRIMARY KEY, -- whk_…
    project_id          TEXT    COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url                 TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    event_types         TEXT    NOT NULL,             -- a JSON array of types ("*": all)
    secret              BYTEA   NOT NULL,              -- 32 bytes, or sealed under the KEK
    previous_secret     BYTEA,                        -- the rolled secret, until…
    previous_expires_at BIGINT,                      -- …this time
    disabled_at         BIGINT,
    disabled_reason     TEXT,
    last_success_at     BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);

CREATE INDEX webhooks_by_project ON webhooks (project_id, created_at);

CREATE TABLE webhook_deliveries (
    id              TEXT    COLLATE "C" PRIMARY KEY, -- dlv_…
    webhook_id      TEXT    COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT    COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_seq       BIGINT  NOT NULL,
    order_key       TEXT,                             -- the room: delivered in seq order
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,
    last_status     BIGINT,                           -- the endpoint's HTTP status
    last_error      TEXT,
    last_attempt_at BIGINT,
    created_at      BIGINT  NOT NULL,
    delivered_at    BIGINT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_in_order ON webhook_deliveries (webhook_id, order_key, event_seq);
