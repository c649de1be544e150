//! The room's side of the cluster ([`crate::rooms::cluster`]): applying what other
//! nodes publish, answering their presence queries, and catching up from the database
//! when something may have been missed.
//!
//! Remote updates were durable before they were published, so they are applied and
//! relayed to local connections at once and never stored again here. An update that
//! does not fit the document (it builds on something this node missed) is not applied;
//! the room catches up instead: it reads the room's version and, if that changed since
//! the last look, the whole stored document, and applies it (yrs skips what it has).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::awareness::{self, AwarenessEntry};
use tandem_protocol::json::{self, JsonLimits};
use tandem_protocol::{close, Message};
use tokio::time::Instant;
use tracing::Instrument;
use yrs::{ReadTxn, Transact};

use super::{vacate, Flow, Owner, Refused, RoomActor};
use crate::rooms::cluster::Kind;
use crate::rooms::msg::Remote;
use crate::rooms::{doc, validate, CloseReason, Engine, RoomKey};
use crate::store::{RoomId, RoomVersion, StoreError};

/// The least time between two catch-ups of a room (doubled after each failure, up to
/// 32 times).
const MIN_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// What a catch-up found.
pub(super) enum CaughtUp {
    /// The room's version is what was last applied: nothing to do.
    Unchanged,
    /// The room is gone from the database (deleted on another node).
    Gone,
    /// The stored document as one update, with the version it was read at and the
    /// sizes the actor accounts for.
    Changed {
        version: RoomVersion,
        state: Vec<u8>,
        snapshot_bytes: usize,
        log_bytes: usize,
        log_updates: usize,
    },
}

/// Room for the event envelope around a client's event (`{"event":…,"connectionId":…,
/// "userId":…}`), the user id included.
const ENVELOPE_BYTES: usize = 4096;

pub(super) type CatchUpResult = Result<CaughtUp, StoreError>;

impl RoomActor {
    pub(super) async fn on_remote(&mut self, remote: Remote) -> Flow {
        match remote {
            Remote::CatchUp => {
                // The bus reconnected: what others published meanwhile is lost, presence
                // included.
                self.want_catchup();
                self.publish(Kind::AwarenessQuery, &[]);
            }
            Remote::Frame { node, kind, frame } => match kind {
                Kind::Update => return self.on_remote_update(frame).await,
                Kind::Awareness => self.on_remote_awareness(node, &frame),
                Kind::Event => self.on_remote_event(frame),
                Kind::AwarenessQuery => self.answer_awareness_query(),
                Kind::Deleted => {
                    self.close_deleted_elsewhere();
                    return Flow::Stop;
                }
            },
        }
        Flow::Continue
    }

    async fn on_remote_update(&mut self, frame: Bytes) -> Flow {
        let Ok(Message::Update(payload)) = Message::decode(&frame) else {
            tracing::warn!("ignoring a malformed update from another node");
            return Flow::Continue;
        };
        // Whoever can publish on Redis is not trusted with yrs either.
        if let Err(error) = validate::validate_update_v1(payload, &validate::Limits::default()) {
            tracing::warn!(%error, "ignoring a hostile update from another node");
            return Flow::Continue;
        }
        let update = match doc::decode_update(payload) {
            Ok(update) => update,
            Err(error) => {
                tracing::warn!(%error, "ignoring an undecodable update from another node");
                return Flow::Continue;
            }
        };
        // A catch-up may have brought this update already (it was in flight on Redis
        // when the database was read): then it adds nothing and is not relayed again.
        let deletes = !update.delete_set().is_empty();
        let before = doc::state_vector_of(&self.doc);
        match self.check_and_apply(update, payload) {
            Ok(()) => {
                self.remote_bytes += payload.len();
                if deletes || doc::state_vector_of(&self.doc) != before {
                    self.broadcast(None, &frame);
                }
            }
            Err(Refused::Dependencies(_)) => {
                tracing::debug!(
                    "an update from another node builds on one missed here; catching up"
                );
                self.want_catchup();
            }
            Err(Refused::Invalid(reason)) => {
                tracing::warn!(%reason, "an update from another node does not apply; catching up");
                self.want_catchup();
            }
            Err(Refused::Panicked) => return self.rebuild().await,
        }
        Flow::Continue
    }

    /// Presence from `node`. Checked like a connection's (what every receiver will
    /// parse, and the size), and held to ownership: a node may set ids that are new or
    /// its own, never one of this node's connections' or another node's.
    fn on_remote_awareness(&mut self, node: u64, frame: &[u8]) {
        let Ok(Message::Awareness(bytes)) = Message::decode(frame) else {
            tracing::warn!("ignoring malformed presence from another node");
            return;
        };
        let entries = match awareness::decode_checked(bytes) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "ignoring invalid presence from another node");
                return;
            }
        };
        let limits = JsonLimits::new(self.engine.config.max_presence_bytes);
        if let Some(error) = entries
            .iter()
            .find_map(|e| json::check(e.state, limits).err())
        {
            tracing::warn!(%error, "ignoring invalid presence from another node");
            return;
        }
        let allowed: Vec<AwarenessEntry<'_>> = entries
            .into_iter()
            .filter(|e| {
                self.awareness_owner
                    .get(&e.client_id)
                    .is_none_or(|owner| *owner == Owner::Node(node))
            })
            .collect();
        let now = self.now_ms();
        let changes = self.awareness.apply(&allowed, now);
        for change in &changes {
            if change.state.is_some() {
                self.awareness_owner
                    .insert(change.client_id, Owner::Node(node));
            } else {
                self.awareness_owner.remove(&change.client_id);
            }
        }
        // To local connections only: the origin published it to the other nodes.
        self.broadcast_awareness(&changes, false);
    }

    /// A custom event from another node, relayed to local connections if it is what a
    /// node sends: one event envelope, JSON within the bounds.
    fn on_remote_event(&mut self, frame: Bytes) {
        let Ok(Message::Event(json)) = Message::decode(&frame) else {
            tracing::warn!("ignoring a malformed event from another node");
            return;
        };
        // The envelope adds a level and a few fields to the event the client sent.
        let limits = JsonLimits {
            max_depth: json::MAX_DEPTH + 1,
            max_bytes: self.engine.config.max_event_bytes + ENVELOPE_BYTES,
        };
        if let Err(error) = json::check(json, limits) {
            tracing::warn!(%error, "ignoring an invalid event from another node");
            return;
        }
        self.broadcast(None, &frame);
    }

    /// Another node loaded the room (or reconnected): tell it our connections' presence.
    fn answer_awareness_query(&mut self) {
        let entries: Vec<AwarenessEntry<'_>> = self
            .conns
            .values()
            .flat_map(|c| c.awareness_ids.iter())
            .filter_map(|id| self.awareness.live_entry(*id))
            .collect();
        if entries.is_empty() {
            return;
        }
        let frame = Message::Awareness(&awareness::encode_update(entries)).encode();
        self.publish(Kind::Awareness, &frame);
    }

    /// Publishes to the other nodes, if in a cluster.
    pub(super) fn publish(&self, kind: Kind, frame: &[u8]) {
        if let Some(link) = &self.link {
            link.publish(kind, frame);
        }
    }

    /// The room was deleted on another node (or found gone while catching up): close
    /// every connection with 4404 and leave, without touching the store.
    pub(super) fn close_deleted_elsewhere(&mut self) {
        tracing::debug!("room deleted on another node");
        vacate(&self.engine, &self.key, self.generation, &mut self.inbox);
        let reason = CloseReason::new(close::ROOM_DELETED, "room deleted");
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            self.remove_conn(id, Some(reason.clone()));
        }
        self.fail_deferred(&crate::rooms::RoomError::Unavailable);
    }

    /// Asks for a catch-up as soon as none is running.
    pub(super) fn want_catchup(&mut self) {
        self.catchup_due = true;
        self.maybe_catch_up();
    }

    /// Starts a catch-up if one is due (asked for, a message missed, or the interval
    /// passed) and none runs.
    pub(super) fn maybe_catch_up(&mut self) {
        let Some(link) = &self.link else {
            return;
        };
        if link.missed.swap(false, Ordering::Relaxed) {
            self.catchup_due = true;
        }
        if self.last_catchup.elapsed() >= link.cluster().catchup_interval() {
            self.catchup_due = true;
        }
        // Spaced out, more so after failures (the database may be down).
        let gap = MIN_GAP * 2u32.saturating_pow(self.catchup_failures.min(5));
        if !self.catchup_due || self.catchup.is_some() || self.last_catchup.elapsed() < gap {
            return;
        }
        self.catchup_due = false;
        self.last_catchup = Instant::now();
        let engine = self.engine.clone();
        let (key, room_id, known) = (self.key.clone(), self.room_id, self.version);
        self.catchup =
            Some(self.engine.tracker.spawn(
                async move { catch_up(&engine, &key, room_id, known).await }.in_current_span(),
            ));
    }

    /// Applies what a catch-up found; `Stop` if the room is gone.
    pub(super) fn on_caught_up(&mut self, done: CatchUpResult) -> Flow {
        self.catchup = None;
        self.changed();
        let metrics = self.link.as_ref().map(|l| l.cluster().metrics());
        if let Some(metrics) = metrics {
            metrics.catchups.fetch_add(1, Ordering::Relaxed);
        }
        match done {
            Ok(CaughtUp::Unchanged) => self.catchup_failures = 0,
            Ok(CaughtUp::Gone) => {
                self.close_deleted_elsewhere();
                return Flow::Stop;
            }
            Ok(CaughtUp::Changed {
                version,
                state,
                snapshot_bytes,
                log_bytes,
                log_updates,
            }) => {
                self.catchup_failures = 0;
                self.version = Some(version);
                self.snapshot_bytes = snapshot_bytes;
                self.log_bytes = log_bytes;
                self.log_updates = log_updates;
                self.remote_bytes = 0;
                if let Some(seq) = version.log_max {
                    self.last_seq = self.last_seq.max(seq);
                }
                let before = self.doc.transact().snapshot();
                let update = match doc::decode_update(&state) {
                    Ok(update) => update,
                    Err(error) => {
                        tracing::error!(%error, "the stored document does not decode");
                        return Flow::Continue;
                    }
                };
                if let Err(error) = doc::apply(&self.doc, update) {
                    tracing::error!(?error, "the stored document does not apply");
                    return Flow::Continue;
                }
                let after = self.doc.transact().snapshot();
                if before != after {
                    // Something was missed: send local connections what they lack.
                    if let Some(metrics) = self.link.as_ref().map(|l| l.cluster().metrics()) {
                        metrics.catchup_repairs.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!("caught up with updates missed from other nodes");
                    let diff = doc::diff(&self.doc, &before.state_map);
                    let frame = Bytes::from(Message::Update(&diff).encode());
                    self.broadcast(None, &frame);
                }
                self.maybe_compact();
            }
            Err(error) => {
                if self.catchup_failures == 0 {
                    tracing::warn!(%error, "catching up from the database failed; will retry");
                }
                self.catchup_failures = self.catchup_failures.saturating_add(1);
                self.catchup_due = true;
            }
        }
        Flow::Continue
    }
}

/// Compares the room with the database and reads it if it changed since `known`.
async fn catch_up(
    engine: &Engine,
    key: &RoomKey,
    room_id: RoomId,
    known: Option<RoomVersion>,
) -> CatchUpResult {
    let store = &engine.store;
    let Some(version) = store.room_version(room_id).await? else {
        return Ok(CaughtUp::Gone);
    };
    if known == Some(version) {
        return Ok(CaughtUp::Unchanged);
    }
    // Deleted and re-created under the same name: ours is the old document.
    if store.find_room(&key.project_id, &key.name).await? != Some(room_id) {
        return Ok(CaughtUp::Gone);
    }
    let stored = store.read_upto(room_id, crate::store::Seq::MAX).await?;
    // The version read before the document: if rows landed in between, the next look
    // sees a different version and reads again (applying twice is harmless).
    let snapshot_bytes = stored.snapshot.as_ref().map_or(0, |(_, b)| b.len());
    let log_bytes = stored.log_bytes();
    let log_updates = stored.updates.len();
    let stored = Arc::new(stored);
    let state = tokio::task::spawn_blocking(move || doc::merge(&stored))
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
    Ok(CaughtUp::Changed {
        version,
        state,
        snapshot_bytes,
        log_bytes,
        log_updates,
    })
}

/// The running catch-up's result (pending forever when none runs, for `select!`).
pub(super) async fn join(
    task: &mut Option<tokio::task::JoinHandle<CatchUpResult>>,
) -> CatchUpResult {
    match task {
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e.to_string())))),
        None => std::future::pending().await,
    }
}
