//! TLS for `https://` and `wss://`: rustls with the *ring* provider, trusting the webpki
//! (Mozilla) roots plus the root certificates the app adds (a private CA, a self-signed
//! server). The same `rustls::ClientConfig` serves a client's room sockets and the
//! admin client, so both trust exactly the same servers.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// A root certificate to trust (a private CA, or a self-signed server certificate),
/// for [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate)
/// and [`AdminClientBuilder::add_root_certificate`](crate::admin::AdminClientBuilder::add_root_certificate).
///
/// ```
/// use tandem_sdk::{Certificate, Error};
///
/// assert!(matches!(
///     Certificate::from_pem(b"not a certificate"),
///     Err(Error::InvalidCertificate { .. })
/// ));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate(CertificateDer<'static>);

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate({} bytes of DER)", self.0.len())
    }
}

impl Certificate {
    /// The first certificate of a PEM text (`-----BEGIN CERTIFICATE-----…`), as in a CA
    /// file.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        Self::from_pem_bundle(pem)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid("no certificate in the PEM text".to_owned()))
    }

    /// Every certificate of a PEM bundle (at least one).
    pub fn from_pem_bundle(pem: &[u8]) -> Result<Vec<Self>> {
        let mut certificates = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
            let der = item.map_err(|e| invalid(format!("unreadable PEM: {e}")))?;
            certificates.push(Self::from_der(der.to_vec())?);
        }
        if certificates.is_empty() {
            return Err(invalid("no certificate in the PEM text".to_owned()));
        }
        Ok(certificates)
    }

    /// A certificate in DER form. It must be usable as a trust anchor.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Result<Self> {
        let der = CertificateDer::from(der.into());
        // The same check the root store makes, so a bad certificate fails here and not
        // at the first connection.
        RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| invalid(format!("not a usable root certificate: {e}")))?;
        Ok(Self(der))
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidCertificate { reason }
}

/// Which roots a client trusts.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    /// Roots added by the app.
    pub(crate) roots: Vec<Certificate>,
    /// Whether the webpki (Mozilla) roots are trusted too.
    pub(crate) built_in_roots: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            built_in_roots: true,
        }
    }
}

impl Trust {
    /// The rustls configuration for these roots (ring provider, TLS 1.2 and 1.3).
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let mut store = RootCertStore::empty();
        if self.built_in_roots {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for root in &self.roots {
            store
                .add(root.0.clone())
                .map_err(|e| invalid(format!("not a usable root certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(invalid(
                "no root certificates: the built-in roots are off and none were added".into(),
            ));
        }
        // The provider is named rather than taken from the process default, which
        // panics when another crate in the app also compiled one in.
        let provider = ring_provider();
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS configuration: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// If a TLS failure is somewhere in `error`'s chain (a handshake refused by rustls, as
/// tokio-rustls reports it inside an `io::Error`), what it was, in words that say what
/// to do about it.
pub(crate) fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // `io::Error::source` skips the error it wraps, so look inside it explicitly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(found) = tls_failure(inner) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

fn describe(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the server's certificate is not signed by a trusted root ({error}); for a \
             private CA or a self-signed server, add its root with add_root_certificate"
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!("the server's certificate is not valid for this host name ({error})")
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the server's certificate has expired ({error})")
        }
        // webpki refuses a CA certificate as the server's own: a self-signed certificate
        // made with `openssl req -x509` has `CA:TRUE` unless told otherwise.
        rustls::Error::InvalidCertificate(C::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            format!(
                "the server presents a CA certificate as its own ({error}); a self-signed \
                 server certificate needs basicConstraints CA:FALSE, or sign one with a \
                 private CA and trust that"
            )
        }
        _ => format!("TLS handshake failed: {error}"),
    }
}

/// rustls's *ring* provider. Deprecated since rustls 0.23.48 because ring has no
/// post-quantum key exchange; the project uses ring anyway (aws-lc-rs needs cmake and
/// compiles for minutes: docs/architecture.md), so the warning is silenced here only.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_certificates_are_refused_when_given() {
        assert!(Certificate::from_pem(b"").is_err());
        assert!(Certificate::from_pem_bundle(b"hello").is_err());
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            Certificate::from_pem(garbage),
            Err(Error::InvalidCertificate { .. })
        ));
        assert!(Certificate::from_der(vec![1, 2, 3]).is_err());
    }

    #[test]
    fn the_built_in_roots_can_be_turned_off_but_not_leave_nothing() {
        assert!(Trust::default().client_config().is_ok());
        let none = Trust {
            roots: Vec::new(),
            built_in_roots: false,
        };
        assert!(matches!(
            none.client_config(),
            Err(Error::InvalidCertificate { .. })
        ));
    }

    #[test]
    fn tls_failures_are_found_inside_io_errors() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        let detail = tls_failure(&io).unwrap();
        assert!(detail.contains("not signed by a trusted root"), "{detail}");
        assert!(detail.contains("add_root_certificate"), "{detail}");
        let wrong_host =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert!(describe(&wrong_host).contains("not valid for this host name"));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&plain), None);
    }
}
