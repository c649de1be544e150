//! The control plane end to end, against the real binary without `--allow-anonymous`:
//! the whole path from signup to a stock y-websocket client editing, accounts
//! (argon2id, login throttling, logout), and the OpenAPI spec and its docs page. Tokens,
//! keys, isolation and the rooms REST API have their own files (`control_*.rs`).
//!
//! Every REST response these tests receive is checked against the served OpenAPI spec
//! by the harness ([`Server::request`]).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;

use crate::harness::{enc, eventually, Cred, Driver, Server};

/// A read-only connection to the server's SQLite database (WAL readers are fine while
/// it runs).
pub async fn open_db(server: &Server) -> sqlx::SqliteConnection {
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data_dir.join("tandem.db").display()
    );
    <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("open tandem.db")
}

/// The JSON document of a room as the REST API returns it (`None` on 404).
pub async fn document(server: &Server, secret_key: &str, room: &str) -> Option<Value> {
    let r = server
        .call(
            "GET",
            &format!("/v1/rooms/{}/document", enc(room)),
            Cred::Bearer(secret_key),
            None,
        )
        .await;
    match r.status {
        200 => Some(r.json()),
        404 => None,
        other => panic!("GET document of {room}: {other} {}", r.text()),
    }
}

/// The whole path over HTTP: signup → login → create a project → create a secret key
/// → mint a token → a stock y-websocket client connects with `params: { token }` and
/// edits; the edit is visible through REST and to a second stock client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_path_from_signup_to_a_stock_client_editing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);

    let signed_up = server.signup().await;
    // A fresh login, separate from signup's session: that is the cookie we use.
    let cookie = server
        .login_cookie(&signed_up.email, &signed_up.password)
        .await;
    let account = crate::harness::Account {
        cookie,
        ..signed_up
    };
    let me = server
        .call("GET", "/v1/auth/me", Cred::Cookie(&account.cookie), None)
        .await
        .expect(200)
        .json();
    assert_eq!(me["user"]["email"], account.email.as_str());
    assert_eq!(me["tenants"][0]["id"], account.tenant_id.as_str());
    assert_eq!(me["tenants"][0]["role"], "owner");

    let project_id = server.create_project(&account, "production").await;
    assert!(project_id.starts_with("prj_"), "{project_id}");
    assert_ne!(project_id, account.project_id);
    let key = server.create_secret_key(&account, &project_id).await;
    assert!(key.key.starts_with("sk_"), "{}", key.key);

    let minted = server
        .mint(
            &key.key,
            json!({
                "userId": "ada",
                "userInfo": {"name": "Ada", "color": "#f0a"},
                "permissions": {"notes/*": ["room:write"]},
                "expiresIn": 600,
            }),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(minted["projectId"], project_id.as_str());
    let token = minted["token"].as_str().unwrap().to_owned();

    let room = "notes/plan-1";
    let mut ada = Driver::start(&server.ws_base(), room, Some(&token)).await;
    ada.ok(json!({"cmd": "wait_synced"})).await;
    ada.ok(json!({"cmd": "text_insert", "index": 0, "text": "hello from a stock client"}))
        .await;
    ada.ok(json!({"cmd": "map_set", "key": "status", "value": "draft"}))
        .await;

    let expected = json!({"text": "hello from a stock client", "map": {"status": "draft"}});
    let (s, k, e) = (&server, key.key.as_str(), &expected);
    eventually(
        "the edit is visible through REST",
        Duration::from_secs(10),
        || async move { document(s, k, room).await.as_ref() == Some(e) },
    )
    .await;

    // A second stock client, read-only, receives it.
    let reader_token = server
        .token(&key.key, "grace", json!({room: ["room:read"]}), None)
        .await;
    let mut grace = Driver::start(&server.ws_base(), room, Some(&reader_token)).await;
    grace
        .ok(json!({"cmd": "wait_text", "equals": "hello from a stock client"}))
        .await;
    grace.ok(json!({"cmd": "wait_map_size", "size": 1})).await;

    // The room is listed in the new project, not in signup's first one.
    let first_key = server
        .create_secret_key(&account, &account.project_id)
        .await;
    let listed = |k: &str| {
        let k = k.to_owned();
        let s = &server;
        async move {
            s.call("GET", "/v1/rooms", Cred::Bearer(&k), None)
                .await
                .expect(200)
                .json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(&key.key).await, vec![room.to_owned()]);
    assert!(listed(&first_key.key).await.is_empty());
}

/// Passwords are stored as argon2id with OWASP's parameters; after the per-account
/// limit of failed logins, logins to that account get 429 with Retry-After (even with
/// the right password), while other accounts are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_argon2id_and_repeated_failures_get_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let account = server.signup().await;

    let mut db = open_db(&server).await;
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE email = ?")
        .bind(&account.email)
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "stored hash: {hash}"
    );
    assert!(!hash.contains(&account.password));

    // The default limit: 5 failures per (account, address) in the window.
    for attempt in 1..=5 {
        let r = server.login(&account.email, "wrong password!").await;
        assert_eq!(r.status, 401, "attempt {attempt}: {}", r.text());
        assert_eq!(r.json()["code"], "unauthenticated");
    }
    for password in ["wrong password!", account.password.as_str()] {
        let r = server.login(&account.email, password).await.expect(429);
        assert_eq!(r.json()["code"], "too_many_attempts");
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=900).contains(&retry), "Retry-After {retry}");
    }

    let other = server.signup().await;
    server
        .login(&other.email, &other.password)
        .await
        .expect(200);
}

/// Logout ends the session on the server: a copy of the cookie taken before logout
/// (a stolen session id) is refused afterwards; other sessions of the user live on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_invalidates_the_session_server_side() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let account = server.signup().await;
    let session = server.login_cookie(&account.email, &account.password).await;
    let stolen = session.clone();
    let other_session = server.login_cookie(&account.email, &account.password).await;
    let tenant = format!("/v1/tenants/{}", account.tenant_id);

    for cookie in [&session, &stolen] {
        server
            .call("GET", "/v1/auth/me", Cred::Cookie(cookie), None)
            .await
            .expect(200);
    }
    let out = server
        .call("POST", "/v1/auth/logout", Cred::Cookie(&session), None)
        .await
        .expect(204);
    let cleared = out.header("set-cookie").expect("logout clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let r = server
        .call("GET", "/v1/auth/me", Cred::Cookie(&stolen), None)
        .await
        .expect(401);
    assert_eq!(r.json()["code"], "unauthenticated");
    server
        .call("GET", &tenant, Cred::Cookie(&stolen), None)
        .await
        .expect(401);
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&other_session), None)
        .await
        .expect(200);
    server
        .call("GET", &tenant, Cred::Cookie(&other_session), None)
        .await
        .expect(200);
}

/// Every `/v1` REST route the server has (read from the routers).
const V1_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/auth/signup"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/auth/me"),
    ("GET", "/v1/tenants/{tenantId}"),
    ("GET", "/v1/tenants/{tenantId}/projects"),
    ("POST", "/v1/tenants/{tenantId}/projects"),
    ("GET", "/v1/tenants/{tenantId}/projects/{projectId}"),
    ("PATCH", "/v1/tenants/{tenantId}/projects/{projectId}"),
    ("DELETE", "/v1/tenants/{tenantId}/projects/{projectId}"),
    ("GET", "/v1/tenants/{tenantId}/projects/{projectId}/keys"),
    ("POST", "/v1/tenants/{tenantId}/projects/{projectId}/keys"),
    (
        "POST",
        "/v1/tenants/{tenantId}/projects/{projectId}/keys/{keyId}/revoke",
    ),
    (
        "POST",
        "/v1/tenants/{tenantId}/projects/{projectId}/keys/{keyId}/roll",
    ),
    ("GET", "/v1/tenants/{tenantId}/members"),
    ("GET", "/v1/tenants/{tenantId}/invitations"),
    ("POST", "/v1/tenants/{tenantId}/invitations"),
    (
        "POST",
        "/v1/tenants/{tenantId}/invitations/{invitationId}/revoke",
    ),
    ("POST", "/v1/invitations/accept"),
    ("POST", "/v1/tenants/{tenantId}/leave"),
    ("GET", "/v1/me/security-log"),
    ("GET", "/v1/me/sessions"),
    ("DELETE", "/v1/me/sessions"),
    ("DELETE", "/v1/me/sessions/{sessionId}"),
    ("PATCH", "/v1/tenants/{tenantId}/members/{userId}"),
    ("DELETE", "/v1/tenants/{tenantId}/members/{userId}"),
    ("GET", "/v1/tenants/{tenantId}/personal-access-tokens"),
    ("POST", "/v1/tenants/{tenantId}/personal-access-tokens"),
    (
        "DELETE",
        "/v1/tenants/{tenantId}/personal-access-tokens/{keyId}",
    ),
    ("GET", "/v1/tenants/{tenantId}/audit-log"),
    ("GET", "/v1/tenants/{tenantId}/usage"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/keys/{keyId}/revoke"),
    ("POST", "/v1/keys/{keyId}/roll"),
    ("POST", "/v1/tokens"),
    ("GET", "/v1/rooms"),
    ("GET", "/v1/rooms/{roomId}"),
    ("DELETE", "/v1/rooms/{roomId}"),
    ("PATCH", "/v1/rooms/{roomId}"),
    ("DELETE", "/v1/rooms/{roomId}/connections/{connectionId}"),
    ("GET", "/v1/rooms/{roomId}/document"),
    ("GET", "/v1/rooms/{roomId}/document/update"),
    ("POST", "/v1/rooms/{roomId}/document/update"),
    ("GET", "/v1/rooms/{roomId}/users"),
    ("GET", "/v1/rooms/{roomId}/versions"),
    ("POST", "/v1/rooms/{roomId}/versions"),
    ("GET", "/v1/rooms/{roomId}/diff"),
    ("POST", "/v1/rooms/{roomId}/restore"),
    ("POST", "/v1/rooms/{roomId}/fork"),
    ("POST", "/v1/tenants/{tenantId}/billing/checkout"),
    ("POST", "/v1/tenants/{tenantId}/billing/portal"),
    ("POST", "/v1/billing/stripe/webhook"),
    ("POST", "/v1/rooms/{roomId}/events"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{webhookId}"),
    ("PATCH", "/v1/webhooks/{webhookId}"),
    ("DELETE", "/v1/webhooks/{webhookId}"),
    ("POST", "/v1/webhooks/{webhookId}/roll-secret"),
    ("GET", "/v1/webhooks/{webhookId}/deliveries"),
    (
        "POST",
        "/v1/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
    ),
    ("POST", "/v1/webhooks/{webhookId}/test"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
];

fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    crate::openapi_check::operations(spec)
        .into_iter()
        .map(|(m, p)| (m.to_ascii_uppercase(), p))
        .collect()
}

/// The committed `openapi/openapi.json` is what the server serves; it lists every
/// `/v1` REST route; and every operation it lists is routed by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_spec_is_current_and_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let served = server.spec().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("openapi/openapi.json is JSON");
    assert!(
        *served == committed,
        "openapi/openapi.json differs from the spec the server serves; regenerate it with \
         `cargo run -p tandem-server --bin tandem -- openapi > openapi/openapi.json`"
    );

    let operations = spec_operations(&served);
    for (method, route) in V1_ROUTES {
        assert!(
            operations.contains(&(method.to_string(), route.to_string())),
            "the spec does not list {method} {route}"
        );
    }
    // Nothing else under /v1 but the WebSocket endpoint.
    for (method, route) in &operations {
        if route.starts_with("/v1/") && !V1_ROUTES.contains(&(method.as_str(), route.as_str())) {
            assert_eq!(
                (method.as_str(), route.as_str()),
                ("GET", "/v1/connect/{room}"),
                "the spec lists a /v1 route this test does not know"
            );
        }
    }
    // The WebSocket endpoint is documented too: the upgrade (101) of a GET.
    assert!(
        operations.contains(&("GET".to_owned(), "/v1/connect/{room}".to_owned())),
        "the spec does not describe the WebSocket endpoint"
    );
    assert!(
        served["paths"]["/v1/connect/{room}"]["get"]["responses"]
            .get("101")
            .is_some(),
        "the WebSocket endpoint's 101 is not documented"
    );

    // Every listed operation is routed: without credentials the answer is never the
    // router's "no such route" nor 405.
    for (method, route) in &operations {
        if route == "/v1/connect/{room}" {
            continue;
        }
        let concrete = route
            .replace("{tenantId}", "ten_0")
            .replace("{projectId}", "prj_0")
            .replace("{keyId}", "key_0")
            .replace("{userId}", "usr_0")
            .replace("{roomId}", "room");
        let r = server.request_unchecked(method, &concrete, &[], None).await;
        assert_ne!(r.status, 405, "{method} {concrete} is not routed");
        let no_route = r.status == 404
            && serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|b| b["detail"] == "no such route");
        assert!(!no_route, "{method} {concrete} is not routed");
    }
}

/// `/docs` is a self-contained HTML page: nothing it loads comes from the internet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_loads_nothing_from_the_internet() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let r = server.request("GET", "/docs", &[], None).await.expect(200);
    let content_type = r.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    if let Some(csp) = r.header("content-security-policy") {
        assert!(!csp.contains("http"), "CSP allows remote sources: {csp}");
    }
    let html = r.text().to_ascii_lowercase();
    assert!(
        html.contains("<html") || html.contains("<!doctype html"),
        "{html}"
    );
    let remote = remote_references(&html);
    assert!(
        remote.is_empty(),
        "/docs loads remote resources: {remote:?}"
    );
}

/// `src`/`href` values of resource-loading tags, and CSS `url(…)`/`@import`, that point
/// off the server (`http://`, `https://`, protocol-relative `//`).
fn remote_references(html: &str) -> Vec<String> {
    let is_remote = |v: &str| {
        let v = v.trim_start_matches(['"', '\'', ' ']);
        v.starts_with("http://") || v.starts_with("https://") || v.starts_with("//")
    };
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let tag_end = rest[open..].find('>').map_or(rest.len(), |e| open + e);
        let tag = &rest[open + 1..tag_end];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if matches!(
            name.as_str(),
            "script"
                | "link"
                | "img"
                | "iframe"
                | "source"
                | "embed"
                | "object"
                | "audio"
                | "video"
        ) {
            for attr in ["src=", "href=", "data="] {
                let mut t = tag;
                while let Some(at) = t.find(attr) {
                    let value = &t[at + attr.len()..];
                    if is_remote(value) {
                        found.push(tag.to_owned());
                    }
                    t = value;
                }
            }
        }
        rest = &rest[tag_end.min(rest.len())..];
        if rest.starts_with('>') {
            rest = &rest[1..];
        }
    }
    for marker in ["url(", "@import"] {
        let mut t = html;
        while let Some(at) = t.find(marker) {
            let value = t[at + marker.len()..].trim_start_matches(['(', ' ']);
            if is_remote(value) {
                found.push(t[at..(at + 60).min(t.len())].to_owned());
            }
            t = &t[at + marker.len()..];
        }
    }
    found
}

#[test]
fn remote_references_are_found() {
    let html = r#"<html><script src="https://cdn.example/x.js"></script><link rel=stylesheet href='//cdn/x.css'><style>@import "http://x/y.css"; a{background:url(https://x/y.png)}</style><a href="https://example.com">ok</a><script>let x = 1 < 2;</script></html>"#;
    assert_eq!(remote_references(html).len(), 4);
    assert!(remote_references("<html><script>inline()</script></html>").is_empty());
}
