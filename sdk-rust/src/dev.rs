//! **Server-side and development only.** A token provider that mints tokens itself with
//! the project's *secret key* (`POST /v1/tokens`), for examples, tests, scripts and
//! backend services.
//!
//! Never ship a secret key in an app that runs on users' machines: anyone holding it
//! can mint tokens for every room and user of the project. A real app asks **its own
//! backend** for a token (an async closure as [`TokenProvider`]), and the backend mints
//! it with the secret key.
//!
//! The helper speaks plain HTTP/1.1 over a TCP connection (no TLS), enough for a server
//! on localhost or a private network.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{BoxError, Result};
use crate::token::{TokenFuture, TokenProvider};
use crate::url::BaseUrl;

/// How long the token request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a token response is well under 8 KiB).
const MAX_RESPONSE: u64 = 1 << 20;

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
/// let provider = SecretKeyTokenProvider::new("http://127.0.0.1:8080", secret_key, "ada")?
///     .user_info(json!({"name": "Ada", "color": "#f0a"}));
/// let client = Client::builder("http://127.0.0.1:8080")
///     .token_provider(provider)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SecretKeyTokenProvider {
    base: BaseUrl,
    secret_key: String,
    user_id: String,
    user_info: Option<Value>,
    permissions: Option<Value>,
    expires_in: Option<Duration>,
}

impl std::fmt::Debug for SecretKeyTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeyTokenProvider")
            .field("base", &self.base)
            .field("secret_key", &"<redacted>")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl SecretKeyTokenProvider {
    /// A provider minting tokens at the server `base_url` (`http://host:port`) with
    /// `secret_key` (`sk_…`) for the user `user_id`.
    pub fn new(
        base_url: &str,
        secret_key: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Result<Self> {
        Ok(Self {
            base: BaseUrl::parse(base_url)?,
            secret_key: secret_key.into(),
            user_id: user_id.into(),
            user_info: None,
            permissions: None,
            expires_in: None,
        })
    }

    /// The user info others see with this user's presence (a JSON object, e.g.
    /// `{"name": "Ada", "color": "#f0a"}`).
    pub fn user_info(mut self, info: Value) -> Self {
        self.user_info = Some(info);
        self
    }

    /// Fixed permissions instead of "write the room asked for": an object mapping room
    /// names or `prefix*` patterns to scopes, e.g. `{"team-*": ["room:read"]}`.
    pub fn permissions(mut self, permissions: Value) -> Self {
        self.permissions = Some(permissions);
        self
    }

    /// The tokens' lifetime (whole seconds, at least one).
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    /// The `POST /v1/tokens` body for `room`.
    fn request_body(&self, room: &str) -> Value {
        let permissions = self.permissions.clone().unwrap_or_else(|| {
            let mut map = Map::new();
            map.insert(room.to_owned(), json!(["room:write"]));
            Value::Object(map)
        });
        let mut body = json!({"userId": self.user_id, "permissions": permissions});
        if let Some(info) = &self.user_info {
            body["userInfo"] = info.clone();
        }
        if let Some(ttl) = self.expires_in {
            let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
            body["expiresIn"] = json!(secs.max(1));
        }
        body
    }

    /// Mints a token for `room`.
    pub async fn mint(&self, room: &str) -> std::result::Result<String, BoxError> {
        let body = self.request_body(room).to_string();
        let path = format!("{}/v1/tokens", self.base.prefix());
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.post(&path, &body))
            .await
            .map_err(|_| format!("POST {path} timed out"))??;
        let (status, body) = parse_response(&response)?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != 200 {
            let detail = json
                .get("detail")
                .or_else(|| json.get("title"))
                .and_then(Value::as_str)
                .unwrap_or("no detail");
            return Err(format!("POST {path} answered {status}: {detail}").into());
        }
        json.get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("POST {path}: no token in the response").into())
    }

    async fn post(&self, path: &str, body: &str) -> std::result::Result<Vec<u8>, BoxError> {
        let authority = self.base.authority();
        let address = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        };
        let mut stream = TcpStream::connect(&address).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            key = self.secret_key,
            len = body.len(),
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
        Ok(response)
    }
}

impl TokenProvider for SecretKeyTokenProvider {
    fn token<'a>(&'a self, room: &'a str) -> TokenFuture<'a> {
        Box::pin(self.mint(room))
    }
}

/// Splits an HTTP/1.1 response into its status and (de-chunked) body.
fn parse_response(response: &[u8]) -> std::result::Result<(u16, Vec<u8>), BoxError> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let body = &response[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let chunked = lines.any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or("malformed chunked body")?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_token_writes_the_room_asked_for() {
        let provider = SecretKeyTokenProvider::new("http://127.0.0.1:1", "sk_x", "ada")
            .unwrap()
            .user_info(json!({"name": "Ada"}))
            .expires_in(Duration::from_millis(1500));
        assert_eq!(
            provider.request_body("team/doc"),
            json!({
                "userId": "ada",
                "permissions": {"team/doc": ["room:write"]},
                "userInfo": {"name": "Ada"},
                "expiresIn": 2,
            })
        );
        let fixed = provider.permissions(json!({"other-*": ["room:read"]}));
        assert_eq!(
            fixed.request_body("x")["permissions"],
            json!({"other-*": ["room:read"]})
        );
        assert!(!format!("{fixed:?}").contains("sk_x"));
    }

    #[test]
    fn responses_are_parsed_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"token\":\"t\"}";
        assert_eq!(
            parse_response(plain).unwrap(),
            (200, b"{\"token\":\"t\"}".to_vec())
        );
        let chunked =
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (401, b"{\"a\":1}".to_vec())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"nonsense\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_provider_error() {
        // Port 1 on localhost refuses connections.
        let provider = SecretKeyTokenProvider::new("http://127.0.0.1:1", "sk_x", "ada").unwrap();
        assert!(provider.token("room").await.is_err());
    }
}
