//! The project event hub: turns what happens (rooms through the engine's
//! [`RoomEvents`] seam, keys and members through the audit path) into durable events,
//! the source of both the change feed (`GET /v1/events`) and the webhook outbox.
//!
//! Nothing here runs on a room's path: the sink call takes a mutex for a map insert and
//! returns; document changes arrive as one tally per room per actor tick and are
//! debounced per room (`--webhook-debounce`, default 2 s: one `document.updated` per
//! window, carrying the window's seq range and writers). A writer task records what is
//! due in one transaction per project ([`WebhookStore::record_events`], which also
//! queues each endpoint's deliveries) and then wakes the delivery worker and feed
//! readers. What is still in memory (the open debounce windows, a batch the store
//! refused) dies with the process on SIGKILL; a recorded event is never lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ids::{EventId, ProjectId};
use crate::rooms::auth::ANONYMOUS_PROJECT;
use crate::rooms::events::{ChangeTally, RoomEvent, RoomEvents};
use crate::rooms::RoomKey;
use crate::store::control::ControlStore;
use crate::store::webhooks::{EventRow, NewEvent};

/// Every event type, for validation and the docs.
pub const EVENT_TYPES: &[&str] = &[
    "room.created",
    "room.deleted",
    "user.entered",
    "user.left",
    "document.updated",
    "key.created",
    "key.rolled",
    "key.revoked",
    "usage.limit_reached",
    "member.invited",
    "member.joined",
    "member.invitation_revoked",
    "member.role_changed",
    "member.removed",
];

/// Whether `pattern` (a type, `*`, or `prefix.*`) names at least one event type.
pub fn valid_pattern(pattern: &str) -> bool {
    pattern == "*"
        || EVENT_TYPES.contains(&pattern)
        || pattern
            .strip_suffix('*')
            .is_some_and(|p| p.ends_with('.') && EVENT_TYPES.iter().any(|t| t.starts_with(p)))
}

/// Events waiting in memory past this are dropped (the store has been down for long).
const MAX_QUEUED: usize = 100_000;
/// One `usage.limit_reached` per project and limit per this long.
const LIMIT_EVENT_EVERY: Duration = Duration::from_secs(60);

/// Settings of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// One `document.updated` per room per this long.
    pub debounce: Duration,
    /// Put before the links in events (`--public-url`), else they are paths.
    pub public_url: Option<String>,
    /// Attach the document's JSON view to `document.updated` up to this size (0: never).
    pub document_json_bytes: usize,
}

/// Reads a room's document as JSON for `document.updated` (the engine's `Rooms`).
#[async_trait::async_trait]
pub trait DocumentJson: Send + Sync + 'static {
    /// The JSON view, `None` if the room is gone or unavailable.
    async fn document_json(&self, key: &RoomKey) -> Option<Value>;
}

#[async_trait::async_trait]
impl DocumentJson for crate::rooms::Rooms {
    async fn document_json(&self, key: &RoomKey) -> Option<Value> {
        self.to_json(key).await.ok().flatten()
    }
}

#[derive(Default)]
struct State {
    /// Ready to record, oldest first.
    queue: Vec<(ProjectId, NewEvent)>,
    /// Open debounce windows: when each began and what it gathered.
    documents: HashMap<RoomKey, (Instant, ChangeTally)>,
    /// When `usage.limit_reached` was last queued per (project, limit).
    limits: HashMap<(Arc<str>, &'static str), Instant>,
    dropped: u64,
}

struct Inner {
    store: Arc<dyn ControlStore>,
    config: HubConfig,
    state: Mutex<State>,
    /// Wakes the writer.
    queued: Notify,
    /// Told after events were recorded (the delivery worker and feed readers wait here).
    recorded: Notify,
    /// Where the JSON view of small documents comes from, once set.
    documents: std::sync::OnceLock<Arc<dyn DocumentJson>>,
}

/// The hub. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").finish_non_exhaustive()
    }
}

impl EventHub {
    /// A hub over `store`; nothing is written until [`EventHub::run`] runs.
    pub fn new(store: Arc<dyn ControlStore>, config: HubConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                state: Mutex::new(State::default()),
                queued: Notify::new(),
                recorded: Notify::new(),
                documents: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Told after every batch of recorded events (or every second at most, for events
    /// recorded by other nodes, which this node cannot hear).
    pub fn recorded(&self) -> &Notify {
        &self.inner.recorded
    }

    /// Lets `document.updated` carry small documents' JSON (with
    /// `--webhook-document-json-bytes`).
    pub fn set_documents(&self, documents: Arc<dyn DocumentJson>) {
        let _ = self.inner.documents.set(documents);
    }

    /// Wakes the delivery worker (a delivery became due: a retry).
    pub fn wake_deliveries(&self) {
        self.inner.recorded.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event of `project` (never waits).
    pub fn publish(&self, project: &ProjectId, event_type: &str, room: Option<&str>, data: Value) {
        let Ok(id) = EventId::generate() else {
            tracing::error!(event_type, "no randomness for an event id; event dropped");
            return;
        };
        let event = NewEvent {
            id,
            event_type: event_type.to_owned(),
            room: room.map(str::to_owned),
            data: data.to_string(),
            created_at: crate::store::unix_ms(),
        };
        let mut state = self.lock();
        if state.queue.len() >= MAX_QUEUED {
            state.dropped += 1;
            if state.dropped.is_power_of_two() {
                tracing::error!(
                    dropped = state.dropped,
                    "the event queue is full (the store is failing?); events dropped"
                );
            }
            return;
        }
        state.queue.push((project.clone(), event));
        drop(state);
        self.inner.queued.notify_one();
    }

    /// The REST links to a room's document, for `document.updated`.
    fn room_links(&self, room: &str) -> (String, String) {
        let base = self
            .inner
            .config
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        let path = format!("{base}/v1/rooms/{}/document", percent_encode(room));
        (path.clone(), format!("{path}/update"))
    }

    fn document_event(&self, key: &RoomKey, tally: ChangeTally, document: Option<Value>) {
        let Some((from, to)) = tally.seqs else {
            return;
        };
        let (document_url, update_url) = self.room_links(&key.name);
        let mut data = json!({
            "room": &*key.name,
            "fromSeq": from,
            "toSeq": to,
            "updates": tally.updates,
            "userIds": tally.writers,
            "documentUrl": document_url,
            "updateUrl": update_url,
        });
        if let Some(document) = document {
            data["document"] = document;
        }
        self.publish(
            &ProjectId::from_db(key.project_id.to_string()),
            "document.updated",
            Some(&key.name),
            data,
        );
    }

    /// The JSON view to attach to a window's event, if the document is small enough.
    async fn small_document(&self, key: &RoomKey, tally: &ChangeTally) -> Option<Value> {
        let max = self.inner.config.document_json_bytes;
        if max == 0 || tally.stored_bytes > max as u64 {
            return None;
        }
        let documents = self.inner.documents.get()?;
        let json = documents.document_json(key).await?;
        (json.to_string().len() <= max).then_some(json)
    }

    /// Moves the debounce windows that are over into the queue; how long until the next
    /// one ends.
    async fn close_windows(&self, now: Instant) -> Option<Duration> {
        let debounce = self.inner.config.debounce;
        let mut due = Vec::new();
        let mut next = None::<Duration>;
        {
            let mut state = self.lock();
            state.documents.retain(|key, (since, tally)| {
                let ends = *since + debounce;
                if ends <= now {
                    due.push((key.clone(), std::mem::take(tally)));
                    false
                } else {
                    let left = ends - now;
                    next = Some(next.map_or(left, |n| n.min(left)));
                    true
                }
            });
        }
        for (key, tally) in due {
            let document = self.small_document(&key, &tally).await;
            self.document_event(&key, tally, document);
        }
        next
    }

    /// Records queued events until `stop`: every time something is queued, a debounce
    /// window ends, or (for a retry after a failure) a second passes. At the end, closes
    /// every window and makes one last attempt.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let mut failures = 0u32;
        loop {
            let wait = self
                .close_windows(Instant::now())
                .await
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            let stopping = stop.is_cancelled();
            if stopping {
                self.close_all();
            }
            match self.record_queued().await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(%error, failures, "recording events failed; retrying");
                    }
                }
            }
            if stopping {
                return;
            }
            tokio::select! {
                () = self.inner.queued.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    fn close_all(&self) {
        let windows: Vec<_> = self.lock().documents.drain().collect();
        for (key, (_, tally)) in windows {
            self.document_event(&key, tally, None);
        }
    }

    /// Records the queue, one transaction per project, in queue order; what fails goes
    /// back to the front.
    async fn record_queued(&self) -> Result<(), crate::store::StoreError> {
        let queued = std::mem::take(&mut self.lock().queue);
        if queued.is_empty() {
            return Ok(());
        }
        let mut by_project: Vec<(ProjectId, Vec<NewEvent>)> = Vec::new();
        for (project, event) in queued {
            match by_project.iter_mut().find(|(p, _)| *p == project) {
                Some((_, events)) => events.push(event),
                None => by_project.push((project, vec![event])),
            }
        }
        let mut failed: Vec<(ProjectId, NewEvent)> = Vec::new();
        let mut error = None;
        let mut recorded = 0usize;
        for (project, events) in by_project {
            if error.is_some() {
                failed.extend(events.into_iter().map(|e| (project.clone(), e)));
                continue;
            }
            match self.inner.store.record_events(&project, &events).await {
                Ok(rows) => recorded += rows.len(),
                Err(e) => {
                    error = Some(e);
                    failed.extend(events.into_iter().map(|e| (project.clone(), e)));
                }
            }
        }
        if recorded > 0 {
            self.inner.recorded.notify_waiters();
        }
        match error {
            None => Ok(()),
            Some(e) => {
                let mut state = self.lock();
                failed.append(&mut state.queue);
                state.queue = failed;
                Err(e)
            }
        }
    }

    /// A page of the project's feed (events with a seq above `after`).
    pub async fn feed(
        &self,
        project: &ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, crate::store::StoreError> {
        self.inner
            .store
            .list_events(project, after, limit.clamp(1, 1000))
            .await
    }
}

impl RoomEvents for EventHub {
    fn flush(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.close_all();
            for attempt in 0..5u32 {
                match self.record_queued().await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, attempt, "writing the last events failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    }

    fn room_event(&self, key: &RoomKey, event: RoomEvent) {
        if &*key.project_id == ANONYMOUS_PROJECT {
            return;
        }
        let project = || ProjectId::from_db(key.project_id.to_string());
        let room = &*key.name;
        match event {
            RoomEvent::DocumentUpdated(tally) => {
                let mut state = self.lock();
                match state.documents.get_mut(key) {
                    Some((_, open)) => open.merge(tally),
                    None => {
                        state.documents.insert(key.clone(), (Instant::now(), tally));
                        drop(state);
                        // The writer computes its next wake-up from the windows.
                        self.inner.queued.notify_one();
                    }
                }
            }
            RoomEvent::Created => {
                self.publish(
                    &project(),
                    "room.created",
                    Some(room),
                    json!({ "room": room }),
                );
            }
            RoomEvent::Deleted => {
                // A change still in its window goes first: it happened before.
                let open = self.lock().documents.remove(key);
                if let Some((_, tally)) = open {
                    self.document_event(key, tally, None);
                }
                self.publish(
                    &project(),
                    "room.deleted",
                    Some(room),
                    json!({ "room": room }),
                );
            }
            RoomEvent::UserEntered {
                connection_id,
                user_id,
            } => self.publish(
                &project(),
                "user.entered",
                Some(room),
                json!({ "room": room, "connectionId": connection_id, "userId": user_id }),
            ),
            RoomEvent::UserLeft {
                connection_id,
                user_id,
            } => self.publish(
                &project(),
                "user.left",
                Some(room),
                json!({ "room": room, "connectionId": connection_id, "userId": user_id }),
            ),
            RoomEvent::LimitReached { limit } => {
                let now = Instant::now();
                {
                    let mut state = self.lock();
                    let last = state.limits.entry((key.project_id.clone(), limit));
                    match last {
                        std::collections::hash_map::Entry::Occupied(mut seen) => {
                            if now.duration_since(*seen.get()) < LIMIT_EVENT_EVERY {
                                return;
                            }
                            seen.insert(now);
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(now);
                        }
                    }
                    if state.limits.len() > 10_000 {
                        state
                            .limits
                            .retain(|_, at| now.duration_since(*at) < LIMIT_EVENT_EVERY);
                    }
                }
                self.publish(
                    &project(),
                    "usage.limit_reached",
                    None,
                    json!({ "limit": limit, "room": room }),
                );
            }
        }
    }
}

/// Percent-encodes a room name for a URL path (everything but unreserved characters).
fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_known_types() {
        for ok in [
            "*",
            "room.created",
            "member.*",
            "user.*",
            "document.updated",
        ] {
            assert!(valid_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "room",
            "rooms.*",
            "*.created",
            "room.created ",
            "member*",
        ] {
            assert!(!valid_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn room_names_are_encoded_in_links() {
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
