//! Keeps credentials out of the logs. Client tokens travel in `?token=` (browsers cannot
//! set headers on a WebSocket), so a request span that records the URI would log every
//! JWT at `tower_http=debug`. Two layers: the request span records the URI with credential
//! query values replaced ([`RedactedSpan`]), and every log line is scrubbed on its way
//! out ([`RedactingStderr`]) of anything shaped like a JWT, an API key, a bearer
//! credential or a `token=` value, whoever logged it.

use std::borrow::Cow;
use std::io::{self, Write};

use axum::http::{Request, Uri};
use tower_http::trace::MakeSpan;
use tracing::Span;

/// What a removed credential is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Query parameters whose values are credentials.
const SECRET_PARAMS: [&str; 4] = ["token", "access_token", "key", "api_key"];
/// API key prefixes (`control::apikey`): followed by 30+ base62 characters.
const KEY_PREFIXES: [&str; 3] = ["sk_", "pk_", "pat_"];
/// Shortest run after a key prefix that is treated as a key (real keys are longer).
const MIN_KEY_CHARS: usize = 20;

/// `uri` with the values of credential query parameters replaced by [`REDACTED`].
pub fn redact_uri(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p)) => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
}

/// The TraceLayer's request span: method, redacted URI, version; never headers (they
/// carry `Authorization` and the session cookie).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedSpan;

impl<B> MakeSpan<B> for RedactedSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        // tower-http's own target, so `RUST_LOG=tower_http=debug` shows it as before.
        tracing::span!(
            target: "tower_http::trace::make_span",
            tracing::Level::DEBUG,
            "request",
            method = %request.method(),
            uri = %redact_uri(request.uri()),
            version = ?request.version(),
        )
    }
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// `line` with every JWT-shaped string (`eyJ…` base64url segments joined by dots), API
/// key (`sk_`/`pk_`/`pat_` and 20+ alphanumerics), `Bearer …` credential and
/// `token=…` value replaced by [`REDACTED`]. Borrowed when there is nothing to remove.
pub fn scrub(line: &str) -> Cow<'_, str> {
    let bytes = line.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_b64url(bytes[i - 1]);
        let rest = &bytes[i..];
        // The end of the secret starting at `i`, and where its value starts (what is
        // kept before it, like `token=`).
        let mut found: Option<(usize, usize)> = None;
        if boundary && rest.starts_with(b"eyJ") {
            let end = i + rest
                .iter()
                .take_while(|&&c| is_b64url(c) || c == b'.')
                .count();
            if line[i..end].contains('.') {
                found = Some((i, end));
            }
        }
        if found.is_none() && boundary {
            for prefix in KEY_PREFIXES {
                if rest.starts_with(prefix.as_bytes()) {
                    let run = rest[prefix.len()..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .count();
                    if run >= MIN_KEY_CHARS {
                        found = Some((i, i + prefix.len() + run));
                    }
                }
            }
        }
        if found.is_none() {
            for marker in ["token=", "Bearer "] {
                if rest.len() > marker.len()
                    && rest[..marker.len()].eq_ignore_ascii_case(marker.as_bytes())
                {
                    let start = i + marker.len();
                    let run = bytes[start..]
                        .iter()
                        .take_while(|&&c| {
                            !matches!(c, b'&' | b'"' | b'\'' | b',' | b'\\')
                                && !c.is_ascii_whitespace()
                        })
                        .count();
                    if run > 0 && &line[start..start + run] != REDACTED {
                        found = Some((start, start + run));
                    }
                }
            }
        }
        match found {
            Some((start, end)) => {
                let buf = out.get_or_insert_with(|| String::with_capacity(line.len()));
                buf.push_str(&line[copied..start]);
                buf.push_str(REDACTED);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(line),
        Some(mut buf) => {
            buf.push_str(&line[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// A `tracing_subscriber` writer to stderr that [`scrub`]s what it writes. The fmt layer
/// writes each event with one `write_all`, so a credential is never split across calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl_-x";

    #[test]
    fn credential_query_values_are_removed_from_uris() {
        let uri: Uri = format!("/v1/rooms/doc/ws?x=1&token={JWT}&TOKEN=a&keep=token")
            .parse()
            .unwrap();
        let shown = redact_uri(&uri);
        assert_eq!(
            shown,
            "/v1/rooms/doc/ws?x=1&token=[redacted]&TOKEN=[redacted]&keep=token"
        );
        let plain: Uri = "/health".parse().unwrap();
        assert_eq!(redact_uri(&plain), "/health");
    }

    #[test]
    fn scrub_removes_jwts_keys_bearers_and_token_values() {
        let key = format!("sk_{}", "A1b2".repeat(8));
        let line = format!(
            "uri=/ws?token={JWT} auth=\"Bearer {key}\" raw {JWT}, pat_{} sk_short token=abc&x",
            "z".repeat(30)
        );
        let scrubbed = scrub(&line);
        assert!(!scrubbed.contains(JWT), "{scrubbed}");
        assert!(!scrubbed.contains(&key), "{scrubbed}");
        assert!(!scrubbed.contains("zzzzzzzzzz"), "{scrubbed}");
        assert!(!scrubbed.contains("token=abc"), "{scrubbed}");
        // Short lookalikes and ordinary words stay.
        assert!(scrubbed.contains("sk_short"), "{scrubbed}");
        assert!(scrubbed.contains("uri=/ws?token=[redacted]"), "{scrubbed}");
        assert!(matches!(
            scrub("listening on 127.0.0.1:80, eyJ alone"),
            Cow::Borrowed(_)
        ));
        // Idempotent.
        assert_eq!(scrub(&scrubbed), scrubbed);
    }
}
