//! **Server-side and development only.** A token provider that mints tokens itself with
//! the project's *secret key* (`POST /v1/tokens`, through the [admin client](crate::admin)),
//! for examples, tests, scripts and backend services.
//!
//! Never ship a secret key in an app that runs on users' machines: anyone holding it
//! can mint tokens for every room and user of the project. A real app asks **its own
//! backend** for a token (an async closure as [`TokenProvider`]), and the backend mints
//! it with the secret key (for example with [`AdminClient::authorize`]).

use std::time::Duration;

use serde_json::Value;

use crate::admin::{AdminClient, Authorize, Permissions, Scope};
use crate::error::{BoxError, Result};
use crate::token::{TokenFuture, TokenProvider};

/// **Server-side / dev only** (see the [module docs](self)): mints a token for each room
/// with the project's secret key, for one user of your choosing. By default the token
/// allows writing the room it is asked for, for the server's default lifetime.
///
/// ```no_run
/// use serde_json::json;
/// use tandem_sdk::dev::SecretKeyTokenProvider;
/// use tandem_sdk::Client;
///
/// # async fn demo() -> Result<(), tandem_sdk::Error> {
/// let secret_key = std::env::var("TANDEM_SECRET_KEY").unwrap_or_default();
/// let provider = SecretKeyTokenProvider::new("https://tandem.example.com", secret_key, "ada")?
///     .user_info(json!({"name": "Ada", "color": "#f0a"}));
/// let client = Client::builder("https://tandem.example.com")
///     .token_provider(provider)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SecretKeyTokenProvider {
    admin: AdminClient,
    user_id: String,
    user_info: Option<Value>,
    permissions: Option<Permissions>,
    expires_in: Option<Duration>,
}

impl SecretKeyTokenProvider {
    /// A provider minting tokens at the server `base_url` (`https://host[:port]` or
    /// `http://…`) with `secret_key` (`sk_…`) for the user `user_id`. For a server whose
    /// certificate needs a root of your own, build the [`AdminClient`] yourself and use
    /// [`with_admin`](Self::with_admin).
    pub fn new(
        base_url: &str,
        secret_key: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Result<Self> {
        let admin = AdminClient::builder(base_url)
            .secret_key(secret_key)
            .build()?;
        Ok(Self::with_admin(admin, user_id))
    }

    /// A provider minting tokens through `admin` (which holds the secret key) for the
    /// user `user_id`.
    pub fn with_admin(admin: AdminClient, user_id: impl Into<String>) -> Self {
        Self {
            admin,
            user_id: user_id.into(),
            user_info: None,
            permissions: None,
            expires_in: None,
        }
    }

    /// The user info others see with this user's presence (a JSON object, e.g.
    /// `{"name": "Ada", "color": "#f0a"}`).
    pub fn user_info(mut self, info: Value) -> Self {
        self.user_info = Some(info);
        self
    }

    /// Fixed permissions instead of "write the room asked for": room names or
    /// `prefix*` patterns to scopes.
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = Some(permissions);
        self
    }

    /// The tokens' lifetime (whole seconds, at least one).
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    /// What is asked of the server for `room`.
    fn request(&self, room: &str) -> Authorize {
        let mut request = Authorize::new(self.user_id.clone());
        request = match &self.permissions {
            Some(fixed) => request.permissions(fixed.clone()),
            None => request.allow(room, [Scope::Write]),
        };
        if let Some(info) = &self.user_info {
            request = request.user_info(info.clone());
        }
        if let Some(ttl) = self.expires_in {
            request = request.expires_in(ttl);
        }
        request
    }

    /// Mints a token for `room`.
    pub async fn mint(&self, room: &str) -> std::result::Result<String, BoxError> {
        let minted = self.admin.authorize(&self.request(room)).await?;
        Ok(minted.token)
    }
}

impl TokenProvider for SecretKeyTokenProvider {
    fn token<'a>(&'a self, room: &'a str) -> TokenFuture<'a> {
        Box::pin(self.mint(room))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_default_token_writes_the_room_asked_for() {
        let provider = SecretKeyTokenProvider::new("http://127.0.0.1:1", "sk_x", "ada")
            .unwrap()
            .user_info(json!({"name": "Ada"}))
            .expires_in(Duration::from_millis(1500));
        let request = provider.request("team/doc");
        assert_eq!(request.user_id, "ada");
        assert_eq!(
            request.permissions,
            Permissions::from([("team/doc".to_owned(), vec![Scope::Write])])
        );
        assert_eq!(request.user_info, Some(json!({"name": "Ada"})));
        assert_eq!(request.expires_in, Some(Duration::from_millis(1500)));
        let fixed = provider.permissions(Permissions::from([(
            "other-*".to_owned(),
            vec![Scope::Read],
        )]));
        assert_eq!(
            fixed.request("x").permissions,
            Permissions::from([("other-*".to_owned(), vec![Scope::Read])])
        );
        assert!(!format!("{fixed:?}").contains("sk_x"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_provider_error() {
        // Port 1 on localhost refuses connections.
        let provider = SecretKeyTokenProvider::new("http://127.0.0.1:1", "sk_x", "ada").unwrap();
        assert!(provider.token("room").await.is_err());
    }
}
