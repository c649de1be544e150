//! When to try a failed delivery again: exponential backoff with full jitter between half
//! and all of the delay (so endpoints recovering from an outage are not hit by every
//! retry at once), starting at `base` and doubling up to `cap`, for `retry_for` after the
//! event; a `Retry-After` from a 429 or 503 moves the next attempt later, never earlier.
//! Pure: the caller passes the time and the random draw.

use std::time::Duration;

/// The retry schedule (`--webhook-retry-base`, `--webhook-retry-for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay between two attempts.
    pub cap: Duration,
    /// How long after the event attempts go on; then the delivery fails.
    pub retry_for: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(6 * 3600),
            retry_for: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempts + 1` after `attempts` failures (≥ 1), with
    /// `jitter` in `[0, 1)`: between half and all of `base · 2^(attempts-1)`, capped.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let full = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.cap)
            .max(Duration::from_millis(1));
        let jitter = jitter.clamp(0.0, 1.0);
        full.mul_f64(0.5 + 0.5 * jitter)
    }

    /// When to try again (unix ms), or `None` to give up: `now` plus the delay, or the
    /// endpoint's `Retry-After` if later (bounded by `cap`), unless that is past
    /// `created_at + retry_for`.
    pub fn next_attempt(
        &self,
        created_at: i64,
        now: i64,
        attempts: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<i64> {
        let mut wait = self.delay(attempts, jitter);
        if let Some(asked) = retry_after {
            wait = wait.max(asked.min(self.cap));
        }
        let next = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        let deadline = created_at
            .saturating_add(i64::try_from(self.retry_for.as_millis()).unwrap_or(i64::MAX));
        (next <= deadline).then_some(next)
    }
}

/// Parses a `Retry-After` value (RFC 9110): delta-seconds, or an HTTP date taken
/// relative to `now` (a date in the past is no wait). `None` when it is neither: the
/// backoff then applies alone.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(2500));
        assert_eq!(b.delay(1, 0.999_999).as_millis(), 4999);
        assert_eq!(b.delay(2, 0.0), Duration::from_secs(5));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(10));
        for attempts in 1..40 {
            for jitter in [0.0, 0.3, 0.99] {
                let d = b.delay(attempts, jitter);
                assert!(d <= b.cap && d >= b.delay(attempts.min(13), 0.0).min(b.cap / 2));
                assert!(d >= b.delay(attempts.saturating_sub(1).max(1), 0.0) / 2);
            }
        }
        assert_eq!(b.delay(40, 0.0), b.cap / 2);
        assert_eq!(b.delay(40, 1.0), b.cap);
    }

    #[test]
    fn attempts_go_on_for_about_three_days_then_stop() {
        let b = Backoff::default();
        let created = 1_000_000;
        let (mut now, mut attempts) = (created, 1);
        while let Some(next) = b.next_attempt(created, now, attempts, None, 0.5) {
            assert!(next > now);
            now = next;
            attempts += 1;
            assert!(attempts < 100, "the schedule ends");
        }
        let span = Duration::from_millis((now - created) as u64);
        assert!(span > Duration::from_secs(2 * 24 * 3600), "{span:?}");
        assert!(span <= b.retry_for);
        assert!((15..40).contains(&attempts), "{attempts} attempts");
    }

    #[test]
    fn retry_after_delays_but_never_hastens() {
        let b = Backoff::default();
        let soon = b.next_attempt(0, 0, 1, Some(Duration::from_secs(1)), 0.0);
        assert_eq!(soon, Some(2500), "the backoff is longer than asked");
        let later = b.next_attempt(0, 0, 1, Some(Duration::from_secs(120)), 0.0);
        assert_eq!(later, Some(120_000));
        let huge = b.next_attempt(0, 0, 1, Some(Duration::from_secs(10 * 24 * 3600)), 0.0);
        assert_eq!(huge, Some(b.cap.as_millis() as i64), "bounded by the cap");
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_400); // 07:26:40 GMT
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
