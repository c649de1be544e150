//! Storage of Stripe billing (migration `0006_billing.sql`): each tenant's Stripe
//! customer and subscription state, the webhook events already applied, and the meter
//! outbox of usage waiting to be reported. [`BillingStore`] is its own trait, reached
//! through [`super::Stores::billing`]. Times are unix milliseconds unless named
//! otherwise.

use async_trait::async_trait;

use super::control::AuditRow;
use super::StoreResult;
use crate::ids::TenantId;

/// A tenant's Stripe customer and the subscription state last applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccountRow {
    pub tenant_id: TenantId,
    /// `cus_…`, created once per tenant.
    pub customer_id: String,
    pub subscription_id: Option<String>,
    /// Stripe's status: `active`, `trialing`, `past_due`, `canceled`, `unpaid`, …
    pub subscription_status: Option<String>,
    pub price_id: Option<String>,
    /// The end of the current period: the renewal (or, cancelling, the end) date.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// When an invoice first failed to be paid (cleared once the subscription is
    /// active again).
    pub payment_failed_at: Option<i64>,
    /// While unpaid: when the tenant drops to the free plan.
    pub grace_until: Option<i64>,
    /// Every usage hour before this one is in the meter outbox (`None`: not metered).
    pub metered_through: Option<i64>,
    /// The Stripe `created` time (seconds) of the event that set the subscription
    /// state: older events do not overwrite it.
    pub state_event_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an applied billing change writes, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BillingChange {
    /// The account's new state (`None`: unchanged).
    pub account: Option<BillingAccountRow>,
    /// The tenant's new plan (`None`: unchanged).
    pub plan: Option<String>,
    /// Audit rows for the tenant.
    pub audit: Vec<AuditRow>,
}

/// A usage quantity that can be billed per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantity {
    /// Connection time, in whole minutes (rounded up per project and hour).
    ConnectionMinutes,
    /// WebSocket messages received and sent.
    Messages,
    /// … received.
    MessagesIn,
    /// … sent.
    MessagesOut,
    /// Payload bytes received and sent.
    Bytes,
    /// … received.
    BytesIn,
    /// … sent.
    BytesOut,
    /// The most connections open at once in the project in the hour.
    PeakConnections,
}

impl Quantity {
    /// Every quantity.
    pub const ALL: [Quantity; 8] = [
        Quantity::ConnectionMinutes,
        Quantity::Messages,
        Quantity::MessagesIn,
        Quantity::MessagesOut,
        Quantity::Bytes,
        Quantity::BytesIn,
        Quantity::BytesOut,
        Quantity::PeakConnections,
    ];

    /// Its name in configuration and identifiers (kebab-case).
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::ConnectionMinutes => "connection-minutes",
            Quantity::Messages => "messages",
            Quantity::MessagesIn => "messages-in",
            Quantity::MessagesOut => "messages-out",
            Quantity::Bytes => "bytes",
            Quantity::BytesIn => "bytes-in",
            Quantity::BytesOut => "bytes-out",
            Quantity::PeakConnections => "peak-connections",
        }
    }

    /// The quantity named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }

    /// Its value in one project hour.
    pub fn value(self, hour: &ProjectHourTotals) -> i64 {
        let add = |a: i64, b: i64| a.saturating_add(b);
        match self {
            Quantity::ConnectionMinutes => hour.connection_ms.saturating_add(59_999) / 60_000,
            Quantity::Messages => add(hour.messages_in, hour.messages_out),
            Quantity::MessagesIn => hour.messages_in,
            Quantity::MessagesOut => hour.messages_out,
            Quantity::Bytes => add(hour.bytes_in, hour.bytes_out),
            Quantity::BytesIn => hour.bytes_in,
            Quantity::BytesOut => hour.bytes_out,
            Quantity::PeakConnections => hour.peak_connections,
        }
    }
}

/// One project's usage in one hour, summed over its rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectHourTotals {
    pub project_id: String,
    pub hour_start: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub connection_ms: i64,
    pub peak_connections: i64,
}

/// The identifier of one project hour's quantity: what Stripe de-duplicates on.
pub fn meter_identifier(project_id: &str, hour_start: i64, quantity: Quantity) -> String {
    format!(
        "tandem:{project_id}:{}:{}",
        hour_start.div_euclid(1000),
        quantity.as_str()
    )
}

/// One meter event to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRow {
    /// The Stripe identifier (see [`meter_identifier`]).
    pub identifier: String,
    pub tenant_id: TenantId,
    pub customer_id: String,
    pub event_name: String,
    pub project_id: String,
    pub hour_start: i64,
    pub value: i64,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

/// How the meter outbox stands (for `/metrics` and the dashboard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Rows not sent yet.
    pub pending: i64,
    /// … of which at least one attempt failed.
    pub failing: i64,
    /// Rows sent.
    pub sent: i64,
    /// The sum of the pending rows' values.
    pub pending_value: i64,
    /// The most recent error of a pending row.
    pub last_error: Option<String>,
    /// The earliest next attempt of a failing row.
    pub next_attempt_at: Option<i64>,
}

/// Billing state, webhook de-duplication and the meter outbox.
#[async_trait]
pub trait BillingStore: Send + Sync + 'static {
    /// The tenant's billing account, if it has a Stripe customer.
    async fn billing_account(&self, tenant_id: &TenantId)
        -> StoreResult<Option<BillingAccountRow>>;
    /// The account of a Stripe customer.
    async fn billing_account_by_customer(
        &self,
        customer_id: &str,
    ) -> StoreResult<Option<BillingAccountRow>>;
    /// Stores `account` unless the tenant already has one; returns the stored one (the
    /// first customer remembered wins).
    async fn remember_customer(
        &self,
        account: &BillingAccountRow,
    ) -> StoreResult<BillingAccountRow>;
    /// Applies `change` and records the event id, in one transaction, unless the event
    /// was recorded before: `false` then, and nothing changes.
    async fn apply_stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        tenant_id: Option<&TenantId>,
        received_at: i64,
        change: &BillingChange,
    ) -> StoreResult<bool>;
    /// Applies `change` (no event: the grace period ended) if the account's
    /// `grace_until` is still `grace_until`; whether it did.
    async fn apply_grace_expiry(
        &self,
        tenant_id: &TenantId,
        grace_until: i64,
        change: &BillingChange,
    ) -> StoreResult<bool>;
    /// Accounts whose grace period ended before `now`.
    async fn accounts_past_grace(&self, now: i64) -> StoreResult<Vec<BillingAccountRow>>;
    /// Accounts being metered (`metered_through` set) with hours before `before` not
    /// yet queued.
    async fn accounts_to_meter(&self, before: i64) -> StoreResult<Vec<BillingAccountRow>>;
    /// Queues the meter events of the tenant's projects' hours in `[from, to)` (one
    /// row per project, hour and quantity with a value above zero) and moves
    /// `metered_through` from `from` to `to`, in one transaction; `None` if
    /// `metered_through` was no longer `from` (another node did it).
    async fn queue_meter_hours(
        &self,
        tenant_id: &TenantId,
        from: i64,
        to: i64,
        meters: &[(Quantity, String)],
        now: i64,
    ) -> StoreResult<Option<usize>>;
    /// Unsent rows due at `now`, oldest first.
    async fn due_meter_events(&self, now: i64, limit: u32) -> StoreResult<Vec<MeterRow>>;
    /// Takes a due row for sending: moves its next attempt from `seen` to
    /// `lease_until` if nobody else did; whether this caller got it.
    async fn claim_meter_event(
        &self,
        identifier: &str,
        seen: i64,
        lease_until: i64,
    ) -> StoreResult<bool>;
    /// Marks a row sent.
    async fn meter_event_sent(&self, identifier: &str, at: i64) -> StoreResult<()>;
    /// Records a failed attempt and when to try again.
    async fn meter_event_failed(
        &self,
        identifier: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// The outbox's state, for one tenant or all.
    async fn meter_stats(&self, tenant_id: Option<&TenantId>) -> StoreResult<MeterStats>;
    /// The tenant's rows, newest hour first (at most `limit`).
    async fn meter_rows(&self, tenant_id: &TenantId, limit: u32) -> StoreResult<Vec<MeterRow>>;
}

/// The shared handle the server holds.
pub type SharedBillingStore = std::sync::Arc<dyn BillingStore>;
