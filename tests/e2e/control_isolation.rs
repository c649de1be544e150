//! Isolation between tenants and projects: with project A's credentials, the rooms
//! and keys of project B (another tenant's) and of project C (a sibling in A's own
//! tenant), and the management routes of B's tenant, answer exactly as if they did not
//! exist (same status, same body as a made-up id); path tricks land in A's own
//! namespace; nothing of B or C is read, changed or deleted.

use std::time::Duration;

use serde_json::{json, Value};

use crate::control::document;
use crate::control_tokens::{post_update, text_update};
use crate::harness::{enc, Account, Client, Cred, HttpResponse, Project, Server};

const B_SECRET: &str = "B secret content";
const MADE_UP_TENANT: &str = "ten_0000000000000000000000";
const MADE_UP_PROJECT: &str = "prj_0000000000000000000000";
const MADE_UP_KEY: &str = "key_0000000000000000000000";
const MADE_UP_USER: &str = "usr_0000000000000000000000";

fn body_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| Value::String(r.text()))
}

/// Sends the same request for B's resource and for a made-up one; both must get the
/// same answer, which must not mention B's content. Returns the status.
async fn indistinguishable(
    server: &Server,
    method: &str,
    b_path: &str,
    made_up_path: &str,
    cred: Cred<'_>,
    body: Option<Value>,
) -> u16 {
    let rb = server.call(method, b_path, cred, body.clone()).await;
    let rx = server.call(method, made_up_path, cred, body).await;
    assert_eq!(
        (rb.status, body_of(&rb)),
        (rx.status, body_of(&rx)),
        "{method} {b_path} answers differently from {made_up_path}"
    );
    assert!(!rb.text().contains(B_SECRET), "{method} {b_path} leaks B");
    assert_ne!(rb.status / 100, 5, "{method} {b_path}: {}", rb.text());
    rb.status
}

/// A project A must not reach, with a room `b-room` holding [`B_SECRET`] and a client
/// in it (with presence).
struct Other {
    project: Project,
    client: Client,
}

struct World {
    server: Server,
    a: Account,
    a_project: Project,
    /// B's owner (another tenant).
    b: Account,
    /// B (another tenant's project) and C (a sibling of A in A's tenant).
    others: Vec<Other>,
    _dir: tempfile::TempDir,
}

impl World {
    fn b_project(&self) -> &Project {
        &self.others[0].project
    }
}

async fn other(server: &Server, project: Project) -> Other {
    post_update(server, &project.key.key, "b-room", text_update(B_SECRET)).await;
    let token = server
        .token(
            &project.key.key,
            "b-user",
            json!({"b-room": ["room:write"]}),
            None,
        )
        .await;
    let mut client = Client::connect(&server.ws_url_token("b-room", &token)).await;
    assert_eq!(client.text(), B_SECRET);
    client.set_awareness(7, 1, r#"{"name":"B"}"#).await;
    client.round_trip().await;
    Other { project, client }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (a, a_project) = server.project().await;
    let (b, b_project) = server.project().await;
    assert_ne!(a.tenant_id, b.tenant_id);
    let c_id = server.create_project(&a, "sibling").await;
    let c_project = Project {
        key: server.create_secret_key(&a, &c_id).await,
        id: c_id,
    };
    let others = vec![
        other(&server, b_project).await,
        other(&server, c_project).await,
    ];
    World {
        server,
        a,
        a_project,
        b,
        others,
        _dir: dir,
    }
}

/// B and C are as they were: their rooms, content, connections, keys and projects.
async fn others_are_intact(w: &mut World) {
    let s = &w.server;
    for other in &mut w.others {
        let k = other.project.key.key.as_str();
        assert_eq!(
            document(s, k, "b-room").await,
            Some(json!({"text": B_SECRET}))
        );
        s.call("GET", "/v1/rooms/b-room", Cred::Bearer(k), None)
            .await
            .expect(200);
        let c = &mut other.client;
        c.round_trip().await;
        assert_eq!(c.text(), B_SECRET);
        assert_eq!(
            c.updates_received, 0,
            "another project's client received A's writes"
        );
        assert!(
            c.events.is_empty(),
            "another project's client received A's event"
        );
        assert!(c.closed.is_none());
        let keys = s
            .call("GET", "/v1/keys", Cred::Bearer(k), None)
            .await
            .expect(200)
            .json();
        assert!(
            keys["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|key| key["id"] == other.project.key.id.as_str() && key["active"] == true),
            "{keys}"
        );
    }
    s.call(
        "GET",
        &format!(
            "/v1/tenants/{}/projects/{}",
            w.b.tenant_id,
            w.b_project().id
        ),
        Cred::Cookie(&w.b.cookie),
        None,
    )
    .await
    .expect(200);
}

/// With A's secret key, the rooms of B (another tenant) and C (A's sibling project)
/// cannot be listed, read, written, deleted, nor their users or events reached, and
/// their keys cannot be listed, revoked or rolled: every answer is the one for a room
/// or key that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_a_key_cannot_reach_project_b() {
    let mut w = world().await;
    let s = &w.server;
    let ka = Cred::Bearer(&w.a_project.key.key);

    for query in ["", "?prefix=b-", "?prefix=b-room&limit=100"] {
        let listed = s
            .call("GET", &format!("/v1/rooms{query}"), ka, None)
            .await
            .expect(200)
            .json();
        assert_eq!(listed["data"], json!([]), "{query}: {listed}");
    }

    let b = "/v1/rooms/b-room";
    let x = "/v1/rooms/no-such-room";
    let expected = [
        ("GET", "", 404),
        ("GET", "/document", 404),
        ("GET", "/document/update", 404),
        ("GET", "/document/update?stateVector=AA%3D%3D", 404),
        ("GET", "/users", 200),
        ("DELETE", "", 404),
    ];
    for (method, suffix, status) in expected {
        let got = indistinguishable(
            s,
            method,
            &format!("{b}{suffix}"),
            &format!("{x}{suffix}"),
            ka,
            None,
        )
        .await;
        assert_eq!(got, status, "{method} {b}{suffix}");
    }
    let event = Some(json!({"event": {"from": "A"}}));
    let sent = s
        .call("POST", &format!("{b}/events"), ka, event.clone())
        .await
        .expect(200)
        .json();
    assert_eq!(sent, json!({"delivered": 0}));
    indistinguishable(
        s,
        "POST",
        &format!("{b}/events"),
        &format!("{x}/events"),
        ka,
        event,
    )
    .await;
    // B and C see their own user there; A saw none.
    for other in &w.others {
        let users = s
            .call(
                "GET",
                &format!("{b}/users"),
                Cred::Bearer(&other.project.key.key),
                None,
            )
            .await
            .expect(200)
            .json();
        assert_eq!(users["data"].as_array().unwrap().len(), 1, "{users}");
    }

    // Writing "B's room" with A's key writes A's room of that name.
    let auth = format!("Bearer {}", w.a_project.key.key);
    s.request(
        "POST",
        &format!("{b}/document/update"),
        &[("Authorization", &auth)],
        Some(("application/octet-stream", text_update("A wrote this"))),
    )
    .await
    .expect(204);
    assert_eq!(
        document(s, &w.a_project.key.key, "b-room").await,
        Some(json!({"text": "A wrote this"}))
    );

    // B's and C's keys.
    let a_keys = s.call("GET", "/v1/keys", ka, None).await.expect(200).text();
    for other in &w.others {
        let id = &other.project.key.id;
        for (action, body) in [
            ("revoke", None),
            ("roll", Some(json!({"gracePeriodSeconds": 0}))),
        ] {
            let got = indistinguishable(
                s,
                "POST",
                &format!("/v1/keys/{id}/{action}"),
                &format!("/v1/keys/{MADE_UP_KEY}/{action}"),
                ka,
                body,
            )
            .await;
            assert_eq!(got, 404, "{action} {id}");
        }
        assert!(
            !a_keys.contains(id.as_str()),
            "A's key list shows another project's key"
        );
    }

    others_are_intact(&mut w).await;
}

/// With A's session, every management route of B's tenant, and B's project or key or
/// user under A's tenant, answers 404 exactly as a made-up id does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_reach_another_tenant() {
    let mut w = world().await;
    let s = &w.server;
    let session = Cred::Cookie(&w.a.cookie);
    let (tb, pb, kb, ub) = (
        w.b.tenant_id.clone(),
        w.b_project().id.clone(),
        w.b_project().key.id.clone(),
        w.b.user_id.clone(),
    );
    let ta = w.a.tenant_id.clone();
    let roll = Some(json!({"gracePeriodSeconds": 0}));
    let new_key = Some(json!({"kind": "secret", "name": "stolen"}));

    // (method, path template, body): {t} tenant, {p} project, {k} key, {u} user.
    let routes: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/v1/tenants/{t}", None),
        ("GET", "/v1/tenants/{t}/projects", None),
        (
            "POST",
            "/v1/tenants/{t}/projects",
            Some(json!({"name": "intruder"})),
        ),
        ("GET", "/v1/tenants/{t}/projects/{p}", None),
        (
            "PATCH",
            "/v1/tenants/{t}/projects/{p}",
            Some(json!({"name": "renamed"})),
        ),
        ("GET", "/v1/tenants/{t}/projects/{p}/keys", None),
        ("POST", "/v1/tenants/{t}/projects/{p}/keys", new_key.clone()),
        (
            "POST",
            "/v1/tenants/{t}/projects/{p}/keys/{k}/roll",
            roll.clone(),
        ),
        ("POST", "/v1/tenants/{t}/projects/{p}/keys/{k}/revoke", None),
        ("GET", "/v1/tenants/{t}/members", None),
        ("GET", "/v1/tenants/{t}/invitations", None),
        (
            "POST",
            "/v1/tenants/{t}/invitations",
            Some(json!({"email": w.a.email, "role": "owner"})),
        ),
        ("POST", "/v1/tenants/{t}/leave", None),
        (
            "PATCH",
            "/v1/tenants/{t}/members/{u}",
            Some(json!({"role": "member"})),
        ),
        ("GET", "/v1/tenants/{t}/personal-access-tokens", None),
        (
            "POST",
            "/v1/tenants/{t}/personal-access-tokens",
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/v1/tenants/{t}/personal-access-tokens/{k}", None),
        ("GET", "/v1/tenants/{t}/audit-log", None),
        ("DELETE", "/v1/tenants/{t}/members/{u}", None),
        ("DELETE", "/v1/tenants/{t}/projects/{p}", None),
    ];
    let fill = |template: &str, t: &str, p: &str, k: &str, u: &str| {
        template
            .replace("{t}", t)
            .replace("{p}", p)
            .replace("{k}", k)
            .replace("{u}", u)
    };
    for (method, template, body) in &routes {
        // B's tenant vs a made-up tenant.
        let got = indistinguishable(
            s,
            method,
            &fill(template, &tb, &pb, &kb, &ub),
            &fill(
                template,
                MADE_UP_TENANT,
                MADE_UP_PROJECT,
                MADE_UP_KEY,
                MADE_UP_USER,
            ),
            session,
            body.clone(),
        )
        .await;
        assert_eq!(got, 404, "{method} {template} on B's tenant");
    }
    // B's project, key and user under A's own tenant vs made-up ones there.
    for (method, template, body) in &routes {
        if !template.contains("{p}") && !template.contains("{u}") && !template.contains("{k}") {
            continue;
        }
        let got = indistinguishable(
            s,
            method,
            &fill(template, &ta, &pb, &kb, &ub),
            &fill(template, &ta, MADE_UP_PROJECT, MADE_UP_KEY, MADE_UP_USER),
            session,
            body.clone(),
        )
        .await;
        assert_eq!(
            got, 404,
            "{method} {template} with B's ids under A's tenant"
        );
    }
    // B's key, and sibling C's key, under A's own project.
    let pa = w.a_project.id.clone();
    for key in [kb.clone(), w.others[1].project.key.id.clone()] {
        for (action, body) in [("revoke", None), ("roll", roll.clone())] {
            let got = indistinguishable(
                s,
                "POST",
                &format!("/v1/tenants/{ta}/projects/{pa}/keys/{key}/{action}"),
                &format!("/v1/tenants/{ta}/projects/{pa}/keys/{MADE_UP_KEY}/{action}"),
                session,
                body,
            )
            .await;
            assert_eq!(got, 404, "{action} {key} under A's project");
        }
    }

    let tenant = s
        .call(
            "GET",
            &format!("/v1/tenants/{tb}"),
            Cred::Cookie(&w.b.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(tenant["id"], tb.as_str());
    let members = s
        .call(
            "GET",
            &format!("/v1/tenants/{tb}/members"),
            Cred::Cookie(&w.b.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(members["data"].as_array().unwrap().len(), 1, "{members}");
    others_are_intact(&mut w).await;
}

/// Path tricks with A's key (encoded slashes and dots, double encoding, B's project
/// id in the room name) are at most other rooms of A; a token of A with every room
/// allowed opens A's rooms of those names, never B's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_stay_in_the_callers_project() {
    let mut w = world().await;
    let s = &w.server;
    let ka = w.a_project.key.key.clone();
    let pb = w.b_project().id.clone();
    let tb = w.b.tenant_id.clone();
    let tricks = [
        "..%2Fb-room".to_owned(),
        "%2E%2E%2Fb-room".to_owned(),
        "%2Fb-room".to_owned(),
        "b-room%2F".to_owned(),
        "b%252Droom".to_owned(),
        format!("{pb}%2Fb-room"),
        format!("{pb}:b-room"),
        format!("..%2F{pb}%2Fb-room"),
        format!("..%252F..%252F{pb}%252Fb-room"),
        format!("{tb}%2F{pb}%2Fb-room"),
        enc(&format!("../../{pb}/rooms/b-room")),
    ];
    for trick in &tricks {
        for suffix in ["", "/document", "/document/update", "/users"] {
            let r = s
                .call(
                    "GET",
                    &format!("/v1/rooms/{trick}{suffix}"),
                    Cred::Bearer(&ka),
                    None,
                )
                .await;
            assert!(!r.text().contains(B_SECRET), "{trick}{suffix} leaks B");
            let expected = if suffix == "/users" { 200 } else { 404 };
            assert_eq!(r.status, expected, "{trick}{suffix}: {}", r.text());
            if suffix == "/users" {
                assert_eq!(r.json()["data"], json!([]), "{trick}{suffix}");
            }
        }
    }
    // Unencoded traversal is not even a route.
    for path in [
        "/v1/rooms/../../v1/rooms/b-room/document".to_owned(),
        format!("/v1/rooms/{pb}/b-room/document"),
        format!("/v1/projects/{pb}/rooms/b-room/document"),
    ] {
        let r = s.call("GET", &path, Cred::Bearer(&ka), None).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains(B_SECRET), "{path} leaks B");
    }

    // Over the socket: A's token for every room opens A's rooms only.
    let ta = s
        .token(&ka, "a-user", json!({"*": ["room:write"]}), None)
        .await;
    for room in [
        "b-room".to_owned(),
        format!("{pb}/b-room"),
        format!("{tb}/{pb}/b-room"),
    ] {
        let mut c = Client::connect(&s.ws_url_token(&room, &ta)).await;
        assert_eq!(c.text(), "", "A's token opened B's {room}");
        c.text_push("A was here").await;
        c.round_trip().await;
        c.close().await;
    }
    let (s2, k) = (&w.server, ka.as_str());
    crate::harness::eventually(
        "A's write is stored in A",
        Duration::from_secs(10),
        || async move { document(s2, k, "b-room").await == Some(json!({"text": "A was here"})) },
    )
    .await;
    others_are_intact(&mut w).await;
}
