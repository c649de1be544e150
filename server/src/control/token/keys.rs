//! The Ed25519 key pair that signs tokens, and its public half with its key id.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::control::{fill_random, RandomError};

/// An Ed25519 private key that signs tokens. `Debug` shows only the key id.
///
/// Store it with [`Self::to_bytes`] (encrypted at rest); keep retired keys' public halves
/// in the JWKS until every token they signed has expired.
#[derive(Clone)]
pub struct SigningKey {
    pub(super) key: ed25519_dalek::SigningKey,
    public: VerifyingKey,
}

impl SigningKey {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self, RandomError> {
        let mut seed = [0u8; 32];
        fill_random(&mut seed)?;
        let key = Self::from_bytes(&seed);
        // The seed is the private key: do not leave a copy on the stack.
        seed.fill(0);
        Ok(key)
    }

    /// Rebuilds a key from the 32-byte seed returned by [`Self::to_bytes`].
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = VerifyingKey::new(key.verifying_key());
        Self { key, public }
    }

    /// Rebuilds a key from stored bytes of unchecked length.
    pub fn from_slice(seed: &[u8]) -> Result<Self, KeyError> {
        let seed: &[u8; 32] = seed.try_into().map_err(|_| KeyError::WrongLength)?;
        Ok(Self::from_bytes(seed))
    }

    /// The 32-byte seed, for storage. Secret.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id that tokens signed with this key carry in their header.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The public half, to verify with and to publish.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key with its key id: what [`super::verify`] needs.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub(super) key: ed25519_dalek::VerifyingKey,
    pub(super) kid: String,
}

impl VerifyingKey {
    fn new(key: ed25519_dalek::VerifyingKey) -> Self {
        // A hash of the key rather than a counter or a random label: the same key always
        // has the same id on every node, and the id reveals nothing else. 12 bytes (96 bits)
        // make collisions between a project's few keys impossible in practice.
        let digest = Sha256::digest(key.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
        Self { key, kid }
    }

    /// Rebuilds a public key from its 32 bytes (e.g. a retired key kept for verification).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self::new)
            .map_err(|_| KeyError::InvalidPoint)
    }

    /// The 32 public key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id: base64url of the first 12 bytes of SHA-256 of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why key bytes could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 32 bytes.
    #[error("an Ed25519 key is 32 bytes")]
    WrongLength,
    /// 32 bytes that are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
    /// A JWK of another key type, curve or algorithm.
    #[error("not an Ed25519 EdDSA JWK")]
    UnsupportedJwk,
    /// The JWK's `kid` is not the one its key hashes to.
    #[error("the JWK's kid does not match its key")]
    KidMismatch,
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::super::test_support::*;
    use super::*;
    use crate::control::clock::{Clock, ManualClock};
    use crate::control::token::{sign, verify};

    #[test]
    fn kid_is_base64url_of_truncated_sha256_of_the_public_key() {
        let key = key();
        let digest = Sha256::digest(key.verifying_key().to_bytes());
        assert_eq!(key.kid(), b64(&digest[..12]));
        assert_eq!(key.kid().len(), 16);
        assert_ne!(key.kid(), SigningKey::generate().unwrap().kid());
    }

    #[test]
    fn signing_keys_round_trip_through_storage_bytes() {
        let clock = ManualClock::default();
        let key = key();
        let restored = SigningKey::from_bytes(&key.to_bytes());
        assert_eq!(restored.kid(), key.kid());
        assert_eq!(restored.verifying_key(), key.verifying_key());
        let token = sign(&claims(&clock), &restored).unwrap();
        assert!(verify(&token, only(&key), clock.now(), LEEWAY).is_ok());
        assert!(SigningKey::from_slice(&key.to_bytes()).is_ok());
        assert_eq!(
            SigningKey::from_slice(&[0u8; 31]).err(),
            Some(KeyError::WrongLength)
        );
        let public = VerifyingKey::from_bytes(&key.verifying_key().to_bytes()).unwrap();
        assert_eq!(&public, key.verifying_key());
    }

    #[test]
    fn debug_does_not_show_the_private_key() {
        let key = key();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        let seed = key.to_bytes();
        assert!(!shown.contains(&b64(seed)));
        assert!(!shown.contains(&format!("{seed:?}")));
        assert!(!format!("{:?}", key.verifying_key()).contains(&b64(seed)));
    }
}
