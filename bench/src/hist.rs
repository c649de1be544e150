//! A lock-free, log-linear latency histogram in the spirit of HDR histograms.
//!
//! Values (nanoseconds) below `2 * SUB` are stored exactly; above that every power-of-two
//! range is split into `SUB` equal buckets, so a recorded value is off by less than
//! `1 / SUB` (under 0.8 %). Buckets are atomics so every receiver task records into one
//! shared histogram without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any u64.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let log2 = 63 - v.leading_zeros();
    let shift = log2 - SUB_BITS;
    let sub = v >> shift; // in [SUB, 2 * SUB)
    ((shift as u64 + 1) * SUB + (sub - SUB)) as usize
}

/// The highest value that lands in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let sub = i % SUB + SUB;
    // (sub + 1) << shift could overflow for the very last bucket.
    ((sub as u128 + 1) << shift)
        .saturating_sub(1)
        .min(u64::MAX as u128) as u64
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        self.buckets[index(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn mean(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum.load(Ordering::Relaxed) as f64 / n as f64
        }
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket holding the
    /// `ceil(q * count)`-th smallest sample, never above the exact maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return upper_bound(i).min(self.max());
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut prev = 0;
        for v in (0..5000u64).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= prev, "index must be monotonic");
            assert!(upper_bound(i) >= v, "{v} above bound of its bucket {i}");
            prev = i;
        }
        for i in 1..(BUCKETS - 1) {
            assert_eq!(index(upper_bound(i)), i);
            assert_eq!(index(upper_bound(i) + 1), i + 1);
        }
    }

    #[test]
    fn relative_error_is_small() {
        for v in [300u64, 1_000, 123_456, 9_876_543_210] {
            let ub = upper_bound(index(v));
            assert!((ub - v) as f64 / v as f64 <= 1.0 / SUB as f64, "{v} {ub}");
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1_000_000);
        let p50 = h.quantile(0.5);
        assert!((500_000..=504_000).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990_000..=998_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert!((h.mean() - 500_500.0).abs() < 1.0);
    }
}
