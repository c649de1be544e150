//! The rooms engine: room actors owning yrs documents and presence ([`actor`]), the
//! registry that finds or starts them ([`registry`]), group commit to the store
//! ([`persist`]), the per-connection session loop ([`session`]), the authorizer seam
//! ([`auth`]), usage metering ([`meter`]) and the control plane's API on [`Rooms`]
//! ([`admin`]). Nothing here knows about HTTP; `http` adapts sockets to [`session`] and
//! REST routes to [`admin`].

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod events;
pub mod history;
pub mod inspect;
pub mod limits;
pub(crate) mod meter;
pub mod metrics;
pub mod session;

mod actor;
mod doc;
mod identity;
mod json;
mod msg;
mod outbox;
mod persist;
mod registry;
pub(crate) mod validate;

#[cfg(test)]
mod tests;

pub use msg::{CloseFilter, PresenceEntry, Rights, RoomError};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::usage::SharedUsageStore;
use crate::store::SharedDocStore;
use meter::Meter;
use persist::Persister;
use registry::Registry;

/// A room's identity: rooms are namespaced by project.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomKey {
    /// The owning project.
    pub project_id: Arc<str>,
    /// The room name from the URL.
    pub name: Arc<str>,
}

/// Identifies one connection inside the engine.
pub type ConnId = u64;

/// Why the server closes a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// A close code from [`tandem_protocol::close`].
    pub code: u16,
    /// Shown to the client (kept under the 123-byte close-frame limit by the session).
    pub reason: String,
    /// Whether frames already queued for the client are sent before the close.
    pub flush: bool,
}

impl CloseReason {
    /// A close that first delivers what is queued.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            flush: true,
        }
    }
}

/// Tuning of the rooms engine (see `tandem serve --help` for each).
#[derive(Debug, Clone)]
pub struct RoomsConfig {
    /// Largest WebSocket message accepted; larger closes with 4413.
    pub max_message_bytes: usize,
    /// Largest awareness state a connection may set (after the server attached its
    /// user); larger closes it with 4400.
    pub max_presence_bytes: usize,
    /// Most awareness client ids one connection may hold.
    pub max_presence_clients: usize,
    /// Largest custom event a connection may send.
    pub max_event_bytes: usize,
    /// Frames queued per connection before it counts as too slow and is closed.
    pub outbound_queue: usize,
    /// Messages queued per room before connections wait (backpressure).
    pub room_inbox: usize,
    /// A send to a client that takes longer than this closes it.
    pub send_timeout: Duration,
    /// A room with no connections for this long is unloaded.
    pub room_idle_timeout: Duration,
    /// Awareness states not renewed for this long are removed.
    pub awareness_timeout: Duration,
    /// How long relaying waits for the store before closing clients with 1013.
    pub persist_timeout: Duration,
    /// Compact the log into the snapshot past this many updates…
    pub compact_after_updates: usize,
    /// …or this many bytes.
    pub compact_after_bytes: usize,
    /// Most updates in one group commit.
    pub group_commit_max: usize,
    /// How often usage is flushed to the store (also at every UTC hour and shutdown).
    pub usage_flush_interval: Duration,
    /// Updates less than this apart form one version in the history listing.
    pub version_gap: Duration,
    /// How long history is kept in rooms whose plan the engine has not seen (no
    /// connection joined since it loaded); `None` keeps it for ever. A plan's own
    /// retention, carried by every join and REST write, wins.
    pub history_retention: Option<Duration>,
    /// The clock updates are stamped with and retention measured by.
    pub clock: Clock,
}

/// Unix milliseconds, as the engine reads them: the system clock, or one a test moves.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::from_fn(crate::store::unix_ms)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_presence_bytes: 16 * 1024,
            max_presence_clients: 8,
            max_event_bytes: 64 * 1024,
            outbound_queue: 512,
            room_inbox: 1024,
            send_timeout: Duration::from_secs(10),
            room_idle_timeout: Duration::from_secs(30),
            awareness_timeout: Duration::from_secs(30),
            persist_timeout: Duration::from_secs(10),
            compact_after_updates: 500,
            compact_after_bytes: 1024 * 1024,
            group_commit_max: 1024,
            usage_flush_interval: Duration::from_secs(10),
            version_gap: Duration::from_secs(5),
            history_retention: Some(Duration::from_secs(7 * 24 * 3600)),
            clock: Clock::default(),
        }
    }
}

/// Shared by the engine handle, every actor and every session.
pub(crate) struct Engine {
    pub(crate) config: RoomsConfig,
    pub(crate) store: SharedDocStore,
    pub(crate) registry: Registry,
    pub(crate) persister: Persister,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    next_conn: AtomicU64,
    /// Live connections per project, for the plan's cap.
    pub(crate) project_connections: Arc<limits::ProjectConnections>,
    /// The plan limits each project's live sessions enforce (a plan change updates
    /// them in place).
    pub(crate) live_limits: limits::LiveLimits,
    /// Counters and histograms for `/metrics`.
    pub(crate) metrics: Arc<metrics::EngineMetrics>,
    /// Usage counted per connection and room.
    pub(crate) meter: Arc<Meter>,
    /// The other nodes, when running as one of many (`--redis-url`).
    pub(crate) cluster: Option<cluster::Cluster>,
    /// Where room events go (webhooks and the change feed), once the control plane
    /// set it ([`Rooms::set_events`]); unset, they are dropped.
    events: std::sync::OnceLock<Arc<dyn events::RoomEvents>>,
    /// The usage flusher and how to stop it (a deadline for its last flush).
    flusher: std::sync::Mutex<Option<Flushing>>,
}

impl Engine {
    /// Tells the events sink, if any, what happened in `room` (never waits).
    pub(crate) fn emit(&self, room: &RoomKey, event: events::RoomEvent) {
        if let Some(sink) = self.events.get() {
            sink.room_event(room, event);
        }
    }
}

struct Flushing {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<tokio::time::Instant>,
}

/// The rooms engine. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("loaded", &self.loaded_rooms())
            .finish_non_exhaustive()
    }
}

impl Rooms {
    /// Starts the engine (and its group-commit writer) on `store`, without usage
    /// metering.
    pub fn new(store: SharedDocStore, config: RoomsConfig) -> Self {
        Self::start(store, None, None, config)
    }

    /// Starts the engine with usage metering: usage is counted in memory and flushed
    /// into `usage` every `config.usage_flush_interval` and at shutdown.
    pub fn metered(store: SharedDocStore, usage: SharedUsageStore, config: RoomsConfig) -> Self {
        Self::start(store, Some(usage), None, config)
    }

    /// Starts the engine as one node of a cluster ([`cluster`]): rooms exchange updates,
    /// presence and events with the other nodes over Redis, and the per-project
    /// connection cap counts every node. Usage is metered when `usage` is given. Fails
    /// only if the Redis URL does not parse (Redis itself may come later).
    pub fn clustered(
        store: SharedDocStore,
        usage: Option<SharedUsageStore>,
        options: &cluster::ClusterOptions,
        config: RoomsConfig,
    ) -> Result<Self, String> {
        let project_connections = Arc::new(limits::ProjectConnections::default());
        let cluster =
            cluster::Cluster::start(options, project_connections.clone(), Some(store.clone()))?;
        let counted = cluster.clone();
        project_connections.on_release(move |project| counted.count_changed(project));
        let rooms = Self::build(
            store,
            usage,
            Some(cluster.clone()),
            project_connections,
            config,
        );
        let engine = Arc::downgrade(&rooms.engine);
        let node = cluster.node_id();
        cluster.on_control(move |event| {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let rooms = Rooms { engine };
            match event {
                cluster::ControlEvent::Close {
                    project_id,
                    filter,
                    code,
                    reason,
                } => {
                    let Some(filter) = CloseFilter::from_wire(filter.clone(), node) else {
                        return;
                    };
                    let project_id = project_id.clone();
                    let reason = CloseReason::new(*code, reason.clone());
                    tokio::spawn(async move {
                        rooms.close_where_local(&project_id, filter, reason).await;
                    });
                }
                cluster::ControlEvent::RoomSettingsChanged { project_id, room } => {
                    let key = RoomKey {
                        project_id: project_id.as_str().into(),
                        name: room.as_str().into(),
                    };
                    tokio::spawn(async move { rooms.reload_settings(&key).await });
                }
                cluster::ControlEvent::Limits { project_id, limits } => {
                    rooms.set_project_limits_local(project_id, *limits);
                }
                // Handled by the cluster layer itself (the room catches up).
                cluster::ControlEvent::RoomDeleted { .. } => {}
                cluster::ControlEvent::SigningKeysChanged => {}
            }
        });
        Ok(rooms)
    }

    fn start(
        store: SharedDocStore,
        usage: Option<SharedUsageStore>,
        cluster: Option<cluster::Cluster>,
        config: RoomsConfig,
    ) -> Self {
        Self::build(store, usage, cluster, Arc::default(), config)
    }

    fn build(
        store: SharedDocStore,
        usage: Option<SharedUsageStore>,
        cluster: Option<cluster::Cluster>,
        project_connections: Arc<limits::ProjectConnections>,
        config: RoomsConfig,
    ) -> Self {
        let metrics = Arc::new(metrics::EngineMetrics::default());
        let persister = Persister::spawn(
            store.clone(),
            config.group_commit_max,
            config.persist_timeout,
            metrics.clone(),
            config.clock.clone(),
        );
        let now: meter::Now = Arc::new(crate::store::unix_ms);
        let meter = Arc::new(Meter::new(now, usage.is_some()));
        let flusher = usage.map(|usage| {
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let flusher = meter::flusher::Flusher::new(meter.clone(), usage);
            let task = tokio::spawn(flusher.run(config.usage_flush_interval, stopped));
            Flushing { task, stop }
        });
        Self {
            engine: Arc::new(Engine {
                config,
                store,
                registry: Registry::default(),
                persister,
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                next_conn: AtomicU64::new(1),
                project_connections,
                live_limits: limits::LiveLimits::default(),
                metrics,
                meter,
                cluster,
                events: std::sync::OnceLock::new(),
                flusher: std::sync::Mutex::new(flusher),
            }),
        }
    }

    /// The engine's configuration.
    pub fn config(&self) -> &RoomsConfig {
        &self.engine.config
    }

    /// How many rooms are loaded in memory.
    pub fn loaded_rooms(&self) -> usize {
        self.engine.registry.len()
    }

    /// Whether shutdown has begun (new connections are refused with 1012).
    pub fn is_shutting_down(&self) -> bool {
        self.engine.shutdown.is_cancelled()
    }

    /// Whether the store answers.
    pub async fn store_ready(&self) -> bool {
        self.engine.store.ping().await.is_ok()
    }

    /// Tracks a connection task so shutdown waits for it to send its close frame.
    pub fn track<F>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> + Send + 'static
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.engine.tracker.track_future(future)
    }

    /// The engine's counters and histograms.
    pub fn metrics(&self) -> &metrics::EngineMetrics {
        &self.engine.metrics
    }

    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<&cluster::Cluster> {
        self.engine.cluster.as_ref()
    }

    /// Live connections in every loaded room of this node.
    pub fn total_connections(&self) -> usize {
        self.engine.registry.total_connections()
    }

    /// Live connections of `project` on this node.
    pub fn project_connections(&self, project: &str) -> u32 {
        self.engine.project_connections.count(project)
    }

    /// Sends room events to `sink` from now on (once; later calls are ignored).
    pub fn set_events(&self, sink: Arc<dyn events::RoomEvents>) {
        if self.engine.events.set(sink).is_err() {
            tracing::warn!("room events already have a sink");
        }
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.engine.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Graceful shutdown: every room lets its in-flight writes land, sends what is
    /// durable, and closes its connections with 1012; waits up to `timeout` for rooms and
    /// connections to finish, then flushes usage (retrying for up to `timeout` more),
    /// then closes the store.
    pub async fn shutdown(&self, timeout: Duration) {
        self.engine.shutdown.cancel();
        self.engine.tracker.close();
        if tokio::time::timeout(timeout, self.engine.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?timeout,
                "shutdown timed out waiting for rooms and connections"
            );
        }
        // Every session has ended (and reported its last counters) and every room has
        // stopped: the last flush sees everything.
        let flushing = self
            .engine
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Flushing { task, stop }) = flushing {
            let deadline = tokio::time::Instant::now() + timeout;
            let _ = stop.send(deadline);
            // The flusher gives up by the deadline; the margin covers one store call.
            let margin = Duration::from_secs(6);
            if tokio::time::timeout(timeout + margin, task).await.is_err() {
                tracing::error!("the last usage flush did not finish; its usage is lost");
            }
        }
        if let Some(cluster) = &self.engine.cluster {
            cluster.stop();
        }
        if let Some(sink) = self.engine.events.get() {
            if tokio::time::timeout(timeout, sink.flush()).await.is_err() {
                tracing::error!("writing the last room events timed out; they are lost");
            }
        }
        self.engine.store.close().await;
    }
}
