//! The durable cluster event log (migration `0008_security.sql`): every control event a
//! clustered node publishes on Redis (close these connections, this room was deleted)
//! is first appended here, and every node polls the log, so an event reaches a node
//! that missed the Redis message too (`rooms/cluster/durable.rs`). [`EventLog`] is a
//! supertrait of [`DocStore`](super::DocStore): the rooms engine reaches it through the
//! store it already has. Times are unix milliseconds.

use async_trait::async_trait;

use super::StoreResult;

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Increases with every append (ids may commit out of order on Postgres, and a
    /// rolled-back append leaves a gap).
    pub id: i64,
    /// The event, as JSON.
    pub event: String,
    /// When it was appended.
    pub at: i64,
}

/// The append-only log of control events.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `event` (JSON) and returns its id.
    async fn append_event(&self, event: &str, at: i64) -> StoreResult<i64>;

    /// The events with an id above `after`, oldest first, at most `limit`.
    async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<EventRow>>;

    /// The highest id appended so far (0 when the log is empty).
    async fn last_event_id(&self) -> StoreResult<i64>;

    /// Deletes the events appended before `before`; returns how many.
    async fn prune_events(&self, before: i64) -> StoreResult<u64>;
}
