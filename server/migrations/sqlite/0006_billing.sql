-- Stripe billing (off unless configured). Times are unix milliseconds.
--
-- billing_accounts: a tenant's Stripe customer, created once and remembered, and the
-- subscription state the webhook last applied (with the Stripe `created` time of that
-- event, so an older event delivered late does not undo a newer one). While an invoice
-- is unpaid, grace_until is when the tenant drops to the free plan. metered_through:
-- every usage hour before it is in the meter outbox.
--
-- stripe_events: every webhook event applied, by Stripe's event id, written in the same
-- transaction as its effects: a replayed delivery changes nothing.
--
-- meter_outbox: usage waiting to be reported as Stripe billing meter events. One row per
-- project, hour and metered quantity; its identifier (the primary key) is derived from
-- those and sent to Stripe, which counts an identifier once, so a retry or a restart
-- never double-counts. No foreign keys: usage outlives its projects.

CREATE TABLE billing_accounts (
    tenant_id            TEXT    PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    customer_id          TEXT    NOT NULL UNIQUE,          -- cus_…
    subscription_id      TEXT,                             -- sub_…
    subscription_status  TEXT,                             -- Stripe's (active, past_due, canceled, …)
    price_id             TEXT,
    current_period_end   INTEGER,                          -- the renewal date
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    payment_failed_at    INTEGER,
    grace_until          INTEGER,
    metered_through      INTEGER,                          -- an hour boundary
    state_event_at       INTEGER NOT NULL DEFAULT 0,       -- Stripe `created` (seconds)
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE stripe_events (
    event_id     TEXT    PRIMARY KEY,                      -- evt_…
    event_type   TEXT    NOT NULL,
    tenant_id    TEXT,
    received_at  INTEGER NOT NULL
);

CREATE TABLE meter_outbox (
    identifier       TEXT    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    customer_id      TEXT    NOT NULL,
    event_name       TEXT    NOT NULL,
    project_id       TEXT    NOT NULL,
    hour_start       INTEGER NOT NULL,
    value            INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    sent_at          INTEGER
);

CREATE INDEX meter_outbox_due ON meter_outbox (sent_at, next_attempt_at);
CREATE INDEX meter_outbox_by_tenant ON meter_outbox (tenant_id, hour_start);
