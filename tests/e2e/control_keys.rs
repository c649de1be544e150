//! API keys end to end: revoking takes effect at once (REST, new connections, open
//! connections); a rolled key works until its grace period ends; a key's plaintext is
//! in its create response only, and nowhere in the database.

use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tandem_protocol::close;

use crate::control::open_db;
use crate::control_tokens::refused;
use crate::harness::{eventually, Client, Closed, Cred, Server};

async fn rooms_status(server: &Server, key: &str) -> u16 {
    server
        .call("GET", "/v1/rooms", Cred::Bearer(key), None)
        .await
        .status
}

/// Revoking a secret key: the next REST request with it is 401, tokens it minted no
/// longer connect (4401), and connections using them are closed (4401). Other keys
/// keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_fails_at_once_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (account, project) = server.project().await;
    let k1 = project.key.clone();
    let k2 = server.create_secret_key(&account, &project.id).await;
    let t1 = server
        .token(&k1.key, "ada", json!({"doc": ["room:write"]}), None)
        .await;
    let t2 = server
        .token(&k2.key, "bob", json!({"doc": ["room:write"]}), None)
        .await;
    let mut c1 = Client::connect(&server.ws_url_token("doc", &t1)).await;
    let mut c2 = Client::connect(&server.ws_url_token("doc", &t2)).await;
    assert_eq!(rooms_status(&server, &k1.key).await, 200);

    let revoked = server
        .call(
            "POST",
            &format!("/v1/keys/{}/revoke", k1.id),
            Cred::Bearer(&k2.key),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(revoked["active"], false);
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    assert!(revoked.get("key").is_none(), "{revoked}");

    let closed = c1.closed_within(Duration::from_secs(10)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::UNAUTHORIZED),
        "{closed:?}"
    );
    let r = server
        .call("GET", "/v1/rooms", Cred::Bearer(&k1.key), None)
        .await
        .expect(401);
    assert_eq!(r.json()["code"], "unauthenticated");
    server
        .mint(
            &k1.key,
            json!({"userId": "ada", "permissions": {"doc": ["room:write"]}}),
        )
        .await
        .expect(401);
    let (code, reason) = refused(&server, "doc", Some(&t1)).await;
    assert_eq!(code, close::UNAUTHORIZED, "{reason}");

    // The other key, its token and its connection are untouched.
    assert_eq!(rooms_status(&server, &k2.key).await, 200);
    c2.text_push("still here").await;
    c2.round_trip().await;
    assert!(c2.closed.is_none());
    Client::connect(&server.ws_url_token("doc", &t2)).await;

    // Revoking through the management API (session) works the same.
    let k3 = server.create_secret_key(&account, &project.id).await;
    assert_eq!(rooms_status(&server, &k3.key).await, 200);
    server
        .call(
            "POST",
            &format!(
                "/v1/tenants/{}/projects/{}/keys/{}/revoke",
                account.tenant_id, project.id, k3.id
            ),
            Cred::Cookie(&account.cookie),
            None,
        )
        .await
        .expect(200);
    assert_eq!(rooms_status(&server, &k3.key).await, 401);
}

/// Rolling a key with a grace period: the old key keeps working until the grace ends,
/// then gets 401 (and its tokens stop connecting); the new key works throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_key_works_until_its_grace_period_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let old = project.key.clone();
    let old_token = server
        .token(&old.key, "ada", json!({"doc": ["room:write"]}), None)
        .await;

    let grace = Duration::from_secs(2);
    let rolled_at = Instant::now();
    let rolled = server
        .call(
            "POST",
            &format!("/v1/keys/{}/roll", old.id),
            Cred::Bearer(&old.key),
            Some(json!({"gracePeriodSeconds": grace.as_secs()})),
        )
        .await
        .expect(200)
        .json();
    let new = rolled["newKey"]["key"].as_str().unwrap().to_owned();
    assert!(new.starts_with("sk_") && new != old.key);
    assert_eq!(rolled["oldKey"]["id"], old.id.as_str());
    assert!(rolled["oldKey"]["expiresAt"].is_string(), "{rolled}");
    assert!(rolled["oldKey"].get("key").is_none(), "{rolled}");

    // Poll the old key until it stops; remember when it last worked.
    let deadline = rolled_at + Duration::from_secs(20);
    let mut last_ok = None;
    loop {
        let status = rooms_status(&server, &old.key).await;
        match status {
            200 => last_ok = Some(rolled_at.elapsed()),
            401 => break,
            other => panic!("old key got {other}"),
        }
        assert!(
            Instant::now() < deadline,
            "the old key still works after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = rolled_at.elapsed();
    let last_ok = last_ok.expect("the old key did not work during its grace period");
    assert!(
        last_ok >= grace - Duration::from_millis(500),
        "the old key stopped early: last worked {last_ok:?} after the roll"
    );
    assert!(
        stopped >= grace - Duration::from_millis(100),
        "stopped after {stopped:?}"
    );

    assert_eq!(rooms_status(&server, &new).await, 200);
    let (code, _) = refused(&server, "doc", Some(&old_token)).await;
    assert_eq!(code, close::UNAUTHORIZED);
    let new_token = server
        .token(&new, "ada", json!({"doc": ["room:write"]}), None)
        .await;
    Client::connect(&server.ws_url_token("doc", &new_token)).await;
}

/// Rolling a key closes the connections its tokens opened when the old key stops: at
/// once with grace 0, at the end of the grace period otherwise (the node's key sweep);
/// a connection opened during the grace period is closed then too. Connections with
/// tokens of the new key, and of other keys, keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_a_key_closes_its_tokens_sockets_when_the_old_key_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (account, project) = server.project().await;
    let old = project.key.clone();
    let other = server.create_secret_key(&account, &project.id).await;
    let old_token = server
        .token(&old.key, "ada", json!({"doc": ["room:write"]}), None)
        .await;
    let other_token = server
        .token(&other.key, "bob", json!({"doc": ["room:write"]}), None)
        .await;
    let mut before = Client::connect(&server.ws_url_token("doc", &old_token)).await;
    let mut bystander = Client::connect(&server.ws_url_token("doc", &other_token)).await;

    let grace = Duration::from_secs(2);
    let rolled = server
        .call(
            "POST",
            &format!("/v1/keys/{}/roll", old.id),
            Cred::Bearer(&other.key),
            Some(json!({"gracePeriodSeconds": grace.as_secs()})),
        )
        .await
        .expect(200)
        .json();
    let rolled_at = Instant::now();
    let new = rolled["newKey"]["key"].as_str().unwrap().to_owned();
    // During the grace period the old key's token still connects.
    let mut during = Client::connect(&server.ws_url_token("doc", &old_token)).await;
    let new_token = server
        .token(&new, "cy", json!({"doc": ["room:write"]}), None)
        .await;
    let mut fresh = Client::connect(&server.ws_url_token("doc", &new_token)).await;

    // Admitted before the roll: closed by the key sweep.
    let closed = before.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(&closed, Closed::Code(code, reason)
            if *code == close::UNAUTHORIZED && reason.contains("rolled")),
        "{closed:?}"
    );
    // Admitted during the grace period: its lifetime was capped at the key's expiry.
    let closed = during.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::UNAUTHORIZED),
        "{closed:?}"
    );
    assert!(
        rolled_at.elapsed() >= grace - Duration::from_millis(200),
        "closed before the grace period ended"
    );
    let (code, _) = refused(&server, "doc", Some(&old_token)).await;
    assert_eq!(code, close::UNAUTHORIZED);
    for client in [&mut fresh, &mut bystander] {
        client.text_push("still here").await;
        client.round_trip().await;
        assert!(client.closed.is_none());
    }

    // Grace 0: the old key and its sockets stop at once.
    let mut open = Client::connect(&server.ws_url_token("doc", &new_token)).await;
    server
        .call(
            "POST",
            &format!("/v1/keys/{}/roll", rolled["newKey"]["id"].as_str().unwrap()),
            Cred::Bearer(&other.key),
            Some(json!({"gracePeriodSeconds": 0})),
        )
        .await
        .expect(200);
    let closed = open.closed_within(Duration::from_secs(10)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::UNAUTHORIZED),
        "{closed:?}"
    );
    let (code, _) = refused(&server, "doc", Some(&new_token)).await;
    assert_eq!(code, close::UNAUTHORIZED);
    bystander.round_trip().await;
    assert!(bystander.closed.is_none());
}

/// A publishable key (public, it ships in the browser) mints anonymous, read-and-presence
/// tokens only: no caller-chosen `userId` or `userInfo`, no `room:write`. Switching the
/// project's public access off refuses its tokens at connect and closes their sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishable_key_tokens_are_anonymous_and_stop_with_public_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (account, project) = server.project().await;
    let set_public = |on: bool| {
        let (s, a, p) = (&server, &account, &project);
        async move {
            s.call(
                "PATCH",
                &format!("/v1/tenants/{}/projects/{}", a.tenant_id, p.id),
                Cred::Cookie(&a.cookie),
                Some(json!({"publicAccess": on})),
            )
            .await
            .expect(200);
        }
    };
    set_public(true).await;
    let pk = server
        .call(
            "POST",
            "/v1/keys",
            Cred::Bearer(&project.key.key),
            Some(json!({"kind": "publishable", "name": "web"})),
        )
        .await
        .expect(201)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The attack from the audit: pose as someone with write everywhere.
    for body in [
        json!({"userId": "ceo", "permissions": {"*": ["room:read"]}}),
        json!({"userInfo": {"name": "CEO"}, "permissions": {"*": ["room:read"]}}),
        json!({"permissions": {"*": ["room:write"]}}),
    ] {
        let r = server.mint(&pk, body).await.expect(400);
        assert_eq!(r.json()["code"], "invalid_request", "{}", r.text());
    }
    let minted = server
        .mint(
            &pk,
            json!({"permissions": {"lobby": ["room:read", "room:presence:write"]}}),
        )
        .await
        .expect(200)
        .json();
    let user = minted["userId"].as_str().unwrap();
    assert!(user.starts_with("anon_"), "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let mut visitor = Client::connect(&server.ws_url_token("lobby", &token)).await;
    visitor.round_trip().await;

    set_public(false).await;
    let closed = visitor.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(&closed, Closed::Code(code, reason)
            if *code == close::UNAUTHORIZED && reason.contains("public access")),
        "{closed:?}"
    );
    let (code, reason) = refused(&server, "lobby", Some(&token)).await;
    assert_eq!(code, close::UNAUTHORIZED, "{reason}");
}

/// A project's public-access settings (#14 item 5): `publicRooms` and `publicScopes`
/// bound what a publishable key's tokens may reach. Minting outside them is a 400;
/// changing them closes the open publishable-key connections (4401), and a token minted
/// under the old settings is refused outside the new ones (4403) and gets only the new
/// scopes. Invalid settings are a 400 and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishable_key_tokens_stay_inside_the_public_rooms_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (account, project) = server.project().await;
    let path = format!("/v1/tenants/{}/projects/{}", account.tenant_id, project.id);
    let patch = |body: serde_json::Value| {
        let (s, a, path) = (&server, &account, &path);
        async move {
            s.call("PATCH", path, Cred::Cookie(&a.cookie), Some(body))
                .await
        }
    };
    // A new project: every room, read and presence.
    let shown = patch(json!({"publicAccess": true}))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (&shown["publicRooms"], &shown["publicScopes"]),
        (&json!("*"), &json!("room:read room:presence:write")),
        "{shown}"
    );
    for bad in [
        json!({"publicRooms": "a*b"}),
        json!({"publicRooms": ""}),
        json!({"publicScopes": "room:admin"}),
        json!({"publicScopes": "room:presence:write"}),
    ] {
        let r = patch(bad.clone()).await.expect(400);
        assert_eq!(r.json()["code"], "invalid_request", "{bad}: {}", r.text());
    }
    let shown = patch(json!({"publicRooms": "lobby-*"}))
        .await
        .expect(200)
        .json();
    assert_eq!(shown["publicRooms"], "lobby-*", "{shown}");
    assert_eq!(shown["publicScopes"], "room:read room:presence:write");
    let pk = server
        .call(
            "POST",
            "/v1/keys",
            Cred::Bearer(&project.key.key),
            Some(json!({"kind": "publishable", "name": "web"})),
        )
        .await
        .expect(201)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [
        json!({"permissions": {"*": ["room:read"]}}),
        json!({"permissions": {"admin": ["room:read"]}}),
        json!({"permissions": {"lobby-1": ["room:write"]}}),
    ] {
        let r = server.mint(&pk, body.clone()).await.expect(400);
        assert!(r.text().contains("lobby-*"), "{body}: {}", r.text());
    }
    let token = server
        .mint(
            &pk,
            json!({"permissions": {"lobby-*": ["room:read", "room:presence:write"]}}),
        )
        .await
        .expect(200)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut visitor = Client::connect(&server.ws_url_token("lobby-1", &token)).await;
    visitor.round_trip().await;
    // A secret key's connection in the same room is not affected by what follows.
    let member = server
        .token(&project.key.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let mut writer = Client::connect(&server.ws_url_token("lobby-1", &member)).await;

    // Narrowed: the visitor is closed, and its token no longer enters lobby-1.
    patch(json!({"publicRooms": "lobby-eu-*", "publicScopes": "room:read"}))
        .await
        .expect(200);
    let closed = visitor.closed_within(Duration::from_secs(10)).await;
    assert!(
        matches!(&closed, Closed::Code(code, reason)
            if *code == close::UNAUTHORIZED && reason.contains("public access")),
        "{closed:?}"
    );
    let (code, reason) = refused(&server, "lobby-1", Some(&token)).await;
    assert_eq!(code, close::FORBIDDEN, "{reason}");
    // Inside the new pattern it enters, read-only (presence is closed now).
    let mut reader = Client::connect(&server.ws_url_token("lobby-eu-1", &token)).await;
    reader.round_trip().await;
    assert!(reader.closed.is_none());
    writer.round_trip().await;
    assert!(
        writer.closed.is_none(),
        "a secret key's connection was closed"
    );
}

/// Key plaintexts appear in their create (or roll) response only: listings show a
/// prefix, and no table, row or column of the database — nor the database files —
/// contains any secret (keys, the first-start key and password, passwords, session ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_and_never_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, &[]);
    let mut secrets: Vec<String> = Vec::new();

    // The first start printed a secret key and a password, once.
    let s = &server;
    eventually(
        "the first-start message",
        Duration::from_secs(10),
        || async move { s.stdout_lines().iter().any(|l| l.contains("secret key:")) },
    )
    .await;
    let lines = server.stdout_lines().join("\n");
    let word_after = |marker: &str| {
        let at = lines
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in {lines}"));
        lines[at + marker.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let boot_key = word_after("secret key:");
    assert!(boot_key.starts_with("sk_"), "{lines}");
    secrets.push(boot_key.clone());
    secrets.push(word_after("password"));
    let boot_login = word_after("email");
    let boot = server
        .login(&boot_login, &word_after("password"))
        .await
        .expect(200);
    secrets.push(crate::harness::session_cookie(&boot));
    assert_eq!(rooms_status(&server, &boot_key).await, 200);

    let (account, project) = server.project().await;
    secrets.extend([
        project.key.key.clone(),
        account.password.clone(),
        account.cookie.clone(),
    ]);
    let sk = project.key.key.as_str();
    let created = |kind: &'static str| {
        let s = &server;
        async move {
            s.call(
                "POST",
                "/v1/keys",
                Cred::Bearer(sk),
                Some(json!({"kind": kind, "name": kind})),
            )
            .await
            .expect(201)
            .json()
        }
    };
    let publishable = created("publishable").await;
    let secret = created("secret").await;
    let pk = publishable["key"].as_str().unwrap().to_owned();
    assert!(pk.starts_with("pk_"), "{publishable}");
    secrets.push(pk);
    secrets.push(secret["key"].as_str().unwrap().to_owned());
    let rolled = server
        .call(
            "POST",
            &format!("/v1/keys/{}/roll", secret["id"].as_str().unwrap()),
            Cred::Bearer(sk),
            Some(json!({"gracePeriodSeconds": 60})),
        )
        .await
        .expect(200)
        .json();
    secrets.push(rolled["newKey"]["key"].as_str().unwrap().to_owned());
    let pat = server
        .call(
            "POST",
            &format!("/v1/tenants/{}/personal-access-tokens", account.tenant_id),
            Cred::Cookie(&account.cookie),
            Some(json!({"name": "ci"})),
        )
        .await
        .expect(201)
        .json();
    let pat_key = pat["key"].as_str().unwrap().to_owned();
    assert!(pat_key.starts_with("pat_"), "{pat}");
    secrets.push(pat_key.clone());
    // The PAT works, so it is a real credential we are looking for.
    server
        .call(
            "GET",
            &format!("/v1/tenants/{}", account.tenant_id),
            Cred::Bearer(&pat_key),
            None,
        )
        .await
        .expect(200);

    // Listings: a prefix, never the key.
    let listings = [
        server
            .call("GET", "/v1/keys", Cred::Bearer(sk), None)
            .await
            .expect(200),
        server
            .call(
                "GET",
                &format!(
                    "/v1/tenants/{}/projects/{}/keys",
                    account.tenant_id, project.id
                ),
                Cred::Cookie(&account.cookie),
                None,
            )
            .await
            .expect(200),
        server
            .call(
                "GET",
                &format!("/v1/tenants/{}/personal-access-tokens", account.tenant_id),
                Cred::Cookie(&account.cookie),
                None,
            )
            .await
            .expect(200),
    ];
    for listing in &listings {
        let text = listing.text();
        let body = listing.json();
        let entries = body["data"].as_array().unwrap();
        assert!(!entries.is_empty(), "{text}");
        for entry in entries {
            assert!(entry.get("key").is_none(), "a listing shows a key: {entry}");
            let prefix = entry["prefix"].as_str().expect("prefix");
            assert!(
                secrets
                    .iter()
                    .any(|s| s.starts_with(prefix) && s.len() > prefix.len() + 16),
                "prefix {prefix:?} is not a short prefix of a created key"
            );
        }
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a listing contains a secret"
            );
        }
    }
    let project_keys = listings[0].json()["data"].as_array().unwrap().len();
    assert_eq!(project_keys, 4, "sk, pk, rolled secret and its replacement");

    // The store holds a SHA-256 of each key: the key itself is nowhere.
    let mut db = open_db(&server).await;
    let hash: Vec<u8> = Sha256::digest(project.key.key.as_bytes()).to_vec();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM api_keys WHERE hash = ?")
        .bind(&hash)
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the secret key is not stored as its SHA-256");
    drop(db);

    assert!(server.sigterm(), "clean shutdown");
    let cells = every_cell(&server).await;
    assert!(
        cells
            .iter()
            .any(|(_, _, v)| contains(v, account.email.as_bytes())),
        "the scan did not see the users table"
    );
    for secret in &secrets {
        for (table, column, value) in &cells {
            assert!(
                !contains(value, secret.as_bytes()),
                "{table}.{column} contains a secret ({}…)",
                &secret[..8.min(secret.len())]
            );
        }
    }
    // And no database file (main, WAL, shared memory) holds one in any page.
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("tandem.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in &secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{name} contains a secret"
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every cell of every table as bytes: `(table, column, value)`.
async fn every_cell(server: &Server) -> Vec<(String, String, Vec<u8>)> {
    let mut db = open_db(server).await;
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "api_keys"), "{tables:?}");
    let mut cells = Vec::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&mut db)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
        for column in columns {
            let rows = sqlx::query(&format!(
                r#"SELECT CAST("{column}" AS BLOB) FROM "{table}""#
            ))
            .fetch_all(&mut db)
            .await
            .unwrap();
            for row in rows {
                let value: Option<Vec<u8>> = row.get(0);
                cells.push((table.clone(), column.clone(), value.unwrap_or_default()));
            }
        }
    }
    cells
}
