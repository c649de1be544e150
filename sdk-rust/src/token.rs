//! Where rooms get their tokens: the [`TokenProvider`] trait, implemented for async
//! closures, and [`StaticToken`] for a token the app already holds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::BoxError;

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + 'a>>;

/// Gets client tokens for rooms. A room calls it before its first connection, and again
/// whenever the server says its token is no longer good (close 4401: expired, revoked,
/// invalid) — the app does nothing to refresh tokens.
///
/// Tokens are minted by **your backend** with the project's secret key
/// (`POST /v1/tokens`), which must never ship in a client; the provider asks your backend
/// for one, usually over HTTP with the user's own session. Any async closure taking the
/// room name is a provider:
///
/// ```no_run
/// # async fn fetch_token_from_my_backend(room: &str) -> Result<String, std::io::Error> {
/// #     Ok(String::new())
/// # }
/// # async fn demo() -> Result<(), tandem_sdk::Error> {
/// let client = tandem_sdk::Client::builder("http://127.0.0.1:8080")
///     .token_provider(|room: String| async move { fetch_token_from_my_backend(&room).await })
///     .build()?;
/// # Ok(()) }
/// ```
///
/// A provider error is reported as [`Error::TokenProvider`](crate::Error::TokenProvider)
/// and the room retries later (with backoff), calling the provider again. If tokens come
/// back and the server refuses three in a row, the room stops with
/// [`Error::Unauthorized`](crate::Error::Unauthorized).
pub trait TokenProvider: Send + Sync + 'static {
    /// A token that lets this client into `room`.
    fn token<'a>(&'a self, room: &'a str) -> TokenFuture<'a>;
}

impl<F, Fut, E> TokenProvider for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn token<'a>(&'a self, room: &'a str) -> TokenFuture<'a> {
        let future = self(room.to_owned());
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

/// A provider that always returns the same token: for scripts and tools handed a token
/// by other means. A room that outlives the token stops with
/// [`Error::Unauthorized`](crate::Error::Unauthorized), since the provider cannot renew it.
///
/// ```no_run
/// use tandem_sdk::{Client, StaticToken};
///
/// # fn demo() -> Result<(), tandem_sdk::Error> {
/// let token = std::env::var("TANDEM_TOKEN").unwrap_or_default();
/// let client = Client::builder("http://127.0.0.1:8080")
///     .token_provider(StaticToken::new(token))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// A provider returning `token` for every room.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl TokenProvider for StaticToken {
    fn token<'a>(&'a self, _room: &'a str) -> TokenFuture<'a> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closures_and_static_tokens_are_providers() {
        let closure = |room: String| async move {
            if room == "bad" {
                Err("no token for you")
            } else {
                Ok(format!("token-for-{room}"))
            }
        };
        assert_eq!(closure.token("a").await.unwrap(), "token-for-a");
        let err = closure.token("bad").await.unwrap_err();
        assert_eq!(err.to_string(), "no token for you");

        let fixed = StaticToken::new("t0k3n");
        assert_eq!(fixed.token("any").await.unwrap(), "t0k3n");
        assert!(!format!("{fixed:?}").contains("t0k3n"));
    }
}
