//! The JWKS (RFC 7517, RFC 8037) that publishes the public keys tokens are verified with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{KeyError, SigningKey, VerifyingKey, ALG};

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

impl VerifyingKey {
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

impl SigningKey {
    /// The public half as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        self.verifying_key().to_jwk()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::*;
    use super::*;

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
}
