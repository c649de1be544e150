//! Folding a room's log into its snapshot, off the room's task: the actor starts a
//! compaction past the configured thresholds and accounts for it when it ends.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::RoomActor;
use crate::rooms::{doc, Engine};
use crate::store::{RoomId, Seq, StoreError};

/// What a compaction did.
#[derive(Debug, Default)]
pub(super) struct Compacted {
    /// What it folded (updates, bytes) and the new snapshot's size, `None` if nothing or
    /// it lost a race.
    folded: Option<(usize, usize, usize)>,
    /// The history's size after it (and the retention pass after it), if read.
    history_bytes: Option<usize>,
}

pub(super) type CompactionResult = Result<Compacted, StoreError>;

impl RoomActor {
    pub(super) fn maybe_compact(&mut self) {
        let config = &self.engine.config;
        if self.compaction.is_some()
            || (self.log_updates < config.compact_after_updates
                && self.log_bytes < config.compact_after_bytes)
        {
            return;
        }
        let engine = self.engine.clone();
        let (room_id, upto, retention) = (self.room_id, self.last_seq, self.retention());
        self.compaction = Some(self.engine.tracker.spawn(
            async move { compact(&engine, room_id, upto, retention).await }.in_current_span(),
        ));
    }

    /// How long this room keeps its history: its plan's retention once a connection
    /// (or REST write) brought the plan, else the engine's default.
    pub(super) fn retention(&self) -> Option<Duration> {
        match self.limits {
            Some(limits) => limits.history_retention,
            None => self.engine.config.history_retention,
        }
    }

    /// Accounts for a finished compaction; `false` if it failed.
    pub(super) fn on_compacted(&mut self, done: CompactionResult) -> bool {
        if let Ok(Compacted {
            history_bytes: Some(bytes),
            ..
        }) = &done
        {
            self.history_bytes = *bytes;
        }
        match done.map(|c| c.folded) {
            Ok(Some((updates, bytes, snapshot))) => {
                self.log_updates = self.log_updates.saturating_sub(updates);
                self.log_bytes = self.log_bytes.saturating_sub(bytes);
                self.snapshot_bytes = snapshot;
                // Other nodes' updates were folded too (or will be read afresh).
                self.remote_bytes = 0;
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
}

/// Folds the log up to `upto` into the snapshot. Returns what was folded, or `None` when
/// there was nothing to do or another compaction won the race.
///
/// Deletes exactly the rows it read (on Postgres a row can commit after this read with a
/// smaller seq than rows read; it stays in the log for the next compaction). The new
/// snapshot's `upto_seq` is the highest seq folded, which must exceed the previous one:
/// the store's check that the snapshot is still the one read compares `upto_seq` only, so
/// a replacement keeping it would let a racing compaction that read the same snapshot
/// overwrite this one (and lose the rows this one folded). When every row read is below
/// the snapshot's `upto_seq` (only late rows), it waits for a newer row instead.
///
/// The folded rows move to the history and the snapshot is kept as a checkpoint (the
/// store does both in the swap's transaction); then history older than `retention` is
/// pruned and the history's size read for metering. A failure of either is logged: the
/// compaction itself stands.
pub(super) async fn compact(
    engine: &Engine,
    room_id: RoomId,
    upto: Seq,
    retention: Option<Duration>,
) -> CompactionResult {
    let folded = fold(engine, room_id, upto).await?;
    let store = &engine.store;
    if let Some(retention) = retention {
        let window = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = engine.config.clock.now_ms().saturating_sub(window);
        match store.prune_history(room_id, cutoff).await {
            Ok(pruned) if pruned.rows + pruned.checkpoints > 0 => {
                tracing::debug!(
                    rows = pruned.rows,
                    checkpoints = pruned.checkpoints,
                    "history pruned"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "pruning the room's history failed"),
        }
    }
    let history_bytes = match store.history_bytes(room_id).await {
        Ok(bytes) => usize::try_from(bytes).ok(),
        Err(error) => {
            tracing::warn!(%error, "reading the history's size failed");
            None
        }
    };
    Ok(Compacted {
        folded,
        history_bytes,
    })
}

async fn fold(
    engine: &Engine,
    room_id: RoomId,
    upto: Seq,
) -> Result<Option<(usize, usize, usize)>, StoreError> {
    let stored = engine.store.read_upto(room_id, upto).await?;
    let folded: Vec<Seq> = stored.updates.iter().map(|(seq, _)| *seq).collect();
    let Some(&max_folded) = folded.iter().max() else {
        return Ok(None);
    };
    let prev = stored.snapshot.as_ref().map(|(seq, _)| *seq);
    if prev.is_some_and(|prev| max_folded <= prev) {
        return Ok(None);
    }
    // max(prev, max folded), which the check above makes the highest seq folded.
    let upto = max_folded;
    let counts = (stored.updates.len(), stored.log_bytes());
    let stored = Arc::new(stored);
    let merged = {
        let stored = stored.clone();
        tokio::task::spawn_blocking(move || doc::merge(&stored))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    };
    let written = engine
        .store
        .replace_snapshot(room_id, prev, upto, &folded, &merged)
        .await?;
    Ok(written.then_some((counts.0, counts.1, merged.len())))
}

/// The running compaction's result (pending forever when none runs, for `select!`).
pub(super) async fn join(
    task: &mut Option<tokio::task::JoinHandle<CompactionResult>>,
) -> CompactionResult {
    match task {
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e.to_string())))),
        None => std::future::pending().await,
    }
}
