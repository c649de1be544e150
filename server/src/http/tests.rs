//! The app in process (`Router::oneshot`): the committed spec is current, every
//! documented operation is routed, and errors are problem documents with a request id.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::control::clock::SystemClock;
use crate::control::{ControlConfig, ControlPlane};
use crate::rooms::RoomsConfig;
use crate::store::sqlite::SqliteStore;

async fn app(dir: &tempfile::TempDir) -> Router {
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let rooms = Rooms::new(store.clone(), RoomsConfig::default());
    let control = ControlPlane::new(
        store.clone(),
        Arc::new(SystemClock),
        ControlConfig::default(),
    )
    .await
    .unwrap();
    let authorizer = Arc::new(crate::control::tokens::TokenAuthorizer::new(
        control.clone(),
    ));
    build_app(AppState {
        rooms,
        docs: store.clone(),
        usage: store,
        control,
        authorizer,
        key_limits: Arc::default(),
        billing: None,
        ip_limits: None,
    })
}

async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[test]
fn the_committed_spec_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = api::openapi_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -p tandem-server -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let spec: serde_json::Value = serde_json::from_str(&api::openapi_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        // Fill templates with well-formed ids that do not exist.
        let concrete = path
            .replace("{tenantId}", "ten_000000000000000000000000")
            .replace("{projectId}", "prj_000000000000000000000000")
            .replace("{keyId}", "key_000000000000000000000000")
            .replace("{userId}", "usr_000000000000000000000000")
            .replace("{roomId}", "room-1")
            .replace("{sessionId}", "ses_000000000000000000000000")
            .replace("{connectionId}", "1")
            .replace("{room}", "room-1");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let request = Request::builder()
                .method(method.clone())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let (status, _, body) = send(&app, request).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no such route"),
                "{method} {path} is not routed: {text}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
}

#[tokio::test]
async fn errors_are_problem_documents_with_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let cases = [
        (
            Method::GET,
            "/v1/nope",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/rooms",
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            Method::POST,
            "/v1/auth/signup",
            Some(("text/plain", "x")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/auth/signup",
            Some(("application/json", "{\"email\": 1}")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/v1/auth/signup",
            Some((
                "application/json",
                "{\"email\":\"a@example.com\",\"password\":\"short\"}",
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        if let Some((content_type, _)) = body {
            builder = builder.header("content-type", content_type);
        }
        let request = builder
            .body(Body::from(body.map_or("", |(_, b)| b).to_owned()))
            .unwrap();
        let (got, headers, body) = send(&app, request).await;
        assert_eq!(
            got,
            status,
            "{method} {uri}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{method} {uri}"
        );
        assert!(headers.contains_key("x-request-id"), "{method} {uri}");
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], code, "{method} {uri}");
        assert_eq!(problem["status"], status.as_u16());
        assert_eq!(problem["type"], format!("urn:tandem:problem:{code}"));
    }
}

#[tokio::test]
async fn a_bad_key_and_a_missing_session_are_401_with_www_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    for (uri, auth) in [
        ("/v1/rooms", Some("Bearer sk_notakey")),
        (
            "/v1/rooms",
            Some("Bearer pk_000000000000000000000000000000000000"),
        ),
        ("/v1/auth/me", None),
        ("/v1/auth/me", Some("Bearer pat_nope")),
    ] {
        let mut builder = Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        let (status, headers, _) = send(&app, builder.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} {auth:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn keyed_requests_carry_the_ratelimit_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let control = ControlPlane::new(
        store.clone(),
        Arc::new(SystemClock),
        ControlConfig::default(),
    )
    .await
    .unwrap();
    let boot = control.bootstrap_if_empty().await.unwrap().unwrap();
    let key = boot.secret_key.plaintext.expose().to_owned();
    let app = build_app(AppState {
        rooms: Rooms::new(store.clone(), RoomsConfig::default()),
        docs: store.clone(),
        usage: store,
        authorizer: Arc::new(crate::control::tokens::TokenAuthorizer::new(
            control.clone(),
        )),
        control,
        key_limits: Arc::default(),
        billing: None,
        ip_limits: None,
    });
    let request = Request::builder()
        .uri("/v1/rooms")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=600;w=60");
    assert_eq!(headers["ratelimit"], "\"per-key\";r=599;t=1");
}

/// Every state-changing operation a session cookie can authenticate (and signup, login
/// and logout, which set or end it) refuses a cross-site request with 403
/// `cross_site_request` before anything else runs, whether the browser sends Fetch
/// Metadata or only `Origin`; a body-less form post is refused with 415; the same
/// request from the server's own origin, or with a bearer credential, is not refused.
#[tokio::test]
async fn every_state_changing_cookie_route_refuses_cross_site_requests() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let spec: serde_json::Value = serde_json::from_str(&api::openapi_json()).unwrap();
    let cookie = format!("{}={}", extract::SESSION_COOKIE, "a".repeat(43));
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{tenantId}", "ten_000000000000000000000000")
            .replace("{projectId}", "prj_000000000000000000000000")
            .replace("{keyId}", "key_000000000000000000000000")
            .replace("{userId}", "usr_000000000000000000000000")
            .replace("{roomId}", "room-1")
            .replace("{room}", "room-1");
        for (method, operation) in item.as_object().unwrap() {
            if method == "get" {
                continue;
            }
            let security = operation["security"].as_array();
            let by_cookie = security.is_none_or(|s| s.iter().any(|r| r.get("session").is_some()));
            if !by_cookie {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let cases: [&[(&str, &str)]; 4] = [
                &[("sec-fetch-site", "cross-site")],
                &[("sec-fetch-site", "same-site")],
                &[("origin", "https://evil.example")],
                &[("origin", "null")],
            ];
            for headers in cases {
                let mut builder = Request::builder()
                    .method(method.clone())
                    .uri(&concrete)
                    .header("host", "127.0.0.1:8080")
                    .header("cookie", &cookie)
                    .header("content-type", "application/json");
                for (name, value) in headers {
                    builder = builder.header(*name, *value);
                }
                let (status, headers_out, body) =
                    send(&app, builder.body(Body::from("{}")).unwrap()).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} {headers:?}");
                assert_eq!(headers_out["content-type"], "application/problem+json");
                let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(problem["code"], "cross_site_request", "{method} {path}");
            }
            // A body-less form post from a browser that sends neither header.
            let request = Request::builder()
                .method(method.clone())
                .uri(&concrete)
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::empty())
                .unwrap();
            let (status, _, _) = send(&app, request).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} form"
            );
            // The server's own origin is not refused by the guard.
            for same in [
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://127.0.0.1:8080"),
            ] {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(&concrete)
                    .header("host", "127.0.0.1:8080")
                    .header("cookie", &cookie)
                    .header("content-type", "application/json")
                    .header(same.0, same.1)
                    .body(Body::from("{}"))
                    .unwrap();
                let (status, _, body) = send(&app, request).await;
                let problem: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                assert_ne!(problem["code"], "cross_site_request", "{method} {path}");
                assert_ne!(
                    status,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "{method} {path}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} cookie routes checked");
    // A bearer credential is not something a browser attaches on its own.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/tenants/ten_000000000000000000000000/projects")
        .header("authorization", "Bearer pat_nope")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// An app whose login limits are small, behind a trusted proxy at 10.0.0.1, with a
/// bootstrapped account (its email, password and secret key).
async fn proxied_app(dir: &tempfile::TempDir) -> (Router, crate::control::accounts::Bootstrap) {
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let config = ControlConfig {
        login_failures_per_account: 2,
        login_failures_per_ip: 4,
        ..ControlConfig::default()
    };
    let control = ControlPlane::new(store.clone(), Arc::new(SystemClock), config)
        .await
        .unwrap();
    let boot = control.bootstrap_if_empty().await.unwrap().unwrap();
    let app = build_app(AppState {
        rooms: Rooms::new(store.clone(), RoomsConfig::default()),
        docs: store.clone(),
        usage: store,
        authorizer: Arc::new(crate::control::tokens::TokenAuthorizer::new(
            control.clone(),
        )),
        control,
        key_limits: Arc::default(),
        billing: None,
        ip_limits: Some(IpLimits {
            per_minute: 10_000,
            peer: limits::PeerIp::new(vec!["10.0.0.1".parse().unwrap()]),
        }),
    });
    (app, boot)
}

fn login_via_proxy(client: &str, email: &str, password: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-forwarded-for", client)
        .body(Body::from(
            serde_json::json!({"email": email, "password": password}).to_string(),
        ))
        .unwrap();
    let proxy: std::net::SocketAddr = "10.0.0.1:40000".parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(proxy));
    request
}

/// Behind a trusted proxy, login failures count per forwarded client: one client's
/// failures lock that client (with the RateLimit fields every 429 carries), not every
/// client of the proxy.
#[tokio::test]
async fn login_failures_count_per_forwarded_client_and_429_has_ratelimit_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (app, boot) = proxied_app(&dir).await;
    let attacker = "203.0.113.66";
    for i in 0..4 {
        let email = format!("nobody{i}@example.com");
        let (status, _, _) = send(&app, login_via_proxy(attacker, &email, "guess guess")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = send(
        &app,
        login_via_proxy(attacker, "x@example.com", "guess guess"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "too_many_attempts");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(headers["ratelimit-policy"], "\"login-failures\";q=4;w=900");
    let state = headers["ratelimit"].to_str().unwrap();
    assert!(state.starts_with("\"login-failures\";r=0;t="), "{state}");
    // Another client of the same proxy signs in.
    let (status, _, body) = send(
        &app,
        login_via_proxy("198.51.100.7", &boot.email, &boot.password),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

/// A personal access token cannot create personal access tokens; a session can.
#[tokio::test]
async fn a_pat_cannot_create_pats() {
    let dir = tempfile::tempdir().unwrap();
    let (app, boot) = proxied_app(&dir).await;
    let (status, headers, body) = send(
        &app,
        login_via_proxy("198.51.100.7", &boot.email, &boot.password),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let tenant = boot.account.tenant.id.as_str().to_owned();
    let create = |auth: (&'static str, String), body: serde_json::Value| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/tenants/{tenant}/personal-access-tokens"))
            .header("content-type", "application/json")
            .header(auth.0, auth.1)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _, body) = send(
        &app,
        create(
            ("cookie", cookie.clone()),
            serde_json::json!({"name": "ci", "expiresIn": 3600}),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let pat = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = send(
        &app,
        create(
            ("authorization", format!("Bearer {pat}")),
            serde_json::json!({"name": "child"}),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "forbidden");
    // Times past what can be written (year 9999) are refused at the edge.
    for expires_in in [u64::MAX, 400 * 365 * 24 * 3600] {
        let (status, _, body) = send(
            &app,
            create(
                ("cookie", cookie.clone()),
                serde_json::json!({"name": "far", "expiresIn": expires_in}),
            ),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{expires_in}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Usage ranges outside 1970..9999 are a 400, not a failure later on.
#[tokio::test]
async fn usage_times_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (app, boot) = proxied_app(&dir).await;
    let key = boot.secret_key.plaintext.expose().to_owned();
    for (from, to) in [
        ("9999-12-30T00:00:00Z", "9999-12-31T23:00:00Z"),
        ("1969-12-31T00:00:00Z", "1970-01-02T00:00:00Z"),
    ] {
        let request = Request::builder()
            .uri(format!("/v1/usage?from={from}&to={to}&granularity=day"))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&app, request).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{from}..{to}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
