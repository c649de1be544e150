//! The room's side of the cluster ([`crate::rooms::cluster`]): applying what other
//! nodes publish, answering their presence queries, and catching up from the database
//! when something may have been missed.
//!
//! Remote updates were durable before they were published, so they are applied and
//! relayed to local connections at once and never stored again here; one that adds
//! nothing (a catch-up brought it first) is not relayed again. An update that does not
//! fit the document (it builds on something this node missed) is not applied; the room
//! catches up instead: it reads the room's version and, if that changed since the last
//! look, the log rows it does not hold (by seq, so a late commit below rows already
//! seen is read too), or the whole stored document when the snapshot changed since the
//! one it holds (a compaction may have folded rows it never saw), and applies them
//! (yrs skips what it has).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::awareness::{self, AwarenessEntry};
use tandem_protocol::json::{self, JsonLimits};
use tandem_protocol::{close, Message};
use tokio::time::Instant;
use tracing::Instrument;

use super::{vacate, Flow, Owner, Refused, RoomActor};
use crate::rooms::cluster::Kind;
use crate::rooms::msg::Remote;
use crate::rooms::{doc, validate, CloseReason, RoomKey};
use crate::store::{DocStore, RoomId, RoomVersion, Seq, StoreError, StoredDoc};

/// The least time between two catch-ups of a room (doubled after each failure, up to
/// 32 times).
const MIN_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// What a catch-up found.
pub(super) enum CaughtUp {
    /// The room's version is what was last applied: nothing to do.
    Unchanged,
    /// The room is gone from the database (deleted on another node).
    Gone,
    /// What the room lacked as updates (none: only rows it holds), with
    /// the version it was read at, what the document then holds (the snapshot's
    /// `upto_seq`, every log row's seq) and the sizes the actor accounts for.
    Changed {
        version: RoomVersion,
        updates: Vec<Bytes>,
        snapshot_upto: Option<Seq>,
        rows: Vec<Seq>,
        /// Whether the whole document was read (the snapshot changed).
        whole: bool,
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
        match self.check_and_apply(update, payload) {
            Ok(changed) => {
                self.remote_bytes += payload.len();
                if changed {
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
        let every = *self
            .catchup_every
            .get_or_insert_with(|| jittered(link.cluster().catchup_interval()));
        if self.last_catchup.elapsed() >= every {
            self.catchup_due = true;
        }
        // Spaced out, more so after failures (the database may be down).
        let gap = MIN_GAP * 2u32.saturating_pow(self.catchup_failures.min(5));
        if !self.catchup_due || self.catchup.is_some() || self.last_catchup.elapsed() < gap {
            return;
        }
        self.catchup_due = false;
        self.last_catchup = Instant::now();
        self.catchup_every = None;
        let engine = self.engine.clone();
        let (key, room_id) = (self.key.clone(), self.room_id);
        let known = Known {
            version: self.version,
            snapshot: self.known_snapshot,
            seen: self.seen.clone(),
        };
        self.catchup = Some(self.engine.tracker.spawn(
            async move { catch_up(&*engine.store, &key, room_id, known).await }.in_current_span(),
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
                updates,
                snapshot_upto,
                rows,
                whole,
                snapshot_bytes,
                log_bytes,
                log_updates,
            }) => {
                self.catchup_failures = 0;
                if !updates.is_empty() {
                    let before = doc::state_vector_of(&self.doc);
                    let mut changed = false;
                    // In seq order; one that builds on a later one waits in yrs for it.
                    for update in &updates {
                        match doc::decode_update(update)
                            .and_then(|u| doc::apply(&self.doc, u).map_err(|e| e.to_string()))
                        {
                            Ok(applied) => changed |= applied,
                            Err(error) => {
                                // Nothing is taken as held: the next catch-up reads it
                                // again.
                                tracing::error!(%error, "a stored update does not apply");
                                return Flow::Continue;
                            }
                        }
                    }
                    if changed {
                        // Something was missed: send local connections what they lack.
                        if let Some(metrics) = self.link.as_ref().map(|l| l.cluster().metrics()) {
                            metrics.catchup_repairs.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::info!(whole, "caught up with updates missed from other nodes");
                        let diff = doc::diff(&self.doc, &before);
                        let frame = Bytes::from(Message::Update(&diff).encode());
                        self.broadcast(None, &frame);
                    }
                }
                self.version = Some(version);
                self.known_snapshot = snapshot_upto;
                // The rows read and held, and this node's appends acknowledged since the
                // read (above every row it saw); a row folded since is no longer listed.
                let newest = rows.last().copied().max(snapshot_upto);
                let later = self
                    .seen
                    .iter()
                    .copied()
                    .filter(|seq| newest.is_none_or(|newest| *seq > newest));
                self.seen = rows.iter().copied().chain(later).collect();
                self.snapshot_bytes = snapshot_bytes;
                self.log_bytes = log_bytes;
                self.log_updates = log_updates;
                self.remote_bytes = 0;
                if let Some(seq) = newest {
                    self.last_seq = self.last_seq.max(seq);
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

/// What the room holds when a catch-up starts.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The version it last read.
    version: Option<RoomVersion>,
    /// The `upto_seq` of the snapshot it holds.
    snapshot: Option<Seq>,
    /// The log rows it holds.
    seen: std::collections::BTreeSet<Seq>,
}

/// Compares the room with the database and, if it changed since `known`, reads what the
/// room lacks: the log rows it has not seen, or everything when the snapshot changed.
///
/// A compaction deletes the rows it folds from the log, so rows this node never saw may
/// be in a new snapshot and nowhere else: then only the whole document is safe. While
/// the snapshot stays the one the room holds, every row not in it is still in the log,
/// and comparing seqs finds each one this node lacks, however late it committed.
async fn catch_up(
    store: &dyn DocStore,
    key: &RoomKey,
    room_id: RoomId,
    known: Known,
) -> CatchUpResult {
    let Some(version) = store.room_version(room_id).await? else {
        return Ok(CaughtUp::Gone);
    };
    if known.version == Some(version) {
        return Ok(CaughtUp::Unchanged);
    }
    // Deleted and re-created under the same name: ours is the old document.
    if store.find_room(&key.project_id, &key.name).await? != Some(room_id) {
        return Ok(CaughtUp::Gone);
    }
    // The version read before the rows: if rows landed in between, the next look sees
    // a different version and reads again (what it holds, it skips).
    let tail = store.read_unseen(room_id, &known.seen).await?;
    let snapshot_upto = tail.snapshot.map(|(seq, _)| seq);
    if snapshot_upto == known.snapshot {
        let rows: Vec<Seq> = tail.rows.iter().map(|(seq, _)| *seq).collect();
        return Ok(CaughtUp::Changed {
            version,
            updates: tail.updates.into_iter().map(|(_, data)| data).collect(),
            snapshot_upto,
            rows,
            whole: false,
            snapshot_bytes: tail.snapshot.map_or(0, |(_, bytes)| bytes),
            log_bytes: tail.rows.iter().map(|(_, bytes)| bytes).sum(),
            log_updates: tail.rows.len(),
        });
    }
    let stored = store.read_upto(room_id, Seq::MAX).await?;
    let snapshot_bytes = stored.snapshot.as_ref().map_or(0, |(_, b)| b.len());
    let log_bytes = stored.log_bytes();
    let log_updates = stored.updates.len();
    let snapshot_upto = stored.snapshot.as_ref().map(|(seq, _)| *seq);
    let rows = stored.updates.iter().map(|(seq, _)| *seq).collect();
    Ok(CaughtUp::Changed {
        version,
        updates: vec![Bytes::from(merge(stored).await?)],
        snapshot_upto,
        rows,
        whole: true,
        snapshot_bytes,
        log_bytes,
        log_updates,
    })
}

/// `stored` merged into one update, off the room's task.
async fn merge(stored: StoredDoc) -> Result<Vec<u8>, StoreError> {
    let stored = Arc::new(stored);
    tokio::task::spawn_blocking(move || doc::merge(&stored))
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))
}

/// `interval` times a random factor in [0.5, 1.5), so that rooms loaded together do not
/// catch up together.
pub(super) fn jittered(interval: std::time::Duration) -> std::time::Duration {
    let mut random = [0u8; 4];
    // Without randomness, the interval as it is (still correct, only less spread).
    if getrandom::fill(&mut random).is_err() {
        return interval;
    }
    let unit = f64::from(u32::from_le_bytes(random)) / (f64::from(u32::MAX) + 1.0);
    interval.mul_f64(0.5 + unit)
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

/// The catch-up's reads against every backend (SQLite, and the real Postgres of the
/// storage suite): what another node appended, a row that committed late below rows
/// already seen, and a compaction folding rows this node never saw.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;
    use yrs::{GetString, Text, Transact};

    use super::{catch_up, doc, CaughtUp, Known};
    use crate::rooms::RoomKey;
    use crate::store::suite::TestStore;
    use crate::store::{Append, DocStore, RoomId, Seq};

    fn key() -> RoomKey {
        RoomKey {
            project_id: "prj".into(),
            name: "doc".into(),
        }
    }

    /// An update inserting `s` at the end of the text `t` of `writer`.
    fn edit(writer: &yrs::Doc, s: &str) -> Bytes {
        let text = writer.get_or_insert_text("t");
        let mut txn = writer.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, s);
        Bytes::from(txn.encode_update_v1())
    }

    fn text(of: &yrs::Doc) -> String {
        let text = of.get_or_insert_text("t");
        let txn = of.transact();
        text.get_string(&txn)
    }

    async fn append(docs: &dyn DocStore, room_id: RoomId, data: &Bytes) -> Seq {
        docs.append(&[Append {
            room_id,
            data: data.clone(),
            ..Default::default()
        }])
        .await
        .unwrap()[0]
    }

    /// What the room does with a catch-up's result: applies its updates, takes its rows
    /// as held. Returns whether the whole document was read and how many updates came.
    fn take(room: &yrs::Doc, known: &mut Known, done: CaughtUp) -> (bool, usize) {
        let CaughtUp::Changed {
            version,
            updates,
            snapshot_upto,
            rows,
            whole,
            ..
        } = done
        else {
            panic!("the room changed");
        };
        for update in &updates {
            doc::apply(room, doc::decode_update(update).unwrap()).unwrap();
        }
        known.version = Some(version);
        known.snapshot = snapshot_upto;
        known.seen = rows.into_iter().collect();
        (whole, updates.len())
    }

    async fn late_commit_and_unseen_compaction(store: TestStore) {
        let docs = store.docs();
        let room_id = docs.load("prj", "doc").await.unwrap().room_id;
        let (one, two) = (yrs::Doc::new(), yrs::Doc::new());
        // This node holds A and C; B, from another node, got a smaller seq than C but
        // committed after this node saw C (Postgres: visibility out of seq order).
        let a = edit(&one, "hello");
        let b = edit(&two, "late");
        let c = edit(&one, " world");
        let seqs = [
            append(docs, room_id, &a).await,
            append(docs, room_id, &b).await,
            append(docs, room_id, &c).await,
        ];
        let room = yrs::Doc::new();
        for update in [&a, &c] {
            doc::apply(&room, doc::decode_update(update).unwrap()).unwrap();
        }
        let mut known = Known {
            version: None,
            snapshot: None,
            seen: BTreeSet::from([seqs[0], seqs[2]]),
        };
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert_eq!(
            take(&room, &mut known, done),
            (false, 1),
            "only the late row is read"
        );
        assert_eq!(text(&room), replayed(&[&a, &b, &c]));
        assert_eq!(known.seen, BTreeSet::from(seqs));
        // Nothing new: the same version, nothing read.
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert!(matches!(done, CaughtUp::Unchanged));

        // Another node appends D and E and compacts everything before this node looks:
        // D and E are only in the snapshot now, so the whole document is read.
        let d = edit(&two, "!");
        let e = edit(&one, "?");
        let d_seq = append(docs, room_id, &d).await;
        let e_seq = append(docs, room_id, &e).await;
        let stored = docs.read_upto(room_id, e_seq).await.unwrap();
        let folded: Vec<Seq> = stored.updates.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(folded, [seqs[0], seqs[1], seqs[2], d_seq, e_seq]);
        let snapshot = doc::merge(&stored);
        assert!(docs
            .replace_snapshot(room_id, None, e_seq, &folded, &snapshot)
            .await
            .unwrap());
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert_eq!(
            take(&room, &mut known, done),
            (true, 1),
            "the whole document"
        );
        let all = [&a, &b, &c, &d, &e];
        assert_eq!(text(&room), replayed(&all));
        assert_eq!(known.snapshot, Some(e_seq));
        assert!(known.seen.is_empty());

        // With that snapshot held, a new row is read alone again.
        let f = edit(&two, "#");
        let f_seq = append(docs, room_id, &f).await;
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert_eq!(take(&room, &mut known, done), (false, 1));
        assert_eq!(known.seen, BTreeSet::from([f_seq]));
        let all = [&a, &b, &c, &d, &e, &f];
        assert_eq!(text(&room), replayed(&all));

        // Deleted on another node: gone.
        docs.delete_room(room_id).await.unwrap();
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert!(matches!(done, CaughtUp::Gone));
        store.stores.close().await;
    }

    /// The text of a fresh document with `updates` applied (what every node converges
    /// to).
    fn replayed(updates: &[&Bytes]) -> String {
        let fresh = yrs::Doc::new();
        for update in updates {
            doc::apply(&fresh, doc::decode_update(update).unwrap()).unwrap();
        }
        text(&fresh)
    }

    #[tokio::test]
    async fn catch_up_reads_late_rows_and_falls_back_after_unseen_compaction_sqlite() {
        if let Some(store) = TestStore::sqlite().await {
            late_commit_and_unseen_compaction(store).await;
        }
    }

    #[tokio::test]
    async fn catch_up_reads_late_rows_and_falls_back_after_unseen_compaction_postgres() {
        if let Some(store) = TestStore::postgres().await {
            late_commit_and_unseen_compaction(store).await;
        }
    }

    /// A real late commit: on Postgres another node's append takes its seq, this node
    /// sees a later row commit first, and the earlier row becomes visible after that.
    #[tokio::test]
    async fn a_row_visible_only_after_a_later_one_is_still_read_postgres() {
        use sqlx::Connection;
        let Some(store) = TestStore::postgres().await else {
            return;
        };
        let docs = store.docs();
        let room_id = docs.load("prj", "doc").await.unwrap().room_id;
        let (one, two) = (yrs::Doc::new(), yrs::Doc::new());
        let a = edit(&one, "hello");
        let b = edit(&two, "late");
        let c = edit(&one, " world");
        let a_seq = append(docs, room_id, &a).await;
        let room = yrs::Doc::new();
        doc::apply(&room, doc::decode_update(&a).unwrap()).unwrap();
        let mut known = Known {
            version: None,
            snapshot: None,
            seen: BTreeSet::from([a_seq]),
        };

        let mut late = sqlx::PgConnection::connect(store.postgres_url().unwrap())
            .await
            .unwrap();
        let mut tx = late.begin().await.unwrap();
        let b_seq: Seq = sqlx::query_scalar(
            "INSERT INTO room_updates (room_id, data) VALUES ($1, $2) RETURNING seq",
        )
        .bind(room_id)
        .bind(b.to_vec())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let c_seq = append(docs, room_id, &c).await;
        assert!(b_seq < c_seq);
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert_eq!(take(&room, &mut known, done), (false, 1), "C only");
        assert_eq!(known.seen, BTreeSet::from([a_seq, c_seq]));

        tx.commit().await.unwrap();
        let done = catch_up(docs, &key(), room_id, known.clone())
            .await
            .unwrap();
        assert_eq!(take(&room, &mut known, done), (false, 1), "B, below C");
        assert_eq!(known.seen, BTreeSet::from([a_seq, b_seq, c_seq]));
        assert_eq!(text(&room), replayed(&[&a, &b, &c]));
        late.close().await.unwrap();
        store.stores.close().await;
    }

    #[test]
    fn the_catch_up_interval_is_jittered_within_half_either_way() {
        let interval = std::time::Duration::from_secs(10);
        let draws: Vec<_> = (0..200).map(|_| super::jittered(interval)).collect();
        assert!(draws
            .iter()
            .all(|d| *d >= interval / 2 && *d < interval * 3 / 2));
        // Spread out, not one value: 200 draws all in one tenth of the range would take
        // a broken source of randomness.
        let (min, max) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(*max - *min > interval / 10, "{min:?}..{max:?}");
    }
}
