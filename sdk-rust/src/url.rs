//! Server addresses: the base URL the app gives ([`BaseUrl`]), the WebSocket URL of a
//! room built from it (`ws(s)://host[/prefix]/v1/connect/{room}?token=…`) and the REST
//! URLs of the admin client (`http(s)://host[/prefix]/v1/…`).
//!
//! The room name goes into the path the way the stock y-websocket client puts it there
//! (appended as is, so `team/doc-1` stays two segments and both clients reach the same
//! room), except that characters which are not valid in a URL path are percent-encoded
//! (the server decodes them). `%` itself is encoded too, so the server sees exactly the
//! name the app passed; the stock client would send a `%` raw.

use crate::error::{Error, Result};

/// The longest room name the server accepts, in bytes.
pub(crate) const MAX_ROOM_BYTES: usize = 256;

/// A parsed server base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// `https://` or `wss://`: TLS.
    secure: bool,
    /// `host[:port]`.
    authority: String,
    /// A path prefix without a trailing `/` (`""` or e.g. `"/tandem"`).
    prefix: String,
}

impl BaseUrl {
    /// Parses `http(s)://host[:port][/prefix]` (or `ws(s)://`). A trailing `/v1/connect`,
    /// as a y-websocket app would write it, is accepted and dropped.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected http(s)://host[:port] or ws(s)://host[:port]"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return Err(invalid("the scheme must be http, https, ws or wss")),
        };
        if rest.contains(['?', '#']) {
            return Err(invalid("a base URL has no query or fragment"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("the URL contains whitespace or control characters"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid("expected a host (and port), without user info"));
        }
        let mut prefix = path.trim_end_matches('/');
        if let Some(stripped) = prefix.strip_suffix("/v1/connect") {
            prefix = stripped;
        }
        Ok(Self {
            secure,
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// Whether connections use TLS (`https://`, `wss://`).
    pub(crate) fn is_secure(&self) -> bool {
        self.secure
    }

    /// The REST URL of `path` (which starts with `/`, its segments already encoded).
    pub(crate) fn http_url(&self, path: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}{}{path}", self.authority, self.prefix)
    }

    /// The WebSocket URL of `room`, with `token` as the `token` query parameter.
    pub(crate) fn room_url(&self, room: &str, token: Option<&str>) -> String {
        let mut url = format!(
            "{}://{}{}/v1/connect/{}",
            if self.secure { "wss" } else { "ws" },
            self.authority,
            self.prefix,
            encode_path(room)
        );
        if let Some(token) = token {
            url.push_str("?token=");
            url.push_str(&encode_component(token));
        }
        url
    }
}

/// Checks a room name the way the server does: 1 to 256 bytes, no control characters.
pub(crate) fn check_room(room: &str) -> Result<()> {
    if room.is_empty() || room.len() > MAX_ROOM_BYTES || room.chars().any(char::is_control) {
        return Err(Error::InvalidRoom(room.to_owned()));
    }
    Ok(())
}

/// Percent-encodes what is not allowed in a path (RFC 3986 `pchar` plus `/`), and `%`.
fn encode_path(room: &str) -> String {
    encode(room, |b| {
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
    })
}

/// Percent-encodes everything but unreserved characters (for a query value).
pub(crate) fn encode_component(value: &str) -> String {
    encode(value, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn encode(value: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_url(base: &str, room: &str, token: Option<&str>) -> String {
        BaseUrl::parse(base).unwrap().room_url(room, token)
    }

    #[test]
    fn http_and_ws_bases_give_the_same_socket_url() {
        let expected = "ws://127.0.0.1:8080/v1/connect/doc-1?token=abc.def_g-h";
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "ws://127.0.0.1:8080",
            "WS://127.0.0.1:8080",
            "ws://127.0.0.1:8080/v1/connect",
            "ws://127.0.0.1:8080/v1/connect/",
        ] {
            assert_eq!(
                room_url(base, "doc-1", Some("abc.def_g-h")),
                expected,
                "{base}"
            );
        }
        assert_eq!(
            room_url("http://example.test/tandem/", "a", None),
            "ws://example.test/tandem/v1/connect/a"
        );
    }

    #[test]
    fn rooms_go_into_the_path_like_the_stock_client_but_escaped_where_needed() {
        // What the stock client appends as is, we do too.
        assert_eq!(
            room_url("http://h", "team/doc-1:v2@x", None),
            "ws://h/v1/connect/team/doc-1:v2@x"
        );
        // What would end the path or is not allowed in it is encoded (the server decodes).
        assert_eq!(
            room_url("http://h", "a b?c#d%e", None),
            "ws://h/v1/connect/a%20b%3Fc%23d%25e"
        );
        assert_eq!(
            room_url("http://h", "café", None),
            "ws://h/v1/connect/caf%C3%A9"
        );
    }

    #[test]
    fn tokens_are_encoded_as_a_query_value() {
        assert!(room_url("http://h", "r", Some("a+b/c=&d")).ends_with("?token=a%2Bb%2Fc%3D%26d"));
    }

    #[test]
    fn bad_bases_are_refused_with_a_reason() {
        for base in [
            "127.0.0.1:8080",
            "ftp://h",
            "http://",
            "http:///path",
            "http://user@h",
            "http://h/?x=1",
            "http://h/#top",
            "http://h /x",
        ] {
            assert!(
                matches!(BaseUrl::parse(base), Err(Error::InvalidUrl { .. })),
                "{base}"
            );
        }
    }

    #[test]
    fn https_and_wss_bases_give_tls_urls() {
        for base in [
            "https://h:8443",
            "wss://h:8443/v1/connect",
            "HTTPS://h:8443/",
        ] {
            let url = BaseUrl::parse(base).unwrap();
            assert!(url.is_secure(), "{base}");
            assert_eq!(url.room_url("a", None), "wss://h:8443/v1/connect/a");
            assert_eq!(url.http_url("/v1/rooms"), "https://h:8443/v1/rooms");
        }
        let plain = BaseUrl::parse("http://h/tandem").unwrap();
        assert!(!plain.is_secure());
        assert_eq!(plain.http_url("/v1/tokens"), "http://h/tandem/v1/tokens");
    }

    #[test]
    fn room_names_follow_the_server_rules() {
        assert!(check_room("a").is_ok());
        assert!(check_room("team/doc-1").is_ok());
        assert!(check_room(&"x".repeat(MAX_ROOM_BYTES)).is_ok());
        assert!(check_room("").is_err());
        assert!(check_room("a\nb").is_err());
        assert!(check_room(&"x".repeat(MAX_ROOM_BYTES + 1)).is_err());
    }
}
