//! Login throttling: failed attempts counted per (account, client IP) pair and per client
//! IP in a fixed window; past the limit, attempts are refused (429) until the window ends,
//! before any password is hashed. Each attempt is reserved (counted) before the password
//! is checked, atomically with the check, so parallel guesses cannot exceed the limit. In memory, per node: a cluster multiplies the budget by its node
//! count, which still turns a brute force from millions of guesses into dozens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::clock::Clock;

/// Entries kept at most; past this, expired windows are swept (and if all are live,
/// the oldest goes), so a flood of distinct IPs cannot grow memory without bound.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: SystemTime,
    failures: u32,
}

/// Why an attempt was refused: the limit reached, and when an attempt is allowed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// How long until the window ends.
    pub retry_after: Duration,
    /// The limit that was reached.
    pub limit: u32,
}

/// Counts failures per key (`pair:<email> <addr>`, `ip:<addr>`).
pub struct LoginThrottle {
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginThrottle {
    /// An empty throttle reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        // Every critical section is a lookup or single insert: poisoning cannot leave
        // the map inconsistent.
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves one attempt against every `(key, limit)` at once: if any key already
    /// has `limit` failures in its current `window`, nothing is counted and the refusal
    /// says which limit and for how long; otherwise each key is counted as failed
    /// *before* the password is checked, so parallel guesses cannot all read the same
    /// count ([`release`](Self::release) or [`reset`](Self::reset) undo it on success).
    pub fn reserve(&self, keys: &[(&str, u32)], window: Duration) -> Result<(), Refusal> {
        let now = self.clock.now();
        let mut windows = self.lock();
        let mut refusal: Option<Refusal> = None;
        for (key, limit) in keys {
            if let Some(w) = windows.get(*key) {
                let elapsed = now.duration_since(w.started).unwrap_or_default();
                if w.failures >= *limit && elapsed < window {
                    let retry_after = window - elapsed;
                    if refusal.is_none_or(|r| r.retry_after < retry_after) {
                        refusal = Some(Refusal {
                            retry_after,
                            limit: *limit,
                        });
                    }
                }
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        for (key, _) in keys {
            Self::count(&mut windows, key, now, window);
        }
        Ok(())
    }

    /// `Err` if `key` has `limit` failures in the current `window` (without counting).
    pub fn check(&self, key: &str, limit: u32, window: Duration) -> Result<(), Refusal> {
        let now = self.clock.now();
        let windows = self.lock();
        match windows.get(key) {
            Some(w) if w.failures >= limit => {
                let elapsed = now.duration_since(w.started).unwrap_or_default();
                if elapsed < window {
                    Err(Refusal {
                        retry_after: window - elapsed,
                        limit,
                    })
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure for `key`.
    pub fn record_failure(&self, key: &str, window: Duration) {
        let now = self.clock.now();
        let mut windows = self.lock();
        Self::count(&mut windows, key, now, window);
    }

    fn count(windows: &mut HashMap<String, Window>, key: &str, now: SystemTime, window: Duration) {
        if windows.len() >= MAX_ENTRIES && !windows.contains_key(key) {
            windows.retain(|_, w| now.duration_since(w.started).unwrap_or_default() < window);
            if windows.len() >= MAX_ENTRIES {
                if let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone())
                {
                    windows.remove(&oldest);
                }
            }
        }
        let entry = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(entry.started).unwrap_or_default() >= window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// Gives back one reserved attempt of `key` (the attempt succeeded).
    pub fn release(&self, key: &str) {
        let mut windows = self.lock();
        if let Some(w) = windows.get_mut(key) {
            w.failures = w.failures.saturating_sub(1);
        }
    }

    /// Forgets `key`'s failures (after a successful login to that account).
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::clock::ManualClock;

    #[test]
    fn refuses_after_the_limit_until_the_window_ends() {
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let throttle = LoginThrottle::new(clock.clone());
        let window = Duration::from_secs(900);
        for _ in 0..3 {
            assert!(throttle.check("acct:a", 3, window).is_ok());
            throttle.record_failure("acct:a", window);
        }
        let wait = throttle.check("acct:a", 3, window).unwrap_err();
        assert_eq!(wait.retry_after, window);
        assert_eq!(wait.limit, 3);
        assert!(
            throttle.check("acct:b", 3, window).is_ok(),
            "other keys unaffected"
        );
        clock.advance(Duration::from_secs(600));
        assert_eq!(
            throttle.check("acct:a", 3, window).unwrap_err().retry_after,
            Duration::from_secs(300)
        );
        clock.advance(Duration::from_secs(300));
        assert!(throttle.check("acct:a", 3, window).is_ok());
        // A failure after the window starts a new count.
        throttle.record_failure("acct:a", window);
        assert!(throttle.check("acct:a", 3, window).is_ok());
    }

    #[test]
    fn reset_forgets_failures() {
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let throttle = LoginThrottle::new(clock);
        let window = Duration::from_secs(60);
        throttle.record_failure("acct:a", window);
        throttle.record_failure("acct:a", window);
        assert!(throttle.check("acct:a", 2, window).is_err());
        throttle.reset("acct:a");
        assert!(throttle.check("acct:a", 2, window).is_ok());
    }

    #[test]
    fn reserving_counts_before_the_outcome_and_is_all_or_nothing() {
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let throttle = LoginThrottle::new(clock);
        let window = Duration::from_secs(60);
        // Three reservations in a row, no outcome yet: the fourth is refused.
        for _ in 0..3 {
            throttle
                .reserve(&[("pair:a", 3), ("ip:x", 10)], window)
                .unwrap();
        }
        let refusal = throttle
            .reserve(&[("pair:a", 3), ("ip:x", 10)], window)
            .unwrap_err();
        assert_eq!(refusal.limit, 3);
        // The refused attempt counted nowhere: the IP still has 3.
        for _ in 0..7 {
            throttle.reserve(&[("ip:x", 10)], window).unwrap();
        }
        assert_eq!(
            throttle.reserve(&[("ip:x", 10)], window).unwrap_err().limit,
            10
        );
        // A success gives its reservation back.
        throttle.release("ip:x");
        throttle.reserve(&[("ip:x", 10)], window).unwrap();
    }
}
