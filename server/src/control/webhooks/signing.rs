//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret is
//! `whsec_` + base64 of a random key; a delivery carries `webhook-id`,
//! `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 of
//! HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, several space-separated while a secret
//! is being rolled (the receiver accepts any one that verifies). Pure functions: no
//! clock, no I/O.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of key in a secret we generate (the spec allows 24 to 64).
pub const KEY_BYTES: usize = 32;

/// The secret as shown to the tenant: `whsec_` + base64 of the key.
pub fn format_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key inside a `whsec_…` secret (`None` if it is not one).
pub fn parse_secret(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `v1,<signature>` of one message under one key.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC accepts keys of every length")
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn signature_header(keys: &[&[u8]], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a valid `v1` signature of the message under `key` (any of the
/// space-separated ones), compared in constant time. The caller checks the timestamp's
/// age.
pub fn verify(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = sign(key, msg_id, timestamp, body);
    header
        .split(' ')
        .filter(|sig| sig.starts_with("v1,"))
        .any(|sig| crate::control::constant_time_eq(sig.as_bytes(), expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and of its reference
    /// libraries' tests).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_specification_example() {
        let key = parse_secret(SPEC_SECRET).unwrap();
        assert_eq!(
            sign(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
        assert!(verify(
            &key,
            SPEC_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY.as_bytes(),
            SPEC_SIGNATURE
        ));
    }

    #[test]
    fn tampering_with_any_part_fails_verification() {
        let key = parse_secret(SPEC_SECRET).unwrap();
        let body = SPEC_BODY.as_bytes();
        assert!(!verify(
            &key,
            "msg_other",
            SPEC_TIMESTAMP,
            body,
            SPEC_SIGNATURE
        ));
        assert!(!verify(
            &key,
            SPEC_ID,
            SPEC_TIMESTAMP + 1,
            body,
            SPEC_SIGNATURE
        ));
        assert!(!verify(
            &key,
            SPEC_ID,
            SPEC_TIMESTAMP,
            b"{\"test\": 1}",
            SPEC_SIGNATURE
        ));
        assert!(!verify(
            b"other key",
            SPEC_ID,
            SPEC_TIMESTAMP,
            body,
            SPEC_SIGNATURE
        ));
        assert!(!verify(&key, SPEC_ID, SPEC_TIMESTAMP, body, "v2,abc"));
    }

    #[test]
    fn during_a_roll_both_keys_sign_and_either_verifies() {
        let (old, new) = ([1u8; KEY_BYTES], [2u8; KEY_BYTES]);
        let header = signature_header(&[&new, &old], "evt_1", 1700000000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert!(verify(&old, "evt_1", 1700000000, b"{}", &header));
        assert!(verify(&new, "evt_1", 1700000000, b"{}", &header));
        assert!(!verify(
            &[3u8; KEY_BYTES],
            "evt_1",
            1700000000,
            b"{}",
            &header
        ));
    }

    #[test]
    fn secrets_round_trip() {
        let key = [7u8; KEY_BYTES];
        let secret = format_secret(&key);
        assert!(secret.starts_with("whsec_"));
        assert_eq!(parse_secret(&secret).unwrap(), key);
        assert_eq!(parse_secret("sk_abc"), None);
        assert_eq!(parse_secret("whsec_!!!"), None);
    }
}
