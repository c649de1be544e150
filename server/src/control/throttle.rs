//! Login throttling: failed attempts counted per account and per client IP in a fixed
//! window; past the limit, attempts are refused (429) until the window ends, before any
//! password is hashed. In memory, per node: a cluster multiplies the budget by its node
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

/// Counts failures per key (`acct:<email>`, `ip:<addr>`).
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

    /// `Err(retry_after)` if `key` has `limit` failures in the current `window`.
    pub fn check(&self, key: &str, limit: u32, window: Duration) -> Result<(), Duration> {
        let now = self.clock.now();
        let windows = self.lock();
        match windows.get(key) {
            Some(w) if w.failures >= limit => {
                let elapsed = now.duration_since(w.started).unwrap_or_default();
                if elapsed < window {
                    Err(window - elapsed)
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
        assert_eq!(wait, window);
        assert!(
            throttle.check("acct:b", 3, window).is_ok(),
            "other keys unaffected"
        );
        clock.advance(Duration::from_secs(600));
        assert_eq!(
            throttle.check("acct:a", 3, window).unwrap_err(),
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
}
