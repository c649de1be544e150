//! The optional TLS listener (`--tls-cert`/`--tls-key`): rustls with the ring provider
//! in front of the same axum app, so one binary serves `https://` and `wss://` without
//! a proxy. The certificate is read once at start (no reload).
//!
//! [`TlsListener`] is an axum [`Listener`]: a background task accepts TCP connections
//! and runs each handshake in its own task (bounded in time and number), so a client
//! that stalls its handshake never holds up the others; finished handshakes are handed
//! to `axum::serve` through a bounded queue.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past this, accepting waits (the kernel's backlog
/// holds new connections meanwhile).
const MAX_HANDSHAKES: usize = 1024;
/// Finished handshakes waiting for `axum::serve` to take them.
const READY_QUEUE: usize = 128;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A file is not the PEM expected.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the pair (for one, a key that does not match the certificate).
    #[error("the TLS certificate and key cannot be used: {0}")]
    Rejected(#[from] rustls::Error),
}

/// A loaded certificate chain and key, ready to serve TLS.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the certificate chain (`cert`, PEM, the server's certificate first) and its
    /// private key (`key`, PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let pem_error = |path: &Path, detail: String| TlsError::Pem {
            path: path.to_owned(),
            detail,
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(cert, format!("unreadable PEM: {e}")))?;
        if chain.is_empty() {
            return Err(pem_error(cert, "no CERTIFICATE in the file".into()));
        }
        let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                pem_error(key, "no PRIVATE KEY in the file".into())
            }
            e => pem_error(key, format!("unreadable PEM: {e}")),
        })?;
        // The provider is named, not taken from the process default (which panics if a
        // second one is ever compiled in).
        let provider = ring_provider();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)?;
        // The app speaks HTTP/1.1 only (WebSocket upgrades included).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            cert: cert.to_owned(),
        })
    }
}

/// A TCP listener whose connections arrive already through their TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `tls`'s certificate.
    pub fn new(listener: TcpListener, tls: &ServerTls) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (queue, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(Arc::clone(&tls.config)),
            queue,
        ));
        Ok(Self {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stops accepting (the port closes) once `axum::serve` lets go of the listener.
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task is gone (it only ends on drop): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // As axum's own loop: a connection that died before we took it is not a
                // listener problem; anything else (out of file descriptors) is waited out.
                if !is_connection_error(&error) {
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        // See `serve`: relayed updates are small writes.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// rustls's *ring* provider. Deprecated since rustls 0.23.48 because ring has no
/// post-quantum key exchange; the project uses ring anyway (aws-lc-rs needs cmake and
/// compiles for minutes: docs/architecture.md), so the warning is silenced here only.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for `localhost` and 127.0.0.1 written to `dir` as
    /// `cert.pem` and `key.pem`; returns their paths.
    pub(crate) fn write_self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn bad_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_self_signed(dir.path());
        assert!(ServerTls::load(&cert, &key).is_ok());
        let missing = dir.path().join("missing.pem");
        let error = ServerTls::load(&missing, &key).unwrap_err();
        assert!(matches!(error, TlsError::Read { .. }), "{error}");
        // The certificate file has no key and the key file no certificate.
        let error = ServerTls::load(&key, &key).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        let error = ServerTls::load(&cert, &cert).unwrap_err();
        assert!(error.to_string().contains("no PRIVATE KEY"), "{error}");
        // Another certificate's key.
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = write_self_signed(other.path());
        let error = ServerTls::load(&cert, &other_key).unwrap_err();
        assert!(matches!(error, TlsError::Rejected(_)), "{error}");
        assert!(!format!("{:?}", ServerTls::load(&cert, &key).unwrap()).contains("PRIVATE"));
    }

    /// A client that opens a TCP connection and never starts its handshake does not
    /// keep the next client from being served.
    #[tokio::test]
    async fn a_stalled_handshake_does_not_block_other_clients() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_self_signed(dir.path());
        let tls = ServerTls::load(&cert, &key).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = TlsListener::new(tcp, &tls).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            stream.write_all(&byte).await.unwrap();
            stream.flush().await.unwrap();
            // Keep the listener (and the accept task) alive until the client read.
            let _ = stream.read(&mut byte).await;
        });

        let _stalled = TcpStream::connect(addr).await.unwrap();

        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&cert).unwrap();
        for der in CertificateDer::pem_slice_iter(&pem) {
            roots.add(der.unwrap()).unwrap();
        }
        let provider = ring_provider();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let exchange = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut stream = connector.connect(name, tcp).await.unwrap();
            stream.write_all(b"x").await.unwrap();
            stream.flush().await.unwrap();
            let mut echoed = [0u8; 1];
            stream.read_exact(&mut echoed).await.unwrap();
            echoed
        };
        let echoed = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .expect("the second client was served while the first stalled");
        assert_eq!(&echoed, b"x");
        server.abort();
    }
}
