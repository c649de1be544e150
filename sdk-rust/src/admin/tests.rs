//! The admin client's own tests: its types against the committed OpenAPI spec, problem
//! documents and `Retry-After`, and the 429 retry's bounds against a stub server that
//! refuses every request (the real server is exercised in `tests/e2e/sdk_admin.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::http::{api_error, parse_retry_after};
use super::*;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A schema's properties and required names, with `allOf` parts merged.
fn properties(spec: &Value, name: &str) -> (Vec<String>, Vec<String>) {
    let schema = &spec["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name} in the spec");
    let mut props = Vec::new();
    let mut required = Vec::new();
    let parts: Vec<Value> = match schema.get("allOf") {
        Some(Value::Array(parts)) => parts.clone(),
        _ => vec![schema.clone()],
    };
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let referenced = reference.rsplit('/').next().unwrap();
                spec["components"]["schemas"][referenced].clone()
            }
            None => part,
        };
        if let Some(map) = part["properties"].as_object() {
            props.extend(map.keys().cloned());
        }
        if let Some(list) = part["required"].as_array() {
            required.extend(list.iter().map(|v| v.as_str().unwrap().to_owned()));
        }
    }
    props.sort();
    required.sort();
    (props, required)
}

/// Checks that `T`'s fields are the schema's properties, and that exactly the
/// `Option` ones (serialized as `null` by default) are not required.
fn matches_schema<T: Serialize + Default>(spec: &Value, name: &str) {
    let sample = serde_json::to_value(T::default()).unwrap();
    let object = sample.as_object().unwrap();
    let mut fields: Vec<String> = object.keys().cloned().collect();
    fields.sort();
    let (props, required) = properties(spec, name);
    assert_eq!(fields, props, "fields of {name}");
    let mut ours: Vec<String> = object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    ours.sort();
    assert_eq!(ours, required, "required fields of {name}");
}

fn enum_values(spec: &Value, name: &str) -> Vec<String> {
    let mut values: Vec<String> = spec["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum {name}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    values.sort();
    values
}

fn serialized<T: Serialize>(values: &[T]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_types_match_the_committed_openapi_spec() {
    let spec = spec();
    matches_schema::<Problem>(&spec, "Problem");
    matches_schema::<Authorization>(&spec, "CreatedToken");
    matches_schema::<Room>(&spec, "Room");
    matches_schema::<RoomPage>(&spec, "RoomPage");
    matches_schema::<ActiveUser>(&spec, "ActiveUser");
    matches_schema::<PresenceState>(&spec, "PresenceState");
    matches_schema::<Broadcasted>(&spec, "Broadcasted");
    matches_schema::<ApiKey>(&spec, "ApiKey");
    matches_schema::<CreatedApiKey>(&spec, "CreatedApiKey");
    matches_schema::<RolledKey>(&spec, "RolledKey");
    matches_schema::<UsageTotals>(&spec, "UsageTotals");
    matches_schema::<RoomUsage>(&spec, "RoomUsage");
    matches_schema::<UsageBucket>(&spec, "UsageBucket");
    matches_schema::<MonthlyActiveUsers>(&spec, "MonthlyActiveUsers");
    matches_schema::<ProjectUsage>(&spec, "ProjectUsage");
    matches_schema::<TotalsBucket>(&spec, "TotalsBucket");
    matches_schema::<TenantProjectUsage>(&spec, "TenantProjectUsage");
    matches_schema::<TenantUsage>(&spec, "TenantUsage");
    matches_schema::<AuditEntry>(&spec, "AuditEntry");
    matches_schema::<AuditPage>(&spec, "AuditPage");
    matches_schema::<Tenant>(&spec, "Tenant");
    matches_schema::<Project>(&spec, "Project");
    matches_schema::<User>(&spec, "User");
    matches_schema::<Me>(&spec, "Me");
    assert_eq!(
        serialized(&[
            Scope::Read,
            Scope::Write,
            Scope::PresenceWrite,
            Scope::Admin
        ]),
        enum_values(&spec, "ScopeView")
    );
    assert_eq!(
        serialized(&[
            KeyKind::Secret,
            KeyKind::Publishable,
            KeyKind::PersonalAccessToken
        ]),
        enum_values(&spec, "KeyKindView")
    );
    assert_eq!(
        serialized(&[Role::Owner, Role::Admin, Role::Member]),
        enum_values(&spec, "RoleView")
    );
    assert_eq!(
        serialized(&[Granularity::Hour, Granularity::Day]),
        enum_values(&spec, "GranularityView")
    );
    // The token request: what `authorize` sends is what the spec accepts.
    let (props, _) = properties(&spec, "CreateToken");
    assert_eq!(props, ["expiresIn", "permissions", "userId", "userInfo"]);
}

#[test]
fn authorize_sends_whole_seconds_and_only_what_was_given() {
    let options = Authorize::new("ada")
        .allow("doc", [Scope::Write])
        .allow("doc", [Scope::PresenceWrite])
        .expires_in(Duration::from_millis(1500));
    let body = CreateToken {
        user_id: &options.user_id,
        permissions: &options.permissions,
        user_info: None,
        expires_in: Some(2),
    };
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"userId": "ada", "permissions": {"doc": ["room:write", "room:presence:write"]}, "expiresIn": 2})
    );
    assert_eq!(options.expires_in, Some(Duration::from_millis(1500)));
}

#[test]
fn problem_documents_become_typed_errors() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("7"));
    headers.insert("x-request-id", HeaderValue::from_static("req-1"));
    let body = json!({
        "type": "urn:tandem:problem:rate_limited", "title": "Too many requests",
        "status": 429, "detail": "slow down", "code": "rate_limited"
    })
    .to_string();
    let error = api_error(
        "GET /v1/rooms",
        StatusCode::TOO_MANY_REQUESTS,
        &headers,
        &body,
        SystemTime::now(),
    );
    assert_eq!(error.status, 429);
    assert_eq!(error.code, "rate_limited");
    assert_eq!(error.detail, "slow down");
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(error.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        error.problem.as_ref().map(|p| p.kind.as_str()),
        Some("urn:tandem:problem:rate_limited")
    );
    assert_eq!(
        error.to_string(),
        "GET /v1/rooms: rate_limited (429): slow down"
    );
    let wrapped = Error::Api(Box::new(error));
    assert_eq!(wrapped.code(), "rate_limited");
    assert_eq!(wrapped.status(), Some(429));
    assert_eq!(wrapped.retry_after(), Some(Duration::from_secs(7)));
    assert!(!wrapped.is_fatal());

    // Not a problem document (a proxy's page): described by the status.
    let proxy = api_error(
        "GET /v1/rooms",
        StatusCode::BAD_GATEWAY,
        &HeaderMap::new(),
        "<html>bad gateway</html>",
        SystemTime::now(),
    );
    assert_eq!(proxy.code, "http_502");
    assert_eq!(proxy.detail, "<html>bad gateway</html>");
    assert_eq!(proxy.problem, None);
    assert_eq!(proxy.retry_after, None);
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-1", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

/// A server answering every request with a 429 (`Retry-After: {retry_after}`); counts
/// requests.
async fn always_429(retry_after: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // Read the request head (these requests have no body).
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"type":"urn:tandem:problem:rate_limited","title":"Too many requests","status":429,"detail":"slow down","code":"rate_limited"}"#;
                let response = format!(
                    "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/problem+json\r\n\
                     retry-after: {retry_after}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, count)
}

#[tokio::test]
async fn without_the_opt_in_a_429_is_returned_at_once() {
    let (base, requests) = always_429("0").await;
    let admin = AdminClient::builder(&base)
        .secret_key("sk_x")
        .build()
        .unwrap();
    let error = admin.rooms().get("x").await.unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.code(), "rate_limited");
    assert_eq!(error.retry_after(), Some(Duration::ZERO));
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_retry_gives_up_after_max_attempts() {
    let (base, requests) = always_429("0").await;
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = waits.clone();
    let policy = RetryOn429 {
        max_attempts: 3,
        ..RetryOn429::default()
    }
    .on_retry(move |info| seen.lock().unwrap().push((info.attempt, info.delay)));
    let admin = AdminClient::builder(&base)
        .secret_key("sk_x")
        .retry_on_429(policy)
        .build()
        .unwrap();
    let error = admin.rooms().get("x").await.unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        *waits.lock().unwrap(),
        [(1, Duration::ZERO), (2, Duration::ZERO)]
    );
}

#[tokio::test]
async fn the_retry_does_not_wait_longer_than_max_delay() {
    let (base, requests) = always_429("3600").await;
    let waits = Arc::new(AtomicUsize::new(0));
    let seen = waits.clone();
    let policy = RetryOn429 {
        max_delay: Duration::from_secs(5),
        ..RetryOn429::default()
    }
    .on_retry(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let admin = AdminClient::builder(&base)
        .secret_key("sk_x")
        .retry_on_429(policy)
        .build()
        .unwrap();
    let error = admin.keys().list().await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(waits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    // Port 1 on localhost refuses connections.
    let admin = AdminClient::builder("http://127.0.0.1:1")
        .secret_key("sk_x")
        .build()
        .unwrap();
    let error = admin.rooms().get("x").await.unwrap_err();
    assert!(matches!(error, Error::Connection { .. }), "{error:?}");
    assert_eq!(error.status(), None);
    assert!(error.to_string().contains("GET /v1/rooms/x"), "{error}");
}

#[test]
fn a_credential_and_a_usable_url_are_needed() {
    assert!(matches!(
        AdminClient::builder("http://h").build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        AdminClient::builder("h:80").secret_key("sk_x").build(),
        Err(Error::InvalidUrl { .. })
    ));
    let admin = AdminClient::builder("https://h")
        .pat("pat_x")
        .build()
        .unwrap();
    assert!(!format!("{admin:?}").contains("pat_x"));
}
