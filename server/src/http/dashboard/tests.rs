//! The dashboard in process (`Router::oneshot` on `build_app`): every state-changing
//! route refuses cross-site, origin-less and body-less posts with 403 and changes
//! nothing; same-origin form posts go through; the session cookie's attributes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::control::accounts::Signup;
use crate::control::clock::SystemClock;
use crate::control::plane::RequestMeta;
use crate::control::{ControlConfig, ControlPlane};
use crate::http::{build_app, AppState};
use crate::rooms::{Rooms, RoomsConfig};
use crate::store::sqlite::SqliteStore;

async fn app(dir: &tempfile::TempDir, config: ControlConfig) -> (Router, ControlPlane) {
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let rooms = Rooms::new(store.clone(), RoomsConfig::default());
    let control = ControlPlane::new(store.clone(), Arc::new(SystemClock), config)
        .await
        .unwrap();
    let authorizer = Arc::new(crate::control::tokens::TokenAuthorizer::new(
        control.clone(),
    ));
    let app = build_app(AppState {
        rooms,
        docs: store.clone(),
        usage: store,
        control: control.clone(),
        authorizer,
        key_limits: Arc::default(),
        billing: None,
        ip_limits: None,
    });
    (app, control)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

struct Account {
    cookie: String,
    tenant: String,
    project: String,
    key: String,
    user: String,
    /// The session's public `ses_…` id.
    session: String,
}

async fn account(control: &ControlPlane) -> Account {
    let created = control
        .hosted_signup(
            Signup {
                email: "ada@example.com".into(),
                password: "correct horse battery".into(),
                tenant_name: Some("Engines".into()),
                project_name: None,
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap()
        .expect("a new email");
    let session = control
        .create_session(&created.account.user, &RequestMeta::default())
        .await
        .unwrap();
    Account {
        cookie: format!("tandem_session={}", session.cookie_value),
        tenant: created.account.tenant.id.to_string(),
        project: created.account.project.id.to_string(),
        key: created.secret_key.row.id.to_string(),
        user: created.account.user.id.to_string(),
        session: crate::control::sessions::public_id(&crate::control::accounts::session_hash(
            &session.cookie_value,
        )),
    }
}

fn path(template: &str, a: &Account) -> String {
    template
        .replace("{tenant}", &a.tenant)
        .replace("{project}", &a.project)
        .replace("{key}", &a.key)
        .replace("{user}", &a.user)
        .replace("{session}", &a.session)
}

const FORM: &str = "application/x-www-form-urlencoded";
const BODY: &str = "role=member&days=0&name=renamed&confirm=development&kind=secret&grace=0&enabled=true&event=%7B%7D&email=a%40b.c&password=xxxxxxxxxxxx&tenant_name=t&connection=1&node=&read_only=on";

#[tokio::test]
async fn every_state_changing_route_refuses_cross_site_and_bodyless_posts() {
    let dir = tempfile::tempdir().unwrap();
    let (app, control) = app(&dir, ControlConfig::default()).await;
    let a = account(&control).await;
    type Build = fn(axum::http::request::Builder) -> axum::http::request::Builder;
    let attacks: [(&str, Build, Option<&str>); 5] = [
        (
            "cross-site fetch metadata",
            |r| {
                r.header("sec-fetch-site", "cross-site")
                    .header(header::CONTENT_TYPE, FORM)
            },
            Some(BODY),
        ),
        (
            "same-site (a sibling subdomain)",
            |r| {
                r.header("sec-fetch-site", "same-site")
                    .header(header::CONTENT_TYPE, FORM)
            },
            Some(BODY),
        ),
        (
            "a foreign Origin",
            |r| {
                r.header(header::ORIGIN, "https://evil.example")
                    .header(header::CONTENT_TYPE, FORM)
            },
            Some(BODY),
        ),
        (
            "neither Fetch Metadata nor Origin",
            |r| r.header(header::CONTENT_TYPE, FORM),
            Some(BODY),
        ),
        (
            "a body-less post",
            |r| r.header("sec-fetch-site", "same-origin"),
            None,
        ),
    ];
    let mut refused = 0;
    for template in super::STATE_CHANGING {
        let uri = path(template, &a);
        for (what, build, body) in &attacks {
            let request = build(
                Request::post(&uri)
                    .header(header::HOST, "127.0.0.1:8080")
                    .header(header::COOKIE, &a.cookie),
            )
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
            let (status, _, text) = send(&app, request).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{what} to {uri}: {text}");
            assert!(
                text.contains("alert error"),
                "the refusal is a page with its reason"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, super::STATE_CHANGING.len() * attacks.len());

    // Nothing changed: the project keeps its name, the key works, the session lives.
    let auth = control
        .session_user(a.cookie.trim_start_matches("tandem_session="))
        .await
        .expect("the session survived the cross-site logout");
    let tenant = crate::ids::TenantId::parse(&a.tenant).unwrap();
    let access = control
        .tenant_access(&auth, &tenant, crate::store::control::Role::Member)
        .await
        .unwrap();
    let projects = control.list_projects(&access).await.unwrap();
    let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"development") && names.contains(&"production"));
    let project = crate::ids::ProjectId::parse(&a.project).unwrap();
    let keys = control.list_project_keys(&tenant, &project).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_none() && keys[0].expires_at.is_none());

    // The same post from the dashboard's own page goes through.
    for (site, origin) in [
        (Some("same-origin"), None),
        (None, Some("http://127.0.0.1:8080")),
    ] {
        let mut request = Request::post(path("/dashboard/t/{tenant}/p/{project}/rename", &a))
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, &a.cookie)
            .header(header::CONTENT_TYPE, FORM);
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let (status, headers, text) =
            send(&app, request.body(Body::from("name=renamed")).unwrap()).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
        assert!(headers.get(header::LOCATION).is_some());
    }
    let projects = control.list_projects(&access).await.unwrap();
    assert!(projects.iter().any(|p| p.name == "renamed"));
}

#[tokio::test]
async fn pages_need_a_session_and_another_tenant_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (app, control) = app(&dir, ControlConfig::default()).await;
    let a = account(&control).await;
    let (status, headers, _) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert!(status.is_redirection());
    assert_eq!(headers[header::LOCATION], "/dashboard");
    let (status, headers, _) = send(
        &app,
        Request::get(path("/dashboard/t/{tenant}", &a))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
    let signed_in = |uri: String| {
        Request::get(uri)
            .header(header::COOKIE, &a.cookie)
            .body(Body::empty())
            .unwrap()
    };
    for page in [
        "",
        "/usage",
        "/audit",
        "/plan",
        "/team",
        "/p/{project}",
        "/p/{project}/rooms",
        "/p/{project}/start",
        "/account/sessions",
        "/account/security",
    ] {
        let (status, headers, text) = send(
            &app,
            signed_in(path(&format!("/dashboard/t/{{tenant}}{page}"), &a)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}: {text}");
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert!(text.contains("Engines"), "{page}");
        // Private data, and on some pages a secret shown once: never stored.
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{page}");
    }
    let other = "/dashboard/t/ten_000000000000000000000000";
    let (status, _, text) = send(&app, signed_in(other.to_owned())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(
        text.contains("nothing with this id here"),
        "the problem's detail is shown"
    );
    let (status, headers, body) = send(
        &app,
        Request::get("/dashboard/static/dashboard.css")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(body.contains(".sidebar"));
}

#[tokio::test]
async fn signup_sets_a_host_prefixed_cookie_over_https() {
    for (secure, name, flag) in [
        (false, "tandem_session=", ""),
        (true, "__Host-tandem_session=", "; Secure"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = ControlConfig {
            secure_cookies: secure,
            ..ControlConfig::default()
        };
        let (app, _) = app(&dir, config).await;
        let request = Request::post("/dashboard/signup")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, FORM)
            .body(Body::from(
                "email=grace%40example.com&password=correct+horse+battery&tenant_name=Navy",
            ))
            .unwrap();
        let (status, headers, text) = send(&app, request).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        let cookie = headers[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with(name), "{cookie}");
        assert!(
            cookie.contains("; Path=/; HttpOnly; SameSite=Lax"),
            "{cookie}"
        );
        assert!(cookie.ends_with(flag), "{cookie}");
        assert!(text.contains("data-secret>sk_"), "the key is shown once");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "no-store",
            "a response with a secret in it is never cached"
        );
        assert!(text.contains("production"));
        // The same email again creates nothing, signs nobody in, and says so neutrally.
        let again = Request::post("/dashboard/signup")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, FORM)
            .body(Body::from(
                "email=grace%40example.com&password=another+long+passphrase+here&tenant_name=Other",
            ))
            .unwrap();
        let (status, headers, text) = send(&app, again).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(headers.get(header::SET_COOKIE).is_none());
        assert!(
            text.contains("If this email already has an account"),
            "{text}"
        );
        assert!(!text.contains("data-secret"));
    }
}

/// The webhooks page: an endpoint added by form shows its secret once (the next view
/// does not), with the event types; an internal URL is refused with the reason on the
/// page; a disabled endpoint shows the notice; deleting removes it.
#[tokio::test]
async fn the_webhooks_page_adds_shows_once_disables_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, control) = app(&dir, ControlConfig::default()).await;
    let a = account(&control).await;
    let base = format!("/dashboard/t/{}/p/{}/webhooks", a.tenant, a.project);
    let post = |uri: &str, body: &str| {
        Request::post(uri)
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, FORM)
            .header(header::COOKIE, &a.cookie)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let get = |uri: &str| {
        Request::get(uri)
            .header(header::COOKIE, &a.cookie)
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, empty) = send(&app, get(&base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty.contains("No webhooks"));

    let (status, _, refused) = send(
        &app,
        post(
            &base,
            "url=http%3A%2F%2F127.0.0.1%2Fhook&events=room.created",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("https://"), "the reason is shown");

    let (status, _, created) = send(
        &app,
        post(
            &base,
            "url=https%3A%2F%2Fhooks.example.com%2Ft&events=room.*%2C+document.updated&description=indexer",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created.contains("whsec_"), "the secret is shown once");
    assert!(created.contains("room.*, document.updated"));
    let project = crate::ids::ProjectId::parse(&a.project).unwrap();
    let hooks = control.list_webhooks(&project).await.unwrap();
    assert_eq!(hooks.len(), 1);
    let id = hooks[0].id.to_string();
    let (_, _, again) = send(&app, get(&base)).await;
    assert!(!again.contains("whsec_"), "never again");
    assert!(again.contains("hooks.example.com") && again.contains("indexer"));

    let (status, _, _) = send(&app, post(&format!("{base}/{id}/enable"), "enabled=false")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, paused) = send(&app, get(&base)).await;
    assert!(paused.contains("data-disabled") && paused.contains("Deliveries are paused"));

    let (status, _, _) = send(&app, post(&format!("{base}/{id}/delete"), "x=1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(control.list_webhooks(&project).await.unwrap().is_empty());
}
