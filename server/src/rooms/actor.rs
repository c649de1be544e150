//! One task per loaded room. It owns the yrs `Doc` and the awareness table; connections
//! talk to it through its inbox and it answers through each connection's bounded queue.
//!
//! The durability contract lives here ([`durable`]): an update is applied, handed to the
//! group-commit writer, and only relayed (or reflected in a sync step 2 answer, or a
//! REST read) once the writer says it is on disk. Updates are applied in arrival order
//! and released in the same order, so nothing a client receives is ahead of the disk.
//! The control plane's requests are served in [`api`], compaction runs from
//! [`compaction`].

mod api;
mod compaction;
mod durable;
mod presence;
mod remote;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem_protocol::awareness::AwarenessTable;
use tandem_protocol::{close, Message};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;
use yrs::{Doc, StateVector, Update};

use super::admin::{AdminMsg, Reply, RoomError};
use super::cluster::{Kind, Remote, RoomLink};
use super::doc::{self, ApplyError};
use super::identity::Identity;
use super::meter::RoomStorage;
use super::outbox::OutboxTx;
use super::persist::Ack;
use super::validate;
use super::{CloseReason, ConnId, Engine, RoomKey};
use crate::store::{RoomId, Seq, StoredDoc};
use compaction::CompactionResult;

/// What a connection asks of its room.
pub(crate) enum RoomMsg {
    /// A new connection; the reply says whether it is in.
    Join {
        conn: ConnId,
        outbox: OutboxTx,
        /// Who the connection is, from its grant.
        identity: Arc<Identity>,
        /// The plan's room limits (`None`: unlimited).
        limits: Option<RoomLimits>,
        reply: oneshot::Sender<Result<(), CloseReason>>,
    },
    /// The connection ended.
    Leave { conn: ConnId },
    /// Sync step 1: the peer's state vector.
    SyncStep1 { conn: ConnId, sv: StateVector },
    /// A validated, decoded update (from step 2 or an update message).
    Update {
        conn: ConnId,
        update: Update,
        /// The v1 update bytes, stored as they came.
        payload: Bytes,
        /// The frame to relay (the original frame when it was an update message).
        frame: Bytes,
    },
    /// Decoded awareness entries with JSON-validated states.
    Awareness {
        conn: ConnId,
        entries: Vec<OwnedEntry>,
    },
    /// The peer asks for every awareness state.
    QueryAwareness { conn: ConnId },
    /// A custom event from the peer, already framed for the others.
    Event { conn: ConnId, frame: Bytes },
    /// A request from the control plane ([`super::admin`]).
    Admin(AdminMsg),
    /// From another node, through the cluster ([`super::cluster`]).
    Remote(Remote),
}

/// How a new actor comes to hold its room.
pub(crate) enum Open {
    /// Load the room, creating it if it does not exist (a connection, a REST write).
    Create,
    /// Load the room only if it exists; otherwise leave at once, dropping what was
    /// queued so that each sender asks the registry again.
    Existing,
    /// Erase the room from the store without loading it, answer, and leave: holding the
    /// registry slot meanwhile keeps connections from loading the old document.
    Delete(Reply<bool>),
}

/// The limits a room enforces, from the plan of the connections that join it (all of
/// one project, so one plan; the latest join's numbers win after a plan change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomLimits {
    pub(crate) connections_per_room: u32,
    pub(crate) max_document_bytes: u64,
}

impl From<&crate::rooms::limits::Limits> for RoomLimits {
    fn from(limits: &crate::rooms::limits::Limits) -> Self {
        Self {
            connections_per_room: limits.connections_per_room,
            max_document_bytes: limits.max_document_bytes,
        }
    }
}

/// An awareness entry owned by the message (the frame is gone by then).
pub(crate) struct OwnedEntry {
    pub(crate) client_id: u64,
    pub(crate) clock: u64,
    pub(crate) state: String,
}

struct Conn {
    outbox: OutboxTx,
    /// Awareness client ids this connection introduced; removed when it leaves.
    awareness_ids: HashSet<u64>,
    identity: Arc<Identity>,
}

struct Inflight {
    ack: Ack,
    bytes: usize,
}

enum Deferred {
    Broadcast {
        except: Option<ConnId>,
        frame: Bytes,
    },
    To {
        conn: ConnId,
        frame: Bytes,
    },
    /// Answers a request: with `Ok` once durable, or with the store's failure.
    Reply(Box<dyn FnOnce(Result<(), RoomError>) + Send>),
    /// Tells the other nodes of the cluster (an update only once it is durable).
    Publish {
        kind: Kind,
        frame: Bytes,
    },
}

/// Why an update was not applied.
enum Refused {
    /// It builds on changes the document lacks; the document's state vector is
    /// attached (a client is sent it as sync step 1 and answers with a full diff).
    Dependencies(StateVector),
    /// Malformed or refused by yrs; the document is unchanged.
    Invalid(String),
    /// yrs panicked; the document may be damaged and must be rebuilt.
    Panicked,
}

enum Flow {
    Continue,
    Stop,
}

pub(crate) struct RoomActor {
    engine: Arc<Engine>,
    key: RoomKey,
    generation: u64,
    inbox: mpsc::Receiver<RoomMsg>,
    room_id: RoomId,
    doc: Doc,
    awareness: AwarenessTable,
    /// Which connection owns each awareness client id.
    awareness_owner: HashMap<u64, ConnId>,
    conns: HashMap<ConnId, Conn>,
    /// `conns.len()`, published for connection counts (see the registry).
    connections: Arc<AtomicUsize>,
    /// Appends handed to the writer, oldest first.
    inflight: VecDeque<Inflight>,
    /// Count of updates applied, and of those acknowledged durable.
    applied: u64,
    persisted: u64,
    /// Frames waiting for `persisted` to reach the count they were made at.
    deferred: VecDeque<(u64, Deferred)>,
    /// The newest durable seq, and how much log sits after the snapshot.
    last_seq: Seq,
    log_updates: usize,
    log_bytes: usize,
    compaction: Option<tokio::task::JoinHandle<CompactionResult>>,
    /// Bytes of the stored snapshot (what the log is folded into).
    snapshot_bytes: usize,
    /// Bytes handed to the writer and not yet acknowledged.
    inflight_bytes: usize,
    /// The plan's limits for this room, from the latest join.
    limits: Option<RoomLimits>,
    /// [`Self::stored_bytes`], published for usage metering after every step.
    storage: RoomStorage,
    idle_since: Instant,
    started: Instant,
    /// In a cluster: the room's channel to the other nodes.
    link: Option<RoomLink>,
    /// Bytes of updates other nodes stored since the last look at the database.
    remote_bytes: usize,
    /// A comparison with the database in progress, whether another is owed, when the
    /// last began, and the room's version it last read.
    catchup: Option<tokio::task::JoinHandle<remote::CatchUpResult>>,
    catchup_due: bool,
    catchup_failures: u32,
    last_catchup: Instant,
    version: Option<crate::store::RoomVersion>,
}

impl RoomActor {
    pub(crate) fn spawn(
        engine: Arc<Engine>,
        key: RoomKey,
        generation: u64,
        inbox: mpsc::Receiver<RoomMsg>,
        sender: mpsc::WeakSender<RoomMsg>,
        connections: Arc<AtomicUsize>,
        open: Open,
    ) {
        // A root span: the room outlives the connection that happened to load it.
        let span =
            tracing::info_span!(parent: None, "room", project = %key.project_id, room = %key.name);
        let tracker = engine.tracker.clone();
        tracker.spawn(
            async move {
                let mut inbox = inbox;
                let exists = match open {
                    Open::Create => Ok(true),
                    Open::Existing => engine
                        .store
                        .find_room(&key.project_id, &key.name)
                        .await
                        .map(|found| found.is_some()),
                    Open::Delete(reply) => {
                        api::delete_unloaded(&engine, &key, generation, inbox, reply).await;
                        return;
                    }
                };
                // Subscribed before loading, so that nothing published after the load
                // read is missed (what arrives twice, yrs skips).
                let link = match (&engine.cluster, &exists) {
                    (Some(cluster), Ok(true)) => Some(cluster.join_room(&key, sender).await),
                    _ => None,
                };
                let stored = match exists {
                    Ok(true) => engine.store.load(&key.project_id, &key.name).await,
                    Ok(false) => {
                        vacate(&engine, &key, generation, &mut inbox);
                        return;
                    }
                    Err(error) => Err(error),
                };
                match stored {
                    Ok(stored) => {
                        let mut actor =
                            Self::new(engine, key, generation, inbox, connections, stored);
                        actor.link = link;
                        // Whoever is present on other nodes introduces themselves.
                        actor.publish(Kind::AwarenessQuery, &[]);
                        actor.run().await
                    }
                    Err(error) => {
                        tracing::error!(%error, "loading room failed");
                        refuse_all(&engine, &key, generation, inbox, storage_unavailable());
                    }
                }
            }
            .instrument(span),
        );
    }

    fn new(
        engine: Arc<Engine>,
        key: RoomKey,
        generation: u64,
        inbox: mpsc::Receiver<RoomMsg>,
        connections: Arc<AtomicUsize>,
        stored: StoredDoc,
    ) -> Self {
        // A row that committed late may sit below the snapshot's version.
        let last_seq = stored
            .updates
            .iter()
            .map(|(seq, _)| *seq)
            .chain(stored.snapshot.as_ref().map(|(seq, _)| *seq))
            .max()
            .unwrap_or(0);
        let log_updates = stored.updates.len();
        let log_bytes = stored.log_bytes();
        let snapshot_bytes = stored.snapshot.as_ref().map_or(0, |(_, b)| b.len());
        let doc = doc::build(&stored);
        tracing::debug!(log_updates, log_bytes, "room loaded");
        let now = Instant::now();
        let storage = engine
            .meter
            .room_storage(&key, (snapshot_bytes + log_bytes) as u64);
        Self {
            engine,
            key,
            generation,
            inbox,
            room_id: stored.room_id,
            doc,
            awareness: AwarenessTable::new(),
            awareness_owner: HashMap::new(),
            conns: HashMap::new(),
            connections,
            inflight: VecDeque::new(),
            applied: 0,
            persisted: 0,
            deferred: VecDeque::new(),
            last_seq,
            log_updates,
            log_bytes,
            compaction: None,
            snapshot_bytes,
            inflight_bytes: 0,
            limits: None,
            storage,
            idle_since: now,
            started: now,
            link: None,
            remote_bytes: 0,
            catchup: None,
            catchup_due: false,
            catchup_failures: 0,
            last_catchup: now,
            version: None,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(mut self) {
        let config = &self.engine.config;
        let tick_every = (config.room_idle_timeout / 2)
            .min(config.awareness_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.engine.shutdown.clone();
        // A compaction still owed when the room goes idle runs before it unloads.
        loop {
            let flow = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    self.stop(close::RESTARTING, "server restarting").await;
                    Flow::Stop
                }
                ack = durable::front_ack(&mut self.inflight), if !self.inflight.is_empty() => self.on_ack(ack),
                done = compaction::join(&mut self.compaction), if self.compaction.is_some() => {
                    self.compaction = None;
                    // Updates that landed while it ran may already be past the threshold
                    // (after a failure, the next update tries again instead).
                    if self.on_compacted(done) {
                        self.maybe_compact();
                    }
                    Flow::Continue
                }
                done = remote::join(&mut self.catchup), if self.catchup.is_some() => self.on_caught_up(done),
                msg = self.inbox.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    // Unreachable while registered (the registry holds a sender).
                    None => Flow::Stop,
                },
                _ = tick.tick() => self.on_tick().await,
            };
            self.storage.set(self.stored_bytes());
            if let Flow::Stop = flow {
                break;
            }
        }
        tracing::debug!("room stopped");
    }

    async fn handle(&mut self, msg: RoomMsg) -> Flow {
        match msg {
            RoomMsg::Join {
                conn,
                outbox,
                identity,
                limits,
                reply,
            } => {
                if let Some(limits) = limits {
                    self.limits = Some(limits);
                    let cap = usize::try_from(limits.connections_per_room).unwrap_or(usize::MAX);
                    if self.conns.len() >= cap {
                        let _ = reply.send(Err(crate::rooms::limits::rate_limited(
                            &format!("connection limit: {cap} per room reached"),
                            std::time::Duration::from_secs(30),
                        )));
                        return Flow::Continue;
                    }
                }
                let state_vector = doc::state_vector(&self.doc);
                let mut initial = vec![Bytes::from(Message::SyncStep1(&state_vector).encode())];
                if let Some(states) = self.awareness.encode_live() {
                    initial.push(Bytes::from(Message::Awareness(&states).encode()));
                }
                // The queue is new and larger than two frames; a failure means the
                // connection is already gone.
                if initial.into_iter().all(|f| outbox.push(f)) {
                    self.conns.insert(
                        conn,
                        Conn {
                            outbox,
                            awareness_ids: HashSet::new(),
                            identity,
                        },
                    );
                    self.publish_connections();
                    let _ = reply.send(Ok(()));
                }
            }
            RoomMsg::Leave { conn } => self.remove_conn(conn, None),
            RoomMsg::SyncStep1 { conn, sv } => {
                let diff = doc::diff(&self.doc, &sv);
                let frame = Bytes::from(Message::SyncStep2(&diff).encode());
                self.send_when_durable(Deferred::To { conn, frame });
            }
            RoomMsg::Update {
                conn,
                update,
                payload,
                frame,
            } => return self.on_update(conn, update, payload, frame).await,
            RoomMsg::Awareness { conn, entries } => self.on_awareness(conn, entries),
            RoomMsg::QueryAwareness { conn } => {
                if let Some(states) = self.awareness.encode_live() {
                    self.send_to(conn, Bytes::from(Message::Awareness(&states).encode()));
                }
            }
            RoomMsg::Event { conn, frame } => {
                if self.conns.contains_key(&conn) {
                    // Not content, but kept behind the updates applied before it, so an
                    // event never overtakes the edit it may be about.
                    if self.link.is_some() {
                        self.send_when_durable(Deferred::Publish {
                            kind: Kind::Event,
                            frame: frame.clone(),
                        });
                    }
                    self.send_when_durable(Deferred::Broadcast {
                        except: Some(conn),
                        frame,
                    });
                }
            }
            RoomMsg::Admin(msg) => return self.on_admin(msg).await,
            RoomMsg::Remote(remote) => return self.on_remote(remote).await,
        }
        Flow::Continue
    }

    async fn on_update(
        &mut self,
        conn: ConnId,
        update: Update,
        payload: Bytes,
        frame: Bytes,
    ) -> Flow {
        if !self.conns.contains_key(&conn) {
            return Flow::Continue; // closed meanwhile (e.g. too slow): drop its input
        }
        if let Err(reason) = self.check_document_size(payload.len()) {
            self.remove_conn(conn, Some(reason));
            return Flow::Continue;
        }
        match self.check_and_apply(update, &payload) {
            Ok(()) => {}
            Err(Refused::Dependencies(sv)) => {
                // An honest client only builds on what it received from us; if it did
                // not, it gets our state vector and answers with a complete diff.
                use yrs::updates::encoder::Encode;
                let sv = sv.encode_v1();
                self.send_to(conn, Bytes::from(Message::SyncStep1(&sv).encode()));
                return Flow::Continue;
            }
            Err(Refused::Invalid(reason)) => {
                let reason = format!("invalid update: {reason}");
                self.remove_conn(conn, Some(CloseReason::new(close::MALFORMED, reason)));
                return Flow::Continue;
            }
            Err(Refused::Panicked) => {
                self.remove_conn(
                    conn,
                    Some(CloseReason::new(
                        close::MALFORMED,
                        "update could not be applied",
                    )),
                );
                return self.rebuild().await;
            }
        }
        // The session always hands over an update message (a step 2 re-framed).
        let publish = self.link.is_some().then(|| Deferred::Publish {
            kind: Kind::Update,
            frame: frame.clone(),
        });
        let relay = Deferred::Broadcast {
            except: Some(conn),
            frame,
        };
        self.persist(payload, std::iter::once(relay).chain(publish))
            .await;
        Flow::Continue
    }

    /// What the store holds (or will once in-flight appends land) for this room:
    /// snapshot + log. This is the "document size" plans cap and metering bills.
    pub(super) fn stored_bytes(&self) -> u64 {
        (self.snapshot_bytes + self.log_bytes + self.inflight_bytes + self.remote_bytes) as u64
    }

    /// Refuses an update of `len` bytes that would take the stored document past the
    /// plan's cap (4413); nothing of it is applied.
    pub(super) fn check_document_size(&self, len: usize) -> Result<(), CloseReason> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        let after = self.stored_bytes().saturating_add(len as u64);
        if after > limits.max_document_bytes {
            return Err(CloseReason::new(
                close::TOO_LARGE,
                format!(
                    "document size limit: {} bytes (this update would make it {after})",
                    limits.max_document_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checks an update (already through the stateless validation) against the document
    /// and applies it.
    ///
    /// yrs 0.28.1 integrates a block that starts past the document's clock for its
    /// client out of order, and parks one whose dependencies are missing; crafted
    /// sequences of either corrupt its memory (a SIGSEGV no catch_unwind can stop,
    /// found by fuzzing). So such an update is not applied.
    fn check_and_apply(&mut self, update: Update, payload: &[u8]) -> Result<(), Refused> {
        let sv = doc::state_vector_of(&self.doc);
        let checked =
            validate::check_against_doc(payload, &validate::Limits::default(), &|client| {
                sv.get(&yrs::block::ClientID::new(client))
            });
        match checked {
            Ok(()) => {}
            Err(validate::Invalid::Gap { .. } | validate::Invalid::MissingDependency { .. }) => {
                return Err(Refused::Dependencies(sv));
            }
            Err(error) => return Err(Refused::Invalid(error.to_string())),
        }
        match doc::apply(&self.doc, update) {
            Ok(()) => Ok(()),
            Err(ApplyError::Invalid(reason)) => Err(Refused::Invalid(reason)),
            Err(ApplyError::Panicked) => Err(Refused::Panicked),
        }
    }

    fn publish_connections(&self) {
        self.connections.store(self.conns.len(), Ordering::Relaxed);
    }

    fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let full = match self.conns.get(&conn) {
            Some(c) => !c.outbox.push(frame),
            None => false,
        };
        if full {
            self.count_slow();
            self.remove_conn(conn, Some(too_slow()));
        }
    }

    fn broadcast(&mut self, except: Option<ConnId>, frame: &Bytes) {
        let mut slow = Vec::new();
        for (id, c) in &self.conns {
            if Some(*id) != except && !c.outbox.push(frame.clone()) {
                slow.push(*id);
            }
        }
        for id in slow {
            self.count_slow();
            self.remove_conn(id, Some(too_slow()));
        }
    }

    /// Removes a connection (closing it with `reason` if given) and its presence.
    fn remove_conn(&mut self, conn: ConnId, reason: Option<CloseReason>) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(reason) = reason {
            tracing::debug!(conn, code = reason.code, reason = %reason.reason, "closing connection");
            c.outbox.close(reason);
        }
        self.publish_connections();
        self.forget_awareness(&mut c.awareness_ids);
        if self.conns.is_empty() {
            self.idle_since = Instant::now();
        }
    }

    async fn on_tick(&mut self) -> Flow {
        self.expire_awareness();
        self.maybe_catch_up();
        let idle = self.conns.is_empty()
            && self.inflight.is_empty()
            && self.compaction.is_none()
            && self.catchup.is_none()
            && self.idle_since.elapsed() >= self.engine.config.room_idle_timeout;
        if !idle {
            return Flow::Continue;
        }
        let inbox = &self.inbox;
        if !self
            .engine
            .registry
            .remove_if(&self.key, self.generation, || inbox.is_empty())
        {
            return Flow::Continue;
        }
        // No longer reachable: drop anything that raced in (its sender asks the
        // registry again and loads a new actor), fold the log, stop.
        self.inbox.close();
        while self.inbox.try_recv().is_ok() {}
        if self.log_updates > 0 {
            let result = compaction::compact(&self.engine, self.room_id, self.last_seq).await;
            if let Err(error) = result {
                tracing::warn!(%error, "compaction before unload failed; the log stays");
            }
        }
        tracing::debug!("room unloaded after idling");
        Flow::Stop
    }

    /// After yrs panicked mid-update the document may be damaged: wait until everything
    /// applied before it is durable, then reload from the store. The hostile update was
    /// never stored, and connections only ever received stored state, so they stay.
    async fn rebuild(&mut self) -> Flow {
        while let Some(inflight) = self.inflight.front_mut() {
            let ack = (&mut inflight.ack).await.unwrap_or(Err(()));
            if let Flow::Stop = self.on_ack(ack) {
                return Flow::Stop;
            }
        }
        match self
            .engine
            .store
            .load(&self.key.project_id, &self.key.name)
            .await
        {
            Ok(stored) => {
                self.doc = doc::build(&stored);
                self.last_seq = stored.updates.last().map_or(self.last_seq, |(s, _)| *s);
                tracing::warn!("document rebuilt from the store after a rejected update");
                Flow::Continue
            }
            Err(error) => {
                tracing::error!(%error, "reloading the room failed");
                self.fail(storage_unavailable());
                Flow::Stop
            }
        }
    }

    /// Closes every connection with `reason` and leaves the registry.
    fn fail(&mut self, reason: CloseReason) {
        let inbox = &self.inbox;
        let _ = self
            .engine
            .registry
            .remove_if(&self.key, self.generation, || {
                let _ = inbox;
                true
            });
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            self.remove_conn(id, Some(reason.clone()));
        }
        self.fail_deferred(&RoomError::Unavailable);
        self.inbox.close();
    }

    /// Shutdown: stop taking input, let in-flight appends land and their frames go out,
    /// then close every connection with `code`.
    async fn stop(&mut self, code: u16, reason: &str) {
        self.inbox.close();
        while let Some(inflight) = self.inflight.front_mut() {
            let ack = (&mut inflight.ack).await.unwrap_or(Err(()));
            if let Flow::Stop = self.on_ack(ack) {
                return;
            }
        }
        if let Some(compaction) = self.compaction.take() {
            let _ = compaction.await;
        }
        for (_, c) in self.conns.drain() {
            c.outbox.close(CloseReason::new(code, reason));
        }
        self.publish_connections();
    }
}

/// A room that could not load: refuse everyone queued and leave the registry.
fn refuse_all(
    engine: &Engine,
    key: &RoomKey,
    generation: u64,
    mut inbox: mpsc::Receiver<RoomMsg>,
    reason: CloseReason,
) {
    let _ = engine.registry.remove_if(key, generation, || true);
    inbox.close();
    while let Ok(msg) = inbox.try_recv() {
        match msg {
            RoomMsg::Join { reply, .. } => drop(reply.send(Err(reason.clone()))),
            RoomMsg::Admin(msg) => msg.refuse(RoomError::Unavailable),
            _ => {}
        }
    }
}

/// Leaves the registry and drops whatever was queued, unanswered: each sender asks the
/// registry again (and finds the room gone, or starts a new actor).
fn vacate(engine: &Engine, key: &RoomKey, generation: u64, inbox: &mut mpsc::Receiver<RoomMsg>) {
    let _ = engine.registry.remove_if(key, generation, || true);
    inbox.close();
    while inbox.try_recv().is_ok() {}
}

fn storage_unavailable() -> CloseReason {
    CloseReason::new(
        close::TRY_AGAIN_LATER,
        "storage unavailable, try again later",
    )
}

impl RoomActor {
    fn count_slow(&self) {
        self.engine
            .metrics
            .slow_consumers_closed
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn too_slow() -> CloseReason {
    CloseReason {
        code: close::TRY_AGAIN_LATER,
        reason: "connection too slow to keep up; reconnect to resync".to_owned(),
        flush: false,
    }
}
