//! Client tokens: short-lived JWTs (compact JWS) signed with Ed25519. By concern: the
//! claims (who, which project, which rooms with which scopes) in [`claims`], room
//! patterns in [`pattern`], the Ed25519 keys in [`keys`], the JWKS that publishes them in
//! [`jwks`], and signing and verification in [`sign`].
//!
//! The JWS encoding is implemented here rather than with a general JWT library so that
//! exactly one algorithm exists: the header's `alg` must be `EdDSA` and the key is always
//! an Ed25519 public key, so `none`, HMAC-with-the-public-key and other algorithm
//! confusion attacks are impossible by construction, not by configuration.

use std::time::{Duration, SystemTime};

pub mod claims;
pub mod jwks;
pub mod keys;
pub mod pattern;
pub mod sign;

pub use claims::{Access, Claims, RoomPermission, Scope};
pub use jwks::{jwks, Jwk, Jwks};
pub use keys::{KeyError, SigningKey, VerifyingKey};
pub use pattern::{PatternError, RoomPattern};
pub use sign::{peek_kid, sign, verify, SignError, TokenError};

/// The only JWS algorithm produced or accepted.
pub const ALG: &str = "EdDSA";
/// Largest `user` claim accepted at signing time, JSON-encoded, in bytes: it is attached
/// to the user's presence and sent to everyone in the room, so it must stay small.
pub const MAX_USER_INFO_BYTES: usize = 4 * 1024;
/// Largest token accepted or produced, in bytes. Checked before any decoding so a huge
/// `?token=` costs nothing; generous enough for the user info plus many permissions.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest room pattern, in bytes: the room name limit (256) plus a trailing `*`.
pub const MAX_ROOM_PATTERN_BYTES: usize = 257;

/// Whole seconds since the Unix epoch (0 for times before it).
fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The instant `secs` after the Unix epoch, saturating far in the future.
fn from_unix_secs(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        // `u64::MAX` seconds overflows SystemTime on some platforms: clamp to a date
        // centuries away, which behaves the same for expiry checks.
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40))
}

#[cfg(test)]
mod test_support {
    //! Helpers shared by the token tests.
    use std::time::Duration;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::control::clock::{Clock, ManualClock};

    pub(super) const LEEWAY: Duration = Duration::from_secs(5);

    pub(super) fn key() -> SigningKey {
        SigningKey::generate().unwrap()
    }

    pub(super) fn perm(room: &str, scopes: &[Scope]) -> RoomPermission {
        RoomPermission {
            room: RoomPattern::new(room).unwrap(),
            scopes: scopes.to_vec(),
        }
    }

    pub(super) fn claims(clock: &ManualClock) -> Claims {
        let mut claims =
            Claims::new("user-1", "prj_1", clock.now(), Duration::from_secs(3600)).unwrap();
        claims.user = json!({"name": "Ada", "color": "#f00"});
        claims.perms = vec![perm("doc-*", &[Scope::Write])];
        claims
    }

    /// A lookup that knows exactly `key`.
    pub(super) fn only(key: &SigningKey) -> impl Fn(&str) -> Option<VerifyingKey> + '_ {
        move |kid| (kid == key.kid()).then(|| key.verifying_key().clone())
    }

    pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(super) fn split(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }
}
