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
