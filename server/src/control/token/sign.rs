//! Signing claims into a compact JWS and verifying one back into claims.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};

use super::{
    from_unix_secs, Claims, SigningKey, VerifyingKey, ALG, MAX_TOKEN_BYTES, MAX_USER_INFO_BYTES,
};

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

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::Signer as _;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    use super::super::test_support::*;
    use super::*;
    use crate::control::clock::{Clock, ManualClock};
    use crate::control::token::Scope;

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
                   "perms": [{"room": "a", "scopes": ["room:owner"]}]}),
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
