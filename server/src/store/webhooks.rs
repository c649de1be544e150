//! Storage of a project's events (the change feed), its webhook endpoints and the
//! durable delivery outbox (migration `0005_webhooks.sql`). [`WebhookStore`] is a
//! supertrait of [`ControlStore`](super::control::ControlStore), so the control plane
//! reaches it through the same store object. Times are unix milliseconds.
//!
//! The two rules the rest relies on: an event and its deliveries are written in one
//! transaction (an event is never recorded without the deliveries its endpoints are
//! owed), and a project's events get consecutive seqs in commit order (the counter row is
//! locked by the transaction that draws from it), so `seq > cursor` never skips one.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::{DeliveryId, EventId, ProjectId, TenantId, WebhookId};

/// An event to record; the store assigns its seq.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: EventId,
    /// `room.created`, `document.updated`, …
    pub event_type: String,
    /// The room, for room events (deliveries of one room to one endpoint keep order).
    pub room: Option<String>,
    /// The event's data, a JSON object.
    pub data: String,
    pub created_at: i64,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: EventId,
    pub project_id: ProjectId,
    /// Per project: 1, 2, 3… in commit order.
    pub seq: i64,
    pub event_type: String,
    pub room: Option<String>,
    pub data: String,
    pub created_at: i64,
}

/// A webhook endpoint.
#[derive(Clone, PartialEq)]
pub struct WebhookRow {
    pub id: WebhookId,
    pub project_id: ProjectId,
    pub url: String,
    pub description: String,
    /// The event types it receives (`*`: all).
    pub event_types: Vec<String>,
    /// The signing key (32 bytes), sealed under the KEK when one is configured.
    pub secret: Vec<u8>,
    /// During a roll, the previous key, also signing until `previous_expires_at`.
    pub previous_secret: Option<Vec<u8>>,
    pub previous_expires_at: Option<i64>,
    /// Set when the endpoint was disabled (by a tenant, or after sustained failure).
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
    pub last_success_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl WebhookRow {
    /// Whether it receives events of `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types
            .iter()
            .any(|t| t == "*" || t == event_type || wildcard_matches(t, event_type))
    }
}

/// `member.*` matches `member.joined`.
fn wildcard_matches(pattern: &str, event_type: &str) -> bool {
    pattern
        .strip_suffix('*')
        .is_some_and(|prefix| prefix.ends_with('.') && event_type.starts_with(prefix))
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Retries ran out (or the endpoint was disabled); a retry makes it pending again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_seq: i64,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// The endpoint's HTTP status on the last attempt, if it answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A delivery claimed by this node, with what it needs to make the attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: DeliveryRow,
    pub event: EventRow,
    pub webhook: WebhookRow,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered { status: i64 },
    /// Try again at `next_attempt_at`.
    Retry {
        status: Option<i64>,
        error: String,
        next_attempt_at: i64,
    },
    /// Give up.
    Failed { status: Option<i64>, error: String },
}

/// A change to an endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `Some(true)` re-enables (clearing the reason), `Some(false)` disables.
    pub enabled: Option<bool>,
}

/// Events, webhook endpoints and their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Records events of a project in one transaction: draws consecutive seqs, inserts
    /// the events and one pending delivery (due at `created_at`) for every enabled
    /// endpoint that wants each. Returns the recorded rows; none if the project is gone.
    async fn record_events(
        &self,
        project_id: &ProjectId,
        events: &[NewEvent],
    ) -> StoreResult<Vec<EventRow>>;
    /// The project's events with a seq above `after`, in seq order, at most `limit`.
    async fn list_events(
        &self,
        project_id: &ProjectId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>>;
    /// Deletes events created before `before` (and their deliveries); returns how many.
    async fn prune_events(&self, before: i64) -> StoreResult<u64>;

    /// Stores a new endpoint.
    async fn create_webhook(&self, webhook: &WebhookRow) -> StoreResult<()>;
    /// The project's endpoints, oldest first.
    async fn list_webhooks(&self, project_id: &ProjectId) -> StoreResult<Vec<WebhookRow>>;
    /// One endpoint of the project.
    async fn webhook(
        &self,
        project_id: &ProjectId,
        id: &WebhookId,
    ) -> StoreResult<Option<WebhookRow>>;
    /// Changes an endpoint; `None` if the project has no such endpoint.
    async fn update_webhook(
        &self,
        project_id: &ProjectId,
        id: &WebhookId,
        patch: &WebhookPatch,
        at: i64,
    ) -> StoreResult<Option<WebhookRow>>;
    /// Replaces the signing key, keeping the current one as the previous key until
    /// `previous_expires_at`.
    async fn roll_webhook_secret(
        &self,
        project_id: &ProjectId,
        id: &WebhookId,
        secret: &[u8],
        previous_expires_at: i64,
        at: i64,
    ) -> StoreResult<Option<WebhookRow>>;
    /// Deletes an endpoint and its deliveries; whether it existed.
    async fn delete_webhook(&self, project_id: &ProjectId, id: &WebhookId) -> StoreResult<bool>;
    /// Disables an endpoint after sustained failure (if still enabled); the endpoint as
    /// it is then, `None` if it was already disabled or is gone.
    async fn disable_webhook(
        &self,
        id: &WebhookId,
        reason: &str,
        at: i64,
    ) -> StoreResult<Option<WebhookRow>>;

    /// An endpoint's deliveries, newest event first, those with an event seq below
    /// `before` when given, at most `limit`.
    async fn list_deliveries(
        &self,
        project_id: &ProjectId,
        webhook_id: &WebhookId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>>;
    /// Makes a delivery pending again, due `now`; `None` if there is no such delivery.
    async fn retry_delivery(
        &self,
        project_id: &ProjectId,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        now: i64,
    ) -> StoreResult<Option<DeliveryRow>>;
    /// Claims up to `limit` due deliveries for this node until `lease_until`: pending,
    /// due by `now`, not leased by anyone (or the lease ran out), the endpoint enabled,
    /// and no earlier pending delivery of the same room to the same endpoint. A claim is
    /// one conditional UPDATE, so on many nodes each delivery is claimed by one.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt's outcome and ends the lease (a success also stamps the
    /// endpoint's `last_success_at`).
    async fn finish_attempt(
        &self,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        at: i64,
    ) -> StoreResult<()>;
    /// The earliest time a pending delivery is due (for the worker's sleep).
    async fn next_due(&self) -> StoreResult<Option<i64>>;
    /// The tenant owning a project (for audit entries the server writes itself).
    async fn project_tenant(&self, project_id: &ProjectId) -> StoreResult<Option<TenantId>>;
}
