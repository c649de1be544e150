//! API credentials: the `sk_` / `pk_` / `pat_` key format (generation, offline
//! validation by checksum) and the SHA-256 hash that is all the database ever stores.
//!
//! Format, after GitHub's tokens: `{prefix}{30 random base62 chars}{6 base62 chars of the
//! CRC32 of everything before them}`. The prefix lets secret scanners and humans tell
//! what leaked; the checksum lets a scanner (and [`parse`]) reject typos and random
//! strings without a database lookup. 30 base62 characters carry ~178 bits of entropy.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{fill_random, RandomError};

/// Number of random base62 characters in a key.
pub const RANDOM_LEN: usize = 30;
/// Number of base62 characters of the checksum (62^6 > 2^32, so any CRC32 fits).
pub const CHECKSUM_LEN: usize = 6;
/// How many leading characters of a key are shown in listings (see [`display_prefix`]).
pub const DISPLAY_PREFIX_LEN: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The CRC32 GitHub and most tools mean by "CRC32" (zlib, PNG), so a third-party secret
/// scanner can recompute it.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What a key is for; the prefix encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `sk_`: server-side secret key, full access to one project.
    Secret,
    /// `pk_`: publishable key, safe to ship to browsers, only where the project allows
    /// public access.
    Publishable,
    /// `pat_`: personal access token for the tenant-level management API.
    PersonalAccessToken,
}

impl KeyKind {
    /// Every kind, for iteration in parsers and tests.
    pub const ALL: [KeyKind; 3] = [
        KeyKind::Secret,
        KeyKind::Publishable,
        KeyKind::PersonalAccessToken,
    ];

    /// The prefix keys of this kind start with, underscore included.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk_",
            KeyKind::Publishable => "pk_",
            KeyKind::PersonalAccessToken => "pat_",
        }
    }

    /// Total length in bytes of a key of this kind.
    pub const fn key_len(self) -> usize {
        self.prefix().len() + RANDOM_LEN + CHECKSUM_LEN
    }

    /// Which kind `key` claims to be by its prefix, if any.
    fn of_prefix(key: &str) -> Option<KeyKind> {
        KeyKind::ALL
            .into_iter()
            .find(|kind| key.starts_with(kind.prefix()))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Secret => "secret key",
            KeyKind::Publishable => "publishable key",
            KeyKind::PersonalAccessToken => "personal access token",
        })
    }
}

/// A freshly generated key in plain text: shown to its owner once, never stored, never
/// logged. `Debug` and `Display` print a placeholder so it cannot leak through a log
/// line or an error message by accident; read it with [`Plaintext::expose`].
// Deliberately not `Clone`: every copy is one more place the secret lives.
pub struct Plaintext(String);

impl Plaintext {
    /// The key itself, to put in the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key itself, by value (e.g. to move it into a response body).
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

impl fmt::Display for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// SHA-256 of a full key: what the database stores and looks keys up by.
///
/// A fast hash is right here (unlike passwords): keys carry ~178 bits of entropy, so a
/// stolen hash cannot be brute-forced, and lookups must be cheap on every request.
/// Equality is constant-time.
#[derive(Clone, Copy)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a full key (prefix and checksum included).
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Rebuilds a hash read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Rebuilds a hash read back from storage as a slice; `None` unless 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw 32 bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, for storage in text columns and for debugging.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyHash {}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

/// A key that passed every offline check: right prefix, length, alphabet and checksum.
/// It may still be unknown or revoked; that is the database's call, by [`Self::hash`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// What the key is for.
    pub kind: KeyKind,
    /// The hash to look the key up by.
    pub hash: KeyHash,
    /// The leading characters, for logs and "last used" listings.
    pub display_prefix: String,
}

/// Why a string is not a well-formed key. The messages never include the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// No known prefix (`sk_`, `pk_`, `pat_`).
    #[error("not an API key: unknown prefix")]
    UnknownPrefix,
    /// A known prefix but not the kind this endpoint takes (see [`parse_as`]).
    #[error("expected a {expected}, got a {actual}")]
    WrongKind {
        /// The kind the caller asked for.
        expected: KeyKind,
        /// The kind the prefix says.
        actual: KeyKind,
    },
    /// The length does not match the kind.
    #[error("malformed {kind}: wrong length")]
    WrongLength {
        /// The kind the prefix says.
        kind: KeyKind,
    },
    /// A character outside `[0-9A-Za-z]` after the prefix.
    #[error("malformed {kind}: invalid character")]
    InvalidCharacter {
        /// The kind the prefix says.
        kind: KeyKind,
    },
    /// The checksum does not match: a typo, a truncated copy, or a made-up key.
    #[error("malformed {kind}: checksum mismatch")]
    BadChecksum {
        /// The kind the prefix says.
        kind: KeyKind,
    },
}

/// Generates a new key of `kind` from the OS CSPRNG, with the hash to store.
pub fn generate(kind: KeyKind) -> Result<(Plaintext, KeyHash), RandomError> {
    let mut key = String::with_capacity(kind.key_len());
    key.push_str(kind.prefix());
    push_random_base62(&mut key, RANDOM_LEN)?;
    let checksum = checksum(&key);
    key.push_str(&checksum);
    let hash = KeyHash::of(&key);
    Ok((Plaintext(key), hash))
}

/// Checks `key` offline: prefix, then length, then alphabet, then checksum, so junk
/// (typos, other vendors' keys, scanners' guesses) never reaches the database.
pub fn parse(key: &str) -> Result<ParsedKey, KeyFormatError> {
    let kind = KeyKind::of_prefix(key).ok_or(KeyFormatError::UnknownPrefix)?;
    // Bytes, not chars: a non-ASCII character makes the length wrong or fails the
    // alphabet check below, either way it is rejected.
    if key.len() != kind.key_len() {
        return Err(KeyFormatError::WrongLength { kind });
    }
    let body = &key.as_bytes()[kind.prefix().len()..];
    if !body.iter().all(u8::is_ascii_alphanumeric) {
        return Err(KeyFormatError::InvalidCharacter { kind });
    }
    // All ASCII from here on, so slicing at any byte index is at a char boundary.
    let (checked, given) = key.split_at(key.len() - CHECKSUM_LEN);
    // The checksum is public (anyone can compute it), so comparing it in constant time
    // would protect nothing.
    if checksum(checked) != given {
        return Err(KeyFormatError::BadChecksum { kind });
    }
    Ok(ParsedKey {
        kind,
        hash: KeyHash::of(key),
        display_prefix: display_prefix(key).to_owned(),
    })
}

/// [`parse`], and also rejects a well-formed key of another kind (a `pk_` sent where
/// only an `sk_` is accepted) with a clear error.
pub fn parse_as(key: &str, expected: KeyKind) -> Result<ParsedKey, KeyFormatError> {
    let parsed = parse(key)?;
    if parsed.kind != expected {
        return Err(KeyFormatError::WrongKind {
            expected,
            actual: parsed.kind,
        });
    }
    Ok(parsed)
}

/// The first [`DISPLAY_PREFIX_LEN`] characters of `key` (all of it if shorter), to
/// identify a key in listings without revealing it: for `sk_` that is 9 of the 30 random
/// characters, leaving ~125 bits unknown.
pub fn display_prefix(key: &str) -> &str {
    match key.char_indices().nth(DISPLAY_PREFIX_LEN) {
        Some((end, _)) => &key[..end],
        None => key,
    }
}

/// Base62 of the CRC32 of `text`, left-padded with `0` to [`CHECKSUM_LEN`] characters.
fn checksum(text: &str) -> String {
    let mut value = CRC32.checksum(text.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        // `value % 62` < 62, so the index is in bounds.
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// Appends `count` uniformly random base62 characters to `out`.
fn push_random_base62(out: &mut String, count: usize) -> Result<(), RandomError> {
    // Rejection sampling: bytes >= 248 (= 4 * 62) are discarded so `byte % 62` is exactly
    // uniform. Reading a few spare bytes up front makes a second read rare.
    let mut pushed = 0;
    let mut buf = [0u8; 48];
    while pushed < count {
        fill_random(&mut buf)?;
        for &byte in &buf {
            if pushed == count {
                break;
            }
            if byte < 248 {
                out.push(char::from(BASE62[usize::from(byte % 62)]));
                pushed += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn new_key(kind: KeyKind) -> (Plaintext, KeyHash) {
        generate(kind).expect("the OS RNG works in tests")
    }

    #[test]
    fn generated_keys_parse_back_with_their_kind_and_hash() {
        for kind in KeyKind::ALL {
            let (plain, hash) = new_key(kind);
            let key = plain.expose();
            assert!(key.starts_with(kind.prefix()), "{kind}");
            assert_eq!(key.len(), kind.key_len());
            let parsed = parse(key).expect("a generated key parses");
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.hash, hash);
            assert_eq!(parsed.display_prefix, &key[..DISPLAY_PREFIX_LEN]);
            assert_eq!(parse_as(key, kind), Ok(parsed));
        }
    }

    #[test]
    fn key_lengths_match_the_github_style_layout() {
        assert_eq!(KeyKind::Secret.key_len(), 39);
        assert_eq!(KeyKind::Publishable.key_len(), 39);
        assert_eq!(KeyKind::PersonalAccessToken.key_len(), 40);
    }

    #[test]
    fn any_one_character_change_fails_the_checksum() {
        let (plain, _) = new_key(KeyKind::Secret);
        let key = plain.expose();
        let prefix_len = KeyKind::Secret.prefix().len();
        // Change every random and checksum position to another base62 character: CRC32
        // detects every single-symbol change.
        for pos in prefix_len..key.len() {
            let mut bytes = key.as_bytes().to_vec();
            bytes[pos] = if bytes[pos] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).expect("still ASCII");
            assert_eq!(
                parse(&changed),
                Err(KeyFormatError::BadChecksum {
                    kind: KeyKind::Secret
                }),
                "position {pos}"
            );
        }
    }

    #[test]
    fn changing_the_kind_of_a_valid_key_fails_the_checksum() {
        // The checksum covers the prefix, so a leaked pk_ cannot be "promoted" to sk_ by
        // editing it (it would not match any hash anyway, but this fails offline).
        let (plain, _) = new_key(KeyKind::Publishable);
        let forged = format!("sk_{}", &plain.expose()[3..]);
        assert_eq!(
            parse(&forged),
            Err(KeyFormatError::BadChecksum {
                kind: KeyKind::Secret
            })
        );
    }

    #[test]
    fn wrong_prefix_is_rejected() {
        let (plain, _) = new_key(KeyKind::Secret);
        let body = &plain.expose()[3..];
        for prefix in ["", "SK_", "sk-", "ghp_", "xk_", "s"] {
            assert_eq!(
                parse(&format!("{prefix}{body}")),
                Err(KeyFormatError::UnknownPrefix),
                "{prefix:?}"
            );
        }
        assert_eq!(parse(""), Err(KeyFormatError::UnknownPrefix));
    }

    #[test]
    fn wrong_kind_is_rejected_by_parse_as() {
        let (plain, _) = new_key(KeyKind::Publishable);
        assert_eq!(
            parse_as(plain.expose(), KeyKind::Secret),
            Err(KeyFormatError::WrongKind {
                expected: KeyKind::Secret,
                actual: KeyKind::Publishable
            })
        );
    }

    #[test]
    fn wrong_length_is_rejected() {
        let (plain, _) = new_key(KeyKind::Secret);
        let key = plain.expose();
        let kind = KeyKind::Secret;
        assert_eq!(
            parse(&key[..key.len() - 1]),
            Err(KeyFormatError::WrongLength { kind })
        );
        assert_eq!(
            parse(&format!("{key}0")),
            Err(KeyFormatError::WrongLength { kind })
        );
        assert_eq!(parse("sk_"), Err(KeyFormatError::WrongLength { kind }));
    }

    #[test]
    fn characters_outside_base62_are_rejected() {
        let (plain, _) = new_key(KeyKind::Secret);
        let key = plain.expose();
        let kind = KeyKind::Secret;
        for bad in ["-", "_", "+", "/", "=", " ", "\0"] {
            let changed = format!("{}{bad}{}", &key[..10], &key[11..]);
            assert_eq!(
                parse(&changed),
                Err(KeyFormatError::InvalidCharacter { kind }),
                "{bad:?}"
            );
        }
        // A multi-byte character changes the byte length: rejected either way, no panic.
        let changed = format!("{}é{}", &key[..10], &key[12..]);
        assert!(parse(&changed).is_err());
        let changed = format!("{}é{}", &key[..10], &key[11..]);
        assert!(parse(&changed).is_err());
    }

    #[test]
    fn hashes_are_sha256_of_the_key_deterministic_and_not_the_plaintext() {
        let (plain, hash) = new_key(KeyKind::Secret);
        let key = plain.expose();
        assert_eq!(KeyHash::of(key), hash);
        assert_eq!(KeyHash::of(key).as_bytes(), hash.as_bytes());
        assert_ne!(hash.as_bytes().as_slice(), key.as_bytes());
        assert!(!hash.to_hex().contains(&key[3..]));
        assert_ne!(KeyHash::of(&format!("{key}x")), hash);
        // Known answer: SHA-256("abc").
        assert_eq!(
            KeyHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_round_trip_through_storage_bytes() {
        let (_, hash) = new_key(KeyKind::PersonalAccessToken);
        assert_eq!(KeyHash::from_bytes(*hash.as_bytes()), hash);
        assert_eq!(KeyHash::from_slice(hash.as_bytes()), Some(hash));
        assert_eq!(KeyHash::from_slice(&[0u8; 31]), None);
        assert_eq!(hash.to_hex().len(), 64);
    }

    #[test]
    fn plaintext_is_redacted_in_debug_and_display() {
        let (plain, _) = new_key(KeyKind::Secret);
        let key = plain.expose().to_owned();
        for shown in [
            format!("{plain:?}"),
            format!("{plain}"),
            format!("{:?}", (&plain, 1)),
        ] {
            assert!(!shown.contains(&key), "{shown}");
            assert!(!shown.contains(&key[3..]), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        assert_eq!(plain.into_exposed(), key);
    }

    #[test]
    fn errors_never_contain_the_key() {
        let (plain, _) = new_key(KeyKind::Secret);
        let mut bad = plain.expose().to_owned();
        bad.replace_range(5..6, "!");
        let err = parse(&bad).expect_err("invalid character");
        assert!(!err.to_string().contains(&bad[3..]));
        assert!(!format!("{err:?}").contains(&bad[3..]));
    }

    #[test]
    fn thousand_generated_keys_are_distinct() {
        let mut keys = HashSet::new();
        let mut hashes = HashSet::new();
        for _ in 0..1000 {
            let (plain, hash) = new_key(KeyKind::Secret);
            hashes.insert(*hash.as_bytes());
            keys.insert(plain.into_exposed());
        }
        assert_eq!(keys.len(), 1000);
        assert_eq!(hashes.len(), 1000);
    }

    #[test]
    fn random_part_uses_the_whole_alphabet() {
        // 200 keys * 30 chars = 6000 draws over 62 symbols: every symbol shows up unless
        // the sampler is broken (the chance of a miss is ~62 * e^-97).
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let (plain, _) = new_key(KeyKind::Secret);
            seen.extend(plain.expose()[3..3 + RANDOM_LEN].bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn checksum_is_fixed_width_base62_of_crc32() {
        // CRC32("123456789") = 0xCBF43926 (the standard check value) = 3421780262.
        let expected = {
            let mut v: u64 = 0xCBF4_3926;
            let mut s = Vec::new();
            for _ in 0..CHECKSUM_LEN {
                s.push(BASE62[(v % 62) as usize]);
                v /= 62;
            }
            s.reverse();
            String::from_utf8(s).expect("ASCII")
        };
        assert_eq!(checksum("123456789"), expected);
        // CRC32 of the empty string is 0: all padding.
        assert_eq!(checksum(""), "000000");
        // The maximum CRC32 still fits in six characters.
        assert!(62u64.pow(CHECKSUM_LEN as u32) > u64::from(u32::MAX));
    }

    #[test]
    fn display_prefix_is_short_and_char_safe() {
        let (plain, _) = new_key(KeyKind::Secret);
        let key = plain.expose();
        assert_eq!(display_prefix(key), &key[..12]);
        assert_eq!(display_prefix("sk_abc"), "sk_abc");
        assert_eq!(display_prefix("ééééééééééééééé").chars().count(), 12);
    }
}
