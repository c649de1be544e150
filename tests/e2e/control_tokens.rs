//! The client token matrix on the WebSocket, each case with its documented close code
//! (`tandem_protocol::close`): 4401 for a token that is missing, malformed, forged,
//! `alg: none`, HS256 keyed with the public key, or expired (at connect, and mid-session);
//! 4403 for a room outside the token's patterns. A token of another project opens that
//! project's room; a read-only connection's updates are refused, never relayed, never
//! stored; presence needs `room:presence:write`.

use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use tandem_protocol::close;
use yrs::{Text, Transact};

use crate::control::document;
use crate::harness::{enc, eventually, Client, Closed, Cred, Server};

/// Connects and expects a refusal: the close code and reason, after checking that
/// nothing (no document, no presence) was sent before the close.
pub async fn refused(server: &Server, room: &str, token: Option<&str>) -> (u16, String) {
    let url = match token {
        Some(t) => server.ws_url_token(room, t),
        None => server.ws_url(room),
    };
    let mut c = Client::connect_raw(&url).await;
    let closed = c.closed_within(Duration::from_secs(10)).await;
    assert_eq!(
        c.frames_received, 0,
        "a refused connection to {room} received frames before the close"
    );
    match closed {
        Closed::Code(code, reason) => (code, reason),
        Closed::Dropped => panic!("connection to {room} dropped without a close frame"),
    }
}

/// A yrs update inserting `text` at the start of the root text `text`.
pub fn text_update(text: &str) -> Vec<u8> {
    let doc = yrs::Doc::new();
    let root = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    root.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

/// `POST …/document/update` with a secret key.
pub async fn post_update(server: &Server, secret_key: &str, room: &str, update: Vec<u8>) {
    let auth = format!("Bearer {secret_key}");
    server
        .request(
            "POST",
            &format!("/v1/rooms/{}/document/update", enc(room)),
            &[("Authorization", &auth)],
            Some(("application/octet-stream", update)),
        )
        .await
        .expect(204);
}

fn text_of(doc: &Option<Value>) -> String {
    doc.as_ref()
        .and_then(|d| d["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn part(token: &str, i: usize) -> Vec<u8> {
    B64.decode(token.split('.').nth(i).unwrap()).unwrap()
}

/// Every refusal at connect, with its code; the same token unaltered connects and
/// syncs the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_get_their_close_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    post_update(&server, sk, "doc-1", text_update("secret content")).await;
    let token = server
        .token(sk, "ada", json!({"doc-*": ["room:write"]}), None)
        .await;

    // The unaltered token works: it is only the alteration that is refused.
    let mut ok = Client::connect(&server.ws_url_token("doc-1", &token)).await;
    assert_eq!(ok.text(), "secret content");
    ok.round_trip().await;

    let header: Value = serde_json::from_slice(&part(&token, 0)).unwrap();
    let payload = part(&token, 1);
    let kid = header["kid"].as_str().unwrap();
    let jwks = server
        .call("GET", "/.well-known/jwks.json", Cred::None, None)
        .await
        .expect(200)
        .json();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the token's kid is in the JWKS")
        .clone();
    let x = jwk["x"].as_str().unwrap();
    let public_key = B64.decode(x).unwrap();
    assert_eq!(public_key.len(), 32);

    let unsigned = |header: Value, payload: &[u8]| {
        format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header).unwrap()),
            B64.encode(payload)
        )
    };
    let hs256 = |secret: &[u8]| {
        let input = unsigned(json!({"alg": "HS256", "typ": "JWT", "kid": kid}), &payload);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let bad_signature = {
        let mut sig = part(&token, 2);
        sig[10] ^= 0x01;
        let (head, _) = token.rsplit_once('.').unwrap();
        format!("{head}.{}", B64.encode(sig))
    };
    // The signed claims with more rooms and another project, under the old signature.
    let forged_claims = {
        let mut claims: Value = serde_json::from_slice(&payload).unwrap();
        claims["prj"] = json!("prj_0123456789");
        claims["perms"] = json!([{"room": "*", "scopes": ["room:write"]}]);
        let signature = token.rsplit('.').next().unwrap();
        format!(
            "{}.{signature}",
            unsigned(header.clone(), &serde_json::to_vec(&claims).unwrap())
        )
    };
    let alg_none = format!(
        "{}.",
        unsigned(json!({"alg": "none", "typ": "JWT", "kid": kid}), &payload)
    );
    let alg_none_signed = format!(
        "{}.{}",
        unsigned(json!({"alg": "none", "typ": "JWT", "kid": kid}), &payload),
        token.rsplit('.').next().unwrap()
    );

    let unauthorized: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "required"),
        ("garbage", Some("not-a-token".into()), "malformed"),
        ("three junk parts", Some("a.b.c".into()), "malformed"),
        ("bad signature", Some(bad_signature), "signature"),
        ("altered claims", Some(forged_claims), "signature"),
        ("alg none, no signature", Some(alg_none), "algorithm"),
        (
            "alg none, old signature",
            Some(alg_none_signed),
            "algorithm",
        ),
        (
            "HS256 keyed with the public key bytes",
            Some(hs256(&public_key)),
            "algorithm",
        ),
        (
            "HS256 keyed with the JWK x",
            Some(hs256(x.as_bytes())),
            "algorithm",
        ),
        (
            "HS256 keyed with the JWK",
            Some(hs256(&serde_json::to_vec(&jwk).unwrap())),
            "algorithm",
        ),
    ];
    for (case, token, why) in &unauthorized {
        let (code, reason) = refused(&server, "doc-1", token.as_deref()).await;
        assert_eq!(code, close::UNAUTHORIZED, "{case}: {reason}");
        assert!(reason.contains(why), "{case}: reason {reason:?}");
    }

    // A valid token for other rooms.
    let (code, reason) = refused(&server, "other-room", Some(&token)).await;
    assert_eq!(code, close::FORBIDDEN, "outside the pattern: {reason}");
    let (code, _) = refused(&server, "doc", Some(&token)).await;
    assert_eq!(code, close::FORBIDDEN, "`doc-*` does not cover `doc`");

    // Nothing above changed the document.
    assert_eq!(
        text_of(&document(&server, sk, "doc-1").await),
        "secret content"
    );
}

/// A token expiring mid-session closes the connection with 4401; past its expiry (and
/// the verifier's leeway) it is refused at connect with 4401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_close_and_are_refused_with_4401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let minted = server
        .mint(
            &project.key.key,
            json!({"userId": "ada", "permissions": {"doc": ["room:write"]}, "expiresIn": 3}),
        )
        .await
        .expect(200)
        .json();
    let minted_at = Instant::now();
    let token = minted["token"].as_str().unwrap().to_owned();
    let expires_at =
        humantime::parse_rfc3339(minted["expiresAt"].as_str().unwrap()).expect("RFC 3339");

    let mut live = Client::connect(&server.ws_url_token("doc", &token)).await;
    live.text_push("written while valid").await;
    live.round_trip().await;
    let closed = live.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(&closed, Closed::Code(code, reason) if *code == close::UNAUTHORIZED && reason.contains("expired")),
        "{closed:?}"
    );
    assert!(
        minted_at.elapsed() >= Duration::from_secs(1),
        "closed before the token expired"
    );

    // The verifier tolerates 5 s of clock skew; wait until the token is past that.
    let past = expires_at + Duration::from_secs(6);
    eventually(
        "the token is past expiry and leeway",
        Duration::from_secs(30),
        || async move { SystemTime::now() > past },
    )
    .await;
    let (code, reason) = refused(&server, "doc", Some(&token)).await;
    assert_eq!(code, close::UNAUTHORIZED);
    assert!(reason.contains("expired"), "{reason}");
}

/// A token of project B opens B's room of the same name: A's document is not visible
/// to it, and its writes do not reach A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_project_opens_that_projects_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (account, a) = server.project().await;
    let b_id = server.create_project(&account, "other").await;
    let b_key = server.create_secret_key(&account, &b_id).await;
    let room = "shared";
    let ta = server
        .token(&a.key.key, "alice", json!({room: ["room:write"]}), None)
        .await;
    let tb = server
        .token(&b_key.key, "bob", json!({room: ["room:write"]}), None)
        .await;

    let mut alice = Client::connect(&server.ws_url_token(room, &ta)).await;
    alice.text_push("A only").await;
    alice.round_trip().await;
    let (s, k) = (&server, a.key.key.as_str());
    eventually(
        "A's write is stored",
        Duration::from_secs(10),
        || async move { text_of(&document(s, k, room).await) == "A only" },
    )
    .await;

    let mut bob = Client::connect(&server.ws_url_token(room, &tb)).await;
    assert_eq!(bob.text(), "", "B's token sees A's document");
    bob.text_push("B write").await;
    bob.round_trip().await;
    let (s, k) = (&server, b_key.key.as_str());
    eventually(
        "B's write is stored in B",
        Duration::from_secs(10),
        || async move { text_of(&document(s, k, room).await) == "B write" },
    )
    .await;

    alice.round_trip().await;
    assert_eq!(alice.text(), "A only");
    assert_eq!(alice.updates_received, 0, "A received B's update");
    assert_eq!(
        text_of(&document(&server, &a.key.key, room).await),
        "A only"
    );
}

/// A read-only connection receives everything, but its updates are refused with the
/// y-protocols auth message: a writing client never sees them, and neither the REST
/// document nor (after a restart) the stored document contains them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_updates_are_refused_never_relayed_nor_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.clone();
    let room = "ro-doc";
    let tw = server
        .token(&sk, "writer", json!({room: ["room:write"]}), None)
        .await;
    let tr = server
        .token(&sk, "reader", json!({room: ["room:read"]}), None)
        .await;

    let mut writer = Client::connect(&server.ws_url_token(room, &tw)).await;
    writer.text_push("base.").await;
    let mut reader = Client::connect(&server.ws_url_token(room, &tr)).await;
    reader
        .pump_until(
            "the reader has the document",
            Duration::from_secs(10),
            |c| c.text() == "base.",
        )
        .await;
    assert!(reader.auth_denied.is_none());

    reader.text_push("EVIL").await;
    reader.map_set("evil", "1").await;
    // The room handles the reader's messages in order: after this, it has seen both
    // (had it applied them, it would have relayed them before the writer's next one).
    reader.round_trip().await;

    // The reader is still connected and still receives.
    writer.text_push("after.").await;
    reader
        .pump_until(
            "the reader receives later writes",
            Duration::from_secs(10),
            |c| c.text().contains("after."),
        )
        .await;
    writer.round_trip().await;
    assert_eq!(
        writer.text(),
        "base.after.",
        "the writer saw the read-only update"
    );
    assert_eq!(
        writer.map_get("evil"),
        None,
        "the writer saw the read-only update"
    );
    let expected = json!({"text": "base.after."});
    assert_eq!(document(&server, &sk, room).await, Some(expected.clone()));

    // And the reader was told, with the y-protocols auth message.
    reader
        .pump_until("the auth-denied message", Duration::from_secs(10), |c| {
            c.auth_denied.is_some()
        })
        .await;
    assert!(
        reader.auth_denied.as_deref().unwrap().contains("read-only"),
        "{:?}",
        reader.auth_denied
    );

    writer.close().await;
    reader.close().await;
    assert!(server.sigterm(), "clean shutdown");
    server.restart();
    assert_eq!(document(&server, &sk, room).await, Some(expected));
    let fresh = Client::connect(&server.ws_url_token(room, &tw)).await;
    assert_eq!(fresh.text(), "base.after.");
    assert_eq!(fresh.map_get("evil"), None);
}

/// Presence without `room:presence:write` never reaches the others (and the users
/// endpoint shows none for it); with it, a read-only connection's presence does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_needs_presence_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let room = "presence";
    let token = |user: &'static str, scopes: Value| {
        let s = &server;
        async move { s.token(sk, user, json!({room: scopes}), None).await }
    };
    let observer_token = token("observer", json!(["room:read"])).await;
    let silent_token = token("silent", json!(["room:read"])).await;
    let visible_token = token("visible", json!(["room:read", "room:presence:write"])).await;

    let mut observer = Client::connect(&server.ws_url_token(room, &observer_token)).await;
    let mut silent = Client::connect(&server.ws_url_token(room, &silent_token)).await;
    let mut visible = Client::connect(&server.ws_url_token(room, &visible_token)).await;

    silent.set_awareness(111, 1, r#"{"name":"sneaky"}"#).await;
    silent.round_trip().await;
    visible.set_awareness(222, 1, r#"{"name":"shown"}"#).await;
    visible.round_trip().await;
    observer
        .pump_until("the permitted presence", Duration::from_secs(10), |c| {
            c.others.contains_key(&222)
        })
        .await;
    assert!(
        !observer.awareness_log.iter().any(|(id, _)| *id == 111),
        "presence without permission was relayed: {:?}",
        observer.awareness_log
    );
    let shown: Value = serde_json::from_str(&observer.others[&222]).unwrap();
    assert_eq!(shown["name"], "shown");
    assert_eq!(shown["user"]["id"], "visible", "{shown}");
    // The connection itself is fine: it was not closed for trying.
    assert!(silent.closed.is_none());

    let users = server
        .call(
            "GET",
            &format!("/v1/rooms/{room}/users"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(200)
        .json();
    let data = users["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{users}");
    let presence_of = |user: &str| {
        data.iter()
            .find(|u| u["userId"] == user)
            .unwrap_or_else(|| panic!("{user} not in {users}"))["presence"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(presence_of("silent").is_empty(), "{users}");
    assert!(presence_of("observer").is_empty(), "{users}");
    assert_eq!(presence_of("visible")[0]["clientId"], 222, "{users}");
}

/// `RUST_LOG=tower_http=debug` (and more) logs no credential: the request span shows
/// `?token=[redacted]`, and no line of the real binary's log carries the JWT, its
/// signature, the secret key or a bearer value (#14 item 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_carry_no_tokens_or_keys() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut server =
        Server::start_logged_at(dir.path(), &[], &log, "info,tower_http=trace,sqlx=warn");
    let (_, project) = server.project().await;
    let token = server
        .token(
            &project.key.key,
            "ada",
            json!({"doc": ["room:write"]}),
            None,
        )
        .await;
    let mut client = Client::connect(&server.ws_url_token("doc", &token)).await;
    client.text_push("hello").await;
    client.round_trip().await;
    // A refused token is logged too, if anything is.
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let _ = refused(&server, "doc", Some(&tampered)).await;
    server
        .call("GET", "/v1/rooms", Cred::Bearer(&project.key.key), None)
        .await
        .expect(200);
    client.close().await;
    assert!(server.sigterm(), "the server did not stop on SIGTERM");

    let text = std::fs::read_to_string(&log).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        text.contains("token=[redacted]"),
        "the request span should show the redacted URI; log:\n{text}"
    );
    for (what, secret) in [
        ("token", token.as_str()),
        ("tampered token", tampered.as_str()),
        ("token signature", signature),
        ("secret key", project.key.key.as_str()),
    ] {
        assert!(
            !text.contains(secret),
            "the log carries the {what}:\n{text}"
        );
    }
    assert!(
        !text.contains("eyJ"),
        "a JWT-shaped string is in the log:\n{text}"
    );
}

/// Room names with bidirectional overrides, zero-width or other invisible characters are
/// refused: 4400 with the rules as reason on connect (even with a token that allows every
/// room), 400 on REST; ordinary Unicode names work (#14 item 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_names_with_bidi_or_invisible_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let token = server
        .token(&project.key.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    for bad in [
        "invoice\u{202E}fdp.exe",
        "a\u{2066}b",
        "a\u{200B}b",
        "\u{FEFF}doc",
        "doc\u{200D}",
    ] {
        let (code, reason) = refused(&server, &enc(bad), Some(&token)).await;
        assert_eq!(code, close::MALFORMED, "{bad:?}: {reason}");
        assert!(reason.contains("room names"), "{reason}");
        let r = server
            .call(
                "GET",
                &format!("/v1/rooms/{}", enc(bad)),
                Cred::Bearer(&project.key.key),
                None,
            )
            .await
            .expect(400);
        assert!(r.text().contains("room names"), "{}", r.text());
    }
    let mut ok = Client::connect(&server.ws_url_token(&enc("café-文档"), &token)).await;
    ok.text_push("bonjour").await;
    ok.round_trip().await;
    assert!(ok.closed.is_none());
}

/// With `--kek-file`, the signing seeds in the database are sealed: no 32 bytes of a
/// stored secret make the signing key (a dump alone cannot sign a token), and the server
/// restarted with the KEK keeps signing and verifying with the same key (#14 item 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_seeds_are_sealed_under_the_kek_and_work_across_a_restart() {
    use sqlx::Row;
    use tandem_server::control::token::SigningKey;

    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let kek_file = secrets.path().join("kek");
    std::fs::write(
        &kek_file,
        "8f4e2a1c9b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f\n",
    )
    .unwrap();
    let kek_arg = kek_file.display().to_string();
    let mut server = Server::start_strict(&dir, &["--kek-file", &kek_arg]);
    let (_, project) = server.project().await;
    let token = server
        .token(
            &project.key.key,
            "ada",
            json!({"doc": ["room:write"]}),
            None,
        )
        .await;
    let mut c = Client::connect(&server.ws_url_token("doc", &token)).await;
    c.text_push("sealed").await;
    c.round_trip().await;
    c.close().await;

    let mut db = crate::control::open_db(&server).await;
    let rows = sqlx::query("SELECT kid, secret FROM signing_keys")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let kid: String = row.get("kid");
        let secret: Vec<u8> = row.get("secret");
        assert_ne!(secret.len(), 32, "a plaintext seed is stored for {kid}");
        let forged = secret
            .windows(32)
            .filter_map(|w| SigningKey::from_slice(w).ok())
            .any(|k| k.kid() == kid);
        assert!(!forged, "the stored secret of {kid} contains its seed");
    }
    drop(db);

    assert!(server.sigterm(), "the server did not stop on SIGTERM");
    server.restart();
    // The token signed before the restart still verifies; new ones are minted.
    let mut again = Client::connect(&server.ws_url_token("doc", &token)).await;
    again.round_trip().await;
    assert_eq!(again.text(), "sealed");
    let fresh = server
        .token(&project.key.key, "bob", json!({"doc": ["room:read"]}), None)
        .await;
    Client::connect(&server.ws_url_token("doc", &fresh))
        .await
        .round_trip()
        .await;
}
