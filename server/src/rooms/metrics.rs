//! Engine metrics for `/metrics`: counters and histograms updated with relaxed atomics
//! on the paths they measure (no locks), rendered in the Prometheus text format by the
//! HTTP layer. Gauges that already exist elsewhere (loaded rooms, connections per room)
//! are read at scrape time instead of being kept twice.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A histogram with fixed upper bounds (cumulative counts are computed when rendered).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    /// The sum of observations, in millionths of the unit.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with these (increasing) upper bounds; `+Inf` is implied.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the histogram's lines for `name`.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// Latency buckets in seconds: 0.5 ms to 10 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Group-commit batch sizes.
const BATCH: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// What the engine counts.
#[derive(Debug)]
pub struct EngineMetrics {
    /// Time from a group commit's start to its durable end (retries included).
    pub persist_seconds: Histogram,
    /// Updates per group commit.
    pub commit_batch: Histogram,
    /// Group commits that gave up (the store was unavailable past the timeout).
    pub persist_failures: AtomicU64,
    /// Connections closed because their outbound queue was full (too slow).
    pub slow_consumers_closed: AtomicU64,
    /// Connections refused or closed by a plan limit (4429 / 4413).
    pub limit_refusals: AtomicU64,
    /// WebSocket messages read from clients, and their bytes.
    pub messages_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// WebSocket messages written to clients, and their bytes.
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            persist_seconds: Histogram::new(SECONDS),
            commit_batch: Histogram::new(BATCH),
            persist_failures: AtomicU64::new(0),
            slow_consumers_closed: AtomicU64::new(0),
            limit_refusals: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }
}

impl EngineMetrics {
    /// A message of `bytes` was read from a client.
    pub(crate) fn received(&self, bytes: usize) {
        self.messages_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `frames` messages of `bytes` in all were written to a client.
    pub(crate) fn sent(&self, frames: u64, bytes: u64) {
        self.messages_sent.fetch_add(frames, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records one group commit.
    pub(crate) fn commit(&self, batch: usize, took: Duration, ok: bool) {
        self.commit_batch.observe(batch as f64);
        self.persist_seconds.observe(took.as_secs_f64());
        if !ok {
            self.persist_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Appends one counter or gauge.
pub fn render_value(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "test");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_sum 6\n"), "{out}");
        assert!(out.contains("x_count 4\n"), "{out}");
    }
}
