//! Limits the engine enforces on connections and rooms, with numbers from the grant (the
//! tenant's plan): token buckets per connection for messages and bytes, connection caps
//! per project and per room at connect, and a cap on a document's stored size checked
//! on every update. Over a limit the connection is closed with 4429 (with
//! `retry-after=<s>` in the reason) or 4413, after everything it sent before the limit
//! was handed to the room: a limit never drops an accepted update.
//!
//! In a cluster the project connection cap is cluster-wide: the count here is this
//! node's share, mirrored into Redis by [`super::cluster`], which admits against the sum.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tandem_protocol::close;
use tokio::time::Instant;

use super::CloseReason;

/// One plan's numbers, as the engine and the HTTP layer use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Concurrent connections in one project (across the cluster).
    pub connections_per_project: u32,
    /// Concurrent connections in one room.
    pub connections_per_room: u32,
    /// Rooms one project may have.
    pub rooms_per_project: u64,
    /// Largest stored size of a room's document (snapshot + log), in bytes.
    pub max_document_bytes: u64,
    /// Sustained WebSocket messages per second per connection…
    pub messages_per_second: u32,
    /// …with bursts up to this many.
    pub message_burst: u32,
    /// Sustained bytes per second per connection…
    pub bytes_per_second: u64,
    /// …with bursts up to this many.
    pub byte_burst: u64,
    /// REST requests per minute per API key.
    pub rest_requests_per_minute: u32,
    /// Days of version history kept per room (0: for ever).
    pub history_retention_days: u32,
}

impl Limits {
    /// How long version history is kept, `None` for ever.
    pub fn history_retention(&self) -> Option<std::time::Duration> {
        (self.history_retention_days > 0).then(|| {
            std::time::Duration::from_secs(u64::from(self.history_retention_days) * 86_400)
        })
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
            last: now,
        }
    }

    /// Changes the rate and burst (a plan change), keeping what was used of the
    /// burst: a larger burst adds its difference, a smaller one takes it away.
    pub(crate) fn reconfigure(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens = (tokens + burst - self.burst).clamp(0.0, burst);
        self.last = now;
        self.rate = rate;
        self.burst = burst;
    }

    /// Takes `n` tokens, or says how long until they would be there.
    pub(crate) fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            let missing = (n - self.tokens).min(self.burst);
            Err(Duration::from_secs_f64(missing / self.rate))
        }
    }
}

/// The two buckets of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnBuckets {
    messages: Bucket,
    bytes: Bucket,
    limits: (u32, u64),
}

impl ConnBuckets {
    pub(crate) fn new(limits: &Limits, now: Instant) -> Self {
        Self {
            messages: Bucket::new(
                f64::from(limits.messages_per_second),
                f64::from(limits.message_burst),
                now,
            ),
            bytes: Bucket::new(
                limits.bytes_per_second as f64,
                limits.byte_burst as f64,
                now,
            ),
            limits: (limits.messages_per_second, limits.bytes_per_second),
        }
    }

    /// Applies new limits to a live connection (the plan changed).
    pub(crate) fn set_limits(&mut self, limits: &Limits, now: Instant) {
        self.messages.reconfigure(
            f64::from(limits.messages_per_second),
            f64::from(limits.message_burst),
            now,
        );
        self.bytes.reconfigure(
            limits.bytes_per_second as f64,
            limits.byte_burst as f64,
            now,
        );
        self.limits = (limits.messages_per_second, limits.bytes_per_second);
    }

    /// Charges one message of `len` bytes; over either limit, the close to send.
    pub(crate) fn charge(&mut self, len: usize, now: Instant) -> Result<(), CloseReason> {
        if let Err(wait) = self.messages.take(1.0, now) {
            return Err(rate_limited(
                &format!("rate limit: {} messages per second", self.limits.0),
                wait,
            ));
        }
        if let Err(wait) = self.bytes.take(len as f64, now) {
            return Err(rate_limited(
                &format!("rate limit: {} bytes per second", self.limits.1),
                wait,
            ));
        }
        Ok(())
    }
}

/// A 4429 close whose reason says which limit and when to retry (whole seconds, at
/// least one).
pub(crate) fn rate_limited(what: &str, wait: Duration) -> CloseReason {
    let secs = Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64);
    CloseReason::new(close::RATE_LIMITED, close::with_retry_after(what, secs))
}

/// The limits in force for one project's live connections on this node, shared by
/// its sessions: a plan change stores new limits and bumps the version, and each
/// session notices the version on its next frame (one relaxed load per frame).
#[derive(Debug)]
pub(crate) struct LimitCell {
    version: AtomicU64,
    limits: Mutex<Limits>,
}

impl LimitCell {
    fn new(limits: Limits) -> Self {
        Self {
            version: AtomicU64::new(0),
            limits: Mutex::new(limits),
        }
    }

    /// Changes with every [`Self::set`].
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The limits now.
    pub(crate) fn get(&self) -> Limits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `limits` if they differ; whether they did.
    pub(crate) fn set(&self, limits: Limits) -> bool {
        let mut current = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if *current == limits {
            return false;
        }
        *current = limits;
        self.version.fetch_add(1, Ordering::AcqRel);
        true
    }
}

/// Every project's [`LimitCell`] on this node, held weakly: a cell lives as long as
/// one of the project's sessions holds it.
#[derive(Debug, Default)]
pub(crate) struct LiveLimits {
    /// The cells, and how many were ever inserted (dead ones are pruned every 1024).
    cells: Mutex<(CellMap, usize)>,
}

type CellMap = HashMap<Arc<str>, Weak<LimitCell>>;

impl LiveLimits {
    /// The project's cell for a session joining with `granted` limits. The grant was
    /// just read from the store, so it is the newest word: the latest join's limits
    /// win (as for rooms), which also repairs a plan change this node missed.
    pub(crate) fn cell(&self, project: &Arc<str>, granted: Limits) -> Arc<LimitCell> {
        let mut guard = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let (cells, inserts) = &mut *guard;
        if let Some(cell) = cells.get(project).and_then(Weak::upgrade) {
            cell.set(granted);
            return cell;
        }
        let cell = Arc::new(LimitCell::new(granted));
        cells.insert(project.clone(), Arc::downgrade(&cell));
        *inserts += 1;
        if *inserts % 1024 == 0 {
            cells.retain(|_, cell| cell.strong_count() > 0);
        }
        cell
    }

    /// Applies `limits` to the project's live sessions, if it has any here.
    pub(crate) fn set(&self, project: &str, limits: Limits) -> bool {
        let cell = {
            let guard = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            guard.0.get(project).and_then(Weak::upgrade)
        };
        cell.is_some_and(|cell| cell.set(limits))
    }
}

/// Live connections per project on this node.
#[derive(Default)]
pub(crate) struct ProjectConnections {
    counts: Mutex<HashMap<Arc<str>, u32>>,
    /// Told when a project's count drops (the cluster mirrors counts into Redis).
    on_release: std::sync::OnceLock<ReleaseHook>,
}

type ReleaseHook = Box<dyn Fn(&Arc<str>) + Send + Sync>;

impl std::fmt::Debug for ProjectConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectConnections")
            .field("counts", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl ProjectConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u32>> {
        // Single-entry updates only: poisoning cannot leave the map inconsistent.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a connection in if the project is under `cap`.
    pub(crate) fn admit(self: &Arc<Self>, project: &Arc<str>, cap: u32) -> Option<ConnSlot> {
        let mut counts = self.lock();
        let count = counts.entry(project.clone()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ConnSlot {
            owner: self.clone(),
            project: project.clone(),
        })
    }

    /// Live connections in `project`.
    pub(crate) fn count(&self, project: &str) -> u32 {
        self.lock().get(project).copied().unwrap_or(0)
    }

    /// Every project with live connections, and how many.
    pub(crate) fn projects(&self) -> Vec<(Arc<str>, u32)> {
        self.lock().iter().map(|(p, n)| (p.clone(), *n)).collect()
    }

    /// Calls `hook` after a connection is counted out (once; later calls are ignored).
    pub(crate) fn on_release(&self, hook: impl Fn(&Arc<str>) + Send + Sync + 'static) {
        let _ = self.on_release.set(Box::new(hook));
    }
}

/// One counted connection; dropping it counts it out.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    owner: Arc<ProjectConnections>,
    project: Arc<str>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        {
            let mut counts = self.owner.lock();
            if let Some(count) = counts.get_mut(&self.project) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.project);
                }
            }
        }
        if let Some(hook) = self.owner.on_release.get() {
            hook(&self.project);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10.0, 3.0, start);
        for _ in 0..3 {
            assert!(bucket.take(1.0, start).is_ok());
        }
        let wait = bucket.take(1.0, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // 100 ms later exactly one more token is there.
        let later = start + Duration::from_millis(100);
        assert!(bucket.take(1.0, later).is_ok());
        assert!(bucket.take(1.0, later).is_err());
        // Never more than the burst, however long it rests.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(bucket.take(1.0, much_later).is_ok());
        }
        assert!(bucket.take(1.0, much_later).is_err());
    }

    #[test]
    fn connection_buckets_name_the_limit_and_the_wait() {
        let limits = Limits {
            connections_per_project: 1,
            connections_per_room: 1,
            rooms_per_project: 1,
            max_document_bytes: 1,
            messages_per_second: 2,
            message_burst: 2,
            bytes_per_second: 100,
            byte_burst: 100,
            rest_requests_per_minute: 1,
            history_retention_days: 7,
        };
        let now = Instant::now();
        let mut buckets = ConnBuckets::new(&limits, now);
        assert!(buckets.charge(10, now).is_ok());
        assert!(buckets.charge(10, now).is_ok());
        let refused = buckets.charge(10, now).unwrap_err();
        assert_eq!(refused.code, close::RATE_LIMITED);
        assert!(
            refused.reason.contains("2 messages per second"),
            "{}",
            refused.reason
        );
        assert_eq!(
            close::retry_after(&refused.reason),
            Some(Duration::from_secs(1))
        );
        let mut buckets = ConnBuckets::new(&limits, now);
        let refused = buckets.charge(101, now).unwrap_err();
        assert!(
            refused.reason.contains("100 bytes per second"),
            "{}",
            refused.reason
        );
    }

    #[test]
    fn new_limits_reach_a_live_connection_through_its_cell() {
        let slow = Limits {
            connections_per_project: 1,
            connections_per_room: 1,
            rooms_per_project: 1,
            max_document_bytes: 1,
            messages_per_second: 1,
            message_burst: 1,
            bytes_per_second: 1000,
            byte_burst: 1000,
            rest_requests_per_minute: 1,
            history_retention_days: 1,
        };
        let fast = Limits {
            messages_per_second: 100,
            message_burst: 100,
            ..slow
        };
        let live = LiveLimits::default();
        let project: Arc<str> = "prj_a".into();
        let cell = live.cell(&project, slow);
        let seen = cell.version();
        let now = Instant::now();
        let mut buckets = ConnBuckets::new(&cell.get(), now);
        assert!(buckets.charge(1, now).is_ok());
        assert!(buckets.charge(1, now).is_err(), "the slow plan allows one");
        assert!(live.set("prj_a", fast));
        assert!(
            !live.set("prj_a", fast),
            "unchanged limits are not a change"
        );
        assert!(!live.set("prj_b", fast), "no sessions there");
        assert_ne!(cell.version(), seen);
        let later = now + Duration::from_millis(500);
        buckets.set_limits(&cell.get(), later);
        for _ in 0..40 {
            assert!(buckets.charge(1, later).is_ok(), "the fast plan's rate");
        }
        // A second session of the project shares the cell.
        assert!(Arc::ptr_eq(&cell, &live.cell(&project, fast)));
        drop(cell);
        assert!(!live.set("prj_a", slow), "the cell died with its sessions");
    }

    #[test]
    fn project_slots_count_in_and_out() {
        let counts = Arc::new(ProjectConnections::default());
        let project: Arc<str> = "prj_a".into();
        let a = counts.admit(&project, 2).unwrap();
        let b = counts.admit(&project, 2).unwrap();
        assert!(counts.admit(&project, 2).is_none());
        assert!(
            counts.admit(&"prj_b".into(), 2).is_some(),
            "other projects unaffected"
        );
        drop(a);
        assert_eq!(counts.count("prj_a"), 1);
        let _c = counts.admit(&project, 2).unwrap();
        drop(b);
        assert_eq!(counts.count("prj_a"), 1);
    }
}
