//! The rooms REST API end to end: the JSON view of what a stock y-websocket client
//! wrote, applying updates (live to clients, durable), the document as an update (or
//! only what a state vector lacks), listing with cursors and prefixes, deleting
//! (disconnects with 4404 and erases), and broadcasting events (message type 100).

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tandem_protocol::close;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{GetString, Map, ReadTxn, Text, Transact, Update};

use crate::control::document;
use crate::control_tokens::{post_update, text_update};
use crate::harness::{enc, eventually, Client, Closed, Cred, Driver, Server};

/// JSON equality where numbers compare by value (`3` equals `3.0`): Yjs numbers are
/// doubles, and how an integral one is printed is not what this test is about.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

async fn get_update(server: &Server, sk: &str, room: &str, sv: Option<&[u8]>) -> Vec<u8> {
    let query = sv.map_or(String::new(), |sv| {
        format!(
            "?stateVector={}",
            enc(&base64::engine::general_purpose::STANDARD.encode(sv))
        )
    });
    let auth = format!("Bearer {sk}");
    let r = server
        .request(
            "GET",
            &format!("/v1/rooms/{}/document/update{query}", enc(room)),
            &[("Authorization", &auth)],
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    r.body
}

fn apply(doc: &yrs::Doc, update: &[u8]) {
    let update = Update::decode_v1(update).expect("a v1 update");
    doc.transact_mut().apply_update(update).expect("applies");
}

fn text_of_doc(doc: &yrs::Doc) -> String {
    let text = doc.get_or_insert_text("text");
    text.get_string(&doc.transact())
}

/// The JSON view of a room equals what a stock client wrote: text (with non-ASCII and
/// a deletion) and a map of every JSON type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_view_equals_what_a_stock_client_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let room = "view/doc";
    let token = server
        .token(sk, "ada", json!({room: ["room:write"]}), None)
        .await;
    let mut d = Driver::start(&server.ws_base(), room, Some(&token)).await;
    d.ok(json!({"cmd": "wait_synced"})).await;
    d.ok(json!({"cmd": "text_insert", "index": 0, "text": "héllo wörld 🎉 — done"}))
        .await;
    d.ok(json!({"cmd": "text_delete", "index": 0, "len": 6}))
        .await;
    for (key, value) in [
        ("title", json!("Plan")),
        ("count", json!(3)),
        ("ratio", json!(1.5)),
        ("done", json!(false)),
        ("nothing", json!(null)),
        ("tags", json!(["a", "b", 3])),
        ("meta", json!({"owner": "ada", "nested": {"deep": [true]}})),
    ] {
        d.ok(json!({"cmd": "map_set", "key": key, "value": value}))
            .await;
    }
    d.ok(json!({"cmd": "map_delete", "key": "title"})).await;
    let state = d.ok(json!({"cmd": "get"})).await;
    let expected = json!({"text": state["text"], "map": state["map"]});
    assert_eq!(expected["text"], "wörld 🎉 — done");

    let (s, e) = (&server, &expected);
    eventually(
        "the JSON view matches the client",
        Duration::from_secs(10),
        || async move {
            document(s, sk, room)
                .await
                .is_some_and(|doc| same_json(&doc, e))
        },
    )
    .await;
}

/// An update applied through REST reaches a connected raw client and a stock client
/// live, and is durable once the call returns (the server is SIGKILLed right after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_update_reaches_clients_live_and_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.clone();
    let room = "live";
    let token = server
        .token(&sk, "ada", json!({room: ["room:read"]}), None)
        .await;
    let mut raw = Client::connect(&server.ws_url_token(room, &token)).await;
    let mut stock = Driver::start(&server.ws_base(), room, Some(&token)).await;
    stock.ok(json!({"cmd": "wait_synced"})).await;

    let update = {
        let doc = yrs::Doc::with_client_id(4242);
        let text = doc.get_or_insert_text("text");
        let map = doc.get_or_insert_map("map");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "from REST");
        map.insert(&mut txn, "source", "rest".to_owned());
        txn.encode_update_v1()
    };
    post_update(&server, &sk, room, update).await;

    raw.pump_until("the REST update", Duration::from_secs(10), |c| {
        c.text() == "from REST" && c.map_get("source").as_deref() == Some("rest")
    })
    .await;
    stock
        .ok(json!({"cmd": "wait_text", "equals": "from REST"}))
        .await;
    stock.ok(json!({"cmd": "wait_map_size", "size": 1})).await;

    server.kill9();
    server.restart();
    assert_eq!(
        document(&server, &sk, room).await,
        Some(json!({"text": "from REST", "map": {"source": "rest"}}))
    );
}

/// `GET …/document/update?stateVector=` returns only what that state lacks: applied to
/// a document at that state it gives the whole document; alone it lacks the older part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_for_a_state_vector_is_only_the_missing_part() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let room = "sv";

    let writer = yrs::Doc::with_client_id(7);
    let text = writer.get_or_insert_text("text");
    let first = {
        let mut txn = writer.transact_mut();
        text.insert(&mut txn, 0, &"older part. ".repeat(20));
        txn.encode_update_v1()
    };
    post_update(&server, sk, room, first).await;

    let local = yrs::Doc::new();
    apply(&local, &get_update(&server, sk, room, None).await);
    assert_eq!(text_of_doc(&local), "older part. ".repeat(20));
    let sv = local.transact().state_vector().encode_v1();

    let second = {
        let mut txn = writer.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, "newer part.");
        txn.encode_update_v1()
    };
    post_update(&server, sk, room, second).await;

    let full = get_update(&server, sk, room, None).await;
    let diff = get_update(&server, sk, room, Some(&sv)).await;
    assert!(
        diff.len() < full.len() / 2,
        "the diff ({} bytes) is not smaller than the document ({} bytes)",
        diff.len(),
        full.len()
    );
    apply(&local, &diff);
    let whole = format!("{}newer part.", "older part. ".repeat(20));
    assert_eq!(text_of_doc(&local), whole);
    let alone = yrs::Doc::new();
    apply(&alone, &diff);
    assert!(
        !text_of_doc(&alone).contains("older part."),
        "the diff carries what the state vector already had"
    );
    // An empty state vector asks for everything.
    let everything = get_update(&server, sk, room, Some(&[0])).await;
    let fresh = yrs::Doc::new();
    apply(&fresh, &everything);
    assert_eq!(text_of_doc(&fresh), whole);

    let r = server
        .call(
            "GET",
            &format!("/v1/rooms/{room}/document/update?stateVector=%21%21"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

fn names(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Listing rooms: by name, a prefix filter, cursor pagination to the end, and the live
/// connection count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_with_cursors_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let alphas: Vec<String> = (1..=5).map(|i| format!("alpha-{i}")).collect();
    let all: Vec<String> = [
        "beta-2", "alpha-3", "beta-1", "alpha-1", "alpha-5", "alpha-2", "alpha-4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for room in &all {
        post_update(&server, sk, room, text_update(room)).await;
    }
    let mut sorted = all.clone();
    sorted.sort();

    let page = server
        .call("GET", "/v1/rooms", Cred::Bearer(sk), None)
        .await
        .expect(200)
        .json();
    assert_eq!(names(&page), sorted);
    assert!(page["nextCursor"].is_null(), "{page}");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = "/v1/rooms?prefix=alpha-&limit=2".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let page = server
            .call("GET", &path, Cred::Bearer(sk), None)
            .await
            .expect(200)
            .json();
        let got = names(&page);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, alphas);

    for bad in [
        "/v1/rooms?limit=0",
        "/v1/rooms?limit=101",
        "/v1/rooms?cursor=%21%21%21",
    ] {
        server
            .call("GET", bad, Cred::Bearer(sk), None)
            .await
            .expect(400);
    }

    let token = server
        .token(sk, "ada", json!({"alpha-1": ["room:read"]}), None)
        .await;
    let _c = Client::connect(&server.ws_url_token("alpha-1", &token)).await;
    let room = server
        .call("GET", "/v1/rooms/alpha-1", Cred::Bearer(sk), None)
        .await
        .expect(200)
        .json();
    assert_eq!(room["name"], "alpha-1");
    assert_eq!(room["connections"], 1, "{room}");
}

/// Deleting a room closes its connections with 4404 (a stock client stops
/// reconnecting), and erases it: 404 afterwards, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_disconnects_with_4404_and_erases() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.clone();
    let room = "doomed";
    post_update(&server, &sk, room, text_update("soon gone")).await;
    let token = server
        .token(&sk, "ada", json!({room: ["room:write"]}), None)
        .await;
    let mut raw = Client::connect(&server.ws_url_token(room, &token)).await;
    assert_eq!(raw.text(), "soon gone");
    let mut stock = Driver::start(&server.ws_base(), room, Some(&token)).await;
    stock
        .ok(json!({"cmd": "wait_text", "equals": "soon gone"}))
        .await;

    server
        .call(
            "DELETE",
            &format!("/v1/rooms/{room}"),
            Cred::Bearer(&sk),
            None,
        )
        .await
        .expect(204);

    let closed = raw.closed_within(Duration::from_secs(10)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::ROOM_DELETED),
        "{closed:?}"
    );
    assert_eq!(
        stock.close_code(Duration::from_secs(10)).await,
        u64::from(close::ROOM_DELETED)
    );
    // y-websocket >= 3.1 gives up on 44xx codes instead of reconnecting.
    stock
        .wait_event("the provider gives up", Duration::from_secs(10), |e| {
            e["event"] == "closed"
        })
        .await;
    drop(stock);

    assert_eq!(document(&server, &sk, room).await, None);
    for (method, path) in [
        ("GET", format!("/v1/rooms/{room}")),
        ("GET", format!("/v1/rooms/{room}/document/update")),
        ("DELETE", format!("/v1/rooms/{room}")),
    ] {
        server
            .call(method, &path, Cred::Bearer(&sk), None)
            .await
            .expect(404);
    }
    let listed = server
        .call("GET", "/v1/rooms", Cred::Bearer(&sk), None)
        .await
        .expect(200)
        .json();
    assert!(!names(&listed).contains(&room.to_owned()), "{listed}");

    assert!(server.sigterm(), "clean shutdown");
    server.restart();
    assert_eq!(document(&server, &sk, room).await, None);
    // A new room of that name starts empty.
    let fresh = Client::connect(&server.ws_url_token(room, &token)).await;
    assert_eq!(fresh.text(), "");
}

/// A broadcast event reaches a connected raw client as a Tandem event message (type
/// 100) with a null sender; a room nobody is in gets it nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_event_reaches_connected_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let room = "events";
    let token = server
        .token(sk, "ada", json!({room: ["room:read"]}), None)
        .await;
    let mut a = Client::connect(&server.ws_url_token(room, &token)).await;
    let mut b = Client::connect(&server.ws_url_token(room, &token)).await;

    let event = json!({"kind": "confetti", "n": 3, "who": ["x"]});
    let sent = server
        .call(
            "POST",
            &format!("/v1/rooms/{room}/events"),
            Cred::Bearer(sk),
            Some(json!({"event": event})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(sent, json!({"delivered": 2}));
    for c in [&mut a, &mut b] {
        c.pump_until("the event", Duration::from_secs(10), |c| {
            !c.events.is_empty()
        })
        .await;
        let got: Value = serde_json::from_str(&c.events[0]).unwrap();
        assert_eq!(
            got,
            json!({"event": event, "connectionId": null, "userId": null})
        );
    }

    let nobody = server
        .call(
            "POST",
            "/v1/rooms/empty-room/events",
            Cred::Bearer(sk),
            Some(json!({"event": 1})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(nobody, json!({"delivered": 0}));
}
