//! [`Client`]: a server address and a token provider, from which rooms are entered.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tandem_protocol::client::{ClientSession, SessionConfig};
use tokio::sync::mpsc;
use tracing::Instrument;
use yrs::Doc;

use crate::error::{Error, Result};
use crate::room::Room;
use crate::tls::{Certificate, Trust};
use crate::token::TokenProvider;
use crate::transport::{Driver, Shared, Target, COMMAND_QUEUE};
use crate::url::{check_room, BaseUrl};

/// A connection to one Tandem server (one project, through the tokens its provider
/// returns). Cheap to clone; every room entered through it uses the same provider.
///
/// ```no_run
/// use tandem_sdk::Client;
///
/// # async fn demo() -> Result<(), tandem_sdk::Error> {
/// let client = Client::builder("http://127.0.0.1:8080")
///     .token_provider(|room: String| async move {
///         // Ask your backend, which mints tokens with the secret key.
///         Ok::<_, std::io::Error>(format!("token for {room}"))
///     })
///     .build()?;
/// let room = client.enter("my-room").await?;
/// room.wait_synced().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    base: BaseUrl,
    provider: Option<Arc<dyn TokenProvider>>,
    config: SessionConfig,
    /// For `wss://`: the roots this client trusts.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token_provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]; see [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    provider: Option<Arc<dyn TokenProvider>>,
    config: SessionConfig,
    trust: Trust,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("token_provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client for the server at `base_url`: `https://host[:port]` (rooms
    /// connect with `wss://`) or `http://host:port` (`ws://`); `wss://` and `ws://` work
    /// too, with or without the `/v1/connect` a y-websocket app would write, and with an
    /// optional path prefix when the server is mounted under one.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            provider: None,
            config: SessionConfig::default(),
            trust: Trust::default(),
        }
    }

    /// Enters `room` with the default options: see [`enter_with`](Self::enter_with).
    pub async fn enter(&self, room: &str) -> Result<Room> {
        self.enter_with(room, RoomOptions::default()).await
    }

    /// Enters `room`: starts the room's background task, which connects (asking the token
    /// provider for a token first) and keeps the room connected until it is left. Returns
    /// at once; the room is usable offline right away, and
    /// [`Room::wait_synced`] waits for the server's state.
    ///
    /// Fails only on a bad room name, a presence that is not a JSON object, or a
    /// document inside a transaction. Must be called within a tokio runtime.
    ///
    /// ```no_run
    /// use serde_json::json;
    /// use tandem_sdk::RoomOptions;
    ///
    /// # async fn demo(client: tandem_sdk::Client) -> Result<(), tandem_sdk::Error> {
    /// let room = client
    ///     .enter_with(
    ///         "doc-1",
    ///         RoomOptions {
    ///             initial_presence: Some(json!({"status": "reading"})),
    ///             ..RoomOptions::default()
    ///         },
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn enter_with(&self, room: &str, options: RoomOptions) -> Result<Room> {
        check_room(room)?;
        let presence = match options.initial_presence {
            None => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err(Error::PresenceNotAnObject),
        };
        let doc = options.doc.unwrap_or_default();
        let config = SessionConfig {
            jitter_seed: jitter_seed(),
            ..self.config.clone()
        };
        let mut session = ClientSession::new(doc.clone(), config)?;
        let shared = Arc::new(Shared::new(presence));
        let notify = Arc::clone(&shared);
        // Runs inside the app's transaction commit: only wakes the room's task.
        session.set_change_notifier(Some(Arc::new(move || notify.wake.notify_one())));
        let remote_origin = session.remote_origin();
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let target = Arc::new(Target {
            base: self.base.clone(),
            room: room.to_owned(),
            provider: self.provider.clone(),
            tls: self.tls.clone(),
        });
        let span =
            tracing::debug_span!("tandem_room", room = %room, client_id = session.client_id());
        let driver = Driver::new(session, target, Arc::clone(&shared), queue);
        let task = tokio::spawn(driver.run().instrument(span));
        Ok(Room::new(
            room.to_owned(),
            doc,
            remote_origin,
            shared,
            commands,
            task,
        ))
    }
}

impl ClientBuilder {
    /// Where rooms get their tokens (see [`TokenProvider`]): an async closure taking the
    /// room name, or any type implementing the trait. Without one, rooms connect without a
    /// token, which only a server started with `--allow-anonymous` accepts.
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// The reconnect backoff: the first window is `base` wide and windows double up to
    /// `cap` (full jitter: each delay is uniform in the window). Defaults: 250 ms, 30 s.
    pub fn reconnect_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.config.backoff_base_ms = duration_ms(base);
        self.config.backoff_cap_ms = duration_ms(cap);
        self
    }

    /// How long opening a connection (token included) may take before it is abandoned
    /// and retried. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout_ms = duration_ms(timeout);
        self
    }

    /// Trusts `root` for `wss://` too: a private CA, or a self-signed server's own
    /// certificate. The built-in (webpki, Mozilla) roots stay trusted unless
    /// [`tls_built_in_roots(false)`](Self::tls_built_in_roots).
    ///
    /// ```no_run
    /// use tandem_sdk::{Certificate, Client};
    ///
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = Certificate::from_pem(&std::fs::read("ca.pem")?)?;
    /// let client = Client::builder("https://tandem.internal:8443")
    ///     .add_root_certificate(ca)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn add_root_certificate(mut self, root: Certificate) -> Self {
        self.trust.roots.push(root);
        self
    }

    /// Whether the built-in webpki (Mozilla) roots are trusted (default `true`). Off, only
    /// the roots added with [`add_root_certificate`](Self::add_root_certificate) are.
    pub fn tls_built_in_roots(mut self, enabled: bool) -> Self {
        self.trust.built_in_roots = enabled;
        self
    }

    /// Checks the base URL (and, for `https://`, the TLS roots) and builds the client.
    ///
    /// ```
    /// use tandem_sdk::{Client, Error};
    ///
    /// assert!(Client::builder("http://127.0.0.1:8080").build().is_ok());
    /// assert!(Client::builder("https://tandem.example.com").build().is_ok());
    /// assert!(matches!(
    ///     Client::builder("127.0.0.1:8080").build(),
    ///     Err(Error::InvalidUrl { .. })
    /// ));
    /// ```
    pub fn build(self) -> Result<Client> {
        let base = BaseUrl::parse(&self.base_url)?;
        let tls = if base.is_secure() {
            Some(self.trust.client_config()?)
        } else {
            None
        };
        Ok(Client {
            base,
            provider: self.provider,
            config: self.config,
            tls,
        })
    }
}

/// How to enter a room ([`Client::enter_with`]).
#[derive(Debug, Default)]
pub struct RoomOptions {
    /// The presence others see as soon as this client connects (a JSON object; the server
    /// adds `user` from the token). Default `{}`.
    pub initial_presence: Option<Value>,
    /// The document to synchronise, for example one loaded from local storage so that
    /// its offline edits are sent. Default: a new empty document.
    pub doc: Option<Doc>,
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Platform randomness for the reconnect jitter, so clients do not reconnect in
/// lockstep. Without it, the clock's nanoseconds still differ between clients.
fn jitter_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}
