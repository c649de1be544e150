//! Control events that survive Redis: every event a node publishes on the control
//! channel with [`Cluster::publish_durable`](super::Cluster::publish_durable) is first
//! appended to the database's event log ([`crate::store::events::EventLog`]), and every
//! node reads the log every [`POLL_INTERVAL`], so an event reaches a node that missed the
//! Redis message (Redis down or restarting, a dropped subscription), within about a
//! second, whether Redis is back or not.
//!
//! A node applies each event once, whichever way it arrives first: the Redis message
//! carries the event's id, and [`Cursor`] remembers which ids were applied. Ids grow
//! with every append, but on Postgres two appends may commit out of id order (and a
//! rolled-back one leaves a hole), so the cursor does not simply keep the highest id: it
//! keeps the highest id below which everything was seen, plus the ids seen above it; a
//! hole is waited for [`GAP_WAIT`] (a commit in flight), then skipped. A node starts at
//! the log's end (it has no connections yet that an older event could concern), and
//! the log is pruned of events older than [`KEEP`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::wire;
use super::Inner;
use crate::store::SharedDocStore;

/// How often a node reads the log.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a hole in the ids is waited for before it is taken as a rolled-back append.
const GAP_WAIT: Duration = Duration::from_secs(30);
/// Events read per poll, at most.
const PAGE: u32 = 500;
/// How long events stay in the log.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often a node prunes the log.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Which event ids this node has applied.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// Every id up to here was applied or skipped.
    low: i64,
    /// Ids above `low` applied already.
    seen: BTreeSet<i64>,
    /// Since when the id after `low` is missing while later ones are there.
    gap_since: Option<Instant>,
    /// Whether `low` was set from the log (before, every id is new).
    started: bool,
}

impl Cursor {
    /// Starts at the log's end: events up to `last` are not this node's concern.
    pub(crate) fn start(&mut self, last: i64) {
        self.low = self.low.max(last);
        let low = self.low;
        self.seen.retain(|id| *id > low);
        self.started = true;
    }

    /// Records `id` as applied; `false` if it was already.
    pub(crate) fn mark(&mut self, id: i64) -> bool {
        if self.started && id <= self.low {
            return false;
        }
        self.seen.insert(id)
    }

    /// Whether the log's end was read.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Where the next read starts (exclusive).
    pub(crate) fn low(&self) -> i64 {
        self.low
    }

    /// Moves `low` over every id seen in a row, and over a hole older than `GAP_WAIT`.
    pub(crate) fn advance(&mut self, now: Instant) {
        loop {
            while self.seen.remove(&(self.low + 1)) {
                self.low += 1;
            }
            let Some(&next) = self.seen.first() else {
                self.gap_since = None;
                return;
            };
            match self.gap_since {
                Some(since) if now.duration_since(since) >= GAP_WAIT => {
                    // Nothing came to fill it: a rolled-back append.
                    self.low = next - 1;
                    self.gap_since = None;
                }
                Some(_) => return,
                None => {
                    self.gap_since = Some(now);
                    return;
                }
            }
        }
    }
}

/// Reads the log every [`POLL_INTERVAL`] and applies what this node has not.
pub(super) async fn poll(inner: Arc<Inner>, log: SharedDocStore) {
    let mut every = tokio::time::interval(POLL_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = Instant::now();
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let started = inner.cursor().started();
        if !started {
            match tokio::time::timeout(super::REDIS_TIMEOUT, log.last_event_id()).await {
                Ok(Ok(last)) => inner.cursor().start(last),
                Ok(Err(error)) => tracing::warn!(%error, "reading the cluster event log failed"),
                Err(_) => tracing::warn!("reading the cluster event log timed out"),
            }
            continue;
        }
        let low = inner.cursor().low();
        let rows =
            match tokio::time::timeout(super::REDIS_TIMEOUT, log.events_after(low, PAGE)).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "reading the cluster event log failed");
                    continue;
                }
                Err(_) => {
                    tracing::warn!("reading the cluster event log timed out");
                    continue;
                }
            };
        for row in rows {
            if !inner.cursor().mark(row.id) {
                continue;
            }
            let Some((origin, event)) = wire::decode_record(&row.event) else {
                tracing::warn!(id = row.id, "ignoring an unreadable cluster event");
                continue;
            };
            if origin == inner.node {
                continue;
            }
            inner
                .metrics
                .durable_applied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(id = row.id, ?event, "control event from the database");
            inner.apply(&event);
        }
        inner.cursor().advance(Instant::now());
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            let before = crate::store::unix_ms() - KEEP.as_millis() as i64;
            if let Err(error) = log.prune_events(before).await {
                tracing::warn!(%error, "pruning the cluster event log failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_applied_once_and_holes_are_waited_for_then_skipped() {
        let t0 = Instant::now();
        let mut cursor = Cursor::default();
        // Before the start every id is new (a Redis message may come first).
        assert!(cursor.mark(12));
        cursor.start(10);
        assert!(
            !cursor.mark(9),
            "at or below the start: not this node's concern"
        );
        assert!(!cursor.mark(12), "already applied");
        assert!(cursor.mark(11));
        cursor.advance(t0);
        assert_eq!(cursor.low(), 12);
        // 13 has not committed yet while 14 and 15 have.
        assert!(cursor.mark(14));
        assert!(cursor.mark(15));
        cursor.advance(t0);
        assert_eq!(cursor.low(), 12, "waits for 13");
        cursor.advance(t0 + GAP_WAIT / 2);
        assert_eq!(cursor.low(), 12);
        // 13 commits: read again from 12, applied, the rest skipped as seen.
        assert!(cursor.mark(13));
        assert!(!cursor.mark(14));
        cursor.advance(t0 + GAP_WAIT / 2);
        assert_eq!(cursor.low(), 15);
        // 16 never comes (rolled back): skipped after GAP_WAIT, 17 kept.
        assert!(cursor.mark(17));
        let t1 = t0 + GAP_WAIT;
        cursor.advance(t1);
        assert_eq!(cursor.low(), 15);
        cursor.advance(t1 + GAP_WAIT - Duration::from_millis(1));
        assert_eq!(cursor.low(), 15);
        cursor.advance(t1 + GAP_WAIT);
        assert_eq!(cursor.low(), 17);
        assert!(!cursor.mark(16), "a hole given up on stays given up");
        assert!(!cursor.mark(17));
        assert!(cursor.mark(18));
    }
}
