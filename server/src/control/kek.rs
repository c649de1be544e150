//! The key-encryption key (KEK) that seals the token-signing seeds at rest (envelope
//! encryption: each seed is the data key, sealed under the operator's KEK, which never
//! touches the database). With it, a dump of the `signing_keys` table alone cannot sign
//! a token. Sealed form: `tkek1` ‖ KEK id (8 bytes) ‖ nonce (24) ‖ XChaCha20-Poly1305
//! ciphertext of the 32-byte seed with its tag (48), the row's `kid` as associated data
//! (so a sealed seed cannot be moved to another row). A 32-byte value is a legacy
//! plaintext seed.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::{fill_random, RandomError};

const MAGIC: &[u8; 5] = b"tkek1";
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
/// Length of a sealed seed.
pub const SEALED_LEN: usize = MAGIC.len() + ID_LEN + NONCE_LEN + 32 + 16;

/// Why a KEK could not be read or a seed opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KekError {
    /// Not 32 bytes as 64 hex digits or base64.
    #[error("a KEK is 32 random bytes, written as 64 hex digits or base64")]
    Format,
    /// The seed was sealed under another KEK.
    #[error("sealed under another key-encryption key")]
    OtherKek,
    /// Altered, truncated, or moved from another row.
    #[error("the sealed seed does not open (altered, or from another row)")]
    Corrupt,
}

/// A 256-bit key-encryption key. `Debug` shows only its id.
#[derive(Clone)]
pub struct Kek {
    cipher: XChaCha20Poly1305,
    id: [u8; ID_LEN],
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &URL_SAFE_NO_PAD.encode(self.id))
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // The id names the KEK without revealing it: which KEK sealed a row, for rotation.
        let digest = Sha256::new()
            .chain_update(b"tandem kek id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id,
        }
    }

    /// Parses a KEK written as 64 hex digits or base64 (standard or url-safe) of 32
    /// bytes, surrounding whitespace ignored (a file's trailing newline).
    pub fn parse(text: &str) -> Result<Self, KekError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| KekError::Format)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| KekError::Format)?
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KekError::Format)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh random KEK, as 64 hex digits (for `tandem generate-kek`).
    pub fn generate_hex() -> Result<String, RandomError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        bytes.fill(0);
        Ok(hex)
    }

    /// Seals `seed` for the row `kid`.
    pub fn seal(&self, kid: &str, seed: &[u8; 32]) -> Result<Vec<u8>, RandomError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: seed,
                    aad: kid.as_bytes(),
                },
            )
            // Encryption fails only for inputs far beyond 32 bytes.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a seed sealed by [`Self::seal`] for the row `kid`.
    pub fn open(&self, kid: &str, stored: &[u8]) -> Result<[u8; 32], KekError> {
        if !is_sealed(stored) || stored.len() != SEALED_LEN {
            return Err(KekError::Corrupt);
        }
        let (id, rest) = stored[MAGIC.len()..].split_at(ID_LEN);
        if id != self.id {
            return Err(KekError::OtherKek);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let seed = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| KekError::Corrupt)?;
        seed.try_into().map_err(|_| KekError::Corrupt)
    }
}

/// Whether a stored secret is sealed (otherwise it is a legacy plaintext seed).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::parse(&Kek::generate_hex().unwrap()).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_every_tamper_fails() {
        let kek = kek();
        let seed = [7u8; 32];
        let sealed = kek.seal("kid-1", &seed).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(is_sealed(&sealed));
        assert!(
            !sealed.windows(32).any(|w| w == seed),
            "the seed is not in clear"
        );
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), seed);
        // Fresh nonce each time.
        assert_ne!(kek.seal("kid-1", &seed).unwrap(), sealed);
        // Another row, another KEK, any flipped byte: refused.
        assert_eq!(kek.open("kid-2", &sealed), Err(KekError::Corrupt));
        assert_eq!(
            super::Kek::open(&self::kek(), "kid-1", &sealed),
            Err(KekError::OtherKek)
        );
        for i in MAGIC.len() + ID_LEN..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(kek.open("kid-1", &bad), Err(KekError::Corrupt), "byte {i}");
        }
        assert_eq!(kek.open("kid-1", &sealed[..40]), Err(KekError::Corrupt));
        assert_eq!(kek.open("kid-1", &seed), Err(KekError::Corrupt));
    }

    #[test]
    fn keks_parse_from_hex_or_base64_and_debug_hides_them() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let from_hex = Kek::parse(&format!("{hex}\n")).unwrap();
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let from_b64 = Kek::parse(&STANDARD.encode(&bytes)).unwrap();
        assert_eq!(from_hex.id, from_b64.id);
        let sealed = from_hex.seal("k", &[1; 32]).unwrap();
        assert_eq!(from_b64.open("k", &sealed).unwrap(), [1; 32]);
        for bad in ["", "short", &hex[..62], &STANDARD.encode([0u8; 31])] {
            assert_eq!(Kek::parse(bad).err(), Some(KekError::Format), "{bad:?}");
        }
        assert!(!format!("{from_hex:?}").contains("0011"));
    }
}
