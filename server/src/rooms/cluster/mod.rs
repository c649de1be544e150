//! Scale-out: many equal nodes on one database, with Redis carrying what happens in a
//! room from the node where it happened to the others.
//!
//! * Each room a node has loaded is subscribed to its own channel
//!   (`{prefix}:room:{project}:{name}`). What a node publishes there is exactly what
//!   its local clients get: a durable update's frame (sent only after this node's group
//!   commit acknowledged it), awareness changes made by its own connections, custom
//!   events, "room deleted". Every payload carries the origin node's id, so a node
//!   ignores its own messages ([`wire`]).
//! * Pub/sub is at-most-once. A node therefore compares each loaded room with the
//!   database after every (re)subscription, when a message could not be delivered, when
//!   a remote update does not fit its document, and every `catchup_interval`; the
//!   actor reads the database only if the room's [`crate::store::RoomVersion`] changed.
//! * `{prefix}:control` carries [`ControlEvent`]s: connections to close (key revoked,
//!   project deleted), rooms deleted and "signing keys changed". Those that must not be
//!   lost are recorded in the database first and polled by every node ([`durable`]),
//!   so they reach every node within about a second even while Redis is down.
//! * The per-project and per-room connection caps are cluster-wide, and so are the
//!   room connection counts REST shows ([`counts`]).
//!
//! Nothing here blocks a room: publishing is a bounded queue drained by one task
//! (a full queue drops, and the receivers catch up), delivery is `try_send` into the
//! room's inbox (a full inbox marks the room for catch-up).

mod counts;
pub mod durable;
mod rate;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::limits::{ConnSlot, ProjectConnections};
use super::msg::{Remote, RoomMsg};
use super::RoomKey;
use crate::store::SharedDocStore;
pub use counts::Admission;
pub use rate::RateAnswer;
pub(crate) use wire::Kind;
pub use wire::{ControlEvent, WireFilter};

/// How a node joins a cluster (`--redis-url`, `--cluster-prefix`,
/// `--cluster-catchup-interval`).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `redis://host:port[/db]`.
    pub redis_url: String,
    /// Prefix of every channel and key, so several clusters can share one Redis.
    pub prefix: String,
    /// How often a loaded room is compared with the database.
    pub catchup_interval: Duration,
}

/// What the cluster layer counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Messages published (room and control).
    pub published: AtomicU64,
    /// Messages received from other nodes.
    pub received: AtomicU64,
    /// Messages not published (queue full or Redis unreachable).
    pub publish_dropped: AtomicU64,
    /// Messages not delivered to a room (its inbox was full).
    pub delivery_dropped: AtomicU64,
    /// Subscriptions re-established after losing Redis.
    pub reconnects: AtomicU64,
    /// Rooms compared with the database.
    pub catchups: AtomicU64,
    /// Comparisons that found the room behind the database (and repaired it).
    pub catchup_repairs: AtomicU64,
    /// Connections admitted on this node's count alone because Redis did not answer.
    pub admission_fallbacks: AtomicU64,
    /// Control events this node applied from the database's event log (it had missed
    /// their Redis message).
    pub durable_applied: AtomicU64,
    /// HTTP requests charged to this node's own per-key limiter because Redis did not
    /// answer.
    pub rate_fallbacks: AtomicU64,
}

type ControlHandler = Arc<dyn Fn(&ControlEvent) + Send + Sync>;

/// This node's membership in a cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.node)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node: u64,
    prefix: String,
    control_channel: String,
    catchup_interval: Duration,
    client: redis::Client,
    /// Loaded rooms by channel: where their messages go.
    rooms: Mutex<HashMap<Arc<str>, Subscriber>>,
    next_link: AtomicU64,
    ops: mpsc::UnboundedSender<Op>,
    outgoing: mpsc::Sender<(Arc<str>, Vec<u8>)>,
    handlers: Mutex<Vec<ControlHandler>>,
    /// Whether the subscription is live.
    up: AtomicBool,
    metrics: ClusterMetrics,
    counts: counts::Counts,
    /// This node's connections per room (`{project}/{room}`), mirrored like projects'.
    room_local: Arc<ProjectConnections>,
    room_counts: counts::Counts,
    /// Per-key HTTP limits.
    rates: rate::Rates,
    /// Which durable events this node applied.
    cursor: Mutex<durable::Cursor>,
    /// Where durable events are recorded (the rooms' store).
    log: Option<SharedDocStore>,
    stop: CancellationToken,
}

struct Subscriber {
    link: u64,
    tx: mpsc::WeakSender<RoomMsg>,
    missed: Arc<AtomicBool>,
}

enum Op {
    Subscribe(Arc<str>, oneshot::Sender<()>),
    Unsubscribe(Arc<str>),
}

/// How many publishes may wait for the publisher task.
const OUTGOING: usize = 8192;
/// Bound on every Redis round trip.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the subscription is pinged (a dead one is replaced).
const PING_EVERY: Duration = Duration::from_secs(2);

impl Cluster {
    /// Joins the cluster: starts the subscriber, publisher and counter tasks, and with
    /// `log` the durable event poller ([`durable`]). Redis need not be reachable yet
    /// (they retry with backoff); the URL must parse.
    pub(crate) fn start(
        options: &ClusterOptions,
        local_counts: Arc<ProjectConnections>,
        log: Option<SharedDocStore>,
    ) -> Result<Self, String> {
        let client = redis::Client::open(options.redis_url.as_str())
            .map_err(|e| format!("--redis-url: {e}"))?;
        let node = random_node_id();
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING);
        let stop = CancellationToken::new();
        let counts = counts::Counts::start(
            client.clone(),
            options.prefix.clone(),
            "conns",
            node,
            local_counts,
            stop.clone(),
        );
        let room_local = Arc::new(ProjectConnections::default());
        let room_counts = counts::Counts::start(
            client.clone(),
            options.prefix.clone(),
            "rconns",
            node,
            room_local.clone(),
            stop.clone(),
        );
        let rates = rate::Rates::new(client.clone(), options.prefix.clone());
        let released = room_counts.clone();
        room_local.on_release(move |room| released.changed(room));
        let inner = Arc::new(Inner {
            node,
            prefix: options.prefix.clone(),
            control_channel: format!("{}:control", options.prefix),
            catchup_interval: options.catchup_interval,
            client,
            rooms: Mutex::default(),
            next_link: AtomicU64::new(1),
            ops,
            outgoing,
            handlers: Mutex::default(),
            up: AtomicBool::new(false),
            metrics: ClusterMetrics::default(),
            counts,
            room_local,
            room_counts,
            rates,
            cursor: Mutex::default(),
            log: log.clone(),
            stop,
        });
        tokio::spawn(subscriber(inner.clone(), ops_rx));
        tokio::spawn(publisher(inner.clone(), outgoing_rx));
        if let Some(log) = log {
            tokio::spawn(durable::poll(inner.clone(), log));
        }
        tracing::info!(node = %format!("{node:016x}"), prefix = %options.prefix, "joined the cluster");
        Ok(Self { inner })
    }

    /// This node's id (random per process).
    pub fn node_id(&self) -> u64 {
        self.inner.node
    }

    /// Whether the Redis subscription is live.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// The cluster's counters.
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.inner.metrics
    }

    pub(crate) fn catchup_interval(&self) -> Duration {
        self.inner.catchup_interval
    }

    /// Calls `handler` for every control event another node publishes.
    pub fn on_control(&self, handler: impl Fn(&ControlEvent) + Send + Sync + 'static) {
        lock(&self.inner.handlers).push(Arc::new(handler));
    }

    /// Tells every other node (not this one) to act on `event`, over Redis only (lost
    /// if Redis is down).
    pub fn publish_control(&self, event: &ControlEvent) {
        self.publish_control_seq(None, event);
    }

    fn publish_control_seq(&self, seq: Option<i64>, event: &ControlEvent) {
        let payload = wire::encode_control(self.inner.node, seq, event);
        let channel: Arc<str> = self.inner.control_channel.as_str().into();
        self.inner.enqueue(channel, payload);
    }

    /// Tells every other node to act on `event`, durably: it is appended to the
    /// database's event log first (which every node polls), then published on Redis
    /// with its id (so a node applies it once, whichever way it comes first). If the
    /// database does not answer it goes over Redis only.
    pub async fn publish_durable(&self, event: &ControlEvent) {
        let recorded = match &self.inner.log {
            Some(log) => {
                let text = wire::encode_record(self.inner.node, event);
                let at = crate::store::unix_ms();
                match tokio::time::timeout(REDIS_TIMEOUT, log.append_event(&text, at)).await {
                    Ok(Ok(id)) => Some(id),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, ?event, "recording a control event failed; Redis only");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(?event, "recording a control event timed out; Redis only");
                        None
                    }
                }
            }
            None => None,
        };
        self.publish_control_seq(recorded, event);
    }

    fn channel(&self, key: &RoomKey) -> Arc<str> {
        format!("{}:room:{}:{}", self.inner.prefix, key.project_id, key.name).into()
    }

    /// Publishes to a room's channel whether or not it is loaded here.
    pub(crate) fn publish_room(&self, key: &RoomKey, kind: Kind, frame: &[u8]) {
        let payload = wire::encode_room(self.inner.node, kind, frame);
        self.inner.enqueue(self.channel(key), payload);
    }

    /// Routes the room's channel to `tx` and subscribes to it, waiting (bounded) for
    /// Redis to confirm, so that whatever is published after this returns reaches the
    /// room. The subscription ends when the link is dropped.
    pub(crate) async fn join_room(&self, key: &RoomKey, tx: mpsc::WeakSender<RoomMsg>) -> RoomLink {
        let channel = self.channel(key);
        let link = self.inner.next_link.fetch_add(1, Ordering::Relaxed);
        let missed = Arc::new(AtomicBool::new(false));
        lock(&self.inner.rooms).insert(
            channel.clone(),
            Subscriber {
                link,
                tx,
                missed: missed.clone(),
            },
        );
        let (done, confirmed) = oneshot::channel();
        if self
            .inner
            .ops
            .send(Op::Subscribe(channel.clone(), done))
            .is_ok()
        {
            let _ = tokio::time::timeout(REDIS_TIMEOUT, confirmed).await;
        }
        RoomLink {
            cluster: self.clone(),
            key: key.clone(),
            channel,
            link,
            missed,
        }
    }

    /// Checks a new connection against the project's cluster-wide cap; this node's
    /// count must already include it. `None`: Redis did not answer (the caller falls back
    /// to this node's count).
    pub(crate) async fn admit(&self, project: &Arc<str>, cap: u32) -> Option<Admission> {
        let answer = self.inner.counts.admit(project, cap).await;
        if answer.is_none() {
            self.inner
                .metrics
                .admission_fallbacks
                .fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    /// Counts a connection into its room under the room's cluster-wide cap: `Err` when
    /// the room is full (on this node alone, or across live nodes). If Redis does not
    /// answer, this node's count decides, as for the project cap. The slot counts the
    /// connection out when dropped.
    pub(crate) async fn admit_room(&self, key: &RoomKey, cap: u32) -> Result<ConnSlot, ()> {
        let id = room_count_key(key);
        let slot = self.inner.room_local.admit(&id, cap).ok_or(())?;
        match self.inner.room_counts.admit(&id, cap).await {
            Some(admission) if !admission.admitted => Err(()),
            Some(_) => Ok(slot),
            None => {
                self.inner
                    .metrics
                    .admission_fallbacks
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cluster room count unavailable; admitting on this node's count");
                Ok(slot)
            }
        }
    }

    /// Counts an uncapped connection (no plan) into its room, without waiting for
    /// Redis: the mirror is written behind it.
    pub(crate) fn count_room(&self, key: &RoomKey) -> Option<ConnSlot> {
        let id = room_count_key(key);
        let slot = self.inner.room_local.admit(&id, u32::MAX)?;
        self.inner.room_counts.changed(&id);
        Some(slot)
    }

    /// Each room's connections on the other live nodes (Redis's mirror of their
    /// counts); `None` if Redis did not answer.
    pub(crate) async fn room_connections_elsewhere(&self, keys: &[RoomKey]) -> Option<Vec<u32>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let ids = keys.iter().map(room_count_key).collect();
        self.inner.room_counts.others(ids).await
    }

    /// Charges one HTTP request of `key` to its cluster-wide quota of `per_minute`
    /// ([`rate`]); `None` when Redis is down or did not answer in time (the caller
    /// charges its own per-node limiter).
    pub async fn charge_rate(&self, key: &str, per_minute: u32) -> Option<RateAnswer> {
        let answer = if self.is_up() {
            self.inner.rates.charge(key, per_minute).await
        } else {
            None
        };
        if answer.is_none() {
            self.inner
                .metrics
                .rate_fallbacks
                .fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    /// This node's count for `project` changed (a connection left).
    pub(crate) fn count_changed(&self, project: &Arc<str>) {
        self.inner.counts.changed(project);
    }

    /// Stops the cluster's tasks (at shutdown, after the rooms stopped).
    pub(crate) fn stop(&self) {
        self.inner.stop.cancel();
    }
}

/// A loaded room's subscription; dropping it unsubscribes.
pub(crate) struct RoomLink {
    cluster: Cluster,
    key: RoomKey,
    channel: Arc<str>,
    link: u64,
    /// Set when a message for the room could not be delivered.
    pub(crate) missed: Arc<AtomicBool>,
}

impl RoomLink {
    pub(crate) fn publish(&self, kind: Kind, frame: &[u8]) {
        self.cluster.publish_room(&self.key, kind, frame);
    }

    pub(crate) fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for RoomLink {
    fn drop(&mut self) {
        let inner = &self.cluster.inner;
        let mut rooms = lock(&inner.rooms);
        // A newer actor of the same room may have taken the channel over.
        if rooms
            .get(&self.channel)
            .is_some_and(|s| s.link == self.link)
        {
            rooms.remove(&self.channel);
            drop(rooms);
            let _ = inner.ops.send(Op::Unsubscribe(self.channel.clone()));
        }
    }
}

impl Inner {
    fn enqueue(&self, channel: Arc<str>, payload: Vec<u8>) {
        if self.outgoing.try_send((channel, payload)).is_err() {
            self.metrics.publish_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dispatch(&self, msg: &redis::Msg) {
        let channel = msg.get_channel_name();
        let payload = msg.get_payload_bytes();
        if channel == self.control_channel {
            let Some((node, seq, event)) = wire::decode_control(payload) else {
                tracing::warn!("ignoring an unreadable control message");
                return;
            };
            if node == self.node {
                return;
            }
            self.metrics.received.fetch_add(1, Ordering::Relaxed);
            // Applied already from the event log?
            if seq.is_some_and(|seq| !self.cursor().mark(seq)) {
                return;
            }
            tracing::debug!(?event, from = %format!("{node:016x}"), "control event");
            self.apply(&event);
            return;
        }
        let Some(message) = wire::decode_room(payload) else {
            tracing::warn!(channel, "ignoring an unreadable room message");
            return;
        };
        if message.node == self.node {
            return;
        }
        self.metrics.received.fetch_add(1, Ordering::Relaxed);
        let rooms = lock(&self.rooms);
        let Some(subscriber) = rooms.get(channel) else {
            return;
        };
        let Some(tx) = subscriber.tx.upgrade() else {
            return;
        };
        let remote = Remote::Frame {
            node: message.node,
            kind: message.kind,
            frame: message.frame,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(RoomMsg::Remote(remote)) {
            subscriber.missed.store(true, Ordering::Relaxed);
            self.metrics
                .delivery_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, durable::Cursor> {
        lock(&self.cursor)
    }

    /// Acts on a control event from another node (over Redis or from the event log).
    fn apply(&self, event: &ControlEvent) {
        if let ControlEvent::RoomDeleted { project_id, room } = event {
            // The room, if loaded here, compares itself with the database, finds its
            // row gone, closes its connections (4404) and unloads.
            let channel = format!("{}:room:{project_id}:{room}", self.prefix);
            if let Some(subscriber) = lock(&self.rooms).get(channel.as_str()) {
                subscriber.missed.store(true, Ordering::Relaxed);
                if let Some(tx) = subscriber.tx.upgrade() {
                    let _ = tx.try_send(RoomMsg::Remote(Remote::CatchUp));
                }
            }
        }
        let handlers: Vec<ControlHandler> = lock(&self.handlers).clone();
        for handler in handlers {
            handler(event);
        }
    }

    /// After (re)subscribing: every loaded room compares itself with the database.
    fn nudge_all(&self) {
        for subscriber in lock(&self.rooms).values() {
            subscriber.missed.store(true, Ordering::Relaxed);
            if let Some(tx) = subscriber.tx.upgrade() {
                let _ = tx.try_send(RoomMsg::Remote(Remote::CatchUp));
            }
        }
    }
}

/// Keeps one subscription connection: subscribes the control channel and every loaded
/// room's, delivers messages, pings, and on any failure reconnects with backoff.
async fn subscriber(inner: Arc<Inner>, mut ops: mpsc::UnboundedReceiver<Op>) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        if inner.stop.is_cancelled() {
            return;
        }
        let session = async {
            let pubsub = bounded(inner.client.get_async_pubsub()).await?;
            let (mut sink, stream) = pubsub.split();
            let mut channels: Vec<String> = vec![inner.control_channel.clone()];
            channels.extend(lock(&inner.rooms).keys().map(|c| c.to_string()));
            bounded(sink.subscribe(&channels)).await?;
            Ok::<_, String>((sink, stream))
        };
        let (mut sink, mut stream) = match session.await {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cannot subscribe to Redis");
                // Rooms loading meanwhile must not wait for a subscription that is not
                // coming; they catch up once it is back.
                let deadline = tokio::time::Instant::now() + backoff;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => break,
                        () = inner.stop.cancelled() => return,
                        op = ops.recv() => match op {
                            Some(Op::Subscribe(_, done)) => drop(done.send(())),
                            Some(Op::Unsubscribe(_)) => {}
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        inner.up.store(true, Ordering::Relaxed);
        if connected_before {
            inner.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("Redis subscription restored; catching up every loaded room");
        }
        connected_before = true;
        inner.nudge_all();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let lost = loop {
            tokio::select! {
                () = inner.stop.cancelled() => return,
                msg = stream.next() => match msg {
                    Some(msg) => inner.dispatch(&msg),
                    None => break "connection closed".to_owned(),
                },
                op = ops.recv() => match op {
                    Some(Op::Subscribe(channel, done)) => {
                        let result = bounded(sink.subscribe(&*channel)).await;
                        let _ = done.send(());
                        if let Err(error) = result {
                            break error;
                        }
                    }
                    Some(Op::Unsubscribe(channel)) => {
                        // Re-subscribed meanwhile by a new actor of the same room?
                        if lock(&inner.rooms).contains_key(&channel) {
                            continue;
                        }
                        if let Err(error) = bounded(sink.unsubscribe(&*channel)).await {
                            break error;
                        }
                    }
                    None => return,
                },
                _ = ping.tick() => {
                    if let Err(error) = bounded(sink.ping::<redis::Value>()).await {
                        break error;
                    }
                }
            }
        };
        inner.up.store(false, Ordering::Relaxed);
        tracing::warn!(error = %lost, "lost the Redis subscription; reconnecting");
    }
}

/// Drains the publish queue into Redis, pipelined; reconnects on failure and drops what
/// could not be sent (receivers catch up from the database).
async fn publisher(inner: Arc<Inner>, mut rx: mpsc::Receiver<(Arc<str>, Vec<u8>)>) {
    let mut backoff = Duration::from_millis(100);
    let mut batch = Vec::with_capacity(256);
    loop {
        let connected = tokio::select! {
            () = inner.stop.cancelled() => return,
            c = bounded(inner.client.get_multiplexed_async_connection()) => c,
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cannot connect to Redis to publish");
                // What waits now would be stale by the time it could go: drop it.
                let mut dropped = 0;
                while rx.try_recv().is_ok() {
                    dropped += 1;
                }
                inner
                    .metrics
                    .publish_dropped
                    .fetch_add(dropped, Ordering::Relaxed);
                tokio::select! {
                    () = inner.stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        loop {
            let n = tokio::select! {
                () = inner.stop.cancelled() => return,
                n = rx.recv_many(&mut batch, 256) => n,
            };
            if n == 0 {
                return;
            }
            let mut pipe = redis::pipe();
            for (channel, payload) in &batch {
                pipe.cmd("PUBLISH").arg(&**channel).arg(payload).ignore();
            }
            let sent = bounded(pipe.query_async::<()>(&mut conn)).await;
            batch.clear();
            match sent {
                Ok(()) => {
                    inner
                        .metrics
                        .published
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(error) => {
                    inner
                        .metrics
                        .publish_dropped
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tracing::warn!(%error, "publishing to Redis failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Publishes one control event from outside a node (`tandem rotate-signing-key`);
/// returns how many nodes received it.
pub async fn announce(redis_url: &str, prefix: &str, event: &ControlEvent) -> anyhow::Result<u64> {
    let client = redis::Client::open(redis_url)?;
    let mut conn =
        tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection()).await??;
    let payload = wire::encode_control(random_node_id(), None, event);
    let mut publish = redis::cmd("PUBLISH");
    publish.arg(format!("{prefix}:control")).arg(payload);
    let receivers =
        tokio::time::timeout(REDIS_TIMEOUT, publish.query_async::<u64>(&mut conn)).await??;
    Ok(receivers)
}

/// A Redis call bounded by [`REDIS_TIMEOUT`]; a timeout or an error becomes its text.
async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// A room's key in the room counts: project ids never contain `/`.
fn room_count_key(key: &RoomKey) -> Arc<str> {
    format!("{}/{}", key.project_id, key.name).into()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a single map or vector operation.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_node_id() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Distinct enough for echo suppression: the pid and the clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        return now ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests;
