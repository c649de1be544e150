//! The control plane: accounts and sessions ([`accounts`]), tenancy ([`tenants`]), API
//! keys ([`keys`]), client tokens ([`tokens`], signed by the [`signing`] key ring), usage
//! reports ([`usage`]), all through one service, [`ControlPlane`]. Under them, pure
//! I/O-free primitives for key formats ([`apikey`]), passwords ([`password`]), JWTs
//! ([`token`]) and time ([`clock`]). Nothing here knows HTTP.

pub mod accounts;
pub mod apikey;
pub mod billing;
pub mod clock;
pub mod error;
pub mod events;
pub mod hosted;
pub mod invitations;
pub mod kek;
pub mod keys;
pub mod keywatch;
pub mod password;
pub mod plane;
pub mod plans;
pub mod public;
pub mod sessions;
pub mod signing;
pub mod tenants;
#[cfg(test)]
pub(crate) mod test_support;
pub mod throttle;
pub mod token;
pub mod tokens;
pub mod usage;
pub mod webhooks;

pub use error::{ControlError, ControlResult};
pub use plane::{ControlConfig, ControlPlane};

use subtle::ConstantTimeEq;

/// The operating system's CSPRNG could not be read. Nothing secret is ever generated
/// from a weaker source instead: the caller fails the request.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(RandomError)
}

/// Compares two secrets (session ids, CSRF tokens, webhook signatures) in time that
/// depends only on their lengths, so a mismatch does not reveal how many leading bytes
/// were right. Lengths are not secret: they are fixed by the format.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths is already false (without a content-dependent
    // early exit), so no separate length check is needed.
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn fill_random_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        assert!(fill_random(&mut a).is_ok());
        assert!(fill_random(&mut b).is_ok());
        assert_ne!(a, b);
    }
}
