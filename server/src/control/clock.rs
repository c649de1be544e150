//! The source of "now" for expiry decisions, injectable so tests move time by hand
//! instead of sleeping.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The latest time any API input may name or produce: 9999-12-31T23:59:59.999Z, the end
/// of what RFC 3339 (four-digit years) can write. Later times are refused at the edge
/// (400), so none is stored and then breaks a listing that formats it.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// The longest lifetime a personal access token may be given (ten years); longer is
/// refused (an unlimited one is created by giving none).
pub const MAX_PAT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Tells the current wall-clock time. Token expiry and session lifetimes take a
/// `&dyn Clock` (or its reading) rather than calling `SystemTime::now()` themselves.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock: `SystemTime::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to: tests set it, then advance it past a deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// A clock stopped at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Moves the clock to `to` (backwards too, to test clock skew).
    pub fn set(&self, to: SystemTime) {
        *self.lock() = to;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        // A poisoned lock only means a test panicked while holding it; the time inside is
        // still a valid value, so keep going rather than cascading the panic.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    /// Starts at a fixed, recent-looking instant (2025-01-01T00:00:00Z) so timestamps in
    /// tests are realistic and reproducible.
    fn default() -> Self {
        Self::at_unix(1_735_689_600)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_stays_put_until_moved() {
        let clock = ManualClock::at_unix(1_000);
        assert_eq!(clock.now(), clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            clock.now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_030)
        );
        clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn clocks_work_as_trait_objects() {
        let clocks: Vec<Box<dyn Clock>> =
            vec![Box::new(SystemClock), Box::new(ManualClock::default())];
        for clock in &clocks {
            assert!(clock.now() > SystemTime::UNIX_EPOCH);
        }
    }

    #[test]
    fn system_clock_is_close_to_now() {
        let before = SystemTime::now();
        let read = SystemClock.now();
        assert!(read >= before);
    }
}
