//! One task per loaded room. It owns the yrs `Doc` and the awareness table; connections
//! talk to it through its inbox and it answers through each connection's bounded queue.
//!
//! The durability contract lives here: an update is applied, handed to the group-commit
//! writer, and only relayed (or reflected in a sync step 2 answer) once the writer says
//! it is on disk. Updates are applied in arrival order and released in the same order,
//! so nothing a client receives is ahead of the disk.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem_protocol::awareness::{self, AwarenessTable, Change};
use tandem_protocol::{close, Message};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;
use yrs::{Doc, StateVector, Update};

use super::doc::{self, ApplyError};
use super::outbox::OutboxTx;
use super::persist::Ack;
use super::validate;
use super::{CloseReason, ConnId, Engine, RoomKey};
use crate::store::{RoomId, Seq, StoreError, StoredDoc};

/// What a connection asks of its room.
pub(crate) enum RoomMsg {
    /// A new connection; the reply says whether it is in.
    Join {
        conn: ConnId,
        outbox: OutboxTx,
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
}

/// What a compaction folded (updates, bytes), `None` if nothing or it lost a race.
type CompactionResult = Result<Option<(usize, usize)>, StoreError>;

struct Inflight {
    ack: Ack,
    bytes: usize,
}

enum Deferred {
    Broadcast { except: ConnId, frame: Bytes },
    To { conn: ConnId, frame: Bytes },
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
    idle_since: Instant,
    started: Instant,
}

impl RoomActor {
    pub(crate) fn spawn(
        engine: Arc<Engine>,
        key: RoomKey,
        generation: u64,
        inbox: mpsc::Receiver<RoomMsg>,
    ) {
        // A root span: the room outlives the connection that happened to load it.
        let span =
            tracing::info_span!(parent: None, "room", project = %key.project_id, room = %key.name);
        let tracker = engine.tracker.clone();
        tracker.spawn(
            async move {
                let stored = engine.store.load(&key.project_id, &key.name).await;
                match stored {
                    Ok(stored) => {
                        Self::new(engine, key, generation, inbox, stored)
                            .run()
                            .await
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
        stored: StoredDoc,
    ) -> Self {
        let last_seq = stored
            .updates
            .last()
            .map(|(seq, _)| *seq)
            .or(stored.snapshot.as_ref().map(|(seq, _)| *seq))
            .unwrap_or(0);
        let log_updates = stored.updates.len();
        let log_bytes = stored.log_bytes();
        let doc = doc::build(&stored);
        tracing::debug!(log_updates, log_bytes, "room loaded");
        let now = Instant::now();
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
            inflight: VecDeque::new(),
            applied: 0,
            persisted: 0,
            deferred: VecDeque::new(),
            last_seq,
            log_updates,
            log_bytes,
            compaction: None,
            idle_since: now,
            started: now,
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
                ack = front_ack(&mut self.inflight), if !self.inflight.is_empty() => self.on_ack(ack),
                done = join_compaction(&mut self.compaction), if self.compaction.is_some() => {
                    self.compaction = None;
                    // Updates that landed while it ran may already be past the threshold
                    // (after a failure, the next update tries again instead).
                    if self.on_compacted(done) {
                        self.maybe_compact();
                    }
                    Flow::Continue
                }
                msg = self.inbox.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    // Unreachable while registered (the registry holds a sender).
                    None => Flow::Stop,
                },
                _ = tick.tick() => self.on_tick().await,
            };
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
                reply,
            } => {
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
                        },
                    );
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
        // yrs 0.28.1 integrates a block that starts past the document's clock for its
        // client out of order, and parks one whose dependencies are missing; crafted
        // sequences of either corrupt its memory (a SIGSEGV no catch_unwind can stop,
        // found by fuzzing). So such an update is not applied. An honest client never
        // sends one (it only builds on what it received from us); if it happens, it gets
        // our state vector and answers with a complete diff.
        let sv = doc::state_vector_of(&self.doc);
        // The session already ran the stateless check on these bytes.
        let checked =
            validate::check_against_doc(&payload, &validate::Limits::default(), &|client| {
                sv.get(&yrs::block::ClientID::new(client))
            });
        match checked {
            Ok(_) => {}
            Err(validate::Invalid::Gap { .. } | validate::Invalid::MissingDependency { .. }) => {
                use yrs::updates::encoder::Encode;
                let sv = sv.encode_v1();
                self.send_to(conn, Bytes::from(Message::SyncStep1(&sv).encode()));
                return Flow::Continue;
            }
            Err(error) => {
                self.remove_conn(
                    conn,
                    Some(CloseReason::new(
                        close::MALFORMED,
                        format!("invalid update: {error}"),
                    )),
                );
                return Flow::Continue;
            }
        }
        match doc::apply(&self.doc, update) {
            Ok(()) => {}
            Err(ApplyError::Invalid(reason)) => {
                self.remove_conn(conn, Some(CloseReason::new(close::MALFORMED, reason)));
                return Flow::Continue;
            }
            Err(ApplyError::Panicked) => {
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
        self.applied += 1;
        let bytes = payload.len();
        let ack = self.engine.persister.append(self.room_id, payload).await;
        self.inflight.push_back(Inflight { ack, bytes });
        self.deferred.push_back((
            self.applied,
            Deferred::Broadcast {
                except: conn,
                frame,
            },
        ));
        Flow::Continue
    }

    fn on_ack(&mut self, ack: Result<Seq, ()>) -> Flow {
        let Some(done) = self.inflight.pop_front() else {
            return Flow::Continue;
        };
        match ack {
            Ok(seq) => {
                self.persisted += 1;
                self.last_seq = self.last_seq.max(seq);
                self.log_updates += 1;
                self.log_bytes += done.bytes;
                self.release();
                self.maybe_compact();
                Flow::Continue
            }
            Err(()) => {
                // The store is unavailable past the timeout. The document now holds
                // updates that are not on disk: close everyone (they keep their edits and
                // resend them) and unload, so the next load starts from the disk.
                tracing::error!("store unavailable; closing the room's clients with 1013");
                self.fail(storage_unavailable());
                Flow::Stop
            }
        }
    }

    /// Sends every deferred frame whose updates are now durable.
    fn release(&mut self) {
        while let Some((needed, _)) = self.deferred.front() {
            if *needed > self.persisted {
                break;
            }
            if let Some((_, deferred)) = self.deferred.pop_front() {
                match deferred {
                    Deferred::Broadcast { except, frame } => self.broadcast(Some(except), &frame),
                    Deferred::To { conn, frame } => self.send_to(conn, frame),
                }
            }
        }
    }

    /// Sends now if nothing applied is still waiting for the disk, else after it.
    fn send_when_durable(&mut self, deferred: Deferred) {
        if self.persisted == self.applied {
            match deferred {
                Deferred::Broadcast { except, frame } => self.broadcast(Some(except), &frame),
                Deferred::To { conn, frame } => self.send_to(conn, frame),
            }
        } else {
            self.deferred.push_back((self.applied, deferred));
        }
    }

    fn on_awareness(&mut self, conn: ConnId, entries: Vec<OwnedEntry>) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        // A connection may only speak for client ids it introduced (or new ones).
        let allowed: Vec<_> = entries
            .iter()
            .filter(|e| {
                self.awareness_owner
                    .get(&e.client_id)
                    .is_none_or(|owner| *owner == conn)
            })
            .map(|e| awareness::AwarenessEntry {
                client_id: e.client_id,
                clock: e.clock,
                state: &e.state,
            })
            .collect();
        let now = self.now_ms();
        let changes = self.awareness.apply(&allowed, now);
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            if change.state.is_some() {
                self.awareness_owner.insert(change.client_id, conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.awareness_ids.insert(change.client_id);
                }
            } else {
                self.awareness_owner.remove(&change.client_id);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.awareness_ids.remove(&change.client_id);
                }
            }
        }
        // Like the reference server, awareness goes to everyone, the sender included:
        // stock clients count it as a sign of life and reconnect after 30 s without one.
        self.broadcast_awareness(&changes);
    }

    fn broadcast_awareness(&mut self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let frame = Bytes::from(Message::Awareness(&awareness::encode_changes(changes)).encode());
        self.broadcast(None, &frame);
    }

    fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let full = match self.conns.get(&conn) {
            Some(c) => !c.outbox.push(frame),
            None => false,
        };
        if full {
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
        for id in &c.awareness_ids {
            self.awareness_owner.remove(id);
        }
        let now = self.now_ms();
        let removed = self.awareness.remove(c.awareness_ids.drain(), now);
        self.broadcast_awareness(&removed);
        if self.conns.is_empty() {
            self.idle_since = Instant::now();
        }
    }

    async fn on_tick(&mut self) -> Flow {
        let now = self.now_ms();
        let expired = self
            .awareness
            .expire(now, self.engine.config.awareness_timeout.as_millis() as u64);
        for change in &expired {
            if let Some(owner) = self.awareness_owner.remove(&change.client_id) {
                if let Some(c) = self.conns.get_mut(&owner) {
                    c.awareness_ids.remove(&change.client_id);
                }
            }
        }
        self.broadcast_awareness(&expired);

        let idle = self.conns.is_empty()
            && self.inflight.is_empty()
            && self.compaction.is_none()
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
        // No longer reachable: refuse anything that raced in, fold the log, stop.
        self.inbox.close();
        while let Ok(msg) = self.inbox.try_recv() {
            if let RoomMsg::Join { reply, .. } = msg {
                drop(reply); // the session asks the registry again
            }
        }
        if self.log_updates > 0 {
            let result = compact(&self.engine, self.room_id, self.last_seq).await;
            if let Err(error) = result {
                tracing::warn!(%error, "compaction before unload failed; the log stays");
            }
        }
        tracing::debug!("room unloaded after idling");
        Flow::Stop
    }

    fn maybe_compact(&mut self) {
        let config = &self.engine.config;
        if self.compaction.is_some()
            || (self.log_updates < config.compact_after_updates
                && self.log_bytes < config.compact_after_bytes)
        {
            return;
        }
        let engine = self.engine.clone();
        let (room_id, upto) = (self.room_id, self.last_seq);
        self.compaction = Some(
            self.engine
                .tracker
                .spawn(async move { compact(&engine, room_id, upto).await }.in_current_span()),
        );
    }

    /// Accounts for a finished compaction; `false` if it failed.
    fn on_compacted(&mut self, done: CompactionResult) -> bool {
        match done {
            Ok(Some((updates, bytes))) => {
                self.log_updates = self.log_updates.saturating_sub(updates);
                self.log_bytes = self.log_bytes.saturating_sub(bytes);
                tracing::debug!(updates, bytes, "log compacted into the snapshot");
                true
            }
            Ok(None) => true,
            Err(error) => {
                tracing::warn!(%error, "compaction failed; will retry after the next update");
                false
            }
        }
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
    }
}

/// Folds the log up to `upto` into the snapshot. Returns what was folded, or `None` when
/// there was nothing to do or another compaction won the race.
async fn compact(
    engine: &Engine,
    room_id: RoomId,
    upto: Seq,
) -> Result<Option<(usize, usize)>, StoreError> {
    let stored = engine.store.read_upto(room_id, upto).await?;
    if stored.updates.is_empty() {
        return Ok(None);
    }
    let folded = (stored.updates.len(), stored.log_bytes());
    let prev = stored.snapshot.as_ref().map(|(seq, _)| *seq);
    let stored = Arc::new(stored);
    let merged = {
        let stored = stored.clone();
        tokio::task::spawn_blocking(move || doc::merge(&stored))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    };
    let written = engine
        .store
        .replace_snapshot(room_id, prev, upto, &merged)
        .await?;
    Ok(written.then_some(folded))
}

async fn front_ack(inflight: &mut VecDeque<Inflight>) -> Result<Seq, ()> {
    match inflight.front_mut() {
        Some(front) => (&mut front.ack).await.unwrap_or(Err(())),
        None => std::future::pending().await,
    }
}

async fn join_compaction(
    task: &mut Option<tokio::task::JoinHandle<CompactionResult>>,
) -> CompactionResult {
    match task {
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e.to_string())))),
        None => std::future::pending().await,
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
        if let RoomMsg::Join { reply, .. } = msg {
            let _ = reply.send(Err(reason.clone()));
        }
    }
}

fn storage_unavailable() -> CloseReason {
    CloseReason::new(
        close::TRY_AGAIN_LATER,
        "storage unavailable, try again later",
    )
}

fn too_slow() -> CloseReason {
    CloseReason {
        code: close::TRY_AGAIN_LATER,
        reason: "connection too slow to keep up; reconnect to resync".to_owned(),
        flush: false,
    }
}
