//! A small HTTP/1.1 client on a raw `TcpStream` (one request per connection,
//! `Connection: close`), so the tests see exactly what the server sends. Every response
//! to a route the served OpenAPI spec documents is checked against it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Server;

/// A response, read to the end.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (showing the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics with the body unless the status is `status`; returns `self` for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }
}

/// The credential a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Cred<'a> {
    None,
    /// `Authorization: Bearer …` (a secret key, publishable key or PAT).
    Bearer(&'a str),
    /// `Cookie: …` (a `tandem_session=…` pair).
    Cookie(&'a str),
}

impl Server {
    /// Sends one request and reads the whole response (30 s deadline). On a strict
    /// server, responses to routes the served spec documents are checked against it.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> HttpResponse {
        let response = self.request_unchecked(method, path, headers, body).await;
        if self.check_spec {
            let spec = self.spec().await;
            check(&spec, method, path, &response);
        }
        response
    }

    /// [`Server::request`] without the spec check.
    pub async fn request_unchecked(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> HttpResponse {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                head.push_str(&format!("Content-Type: {content_type}\r\n"));
                bytes
            }
            None => Vec::new(),
        };
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let exchange = async {
            let mut stream = TcpStream::connect(&self.addr).await?;
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no complete response within 30 s"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        parse_response(&raw).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: unreadable response ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        })
    }

    /// A request with a credential and an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        cred: Cred<'_>,
        json: Option<serde_json::Value>,
    ) -> HttpResponse {
        let auth;
        let mut headers = Vec::new();
        match cred {
            Cred::None => {}
            Cred::Bearer(token) => {
                auth = format!("Bearer {token}");
                headers.push(("Authorization", auth.as_str()));
            }
            Cred::Cookie(cookie) => headers.push(("Cookie", cookie)),
        }
        let body = json.map(|j| ("application/json", serde_json::to_vec(&j).unwrap()));
        self.request(method, path, &headers, body).await
    }

    /// The spec `/openapi.json` serves (fetched once, kept across restarts).
    pub async fn spec(&self) -> Arc<serde_json::Value> {
        if let Some(spec) = self.spec.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return spec;
        }
        let response = self
            .request_unchecked("GET", "/openapi.json", &[], None)
            .await
            .expect(200);
        let spec = Arc::new(response.json());
        *self.spec.lock().unwrap_or_else(|e| e.into_inner()) = Some(spec.clone());
        spec
    }
}

/// Checks `response` against the operation of `spec` that `method` and `path` name, if
/// the spec documents one (other paths — `/readyz`, `/docs`, unknown routes — are not
/// the spec's business).
fn check(spec: &serde_json::Value, method: &str, path: &str, response: &HttpResponse) {
    let path = path.split('?').next().unwrap_or(path);
    let documented = crate::openapi_check::operations(spec)
        .iter()
        .any(|(m, template)| m.eq_ignore_ascii_case(method) && template_matches(template, path));
    if !documented {
        return;
    }
    if let Err(problem) = crate::openapi_check::check_response(
        spec,
        method,
        path,
        response.status,
        response.header("content-type"),
        &response.body,
    ) {
        panic!(
            "{method} {path} -> {}: response does not match the OpenAPI spec: {problem}\nbody: {}",
            response.status,
            response.text()
        );
    }
}

/// Whether `path` fits an OpenAPI path template (`{name}` is one non-empty segment).
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        rest.get(..len)
            .ok_or("body shorter than content-length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_sized_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("x-a"), Some("b"));
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(raw).unwrap().body, b"{}");
        assert!(template_matches("/v1/rooms/{roomId}", "/v1/rooms/a%2Fb"));
        assert!(!template_matches("/v1/rooms/{roomId}", "/v1/rooms/a/b"));
    }

    /// The automatic check has teeth: a wrong body or an undocumented status of a
    /// documented route panics.
    #[test]
    fn the_spec_check_refuses_wrong_responses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let response = |status, body: &str| HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        };
        check(
            &spec,
            "GET",
            "/v1/rooms?limit=1",
            &response(200, r#"{"data":[]}"#),
        );
        for wrong in [response(200, r#"{"data":"nope"}"#), response(418, "{}")] {
            let caught = std::panic::catch_unwind(|| check(&spec, "GET", "/v1/rooms", &wrong));
            assert!(caught.is_err(), "{} {} passed", wrong.status, wrong.text());
        }
    }
}
