//! Hostile presence (issue #21) against the real binary, while two stock y-websocket
//! clients (npm `yjs` + `y-websocket`, `tests/js/driver.mjs`) edit the same room: deeply
//! nested (arrays, objects, mixed; 1k to 1M levels), oversized and malformed awareness
//! states from a raw socket each close that socket with 4400; neither stock client
//! throws (the driver counts uncaught exceptions and `console.error`s), their round trip
//! keeps working, and nothing of the hostile states reaches a late joiner or the REST
//! presence listing. The same across two cluster nodes, and for hostile messages
//! published straight into the room's Redis channel, including ones that try to
//! overwrite or remove presence another node owns.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tandem_protocol::awareness::{self, AwarenessEntry};
use tandem_protocol::Message;

use crate::cluster_support::{converge, insert, stock, Cluster, Options};
use crate::harness::{enc, Client, Closed, Cred, Driver, Server};

/// The client id every hostile state is sent for.
const MALLORY: u64 = 777;

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

fn awareness_frame(client_id: u64, clock: u64, state: &str) -> Vec<u8> {
    let update = awareness::encode_update([AwarenessEntry {
        client_id,
        clock,
        state,
    }]);
    Message::Awareness(&update).encode()
}

/// `(what, awareness frame)` for every hostile case.
fn hostile_frames() -> Vec<(String, Vec<u8>)> {
    let mut states = Vec::new();
    for depth in [1_000, 10_000, 100_000, 1_000_000] {
        states.push((format!("arrays {depth} deep"), nested(depth, "[", "]")));
    }
    for depth in [1_000, 100_000] {
        states.push((
            format!("objects {depth} deep"),
            nested(depth, "{\"a\":", "}"),
        ));
        states.push((
            format!("mixed {depth} deep"),
            nested(depth, "[{\"a\":", "}]"),
        ));
    }
    states.push(("1M unclosed brackets".to_owned(), "[".repeat(1_000_000)));
    states.push(("33 deep".to_owned(), nested(33, "{\"a\":", "}")));
    states.push((
        "20 KiB".to_owned(),
        format!("{{\"x\":\"{}\"}}", "x".repeat(20 * 1024)),
    ));
    states.push(("truncated JSON".to_owned(), "{\"a\":".to_owned()));
    states.push(("two documents".to_owned(), "{} {}".to_owned()));
    let mut frames: Vec<(String, Vec<u8>)> = states
        .into_iter()
        .map(|(name, state)| (name, awareness_frame(MALLORY, 1, &state)))
        .collect();
    frames.push((
        "client id past 2^53".to_owned(),
        awareness_frame(1 << 60, 1, "{}"),
    ));
    frames.push((
        "clock past 2^53".to_owned(),
        awareness_frame(MALLORY, 1 << 60, "{}"),
    ));
    frames
}

/// Sends every hostile frame from a fresh raw socket (cycling through `urls`): each is
/// closed with 4400, and after each the stock clients' edits still go round.
async fn campaign(urls: &[String], a: &mut Driver, b: &mut Driver, tag: &str) {
    let mut tokens = Vec::new();
    for (i, (name, frame)) in hostile_frames().into_iter().enumerate() {
        let mut mallory = Client::connect(&urls[i % urls.len()]).await;
        mallory.send(frame).await;
        match mallory.closed_within(Duration::from_secs(20)).await {
            Closed::Code(code, reason) => assert_eq!(code, 4400, "{name}: {code} {reason}"),
            Closed::Dropped => panic!("{name}: dropped without a close frame"),
        }
        let token = format!("[{tag}{i}]");
        insert(if i % 2 == 0 { &mut *a } else { &mut *b }, &token).await;
        tokens.push(token);
        converge(&mut [&mut *a, &mut *b], &tokens, Duration::from_secs(20)).await;
    }
}

/// Panics if the stock client threw or logged an error.
async fn assert_unharmed(d: &mut Driver, who: &str) -> Value {
    let got = d.ok(json!({"cmd": "get"})).await;
    let failures: Vec<&Value> = d
        .events
        .iter()
        .filter(|e| e["event"] == "exception" || e["event"] == "console-error")
        .collect();
    assert!(
        got["exceptions"] == 0 && got["console_errors"] == 0 && failures.is_empty(),
        "{who} failed: {failures:?}"
    );
    assert_eq!(got["status"], "connected", "{who}");
    got
}

/// The other clients' states a stock client holds, by client id.
async fn others(d: &mut Driver) -> serde_json::Map<String, Value> {
    let reply = d.ok(json!({"cmd": "awareness"})).await;
    reply["states"].as_object().cloned().unwrap_or_default()
}

/// The `(client id, state)` pairs of `GET /v1/rooms/{room}/users` on `server`.
async fn listed(server: &Server, sk: &str, room: &str) -> Vec<(u64, Value)> {
    let path = format!("/v1/rooms/{}/users", enc(room));
    let body = server
        .call("GET", &path, Cred::Bearer(sk), None)
        .await
        .expect(200)
        .json();
    let mut states = Vec::new();
    for user in body["data"].as_array().unwrap() {
        for p in user["presence"].as_array().unwrap() {
            states.push((p["clientId"].as_u64().unwrap(), p["state"].clone()));
        }
    }
    states
}

/// Waits until a stock client holds `count` other states.
async fn await_others(d: &mut Driver, count: usize) {
    d.ok(json!({"cmd": "wait_awareness_count", "count": count, "timeout_ms": 15_000}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_presence_reaches_no_stock_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let room = "hostile/presence";
    let perms = json!({room: ["room:write"]});
    let ta = server.token(sk, "ada", perms.clone(), None).await;
    let tb = server.token(sk, "bob", perms.clone(), None).await;
    let tm = server.token(sk, "mallory", perms.clone(), None).await;
    let mut a = stock(&server.ws_base(), room, Some(&ta)).await;
    let mut b = stock(&server.ws_base(), room, Some(&tb)).await;
    a.ok(json!({"cmd": "set_awareness", "state": {"cursor": 1}}))
        .await;
    b.ok(json!({"cmd": "set_awareness", "state": {"cursor": 2}}))
        .await;
    await_others(&mut a, 1).await;
    await_others(&mut b, 1).await;

    campaign(&[server.ws_url_token(room, &tm)], &mut a, &mut b, "").await;

    let ida = assert_unharmed(&mut a, "ada").await["client_id"].clone();
    let idb = assert_unharmed(&mut b, "bob").await["client_id"].clone();
    // A late joiner sees ada and bob as they set themselves, nothing else.
    let tc = server.token(sk, "cat", perms, None).await;
    let mut c = stock(&server.ws_base(), room, Some(&tc)).await;
    await_others(&mut c, 2).await;
    let seen = others(&mut c).await;
    assert_eq!(seen[&ida.to_string()]["cursor"], 1, "{seen:?}");
    assert_eq!(seen[&ida.to_string()]["user"]["id"], "ada", "{seen:?}");
    assert_eq!(seen[&idb.to_string()]["user"]["id"], "bob", "{seen:?}");
    // REST presence: the stock clients' states only (cat's own may not be in yet).
    let idc = assert_unharmed(&mut c, "cat").await["client_id"].clone();
    let states = listed(&server, sk, room).await;
    let ids: Vec<Value> = states.iter().map(|(id, _)| json!(id)).collect();
    assert!(ids.contains(&ida) && ids.contains(&idb), "{states:?}");
    assert!(
        ids.iter().all(|id| [&ida, &idb, &idc].contains(&id)),
        "{states:?}"
    );
    for (_, state) in &states {
        assert_ne!(state["user"]["id"], "mallory", "{states:?}");
    }
}

/// A room message as a node publishes it: version, node id, kind, frame.
fn node_payload(node: &[u8; 8], kind: u8, frame: &[u8]) -> Vec<u8> {
    [&[1u8][..], node, &[kind], frame].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_presence_reaches_no_node() {
    let Some(cluster) = Cluster::start(
        "hostile_presence::hostile_presence_reaches_no_node",
        Options {
            nodes: 2,
            strict: true,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    let (_, project) = n0.project().await;
    let sk = project.key.key.as_str();
    let room = "hostile/cluster";
    let perms = json!({room: ["room:write"]});
    let ta = n0.token(sk, "ada", perms.clone(), None).await;
    let tb = n0.token(sk, "bob", perms.clone(), None).await;
    let tm = n0.token(sk, "mallory", perms.clone(), None).await;
    let mut a = stock(&n0.ws_base(), room, Some(&ta)).await;
    let mut b = stock(&n1.ws_base(), room, Some(&tb)).await;
    a.ok(json!({"cmd": "set_awareness", "state": {"cursor": 1}}))
        .await;
    b.ok(json!({"cmd": "set_awareness", "state": {"cursor": 2}}))
        .await;
    await_others(&mut a, 1).await;
    await_others(&mut b, 1).await;
    let ida = assert_unharmed(&mut a, "ada").await["client_id"]
        .as_u64()
        .unwrap();
    let idb = assert_unharmed(&mut b, "bob").await["client_id"]
        .as_u64()
        .unwrap();

    // From sockets on both nodes.
    let urls = [n0.ws_url_token(room, &tm), n1.ws_url_token(room, &tm)];
    campaign(&urls, &mut a, &mut b, "s").await;

    // Straight into the room's channel, as a hostile node: hostile states, and
    // attempts to remove ada (node 0's) and overwrite bob (node 1's).
    let channel = format!("room:{}:{room}", project.id);
    let forged = b"MALLORY!";
    let mut injected = Vec::new();
    for (_, frame) in hostile_frames() {
        injected.push(node_payload(forged, 2, &frame));
    }
    injected.push(node_payload(
        forged,
        2,
        &awareness_frame(ida, 1 << 40, "null"),
    ));
    let overwrite = r#"{"user":{"id":"bob"},"cursor":666}"#;
    injected.push(node_payload(
        forged,
        2,
        &awareness_frame(idb, 1 << 40, overwrite),
    ));
    let deep_event = nested(10_000, "[", "]");
    injected.push(node_payload(
        forged,
        3,
        &Message::Event(&deep_event).encode(),
    ));
    // An update whose first count claims 2^32 structs.
    let bomb = Message::Update(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0]).encode();
    injected.push(node_payload(forged, 1, &bomb));
    for payload in &injected {
        assert_eq!(
            cluster.redis_publish(&channel, payload),
            2,
            "both nodes subscribe"
        );
    }
    // Published before these edits, so handled before them on both nodes.
    let tokens = ["[after-redis-a]".to_owned(), "[after-redis-b]".to_owned()];
    insert(&mut a, &tokens[0]).await;
    insert(&mut b, &tokens[1]).await;
    converge(&mut [&mut a, &mut b], &tokens, Duration::from_secs(20)).await;

    for (d, who, other, cursor) in [(&mut a, "ada", idb, 2), (&mut b, "bob", ida, 1)] {
        assert_unharmed(d, who).await;
        let seen = others(d).await;
        assert_eq!(seen.len(), 1, "{who} sees {seen:?}");
        assert_eq!(
            seen[&other.to_string()]["cursor"],
            cursor,
            "{who} sees {seen:?}"
        );
    }
    // A late joiner on either node sees both, as they set themselves.
    let tc = n0.token(sk, "cat", perms, None).await;
    for node in [n0, n1] {
        let mut c = stock(&node.ws_base(), room, Some(&tc)).await;
        await_others(&mut c, 2).await;
        let seen = others(&mut c).await;
        assert_eq!(seen[&ida.to_string()]["cursor"], 1, "{seen:?}");
        assert_eq!(seen[&idb.to_string()]["cursor"], 2, "{seen:?}");
        assert_unharmed(&mut c, "cat").await;
        drop(c);
    }
    // REST presence is cluster-wide: each node lists both states, untouched (its own
    // connection's and the one the other node sent).
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [n0, n1] {
        let mut states = loop {
            let states = listed(node, sk, room).await;
            // The late joiners' connections may still be closing.
            if states.len() == 2 || Instant::now() >= deadline {
                break states;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        states.sort_by_key(|(id, _)| *id);
        let mut expected = vec![(ida, 1), (idb, 2)];
        expected.sort_by_key(|(id, _)| *id);
        assert_eq!(states.len(), 2, "{states:?}");
        for ((id, state), (want_id, cursor)) in states.iter().zip(expected) {
            assert_eq!(*id, want_id, "{states:?}");
            assert_eq!(state["cursor"], cursor, "{states:?}");
        }
    }
}
