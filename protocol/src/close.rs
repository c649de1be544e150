//! WebSocket close codes, and what a client should do about each (DESIGN.md).
//!
//! | code | meaning | client action |
//! | --- | --- | --- |
//! | 4400 | malformed message | stop, surface the error |
//! | 4401 | token missing, invalid or expired | fetch a fresh token, reconnect |
//! | 4403 | not allowed in this room | stop, surface the error |
//! | 4404 | room deleted | stop, surface the error |
//! | 4413 | message or document too large | stop, surface the error |
//! | 4429 | rate or plan limit | reconnect after the time in the reason |
//! | 1012 | server restarting | reconnect with backoff |
//! | 1013 | try again later (overloaded, storage unavailable, too slow) | reconnect with backoff |
//!
//! ## `retry-after` in close reasons
//!
//! A close with [`RATE_LIMITED`] says when to come back inside its reason, as the token
//! `retry-after=<seconds>` anywhere in the text (seconds, a non-negative decimal number,
//! e.g. `"message rate limit; retry-after=2.5"`). The key is case-insensitive and the
//! number ends at the first character that is neither a digit nor `.`. Servers build the
//! reason with [`with_retry_after`]; clients read it with [`retry_after`]. A reason
//! without the token means "use your backoff". WebSocket close reasons are limited to 123
//! bytes, so keep the human part short.

use std::time::Duration;

/// The peer sent something that is not a valid message.
pub const MALFORMED: u16 = 4400;
/// The token is missing, invalid or expired.
pub const UNAUTHORIZED: u16 = 4401;
/// The token does not allow this room.
pub const FORBIDDEN: u16 = 4403;
/// The room was deleted.
pub const ROOM_DELETED: u16 = 4404;
/// A message or the document is too large.
pub const TOO_LARGE: u16 = 4413;
/// A rate or plan limit was reached.
pub const RATE_LIMITED: u16 = 4429;
/// The server is restarting; reconnect (to another node).
pub const RESTARTING: u16 = 1012;
/// Try again later: overloaded, storage unavailable, or the client fell behind.
pub const TRY_AGAIN_LATER: u16 = 1013;

/// What a client should do after a close with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reconnect with exponential backoff.
    Backoff,
    /// Get a fresh token first, then reconnect.
    RefreshToken,
    /// Reconnect after the delay the reason names.
    After,
    /// Do not reconnect: retrying cannot help.
    Never,
}

/// Maps a close code to the client's reaction. Codes we do not define (network loss,
/// 1006, a proxy's 1001…) are retried with backoff.
pub fn retry_for(code: u16) -> Retry {
    match code {
        UNAUTHORIZED => Retry::RefreshToken,
        RATE_LIMITED => Retry::After,
        MALFORMED | FORBIDDEN | ROOM_DELETED | TOO_LARGE => Retry::Never,
        _ => Retry::Backoff,
    }
}

/// The key of the retry hint in a close reason (see the module docs).
pub const RETRY_AFTER_KEY: &str = "retry-after=";

/// Reads the `retry-after=<seconds>` hint from a close reason. `None` when the reason has
/// no hint or the number is not a valid non-negative duration.
///
/// ```
/// use std::time::Duration;
/// use tandem_protocol::close::retry_after;
///
/// assert_eq!(retry_after("rate limit; retry-after=3"), Some(Duration::from_secs(3)));
/// assert_eq!(retry_after("Retry-After=0.5 (plan)"), Some(Duration::from_millis(500)));
/// assert_eq!(retry_after("rate limit"), None);
/// ```
pub fn retry_after(reason: &str) -> Option<Duration> {
    // ASCII lowercasing keeps byte offsets identical to the original text.
    let lower = reason.to_ascii_lowercase();
    let start = lower.find(RETRY_AFTER_KEY)? + RETRY_AFTER_KEY.len();
    let number: &str = {
        let rest = &reason[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        &rest[..end]
    };
    if number.is_empty() {
        return None;
    }
    let seconds: f64 = number.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Appends the retry hint to a close reason, in whole seconds rounded up (so a client
/// never comes back early): `with_retry_after("rate limit", 2.1 s)` is
/// `"rate limit; retry-after=3"`.
pub fn with_retry_after(reason: &str, after: Duration) -> String {
    let mut seconds = after.as_secs();
    if after.subsec_nanos() > 0 {
        seconds += 1;
    }
    if reason.is_empty() {
        format!("{RETRY_AFTER_KEY}{seconds}")
    } else {
        format!("{reason}; {RETRY_AFTER_KEY}{seconds}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_maps_to_its_action() {
        assert_eq!(retry_for(UNAUTHORIZED), Retry::RefreshToken);
        assert_eq!(retry_for(RATE_LIMITED), Retry::After);
        for code in [MALFORMED, FORBIDDEN, ROOM_DELETED, TOO_LARGE] {
            assert_eq!(retry_for(code), Retry::Never, "{code}");
        }
        for code in [RESTARTING, TRY_AGAIN_LATER, 1006, 1001, 1000] {
            assert_eq!(retry_for(code), Retry::Backoff, "{code}");
        }
    }

    #[test]
    fn retry_after_is_parsed_wherever_it_appears() {
        assert_eq!(retry_after("retry-after=7"), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("limit reached; RETRY-AFTER=1.25s"),
            Some(Duration::from_millis(1250))
        );
        assert_eq!(retry_after("retry-after=0"), Some(Duration::ZERO));
        assert_eq!(retry_after("retry-after="), None);
        assert_eq!(retry_after("retry-after=-3"), None);
        assert_eq!(retry_after("retry-after=1.2.3"), None);
        assert_eq!(retry_after("try again later"), None);
        assert_eq!(retry_after("é retry-after=4"), Some(Duration::from_secs(4)));
        assert_eq!(
            retry_after("retry-after=1e400"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after(&format!("retry-after={}", "9".repeat(400))),
            None
        );
    }

    #[test]
    fn with_retry_after_rounds_up_and_roundtrips() {
        let reason = with_retry_after("rate limit", Duration::from_millis(2100));
        assert_eq!(reason, "rate limit; retry-after=3");
        assert_eq!(retry_after(&reason), Some(Duration::from_secs(3)));
        assert_eq!(
            with_retry_after("", Duration::from_secs(5)),
            "retry-after=5"
        );
    }
}
