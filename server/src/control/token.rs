//! Client tokens: short-lived JWTs (compact JWS) signed with Ed25519, their claims (who,
//! which project, which rooms with which scopes), the signing keys and the JWKS that
//! publishes them.
//!
//! The JWS encoding is implemented here rather than with a general JWT library so that
//! exactly one algorithm exists: the header's `alg` must be `EdDSA` and the key is always
//! an Ed25519 public key, so `none`, HMAC-with-the-public-key and other algorithm
//! confusion attacks are impossible by construction, not by configuration.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{fill_random, RandomError};

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

/// An Ed25519 private key that signs tokens. `Debug` shows only the key id.
///
/// Store it with [`Self::to_bytes`] (encrypted at rest); keep retired keys' public halves
/// in the JWKS until every token they signed has expired.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
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

    /// The public half as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        self.public.to_jwk()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key with its key id: what [`verify`] needs.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    key: ed25519_dalek::VerifyingKey,
    kid: String,
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

    /// Reads a public key from a JWK as [`Self::to_jwk`] writes it. The `kid` is recomputed
    /// from the key, and must match the one in the JWK.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.alg != ALG {
            return Err(KeyError::UnsupportedJwk);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .map_err(|_| KeyError::UnsupportedJwk)?;
        let bytes: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength)?;
        let key = Self::from_bytes(bytes)?;
        if key.kid != jwk.kid {
            return Err(KeyError::KidMismatch);
        }
        Ok(key)
    }

    /// The 32 public key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id: base64url of the first 12 bytes of SHA-256 of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// This key as a JWK (RFC 8037 OKP).
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.key.as_bytes()),
            kid: self.kid.clone(),
            alg: ALG.to_owned(),
            use_: "sig".to_owned(),
        }
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

/// A public key as published in the JWKS (RFC 7517, RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key id tokens refer to.
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// The body of `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// Current and retired-but-not-yet-expired public keys.
    pub keys: Vec<Jwk>,
}

/// The JWKS publishing `keys` (the current one and those retired less than a token
/// lifetime ago, so tokens they signed still verify elsewhere).
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a VerifyingKey>) -> Jwks {
    Jwks {
        keys: keys.into_iter().map(VerifyingKey::to_jwk).collect(),
    }
}

/// What a token lets a client do in rooms; serialised as exactly these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read the document and see presence.
    #[serde(rename = "room:read")]
    Read,
    /// Change the document (implies read and presence).
    #[serde(rename = "room:write")]
    Write,
    /// Publish one's own presence.
    #[serde(rename = "room:presence:write")]
    PresenceWrite,
}

/// Which rooms a permission covers: an exact name, or a prefix followed by `*` (`doc-*`
/// covers `doc-1` and `doc-`; `*` alone covers every room of the project). A `*`
/// anywhere but at the end is invalid, so patterns never need backtracking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RoomPattern(String);

impl RoomPattern {
    /// Validates a pattern: 1 to [`MAX_ROOM_PATTERN_BYTES`] bytes, no control characters,
    /// `*` only as the last character.
    pub fn new(pattern: impl Into<String>) -> Result<Self, PatternError> {
        let pattern = pattern.into();
        if pattern.is_empty() || pattern.len() > MAX_ROOM_PATTERN_BYTES {
            return Err(PatternError::Length);
        }
        if pattern.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter);
        }
        // One trailing `*` is the wildcard; any other `*` (including a second trailing
        // one) is refused.
        if pattern.strip_suffix('*').unwrap_or(&pattern).contains('*') {
            return Err(PatternError::InnerWildcard);
        }
        Ok(Self(pattern))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `room` is covered.
    pub fn matches(&self, room: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => room == self.0,
        }
    }
}

impl<'de> Deserialize<'de> for RoomPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        RoomPattern::new(raw).map_err(serde::de::Error::custom)
    }
}

/// Why a room pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty or too long.
    #[error("room patterns are 1 to {MAX_ROOM_PATTERN_BYTES} bytes")]
    Length,
    /// A control character.
    #[error("room patterns must not contain control characters")]
    ControlCharacter,
    /// A `*` that is not the last character.
    #[error("`*` is only allowed at the end of a room pattern")]
    InnerWildcard,
}

/// Scopes granted in the rooms a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPermission {
    /// The rooms.
    pub room: RoomPattern,
    /// What is allowed there.
    pub scopes: Vec<Scope>,
}

/// What a token allows in one room, all matching permissions combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// May enter, sync and receive updates and presence. False: refuse the connection.
    pub read: bool,
    /// Updates are applied (otherwise refused).
    pub write: bool,
    /// Own presence is published.
    pub presence: bool,
}

impl Access {
    /// Whether the token gives any access to the room at all.
    pub fn can_enter(&self) -> bool {
        self.read
    }

    fn grant(&mut self, scope: Scope) {
        match scope {
            Scope::Read => self.read = true,
            // Write is full access: a writer who could not read could not merge, and one
            // who could not show presence would be an invisible editor.
            Scope::Write => {
                self.read = true;
                self.write = true;
                self.presence = true;
            }
            Scope::PresenceWrite => self.presence = true,
        }
    }
}

/// The payload of a client token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant's id for its end user (opaque to us; shown in presence and usage).
    pub sub: String,
    /// The project the token is for: rooms are looked up in this project only.
    pub prj: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Unique token id (for audit and revocation lists).
    pub jti: String,
    /// Arbitrary user info the tenant attaches; shown to others with this user's
    /// presence. At most [`MAX_USER_INFO_BYTES`] encoded.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub user: serde_json::Value,
    /// Room permissions; no matching permission means no access.
    #[serde(default)]
    pub perms: Vec<RoomPermission>,
    /// The id of the API key that minted the token: revoking that key invalidates the
    /// token (checked on connect) and closes connections that used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The tenant that owns the project (with `key`, what the revocation check looks
    /// up; signed, so it can be trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ten: Option<String>,
}

impl Claims {
    /// Claims for `sub` in project `prj`, issued at `now` and valid for `ttl`, with a
    /// random `jti`, no user info and no permissions yet.
    pub fn new(
        sub: impl Into<String>,
        prj: impl Into<String>,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Self, RandomError> {
        let iat = unix_secs(now);
        let mut jti = [0u8; 16];
        fill_random(&mut jti)?;
        Ok(Self {
            sub: sub.into(),
            prj: prj.into(),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            nbf: None,
            jti: URL_SAFE_NO_PAD.encode(jti),
            user: serde_json::Value::Null,
            perms: Vec::new(),
            key: None,
            ten: None,
        })
    }

    /// When the token expires, for closing the connection then.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_secs(self.exp)
    }

    /// What this token allows in `room`: the union of every permission whose pattern
    /// matches.
    pub fn access(&self, room: &str) -> Access {
        let mut access = Access::default();
        for perm in self.perms.iter().filter(|p| p.room.matches(room)) {
            for &scope in &perm.scopes {
                access.grant(scope);
            }
        }
        access
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The `user` claim is over [`MAX_USER_INFO_BYTES`] encoded.
    #[error("user info is {size} bytes encoded, the limit is {MAX_USER_INFO_BYTES}")]
    UserInfoTooLarge {
        /// Its encoded size.
        size: usize,
    },
    /// The whole token would be over [`MAX_TOKEN_BYTES`] (too many permissions).
    #[error("token would be {size} bytes, the limit is {MAX_TOKEN_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// The claims could not be encoded (should not happen).
    #[error("claims could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Why a token was refused. Each variant has a short [`Self::reason`] to send as the
/// WebSocket close reason (4401); none echoes anything from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS we can read: wrong shape, encoding or JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// The header's `alg` is not `EdDSA` (`none`, `HS256`, `RS256`, ...).
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// The header has no `kid`.
    #[error("token has no key id")]
    MissingKeyId,
    /// The `kid` is not one of ours (or the key was retired).
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify: forged or altered.
    #[error("invalid token signature")]
    BadSignature,
    /// Past `exp` (beyond the leeway): the client should fetch a new token.
    #[error("token expired")]
    Expired,
    /// Before `nbf` (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
}

impl TokenError {
    /// A short reason for a WebSocket close frame (well under the 123-byte limit).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed token",
            TokenError::TooLarge => "token too large",
            TokenError::UnsupportedAlgorithm => "unsupported token algorithm",
            TokenError::MissingKeyId => "token has no key id",
            TokenError::UnknownKey => "token signed by an unknown key",
            TokenError::BadSignature => "invalid token signature",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
        }
    }
}

/// The JOSE header we write.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// The JOSE header as read: every field optional so each absence gets its own error.
#[derive(Deserialize)]
struct ReadHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    /// RFC 7515: a recipient must reject critical extensions it does not understand, and
    /// we understand none.
    crit: Option<serde_json::Value>,
}

/// Signs `claims` with `key` as a compact JWS: `base64url(header).base64url(claims).
/// base64url(signature)`, header `{"alg":"EdDSA","typ":"JWT","kid":…}`.
pub fn sign(claims: &Claims, key: &SigningKey) -> Result<String, SignError> {
    let user_size = serde_json::to_vec(&claims.user)?.len();
    if user_size > MAX_USER_INFO_BYTES {
        return Err(SignError::UserInfoTooLarge { size: user_size });
    }
    let header = serde_json::to_vec(&Header {
        alg: ALG,
        typ: "JWT",
        kid: key.kid(),
    })?;
    let payload = serde_json::to_vec(claims)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(SignError::TooLarge { size: token.len() });
    }
    Ok(token)
}

/// Verifies `token` and returns its claims. Checks, in this order: size, three parts,
/// base64url, header JSON, `alg == "EdDSA"` exactly, `kid` present and known to
/// `lookup`, signature, claims JSON, `exp > now - leeway`, `nbf <= now + leeway`.
/// Nothing from the payload is parsed before the signature is checked.
///
/// `lookup` maps a `kid` to the key that signed with it (current and retired keys);
/// `leeway` absorbs clock skew between the issuer and this server (a few seconds).
pub fn verify<F>(
    token: &str,
    lookup: F,
    now: SystemTime,
    leeway: Duration,
) -> Result<Claims, TokenError>
where
    F: FnOnce(&str) -> Option<VerifyingKey>,
{
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "a token has three dot-separated parts",
        ));
    };
    let not_base64 = |_| TokenError::Malformed("token is not base64url");
    let header = URL_SAFE_NO_PAD.decode(header_b64).map_err(not_base64)?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(not_base64)?;
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(not_base64)?;

    let header: ReadHeader = serde_json::from_slice(&header)
        .map_err(|_| TokenError::Malformed("token header is not a JSON object"))?;
    if header.alg.as_deref() != Some(ALG) {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed(
            "token header has unsupported critical extensions",
        ));
    }
    // RFC 8725 explicit typing: refuse other JWS types (e.g. a future signed webhook
    // body) being replayed as client tokens. Absent is tolerated, as RFC 7519 allows.
    if let Some(typ) = &header.typ {
        if !typ.eq_ignore_ascii_case("JWT") {
            return Err(TokenError::Malformed("token type is not JWT"));
        }
    }
    let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
    let key = lookup(&kid).ok_or(TokenError::UnknownKey)?;
    // A mismatch would mean the lookup returned some other key; refusing keeps the
    // kid -> key binding honest.
    if key.kid != kid {
        return Err(TokenError::UnknownKey);
    }

    let signature = Signature::from_slice(&signature).map_err(|_| TokenError::BadSignature)?;
    // The signed bytes are the two encoded parts exactly as received.
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    // verify_strict also rejects weak (small-order) keys and non-canonical signatures,
    // so no second valid signature can be made from a first one.
    key.key
        .verify_strict(signed.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;

    let claims: Claims = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("token claims are invalid"))?;
    // `exp > now - leeway`, written as `exp + leeway > now` to avoid underflow; an
    // overflowing sum is so far in the future that the token is simply not expired.
    if let Some(deadline) = from_unix_secs(claims.exp).checked_add(leeway) {
        if deadline <= now {
            return Err(TokenError::Expired);
        }
    }
    if let (Some(nbf), Some(latest)) = (claims.nbf, now.checked_add(leeway)) {
        if from_unix_secs(nbf) > latest {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(claims)
}

/// The `kid` in a token's header, read WITHOUT verifying anything: only to choose which
/// key [`verify`] should be given (key lookup may need I/O, `verify` does none). Never
/// trust anything else from an unverified token.
pub fn peek_kid(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    serde_json::from_slice::<ReadHeader>(&header).ok()?.kid
}

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
mod tests {
    use hmac::{Hmac, Mac};
    use serde_json::json;

    use super::*;
    use crate::control::clock::{Clock, ManualClock};

    const LEEWAY: Duration = Duration::from_secs(5);

    fn key() -> SigningKey {
        SigningKey::generate().unwrap()
    }

    fn perm(room: &str, scopes: &[Scope]) -> RoomPermission {
        RoomPermission {
            room: RoomPattern::new(room).unwrap(),
            scopes: scopes.to_vec(),
        }
    }

    fn claims(clock: &ManualClock) -> Claims {
        let mut claims =
            Claims::new("user-1", "prj_1", clock.now(), Duration::from_secs(3600)).unwrap();
        claims.user = json!({"name": "Ada", "color": "#f00"});
        claims.perms = vec![perm("doc-*", &[Scope::Write])];
        claims
    }

    /// A lookup that knows exactly `key`.
    fn only(key: &SigningKey) -> impl Fn(&str) -> Option<VerifyingKey> + '_ {
        move |kid| (kid == key.kid()).then(|| key.verifying_key().clone())
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn split(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let clock = ManualClock::default();
        let key = key();
        let claims = claims(&clock);
        let token = sign(&claims, &key).unwrap();
        let verified = verify(&token, only(&key), clock.now(), LEEWAY).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.exp - verified.iat, 3600);
        assert_eq!(
            verified.expires_at(),
            clock.now() + Duration::from_secs(3600)
        );
    }

    #[test]
    fn header_is_eddsa_jwt_with_kid() {
        let clock = ManualClock::default();
        let key = key();
        let token = sign(&claims(&clock), &key).unwrap();
        let parts = split(&token);
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid()})
        );
        // Ed25519 signatures are 64 bytes.
        assert_eq!(URL_SAFE_NO_PAD.decode(&parts[2]).unwrap().len(), 64);
        assert!(!token.contains('='));
    }

    #[test]
    fn claims_use_the_documented_names() {
        let clock = ManualClock::at_unix(1_000);
        let mut claims = Claims::new("u", "p", clock.now(), Duration::from_secs(60)).unwrap();
        claims.nbf = Some(990);
        claims.perms = vec![perm(
            "a",
            &[Scope::Read, Scope::Write, Scope::PresenceWrite],
        )];
        let value = serde_json::to_value(&claims).unwrap();
        assert_eq!(value["sub"], "u");
        assert_eq!(value["prj"], "p");
        assert_eq!(value["iat"], 1_000);
        assert_eq!(value["exp"], 1_060);
        assert_eq!(value["nbf"], 990);
        assert_eq!(
            value["perms"],
            json!([{"room": "a", "scopes": ["room:read", "room:write", "room:presence:write"]}])
        );
        // Absent user info is omitted, and jti is random.
        assert!(value.get("user").is_none());
        let other = Claims::new("u", "p", clock.now(), Duration::from_secs(60)).unwrap();
        assert_ne!(claims.jti, other.jti);
    }

    #[test]
    fn expiry_is_checked_against_the_given_time_with_leeway() {
        let clock = ManualClock::default();
        let key = key();
        let mut claims = claims(&clock);
        claims.exp = claims.iat + 60;
        let token = sign(&claims, &key).unwrap();

        clock.advance(Duration::from_secs(59));
        assert!(verify(&token, only(&key), clock.now(), Duration::ZERO).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            verify(&token, only(&key), clock.now(), Duration::ZERO),
            Err(TokenError::Expired)
        );
        // Within the leeway it is still accepted; past it, not.
        assert!(verify(&token, only(&key), clock.now(), LEEWAY).is_ok());
        clock.advance(LEEWAY);
        assert_eq!(
            verify(&token, only(&key), clock.now(), LEEWAY),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn not_before_is_checked_with_leeway() {
        let clock = ManualClock::default();
        let key = key();
        let mut claims = claims(&clock);
        claims.nbf = Some(claims.iat + 60);
        let token = sign(&claims, &key).unwrap();

        assert_eq!(
            verify(&token, only(&key), clock.now(), LEEWAY),
            Err(TokenError::NotYetValid)
        );
        clock.advance(Duration::from_secs(55));
        assert!(verify(&token, only(&key), clock.now(), LEEWAY).is_ok());
        assert_eq!(
            verify(&token, only(&key), clock.now(), Duration::ZERO),
            Err(TokenError::NotYetValid)
        );
        clock.advance(Duration::from_secs(5));
        assert!(verify(&token, only(&key), clock.now(), Duration::ZERO).is_ok());
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let clock = ManualClock::default();
        let key = key();
        let mut claims = claims(&clock);
        claims.exp = u64::MAX;
        claims.nbf = Some(0);
        let token = sign(&claims, &key).unwrap();
        assert!(verify(&token, only(&key), clock.now(), Duration::MAX).is_ok());
        claims.exp = 0;
        let token = sign(&claims, &key).unwrap();
        assert_eq!(
            verify(&token, only(&key), clock.now(), LEEWAY),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn alg_none_with_empty_signature_is_rejected() {
        let clock = ManualClock::default();
        let key = key();
        let payload = b64(serde_json::to_vec(&claims(&clock)).unwrap());
        for header in [
            json!({"alg": "none", "typ": "JWT", "kid": key.kid()}),
            json!({"alg": "none"}),
            json!({"alg": "NONE", "kid": key.kid()}),
            json!({"alg": "eddsa", "kid": key.kid()}),
            json!({"typ": "JWT", "kid": key.kid()}),
            json!({"alg": null, "kid": key.kid()}),
        ] {
            let token = format!("{}.{payload}.", b64(header.to_string()));
            assert_eq!(
                verify(&token, only(&key), clock.now(), LEEWAY),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        // The classic key-confusion attack: the attacker knows the public key (it is in
        // the JWKS) and uses its bytes as an HMAC secret, hoping the verifier feeds "the
        // key" to whatever `alg` says.
        let clock = ManualClock::default();
        let key = key();
        let mut claims = claims(&clock);
        claims.perms = vec![perm("*", &[Scope::Write])];
        let public = key.verifying_key().to_bytes();
        let jwk_x = key.public_jwk().x;
        for secret in [public.to_vec(), jwk_x.into_bytes()] {
            let header = b64(json!({"alg": "HS256", "typ": "JWT", "kid": key.kid()}).to_string());
            let payload = b64(serde_json::to_vec(&claims).unwrap());
            let signed = format!("{header}.{payload}");
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            mac.update(signed.as_bytes());
            let token = format!("{signed}.{}", b64(mac.finalize().into_bytes()));
            assert_eq!(
                verify(&token, only(&key), clock.now(), LEEWAY),
                Err(TokenError::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn other_algorithms_are_rejected_even_with_a_valid_eddsa_signature() {
        // Re-sign with our real key but lie about alg: still refused, since alg must be
        // exactly EdDSA.
        let clock = ManualClock::default();
        let key = key();
        for alg in ["HS256", "RS256", "ES256", "Ed25519", "EdDSA "] {
            let header = b64(json!({"alg": alg, "kid": key.kid()}).to_string());
            let payload = b64(serde_json::to_vec(&claims(&clock)).unwrap());
            let signed = format!("{header}.{payload}");
            let signature = key.key.sign(signed.as_bytes());
            let token = format!("{signed}.{}", b64(signature.to_bytes()));
            assert_eq!(
                verify(&token, only(&key), clock.now(), LEEWAY),
                Err(TokenError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let clock = ManualClock::default();
        let key = key();
        let token = sign(&claims(&clock), &key).unwrap();
        let parts = split(&token);
        let mut forged = claims(&clock);
        forged.perms = vec![perm("*", &[Scope::Write])];
        let payload = b64(serde_json::to_vec(&forged).unwrap());
        let token = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&token, only(&key), clock.now(), LEEWAY),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature_and_header_are_rejected() {
        let clock = ManualClock::default();
        let key = key();
        let token = sign(&claims(&clock), &key).unwrap();
        let parts = split(&token);

        let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
        signature[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
        assert_eq!(
            verify(&flipped, only(&key), clock.now(), LEEWAY),
            Err(TokenError::BadSignature)
        );
        let short = format!("{}.{}.{}", parts[0], parts[1], b64(&signature[..63]));
        assert_eq!(
            verify(&short, only(&key), clock.now(), LEEWAY),
            Err(TokenError::BadSignature)
        );
        let empty = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(
            verify(&empty, only(&key), clock.now(), LEEWAY),
            Err(TokenError::BadSignature)
        );

        // Same meaning, different header bytes: the signature covers the bytes.
        let header = b64(json!({"kid": key.kid(), "alg": "EdDSA", "typ": "JWT"}).to_string());
        let reordered = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verify(&reordered, only(&key), clock.now(), LEEWAY),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unknown_or_missing_kid_is_rejected() {
        let clock = ManualClock::default();
        let key = key();
        let token = sign(&claims(&clock), &key).unwrap();
        assert_eq!(
            verify(&token, |_| None, clock.now(), LEEWAY),
            Err(TokenError::UnknownKey)
        );

        let parts = split(&token);
        let header = b64(json!({"alg": "EdDSA", "typ": "JWT"}).to_string());
        let no_kid = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verify(&no_kid, only(&key), clock.now(), LEEWAY),
            Err(TokenError::MissingKeyId)
        );
    }

    #[test]
    fn lookup_returning_a_key_with_another_kid_is_rejected() {
        let clock = ManualClock::default();
        let key = key();
        let other = SigningKey::generate().unwrap();
        let token = sign(&claims(&clock), &key).unwrap();
        assert_eq!(
            verify(
                &token,
                |_| Some(other.verifying_key().clone()),
                clock.now(),
                LEEWAY
            ),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        // An attacker signs with their own key but claims our kid.
        let clock = ManualClock::default();
        let ours = key();
        let theirs = key();
        let header = b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": ours.kid()}).to_string());
        let payload = b64(serde_json::to_vec(&claims(&clock)).unwrap());
        let signed = format!("{header}.{payload}");
        let signature = theirs.key.sign(signed.as_bytes());
        let token = format!("{signed}.{}", b64(signature.to_bytes()));
        assert_eq!(
            verify(&token, only(&ours), clock.now(), LEEWAY),
            Err(TokenError::BadSignature)
        );
        // And a token properly signed by another key with its own kid is unknown to us.
        let token = sign(&claims(&clock), &theirs).unwrap();
        assert_eq!(
            verify(&token, only(&ours), clock.now(), LEEWAY),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn malformed_tokens_are_rejected_with_reasons() {
        let clock = ManualClock::default();
        let key = key();
        let token = sign(&claims(&clock), &key).unwrap();
        let parts = split(&token);
        let check = |token: &str| verify(token, only(&key), clock.now(), LEEWAY);

        for bad in [
            "",
            "abc",
            "a.b",
            &format!("{token}.x"),
            &format!("{}.{}", parts[0], parts[1]),
        ] {
            assert!(
                matches!(check(bad), Err(TokenError::Malformed(_))),
                "{bad:?}"
            );
        }
        // Not base64url: padding, standard-alphabet characters, spaces.
        for bad in [
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}+/.{}", parts[0], parts[1], parts[2]),
            format!("{} .{}.{}", parts[0], parts[1], parts[2]),
        ] {
            assert_eq!(
                check(&bad),
                Err(TokenError::Malformed("token is not base64url"))
            );
        }
        // A header that is not a JSON object.
        for header in ["not json", "[1,2]", "\"EdDSA\""] {
            let bad = format!("{}.{}.{}", b64(header), parts[1], parts[2]);
            assert!(matches!(check(&bad), Err(TokenError::Malformed(_))));
        }
        // Critical extensions and foreign token types.
        for header in [
            json!({"alg": "EdDSA", "kid": key.kid(), "crit": ["exp"]}),
            json!({"alg": "EdDSA", "kid": key.kid(), "typ": "webhook+jwt"}),
        ] {
            let bad = format!("{}.{}.{}", b64(header.to_string()), parts[1], parts[2]);
            assert!(matches!(check(&bad), Err(TokenError::Malformed(_))));
        }
        // Oversized input is refused before decoding.
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(check(&huge), Err(TokenError::TooLarge));
    }

    #[test]
    fn validly_signed_garbage_claims_are_malformed() {
        let clock = ManualClock::default();
        let key = key();
        let header = b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid()}).to_string());
        for payload in [
            json!({"sub": "u"}),
            json!({"sub": "u", "prj": "p", "iat": 1, "exp": 2, "jti": "j",
                   "perms": [{"room": "a", "scopes": ["room:admin"]}]}),
            json!({"sub": "u", "prj": "p", "iat": 1, "exp": 2, "jti": "j",
                   "perms": [{"room": "a*b", "scopes": ["room:read"]}]}),
        ] {
            let signed = format!("{header}.{}", b64(payload.to_string()));
            let signature = key.key.sign(signed.as_bytes());
            let token = format!("{signed}.{}", b64(signature.to_bytes()));
            assert_eq!(
                verify(&token, only(&key), clock.now(), LEEWAY),
                Err(TokenError::Malformed("token claims are invalid")),
                "{payload}"
            );
        }
    }

    #[test]
    fn error_reasons_fit_a_close_frame() {
        let all = [
            TokenError::Malformed("x"),
            TokenError::TooLarge,
            TokenError::UnsupportedAlgorithm,
            TokenError::MissingKeyId,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::NotYetValid,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(TokenError::reason).collect();
        assert_eq!(reasons.len(), all.len(), "reasons are distinguishable");
        assert!(reasons.iter().all(|r| !r.is_empty() && r.len() <= 123));
    }

    #[test]
    fn oversized_user_info_is_rejected_at_sign_time() {
        let clock = ManualClock::default();
        let key = key();
        let mut claims = claims(&clock);
        // A JSON string of n characters encodes to n + 2 bytes.
        claims.user = json!("x".repeat(MAX_USER_INFO_BYTES - 2));
        assert!(sign(&claims, &key).is_ok());
        claims.user = json!("x".repeat(MAX_USER_INFO_BYTES - 1));
        assert!(matches!(
            sign(&claims, &key),
            Err(SignError::UserInfoTooLarge { size }) if size == MAX_USER_INFO_BYTES + 1
        ));
    }

    #[test]
    fn oversized_tokens_are_rejected_at_sign_time() {
        let clock = ManualClock::default();
        let key = key();
        let mut claims = claims(&clock);
        claims.perms = (0..1000)
            .map(|i| perm(&format!("room-{i:04}"), &[Scope::Read]))
            .collect();
        assert!(matches!(
            sign(&claims, &key),
            Err(SignError::TooLarge { .. })
        ));
    }

    #[test]
    fn room_patterns_match_exactly_or_by_prefix() {
        let exact = RoomPattern::new("doc-1").unwrap();
        assert!(exact.matches("doc-1"));
        assert!(!exact.matches("doc-10"));
        assert!(!exact.matches("doc-"));
        assert!(!exact.matches("Doc-1"));

        let prefix = RoomPattern::new("doc-*").unwrap();
        assert!(prefix.matches("doc-1"));
        assert!(prefix.matches("doc-"));
        assert!(prefix.matches("doc-a/b*c"));
        assert!(!prefix.matches("doc"));
        assert!(!prefix.matches("other-doc-1"));

        let all = RoomPattern::new("*").unwrap();
        for room in ["a", "doc-1", "é", "*"] {
            assert!(all.matches(room));
        }
    }

    #[test]
    fn invalid_room_patterns_are_refused() {
        assert_eq!(RoomPattern::new(""), Err(PatternError::Length));
        assert_eq!(
            RoomPattern::new("x".repeat(MAX_ROOM_PATTERN_BYTES + 1)),
            Err(PatternError::Length)
        );
        assert!(RoomPattern::new(format!("{}*", "x".repeat(256))).is_ok());
        assert_eq!(
            RoomPattern::new("a\nb"),
            Err(PatternError::ControlCharacter)
        );
        assert!(RoomPattern::new("é").is_ok());
        for bad in ["a*b", "*a", "**", "a**", "*-*", "é*é"] {
            assert_eq!(
                RoomPattern::new(bad),
                Err(PatternError::InnerWildcard),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<RoomPattern>("\"a*b\"").is_err());
        assert_eq!(
            serde_json::from_str::<RoomPattern>("\"a*\"").unwrap(),
            RoomPattern::new("a*").unwrap()
        );
    }

    #[test]
    fn access_combines_every_matching_permission() {
        let clock = ManualClock::default();
        let mut claims = claims(&clock);
        claims.perms = vec![
            perm("*", &[Scope::Read]),
            perm("team-*", &[Scope::PresenceWrite]),
            perm("team-notes", &[Scope::Write]),
            perm("secret", &[]),
        ];
        let read_only = Access {
            read: true,
            write: false,
            presence: false,
        };
        assert_eq!(claims.access("lobby"), read_only);
        assert_eq!(
            claims.access("team-board"),
            Access {
                read: true,
                write: false,
                presence: true
            }
        );
        assert_eq!(
            claims.access("team-notes"),
            Access {
                read: true,
                write: true,
                presence: true
            }
        );
        // An empty scope list adds nothing, and does not take away what `*` gave.
        assert_eq!(claims.access("secret"), read_only);
    }

    #[test]
    fn access_scopes_and_no_match() {
        let clock = ManualClock::default();
        let mut claims = claims(&clock);
        claims.perms = vec![
            perm("w", &[Scope::Write]),
            perm("r", &[Scope::Read]),
            perm("p", &[Scope::PresenceWrite]),
            perm("rp", &[Scope::Read, Scope::PresenceWrite]),
        ];
        let w = claims.access("w");
        assert!(w.read && w.write && w.presence && w.can_enter());
        let r = claims.access("r");
        assert!(r.read && !r.write && !r.presence);
        // Presence alone does not let one read the document.
        let p = claims.access("p");
        assert!(!p.read && !p.write && p.presence && !p.can_enter());
        let rp = claims.access("rp");
        assert!(rp.read && !rp.write && rp.presence);
        // No matching pattern: no access at all.
        assert_eq!(claims.access("elsewhere"), Access::default());
        assert!(!claims.access("elsewhere").can_enter());
        claims.perms.clear();
        assert_eq!(claims.access("w"), Access::default());
    }

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

    #[test]
    fn public_jwk_and_jwks() {
        let key = key();
        let jwk = serde_json::to_value(key.public_jwk()).unwrap();
        assert_eq!(
            jwk,
            json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(key.verifying_key().to_bytes()),
                "kid": key.kid(),
                "alg": "EdDSA",
                "use": "sig",
            })
        );
        let retired = SigningKey::generate().unwrap();
        let set = jwks([key.verifying_key(), retired.verifying_key()]);
        let value = serde_json::to_value(&set).unwrap();
        assert_eq!(value["keys"].as_array().unwrap().len(), 2);
        assert_eq!(value["keys"][0], jwk);
        assert_eq!(value["keys"][1]["kid"], retired.kid());

        // A verifier can rebuild the keys from the published set.
        let parsed: Jwks = serde_json::from_value(value).unwrap();
        let rebuilt = VerifyingKey::from_jwk(&parsed.keys[0]).unwrap();
        assert_eq!(&rebuilt, key.verifying_key());
        let mut wrong_kid = parsed.keys[0].clone();
        wrong_kid.kid = retired.kid().to_owned();
        assert_eq!(
            VerifyingKey::from_jwk(&wrong_kid),
            Err(KeyError::KidMismatch)
        );
        let mut wrong_alg = parsed.keys[0].clone();
        wrong_alg.alg = "HS256".to_owned();
        assert_eq!(
            VerifyingKey::from_jwk(&wrong_alg),
            Err(KeyError::UnsupportedJwk)
        );
    }

    #[test]
    fn retired_keys_still_verify_through_the_lookup() {
        let clock = ManualClock::default();
        let old = key();
        let new = key();
        let old_token = sign(&claims(&clock), &old).unwrap();
        let new_token = sign(&claims(&clock), &new).unwrap();
        let ring = [old.verifying_key().clone(), new.verifying_key().clone()];
        let lookup = |kid: &str| ring.iter().find(|k| k.kid() == kid).cloned();
        assert!(verify(&old_token, lookup, clock.now(), LEEWAY).is_ok());
        assert!(verify(&new_token, lookup, clock.now(), LEEWAY).is_ok());
    }
}
