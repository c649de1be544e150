//! The REST admin client, for your app's **backend**: mint client tokens, manage rooms
//! and their documents, keys, usage and the tenant's audit log. The same surface as
//! `@tandem/node`, over `reqwest` (HTTP/1.1, rustls with the ring provider for
//! `https://`).
//!
//! One [`AdminClient`] per credential: a project's **secret key** (`sk_…`) for tokens,
//! rooms, keys and usage; a **personal access token** (`pat_…`) for a tenant's routes
//! ([`AdminClient::tenant`], [`AdminClient::me`]). A secret key must never ship in an app
//! that runs on users' machines.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use tandem_sdk::admin::{AdminClient, Authorize, ListRooms, Scope};
//!
//! # async fn demo() -> Result<(), tandem_sdk::Error> {
//! let admin = AdminClient::builder("https://tandem.example.com")
//!     .secret_key(std::env::var("TANDEM_SECRET_KEY").unwrap_or_default())
//!     .build()?;
//!
//! // A token for one of your users, for the client SDKs.
//! let minted = admin
//!     .authorize(&Authorize::new("ada").allow("doc-1", [Scope::Write]))
//!     .await?;
//! println!("token expires at {}", minted.expires_at);
//!
//! // Every room, page by page as the stream is read.
//! let mut rooms = admin.rooms().list(ListRooms::default()).stream();
//! while let Some(room) = rooms.next().await {
//!     let room = room?;
//!     println!("{} ({} connected)", room.name, room.connections);
//! }
//! # Ok(()) }
//! ```
//!
//! Every failed call is an [`Error`](crate::Error): [`Error::Api`](crate::Error::Api)
//! with the server's problem document ([`ApiError`](crate::ApiError): `code`, `status`,
//! `retry_after`) when it answered, [`Error::Connection`](crate::Error::Connection) or
//! [`Error::Tls`](crate::Error::Tls) when it did not. A 429 is retried after its
//! `Retry-After` only when the client opts in ([`AdminClientBuilder::retry_on_429`]).

mod http;
mod keys;
mod rooms;
mod tenant;
mod types;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

pub use self::http::{OnRetry, RetryInfo, RetryOn429};
pub use self::keys::Keys;
pub use self::rooms::{ListRooms, RoomList, Rooms};
pub use self::tenant::{AuditLog, TenantClient, UsageRange};
pub use self::types::*;

use self::http::{Body, Http};
use crate::error::{Error, Result};
use crate::tls::{Certificate, Trust};
use crate::url::BaseUrl;

/// How long a whole call may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A REST client for one Tandem server and credential; cheap to clone (clones share
/// one connection pool).
#[derive(Clone, Debug)]
pub struct AdminClient {
    /// With the secret key, for `/v1/…` project routes.
    project: Http,
    /// With the PAT, for `/v1/tenants/…` and `/v1/auth/me`.
    management: Http,
}

/// Builds an [`AdminClient`]; see [`AdminClient::builder`].
#[must_use]
pub struct AdminClientBuilder {
    base_url: String,
    secret_key: Option<String>,
    pat: Option<String>,
    retry: Option<RetryOn429>,
    trust: Trust,
    timeout: Duration,
}

impl std::fmt::Debug for AdminClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClientBuilder")
            .field("base_url", &self.base_url)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("pat", &self.pat.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl AdminClientBuilder {
    /// The project's secret key (`sk_…`): tokens, rooms, keys, usage.
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(key.into());
        self
    }

    /// A personal access token (`pat_…`): [`AdminClient::tenant`] and [`AdminClient::me`].
    pub fn pat(mut self, pat: impl Into<String>) -> Self {
        self.pat = Some(pat.into());
        self
    }

    /// Retry 429 answers after their `Retry-After`, within `policy`'s bounds (off by
    /// default: a 429 is returned as [`Error::Api`] with `retry_after`).
    pub fn retry_on_429(mut self, policy: RetryOn429) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Trusts `root` for `https://` too (a private CA, a self-signed server); the
    /// built-in webpki roots stay trusted unless
    /// [`tls_built_in_roots(false)`](Self::tls_built_in_roots).
    pub fn add_root_certificate(mut self, root: Certificate) -> Self {
        self.trust.roots.push(root);
        self
    }

    /// Whether the built-in webpki (Mozilla) roots are trusted (default `true`).
    pub fn tls_built_in_roots(mut self, enabled: bool) -> Self {
        self.trust.built_in_roots = enabled;
        self
    }

    /// How long one call (one attempt) may take (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the base URL, the credentials and the TLS roots, and builds the client.
    ///
    /// ```
    /// use tandem_sdk::admin::AdminClient;
    ///
    /// assert!(AdminClient::builder("http://127.0.0.1:8080").secret_key("sk_x").build().is_ok());
    /// // A credential is needed.
    /// assert!(AdminClient::builder("http://127.0.0.1:8080").build().is_err());
    /// ```
    pub fn build(self) -> Result<AdminClient> {
        let base = BaseUrl::parse(&self.base_url)?;
        if self.secret_key.is_none() && self.pat.is_none() {
            return Err(Error::InvalidArgument(
                "an AdminClient needs a secret_key or a pat".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            // An API client follows no redirects: the answer is the server's.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .user_agent(concat!("tandem-sdk/", env!("CARGO_PKG_VERSION")));
        if base.is_secure() {
            // The SDK's own rustls configuration (ring, webpki + the app's roots): the
            // same one its room sockets use.
            let config = Arc::unwrap_or_clone(self.trust.client_config()?);
            builder = builder.use_preconfigured_tls(config);
        }
        let client = builder
            .build()
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let http = |credential: Option<String>| Http {
            client: client.clone(),
            base: base.clone(),
            credential: credential.map(Arc::from),
            retry: self.retry.clone(),
        };
        Ok(AdminClient {
            project: http(self.secret_key.clone()),
            management: http(self.pat.clone()),
        })
    }
}

/// What a client token is for ([`AdminClient::authorize`]).
///
/// ```
/// use serde_json::json;
/// use std::time::Duration;
/// use tandem_sdk::admin::{Authorize, Scope};
///
/// let options = Authorize::new("ada")
///     .user_info(json!({"name": "Ada", "color": "#f0a"}))
///     .allow("doc-1", [Scope::Write])
///     .allow("team-*", [Scope::Read])
///     .expires_in(Duration::from_secs(600));
/// assert_eq!(options.permissions.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Authorize {
    /// Your app's id for the user (shown with their presence).
    pub user_id: String,
    /// Shown to others with the user's presence (a JSON object, at most 4 KiB).
    pub user_info: Option<Value>,
    /// Room name (exact) or prefix ending in `*` → scopes.
    pub permissions: Permissions,
    /// Lifetime (whole seconds; default 1 h, at most the server's maximum).
    pub expires_in: Option<Duration>,
}

impl Authorize {
    /// A token for `user_id`, with no permissions yet (add them with [`allow`](Self::allow)).
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            ..Self::default()
        }
    }

    /// Grants `scopes` on `room` (an exact name, or a prefix ending in `*`).
    pub fn allow(
        mut self,
        room: impl Into<String>,
        scopes: impl IntoIterator<Item = Scope>,
    ) -> Self {
        self.permissions
            .entry(room.into())
            .or_default()
            .extend(scopes);
        self
    }

    /// Replaces the permissions.
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// The user info others see with this user's presence, e.g. `{"name": "Ada"}`.
    /// Anything but a JSON object is refused by the server (400).
    pub fn user_info(mut self, info: Value) -> Self {
        self.user_info = Some(info);
        self
    }

    /// The token's lifetime (rounded up to whole seconds, at least one).
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }
}

/// The `POST /v1/tokens` body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateToken<'a> {
    user_id: &'a str,
    permissions: &'a Permissions,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_info: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
}

impl AdminClient {
    /// Starts building a client for the server at `base_url` (`https://host[:port]` or
    /// `http://…`, with an optional path prefix).
    pub fn builder(base_url: impl Into<String>) -> AdminClientBuilder {
        AdminClientBuilder {
            base_url: base_url.into(),
            secret_key: None,
            pat: None,
            retry: None,
            trust: Trust::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Mints a client token for one of your users (`POST /v1/tokens`, secret key).
    pub async fn authorize(&self, options: &Authorize) -> Result<Authorization> {
        let body = CreateToken {
            user_id: &options.user_id,
            permissions: &options.permissions,
            user_info: options.user_info.as_ref(),
            expires_in: options
                .expires_in
                .map(|ttl| (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)),
        };
        self.project
            .json(Method::POST, "/v1/tokens", &[], Body::json(&body)?)
            .await
    }

    /// The project's rooms (secret key).
    pub fn rooms(&self) -> Rooms {
        Rooms::new(self.project.clone())
    }

    /// The project's keys (secret key).
    pub fn keys(&self) -> Keys {
        Keys::new(self.project.clone())
    }

    /// The project's usage: hourly or daily buckets with rooms, and monthly active users
    /// (`GET /v1/usage`, secret key).
    pub async fn usage(&self, range: &UsageRange) -> Result<ProjectUsage> {
        self.project
            .json(Method::GET, "/v1/usage", &range.query(), Body::None)
            .await
    }

    /// The PAT's user and tenants (`GET /v1/auth/me`).
    pub async fn me(&self) -> Result<Me> {
        self.management
            .json(Method::GET, "/v1/auth/me", &[], Body::None)
            .await
    }

    /// A tenant's management routes (PAT).
    pub fn tenant(&self, tenant_id: impl Into<String>) -> TenantClient {
        TenantClient::new(self.management.clone(), tenant_id.into())
    }
}
