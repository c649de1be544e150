//! One task per loaded room. It owns the yrs `Doc` and the awareness table; connections
//! talk to it through its inbox and it answers through each connection's bounded queue.
//!
//! The durability contract lives here ([`durable`]): an update is applied, handed to the
//! group-commit writer, and only relayed (or reflected in a sync step 2 answer, or a
//! REST read) once the writer says it is on disk. Updates are applied in arrival order
//! and released in the same order, so nothing a client receives is ahead of the disk.
//! This file holds the actor's state and its message loop; each concern is a file of
//! its own: connections ([`conns`]), updates ([`update`]), presence ([`presence`]), the
//! control plane's requests ([`api`]), other nodes ([`remote`]), compaction
//! ([`compaction`]), and how a room ends ([`lifecycle`]).

mod api;
mod compaction;
mod conns;
mod durable;
mod lifecycle;
mod presence;
mod remote;
mod update;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem_protocol::awareness::AwarenessTable;
use tandem_protocol::{close, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use yrs::{Doc, StateVector};

use super::cluster::{Kind, RoomLink};
use super::doc;
use super::identity::Identity;
use super::meter::RoomStorage;
use super::msg::{AdminMsg, ConnInfo, Open, RoomError, RoomLimits, RoomMsg};
use super::outbox::OutboxTx;
use super::persist::Ack;
use super::{ConnId, Engine, RoomKey};
use crate::store::{Attribution, RoomId, Seq, StoredDoc};
use compaction::CompactionResult;
use lifecycle::{refuse_all, storage_unavailable, vacate};

struct Conn {
    outbox: OutboxTx,
    /// Awareness client ids this connection introduced; removed when it leaves.
    awareness_ids: HashSet<u64>,
    identity: Arc<Identity>,
    info: ConnInfo,
    /// Whether it was told that the room is read-only (once, like the session tells a
    /// read-only token).
    told_read_only: bool,
    /// Stored with each of its updates (version history).
    author: Arc<Attribution>,
}

/// Who introduced an awareness client id, and so alone may change or remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A connection of this node.
    Local(ConnId),
    /// Another node of the cluster (its node id): its connections' states reach us
    /// only through its messages.
    Node(u64),
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
    /// Tells a connection that its first `upto` updates are durable (collected in
    /// `saved` and sent once per commit, see [`durable`]).
    Saved {
        conn: ConnId,
        upto: u64,
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
    /// Who may change each awareness client id.
    awareness_owner: HashMap<u64, Owner>,
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
    /// Saved acknowledgements released and not sent yet: one per connection, the
    /// highest, sent after the step that released them (so once per commit).
    saved: Vec<(ConnId, u64)>,
    /// The newest durable seq, and how much log sits after the snapshot.
    last_seq: Seq,
    log_updates: usize,
    log_bytes: usize,
    compaction: Option<tokio::task::JoinHandle<CompactionResult>>,
    /// Bytes of the stored snapshot (what the log is folded into).
    snapshot_bytes: usize,
    /// Bytes the room's version history holds (folded rows, checkpoints): metered as
    /// storage, not part of the document's size cap.
    history_bytes: usize,
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
    /// Only admin connections' updates are applied (the room's setting, from the store).
    read_only: bool,
    /// Bumped on every change a watcher (the inspector) may want to see; a room with
    /// watchers stays loaded.
    changes: tokio::sync::watch::Sender<u64>,
    /// Durable updates and their writers since the last report to the events sink
    /// (reported at most once a tick, never per update).
    tally: super::events::ChangeTally,
    /// In a cluster, when the next periodic catch-up is due after the last one began:
    /// the interval jittered afresh each time, so rooms' catch-ups spread out.
    catchup_every: Option<Duration>,
    /// In a cluster: the seqs of the log rows this document holds (read from the store or
    /// acknowledged for this node's own appends), and the `upto_seq` of the snapshot it
    /// holds, so that a catch-up reads only what is new (see `remote.rs`).
    seen: std::collections::BTreeSet<Seq>,
    known_snapshot: Option<Seq>,
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
                        // What the history holds is metered as storage too.
                        let history = engine.store.history_bytes(stored.room_id).await;
                        let mut actor =
                            Self::new(engine, key, generation, inbox, connections, stored);
                        actor.link = link;
                        actor.history_bytes = history.map_or(0, |b| b as usize);
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
        let read_only = stored.read_only;
        tracing::debug!(log_updates, log_bytes, read_only, "room loaded");
        if stored.created {
            engine.emit(&key, super::events::RoomEvent::Created);
        }
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
            saved: Vec::new(),
            last_seq,
            log_updates,
            log_bytes,
            compaction: None,
            snapshot_bytes,
            history_bytes: 0,
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
            read_only,
            changes: tokio::sync::watch::Sender::new(0),
            tally: Default::default(),
            catchup_every: None,
            seen: stored.updates.iter().map(|(seq, _)| *seq).collect(),
            known_snapshot: stored.snapshot.as_ref().map(|(seq, _)| *seq),
        }
    }

    /// Tells watchers that something they may show changed.
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
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
                ack = durable::front_ack(&mut self.inflight), if !self.inflight.is_empty() => self.on_acks(ack),
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
            self.storage
                .set(self.stored_bytes() + self.history_bytes as u64);
            self.send_saved();
            if let Flow::Stop = flow {
                break;
            }
        }
        self.report_changes();
        tracing::debug!("room stopped");
    }

    /// Hands the tally of durable updates to the events sink, if there is one.
    fn report_changes(&mut self) {
        if self.tally.seqs.is_some() {
            self.tally.stored_bytes = self.stored_bytes();
            let tally = std::mem::take(&mut self.tally);
            self.engine
                .emit(&self.key, super::events::RoomEvent::DocumentUpdated(tally));
        }
    }

    async fn handle(&mut self, msg: RoomMsg) -> Flow {
        // Reads change nothing a watcher shows; everything else may.
        let changes = !matches!(
            msg,
            RoomMsg::SyncStep1 { .. }
                | RoomMsg::QueryAwareness { .. }
                | RoomMsg::Event { .. }
                | RoomMsg::Admin(
                    AdminMsg::EncodeState { .. }
                        | AdminMsg::ToJson { .. }
                        | AdminMsg::Presence { .. }
                        | AdminMsg::Broadcast { .. }
                        | AdminMsg::Watch { .. }
                )
        );
        let flow = self.dispatch(msg).await;
        if changes {
            self.changed();
        }
        flow
    }

    async fn dispatch(&mut self, msg: RoomMsg) -> Flow {
        match msg {
            RoomMsg::Join {
                conn,
                outbox,
                identity,
                info,
                limits,
                reply,
            } => {
                self.on_join(conn, outbox, identity, info, limits, reply);
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
                saved,
            } => return self.on_update(conn, update, payload, frame, saved).await,
            RoomMsg::Saved { conn, upto } => {
                self.send_when_durable(Deferred::Saved { conn, upto });
            }
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
}
