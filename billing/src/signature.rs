//! Stripe's webhook signatures: the `Stripe-Signature` header is `t=<unix seconds>`
//! and one or more `v1=<hex HMAC-SHA256 of "t.body" under the endpoint secret>` (more
//! than one while secrets are rolled). A delivery is genuine when some `v1` matches some
//! configured secret, compared in constant time over the raw body, and `t` is within the
//! tolerance of now (a replay of an old delivery fails). `now` is a parameter.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance: five minutes either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is missing or has no `t` or no `v1`.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// `t` is further from now than the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` matches any secret.
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn hex_decode(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `header` for `body` against every secret in `secrets` at `now` (unix
/// seconds), with `tolerance` seconds either way. Returns the signed timestamp.
pub fn verify<S: AsRef<[u8]>>(
    body: &[u8],
    header: &str,
    secrets: &[S],
    now: i64,
    tolerance: i64,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let text = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = text.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = mac(secret.as_ref(), text, body);
        for sig in &signatures {
            // A malformed v1 compares against zeroes (never equal to a real MAC) so the
            // work does not depend on which part was malformed.
            let given = hex_decode(sig).unwrap_or([0; 32]);
            matched |= expected.ct_eq(&given);
        }
    }
    if bool::from(matched) {
        Ok(t)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `body` signed at `timestamp` with `secret` (for
/// tests and for a fake Stripe).
pub fn header(body: &[u8], secret: &[u8], timestamp: i64) -> String {
    let t = timestamp.to_string();
    format!("t={t},v1={}", hex_encode(&mac(secret, &t, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"ping"}"#;

    #[test]
    fn a_signed_body_verifies_with_any_configured_secret() {
        let h = header(BODY, b"whsec_new", 1_000);
        assert_eq!(
            verify(BODY, &h, &["whsec_old", "whsec_new"], 1_000, 300),
            Ok(1_000)
        );
        assert_eq!(
            verify(BODY, &h, &["whsec_old"], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn several_v1_values_are_tried_while_rolling() {
        let old = header(BODY, b"whsec_old", 1_000);
        let new = header(BODY, b"whsec_new", 1_000);
        let both = format!("{old},{}", new.split_once(',').unwrap().1);
        assert_eq!(verify(BODY, &both, &["whsec_new"], 1_000, 300), Ok(1_000));
        assert_eq!(verify(BODY, &both, &["whsec_old"], 1_000, 300), Ok(1_000));
    }

    #[test]
    fn a_changed_body_or_old_timestamp_fails() {
        let h = header(BODY, b"whsec", 1_000);
        assert_eq!(
            verify(b"{\"id\":\"evt_2\"}", &h, &["whsec"], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(BODY, &h, &["whsec"], 1_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(BODY, &h, &["whsec"], 699, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(BODY, &h, &["whsec"], 1_300, 300), Ok(1_000));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "garbage"] {
            assert_eq!(
                verify(BODY, bad, &["whsec"], 1, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(BODY, "t=1,v1=zz", &["whsec"], 1, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn matches_an_independent_hmac() {
        // python3: hmac.new(b"whsec_test", b"1492774577.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            header(b"{}", b"whsec_test", 1_492_774_577),
            "t=1492774577,v1=0d0602f6611bd2252dd4b74b58a4528355a7380639a15e6cc21e3059d56d5b8b"
        );
    }
}
