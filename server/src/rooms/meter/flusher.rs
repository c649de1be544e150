//! The flusher: every `--usage-flush-interval`, at every UTC hour boundary, and once more
//! at shutdown (after every room and connection has stopped), it takes a batch from the
//! [`Meter`] and applies it to the store under a random flush id.
//!
//! Exactly once: the store records the id in the same transaction as the counters, so
//! a batch whose commit succeeded but whose answer was lost is retried with the same id
//! and ignored. Such a batch is retried exactly as it was: nothing may be merged into a
//! batch that may already be applied. What is taken while it is still failing waits in
//! a second batch that was never sent, so merging into that one is safe. The queue is
//! thus at most two batches long, the second growing (by distinct project × room ×
//! hour, not by messages) for as long as the store is down; that is logged loudly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Meter;
use crate::store::usage::{
    MonthlyUser, ProjectHour, RoomHour, SharedUsageStore, UsageBatch, HOUR_MS,
};

/// After this long failing, every failed flush is logged as an error.
const LOUD_AFTER_MS: i64 = 60_000;

/// Flushes one engine's meter into the store.
pub(crate) struct Flusher {
    meter: Arc<Meter>,
    store: SharedUsageStore,
    /// Sent and failed: retried as it is, with its id.
    attempted: Option<(String, UsageBatch)>,
    /// Never sent (an earlier batch is still failing): later batches merge into it.
    waiting: Option<UsageBatch>,
    /// When flushes started failing (unix ms).
    failing_since: Option<i64>,
}

impl Flusher {
    pub(crate) fn new(meter: Arc<Meter>, store: SharedUsageStore) -> Self {
        Self {
            meter,
            store,
            attempted: None,
            waiting: None,
            failing_since: None,
        }
    }

    /// Flushes every `interval` and at each hour boundary until `stop` delivers a
    /// deadline (or is dropped), then flushes what is left, retrying until the deadline.
    pub(crate) async fn run(mut self, interval: Duration, mut stop: oneshot::Receiver<Instant>) {
        let deadline = loop {
            let now = self.meter.now();
            let to_next_hour = u64::try_from(HOUR_MS - now.rem_euclid(HOUR_MS)).unwrap_or(0);
            let wait = interval.min(Duration::from_millis(to_next_hour));
            tokio::select! {
                () = tokio::time::sleep(wait) => { self.flush().await; }
                deadline = &mut stop => {
                    break deadline.unwrap_or_else(|_| Instant::now() + Duration::from_secs(5));
                }
            }
        };
        let mut backoff = Duration::from_millis(100);
        while !self.flush().await {
            if Instant::now() + backoff > deadline {
                let rows = self.pending_rows();
                tracing::error!(
                    rows,
                    "shutting down with usage the store did not take: it is lost"
                );
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn pending_rows(&self) -> usize {
        self.attempted.as_ref().map_or(0, |(_, b)| b.len())
            + self.waiting.as_ref().map_or(0, UsageBatch::len)
    }

    /// Takes a batch and sends what is pending, oldest first. `true` when nothing is
    /// left pending.
    pub(crate) async fn flush(&mut self) -> bool {
        let now = self.meter.now();
        let fresh = self.meter.take(now);
        if !fresh.is_empty() {
            match &mut self.waiting {
                Some(waiting) => merge(waiting, fresh),
                None => self.waiting = Some(fresh),
            }
        }
        if let Some((id, batch)) = self.attempted.take() {
            if let Err(error) = self.store.apply_usage(&id, &batch, now).await {
                self.attempted = Some((id, batch));
                self.failed(now, &error);
                return false;
            }
        }
        let Some(batch) = self.waiting.take() else {
            self.recovered();
            return true;
        };
        let id = flush_id(now);
        match self.store.apply_usage(&id, &batch, now).await {
            Ok(applied) => {
                tracing::debug!(rows = batch.len(), applied, flush = %id, "usage flushed");
                self.recovered();
                true
            }
            Err(error) => {
                self.attempted = Some((id, batch));
                self.failed(now, &error);
                false
            }
        }
    }

    fn failed(&mut self, now: i64, error: &dyn std::fmt::Display) {
        let since = *self.failing_since.get_or_insert(now);
        let failing_ms = now - since;
        let rows = self.pending_rows();
        if failing_ms >= LOUD_AFTER_MS {
            tracing::error!(%error, rows, failing_s = failing_ms / 1000,
                "usage flushes keep failing; usage waits in memory and is lost if the process dies");
        } else {
            tracing::warn!(%error, rows, "usage flush failed; retrying with the same flush id");
        }
    }

    fn recovered(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                failed_for_ms = self.meter.now() - since,
                "usage flushes work again"
            );
        }
    }
}

/// A new flush id: 128 random bits (the time and process id if the system's random
/// source fails, which is unique enough for a retry key).
fn flush_id(now: i64) -> String {
    let mut random = [0u8; 16];
    match getrandom::fill(&mut random) {
        Ok(()) => random.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => {
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("t{now}-{}-{seq}", std::process::id())
        }
    }
}

/// Folds `later` into `into` as applying both would: counters add, peaks max, the later
/// storage reading wins, users once.
pub(crate) fn merge(into: &mut UsageBatch, later: UsageBatch) {
    let mut rooms: BTreeMap<(String, String, i64), RoomHour> = std::mem::take(&mut into.rooms)
        .into_iter()
        .map(|r| ((r.project_id.clone(), r.room.clone(), r.hour_start), r))
        .collect();
    for r in later.rooms {
        let key = (r.project_id.clone(), r.room.clone(), r.hour_start);
        match rooms.get_mut(&key) {
            Some(e) => {
                e.messages_in += r.messages_in;
                e.messages_out += r.messages_out;
                e.bytes_in += r.bytes_in;
                e.bytes_out += r.bytes_out;
                e.connection_ms += r.connection_ms;
                e.peak_connections = e.peak_connections.max(r.peak_connections);
                e.active |= r.active;
                e.storage_bytes = r.storage_bytes.or(e.storage_bytes);
            }
            None => {
                rooms.insert(key, r);
            }
        }
    }
    into.rooms = rooms.into_values().collect();
    let mut projects: BTreeMap<(String, i64), i64> = std::mem::take(&mut into.projects)
        .into_iter()
        .map(|p| ((p.project_id, p.hour_start), p.peak_connections))
        .collect();
    for p in later.projects {
        let peak = projects.entry((p.project_id, p.hour_start)).or_default();
        *peak = (*peak).max(p.peak_connections);
    }
    into.projects = projects
        .into_iter()
        .map(|((project_id, hour_start), peak_connections)| ProjectHour {
            project_id,
            hour_start,
            peak_connections,
        })
        .collect();
    let users: BTreeSet<MonthlyUser> = std::mem::take(&mut into.users)
        .into_iter()
        .chain(later.users)
        .collect();
    into.users = users.into_iter().collect();
}
