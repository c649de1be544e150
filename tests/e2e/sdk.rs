//! The Rust SDK (`tandem-sdk`) against the real server: convergence with the stock
//! y-websocket client and presence from tokens, offline edits across a SIGKILL, token
//! refresh on expiry, refusals that are not retried, and a property test of random
//! concurrent edits with random disconnects.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tandem_sdk::{Client, Error, Room, RoomEvent, Status};
use yrs::{ReadTxn, StateVector, Transact};

use crate::harness::{enc, Cred, Driver, Server};
use crate::sdk_support::{
    client, is_synced, others_users, provider, synced, until, Counting, Proxy,
};

const WAIT: Duration = Duration::from_secs(20);

fn pair(id: &str, name: &str) -> (String, String) {
    (id.to_owned(), name.to_owned())
}

/// A stock-client token for `user` with a name, writing `room`.
async fn stock_token(server: &Server, key: &str, room: &str, user: &str, name: &str) -> String {
    let body = json!({
        "userId": user,
        "userInfo": {"name": name},
        "permissions": {room: ["room:write"]},
    });
    let created = server.mint(key, body).await.expect(200).json();
    created["token"].as_str().unwrap().to_owned()
}

/// Two SDK clients and one stock y-websocket client edit one Y.Text and one Y.Map and
/// converge; each sees the other two with the user info from their tokens; custom events
/// carry the sender's user id; leaving removes the presence promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_and_stock_clients_converge_and_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let key = project.key.key.as_str();
    let base = format!("http://{}", server.addr);
    let room_name = "sdk/converge-1";

    let alice = client(&base, provider(&base, key, "alice"));
    let bob = client(&base, provider(&base, key, "bob"));
    let carol_token = stock_token(&server, key, room_name, "carol", "Carol").await;
    let mut carol = Driver::start(&server.ws_base(), room_name, Some(&carol_token)).await;
    carol.ok(json!({"cmd": "wait_synced"})).await;

    let a = alice.enter(room_name).await.unwrap();
    let b = bob.enter(room_name).await.unwrap();
    synced(&a).await;
    synced(&b).await;
    let mut b_events = b.events();

    // Concurrent edits from all three.
    a.text("text").push("alice;").unwrap();
    b.text("text").insert(0, "bob;").unwrap();
    a.map("map").set("a", "from alice").unwrap();
    b.map("map").set("b", json!({"n": 2})).unwrap();
    carol
        .ok(json!({"cmd": "text_insert", "index": 0, "text": "carol;"}))
        .await;
    carol
        .ok(json!({"cmd": "map_set", "key": "c", "value": [3]}))
        .await;

    let deadline = Instant::now() + WAIT;
    loop {
        let stock = carol.ok(json!({"cmd": "get"})).await;
        let (ta, tb) = (a.text("text").to_string(), b.text("text").to_string());
        let (ma, mb) = (a.map("map").to_json(), b.map("map").to_json());
        if ta.len() == "alice;bob;carol;".len()
            && ta == tb
            && ta == stock["text"]
            && ma == mb
            && ma == stock["map"]
            && ma.as_object().map(|m| m.len()) == Some(3)
        {
            assert_eq!(ma["b"], json!({"n": 2}));
            assert_eq!(ma["c"], json!([3]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: a={ta:?} {ma} b={tb:?} {mb} stock={stock}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Presence: each sees the others with the token's user info stamped by the server.
    a.update_presence(json!({"cursor": 1})).unwrap();
    until(
        "alice sees bob and carol",
        WAIT,
        || others_users(&a) == [pair("bob", "Bob"), pair("carol", "Carol")],
        || format!("{:?}", a.others()),
    )
    .await;
    until(
        "bob sees alice (with her cursor) and carol",
        WAIT,
        || {
            others_users(&b) == [pair("alice", "Alice"), pair("carol", "Carol")]
                && b.others()
                    .iter()
                    .any(|o| o.user_id() == Some("alice") && o.presence == json!({"cursor": 1}))
        },
        || format!("{:?}", b.others()),
    )
    .await;
    carol
        .ok(json!({"cmd": "wait_awareness_count", "count": 2}))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let states = carol.ok(json!({"cmd": "awareness"})).await["states"].clone();
        let users: Vec<Value> = states
            .as_object()
            .unwrap()
            .values()
            .filter_map(|s| s.get("user").cloned())
            .collect();
        let has = |id: &str, name: &str| {
            users
                .iter()
                .any(|u| u["id"] == json!(id) && u["name"] == json!(name))
        };
        let alice_cursor = states
            .as_object()
            .unwrap()
            .values()
            .any(|s| s["user"]["id"] == "alice" && s["cursor"] == 1);
        if has("alice", "Alice") && has("bob", "Bob") && alice_cursor {
            break;
        }
        assert!(Instant::now() < deadline, "stock client sees {states}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A custom event reaches bob with alice's user id, stamped by the server.
    a.broadcast(json!({"type": "wave"})).await.unwrap();
    let event = tokio::time::timeout(WAIT, async {
        loop {
            match b_events.recv().await {
                Some(RoomEvent::Custom(event)) => return event,
                Some(_) => {}
                None => panic!("bob's room ended"),
            }
        }
    })
    .await
    .expect("bob receives the event");
    assert_eq!(event.event, json!({"type": "wave"}));
    assert_eq!(event.user_id.as_deref(), Some("alice"));

    // Leaving withdraws the presence at once (not after the 30 s timeout).
    a.leave().await;
    until(
        "bob no longer sees alice",
        Duration::from_secs(10),
        || others_users(&b) == [pair("carol", "Carol")],
        || format!("{:?}", b.others()),
    )
    .await;
    b.leave().await;
}

/// The server is SIGKILLed and restarted while an SDK client keeps editing offline: on
/// reconnect its offline edits reach the other client and a fresh one, and nothing is
/// lost (the edits made before the kill, and those of the other client while offline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_survive_a_server_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let key = project.key.key.clone();
    // Clients (and their token minting) go through the proxy: the restarted server has a
    // new port, the proxy keeps the address the clients know.
    let proxy = Proxy::start(&server.addr).await;
    let base = proxy.base_url();
    let room_name = "sdk/offline";

    let writer = client(&base, provider(&base, &key, "writer"))
        .enter(room_name)
        .await
        .unwrap();
    let reader = client(&base, provider(&base, &key, "reader"))
        .enter(room_name)
        .await
        .unwrap();
    synced(&writer).await;
    synced(&reader).await;
    let items = writer.list("items");
    for i in 0..5 {
        items.push(format!("before-{i}")).unwrap();
    }
    until(
        "the reader has the first edits",
        WAIT,
        || reader.list("items").len() == 5,
        || reader.list("items").to_json().to_string(),
    )
    .await;

    server.kill9();
    until(
        "both notice the server is gone",
        WAIT,
        || !writer.status().is_connected() && !reader.status().is_connected(),
        || format!("{:?} {:?}", writer.status(), reader.status()),
    )
    .await;
    for i in 0..10 {
        items.push(format!("offline-{i}")).unwrap();
    }
    writer.text("notes").push("written offline").unwrap();
    reader.list("items").push("reader-offline").unwrap();
    // Still offline: nothing was lost locally or sent anywhere.
    assert_eq!(writer.list("items").len(), 15);
    assert!(matches!(writer.status(), Status::Reconnecting { .. }));

    server.restart();
    proxy.retarget(&server.addr);
    let expected = 16;
    until(
        "both reconnect and converge with every edit",
        Duration::from_secs(40),
        || {
            is_synced(&writer)
                && is_synced(&reader)
                && writer.list("items").len() == expected
                && reader.list("items").to_json() == writer.list("items").to_json()
                && reader.text("notes").to_string() == "written offline"
        },
        || {
            format!(
                "writer {:?} {}, reader {:?} {}",
                writer.status(),
                writer.list("items").to_json(),
                reader.status(),
                reader.list("items").to_json()
            )
        },
    )
    .await;

    // A client that never saw any of it gets everything from the server.
    let fresh = client(&base, provider(&base, &key, "fresh"))
        .enter(room_name)
        .await
        .unwrap();
    synced(&fresh).await;
    let list = fresh.list("items").to_json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), expected as usize, "{list:?}");
    for want in (0..5)
        .map(|i| format!("before-{i}"))
        .chain((0..10).map(|i| format!("offline-{i}")))
        .chain(["reader-offline".to_owned()])
    {
        assert!(list.contains(&json!(want)), "{want} lost: {list:?}");
    }
    assert_eq!(fresh.text("notes").to_string(), "written offline");
    for room in [writer, reader, fresh] {
        room.leave().await;
    }
}

/// A token that expires mid-session (2 s lifetime) is replaced through the provider with
/// no help from the app, again and again, in band on the open connection (the session
/// extension): no reconnect at all; edits made all along reach the other client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refreshed_without_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let key = project.key.key.as_str();
    let base = format!("http://{}", server.addr);
    let room_name = "sdk/refresh";

    let (short_lived, calls) =
        Counting::new(provider(&base, key, "alice").expires_in(Duration::from_secs(2)));
    let a = client(&base, short_lived).enter(room_name).await.unwrap();
    let b = client(&base, provider(&base, key, "bob"))
        .enter(room_name)
        .await
        .unwrap();
    let mut events = a.events();
    synced(&a).await;
    synced(&b).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Keep editing across at least two expiries.
    let started = Instant::now();
    let mut pushed = 0;
    while calls.load(Ordering::SeqCst) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the token was not refreshed: {} provider calls, status {:?}",
            calls.load(Ordering::SeqCst),
            a.status()
        );
        assert!(!a.status().is_disconnected(), "stopped: {:?}", a.status());
        a.list("log").push(pushed).unwrap();
        pushed += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(
        "alice is synced again and bob has every edit",
        WAIT,
        || is_synced(&a) && b.list("log").len() == pushed,
        || format!("{:?}, bob has {}/{pushed}", a.status(), b.list("log").len()),
    )
    .await;
    let log = b.list("log").to_json();
    let expected: Vec<Value> = (0..pushed).map(|i| json!(i)).collect();
    assert_eq!(log, Value::Array(expected), "edits lost or reordered");

    // One provider call per token lifetime, not a loop.
    let lifetimes = started.elapsed().as_secs_f64() / 2.0;
    let made = calls.load(Ordering::SeqCst);
    assert!(
        (made as f64) <= lifetimes + 3.0,
        "{made} provider calls in {lifetimes:.1} token lifetimes"
    );
    let mut statuses = Vec::new();
    while let Some(event) = events.try_recv() {
        match event {
            RoomEvent::Error(e) => panic!("error during in-band refreshes: {e}"),
            RoomEvent::Status(status) => statuses.push(status),
            _ => {}
        }
    }
    // Only the first connection's way to synced, if the subscription saw it at all.
    assert!(
        statuses
            .iter()
            .all(|s| !matches!(s, Status::Reconnecting { .. } | Status::Disconnected { .. })),
        "the connection was replaced: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .filter(|s| matches!(s, Status::Synced))
            .count()
            <= 1,
        "synced more than once: {statuses:?}"
    );
    a.leave().await;
    b.leave().await;
}

/// A token for other rooms (4403) stops the room with a typed error after one attempt;
/// tokens the server refuses (4401) stop it after three fresh ones. Neither loops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_errors_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = server.project().await;
    let key = project.key.key.as_str();
    let base = format!("http://{}", server.addr);

    // 4403: the token allows `other-*` only.
    let proxy = Proxy::start(&server.addr).await;
    let (elsewhere, calls) = Counting::new(
        provider(&base, key, "alice")
            .permissions([("other-*".to_owned(), vec![tandem_sdk::admin::Scope::Write])].into()),
    );
    let room = client(&proxy.base_url(), elsewhere)
        .enter("sdk/mine")
        .await
        .unwrap();
    let error = tokio::time::timeout(WAIT, room.wait_synced())
        .await
        .expect("an answer in time")
        .unwrap_err();
    assert!(matches!(error, Error::Forbidden { .. }), "{error:?}");
    assert!(error.is_fatal());
    assert!(matches!(
        room.status(),
        Status::Disconnected {
            error: Some(Error::Forbidden { .. })
        }
    ));
    // A bounded window: no further attempt, no further token.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(proxy.accepted(), 1, "connections after a 4403");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "provider calls after a 4403"
    );

    // 4401 every time: three tokens, then a typed error.
    let proxy = Proxy::start(&server.addr).await;
    let (garbage, calls) =
        Counting::new(|_room: String| async { Ok::<_, Error>("not-a-token".to_owned()) });
    let room = client(&proxy.base_url(), garbage)
        .enter("sdk/mine")
        .await
        .unwrap();
    let error = tokio::time::timeout(WAIT, room.wait_synced())
        .await
        .expect("an answer in time")
        .unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized { attempts: 3, .. }),
        "{error:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(proxy.accepted(), 3, "connections after three 4401s");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "provider calls");
}

// ---- property test: random concurrent edits, random disconnects ----

/// One step of the property test, by client `0..3`.
#[derive(Debug, Clone)]
enum Op {
    /// Bump this client's own counter (`counters.c<i>`): the final value must be exact.
    Count(usize),
    /// Append a unique item to the shared log: every item must survive, in each
    /// client's order.
    Log(usize),
    /// Set a contended key (last writer wins; only convergence is checked).
    Set(usize, u8, i32),
    /// Insert into the shared text at a position (modulo its length).
    Insert(usize, u16, String),
    /// Delete from the shared text.
    Delete(usize, u16, u8),
    /// Drop this client's connection (a network failure; it reconnects by itself).
    Disconnect(usize),
    /// Let the network work for a few milliseconds.
    Pause(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..3usize;
    prop_oneof![
        3 => who.clone().prop_map(Op::Count),
        3 => who.clone().prop_map(Op::Log),
        2 => (who.clone(), 0..3u8, any::<i32>()).prop_map(|(c, k, v)| Op::Set(c, k, v)),
        3 => (who.clone(), any::<u16>(), "[a-zé🎉]{1,4}").prop_map(|(c, p, s)| Op::Insert(c, p, s)),
        2 => (who.clone(), any::<u16>(), 1..4u8).prop_map(|(c, p, n)| Op::Delete(c, p, n)),
        1 => who.prop_map(Op::Disconnect),
        2 => (0..30u8).prop_map(Op::Pause),
    ]
}

fn state_vector(room: &Room) -> StateVector {
    room.doc().transact().state_vector()
}

/// Everything the property test writes, as JSON.
fn snapshot(room: &Room) -> Value {
    json!({
        "counters": room.map("counters").to_json(),
        "log": room.list("log").to_json(),
        "shared": room.map("shared").to_json(),
        "text": room.text("text").to_json(),
    })
}

/// Runs one case; returns how many times its clients reconnected.
async fn run_case(server: &Server, key: &str, proxies: &[Proxy], case: usize, ops: &[Op]) -> usize {
    let room_name = format!("sdk/prop-{case}");
    let connections_before: usize = proxies.iter().map(Proxy::accepted).sum();
    let mint = format!("http://{}", server.addr);
    let mut rooms = Vec::new();
    for (i, proxy) in proxies.iter().enumerate() {
        let c: Client = client(&proxy.base_url(), provider(&mint, key, &format!("user{i}")));
        rooms.push(c.enter(&room_name).await.unwrap());
    }
    for room in &rooms {
        synced(room).await;
    }

    let mut counts = [0u32; 3];
    let mut logged: [Vec<String>; 3] = Default::default();
    for op in ops {
        match op {
            Op::Count(i) => {
                counts[*i] += 1;
                rooms[*i]
                    .map("counters")
                    .set(&format!("c{i}"), counts[*i])
                    .unwrap();
            }
            Op::Log(i) => {
                let item = format!("{i}-{}", logged[*i].len());
                rooms[*i].list("log").push(item.clone()).unwrap();
                logged[*i].push(item);
            }
            Op::Set(i, k, v) => rooms[*i].map("shared").set(&format!("k{k}"), *v).unwrap(),
            Op::Insert(i, pos, s) => {
                let text = rooms[*i].text("text");
                let at = u32::from(*pos) % (text.len() + 1);
                text.insert(at, s).unwrap();
            }
            Op::Delete(i, pos, n) => {
                let text = rooms[*i].text("text");
                let len = text.len();
                if len > 0 {
                    let at = u32::from(*pos) % len;
                    text.delete(at, u32::from(*n).min(len - at)).unwrap();
                }
            }
            Op::Disconnect(i) => proxies[*i].cut(),
            Op::Pause(ms) => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
        }
    }

    until(
        "the three clients converge",
        Duration::from_secs(30),
        || {
            rooms.iter().all(is_synced)
                && rooms.windows(2).all(|w| {
                    state_vector(&w[0]) == state_vector(&w[1]) && snapshot(&w[0]) == snapshot(&w[1])
                })
        },
        || {
            rooms
                .iter()
                .map(|r| format!("{:?}: {} {:?}", r.status(), snapshot(r), state_vector(r)))
                .collect::<Vec<_>>()
                .join("\n")
        },
    )
    .await;

    // Nothing lost: every counter at its last value, every log item present, each
    // client's items in the order it appended them.
    let counters = rooms[0].map("counters").to_json();
    for (i, count) in counts.iter().enumerate() {
        if *count > 0 {
            assert_eq!(counters[format!("c{i}")], json!(count), "{counters}");
        }
    }
    let log: Vec<String> = rooms[0]
        .list("log")
        .to_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        log.len(),
        logged.iter().map(Vec::len).sum::<usize>(),
        "{log:?}"
    );
    for (i, mine) in logged.iter().enumerate() {
        let seen: Vec<&String> = log
            .iter()
            .filter(|s| s.starts_with(&format!("{i}-")))
            .collect();
        assert_eq!(
            seen,
            mine.iter().collect::<Vec<_>>(),
            "client {i}'s log items"
        );
    }

    // The server holds the same state.
    if ops
        .iter()
        .any(|op| !matches!(op, Op::Disconnect(_) | Op::Pause(_)))
    {
        let doc = server
            .call(
                "GET",
                &format!("/v1/rooms/{}/document", enc(&room_name)),
                Cred::Bearer(key),
                None,
            )
            .await
            .expect(200)
            .json();
        let text = rooms[0].text("text").to_string();
        if !text.is_empty() {
            assert_eq!(doc["text"], json!(text), "server text");
        }
        if !log.is_empty() {
            assert_eq!(doc["log"], json!(log), "server log");
        }
    }
    let reconnects = proxies.iter().map(Proxy::accepted).sum::<usize>() - connections_before - 3;
    for room in rooms {
        room.leave().await;
    }
    reconnects
}

/// Random concurrent edits (map, list, text) from three SDK clients, with random dropped
/// connections, against the real server: the three always converge to the same state,
/// which holds every edit and is the server's.
#[test]
fn random_edits_with_disconnects_converge() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let (_, project) = runtime.block_on(server.project());
    let key = project.key.key.clone();
    let proxies: Vec<Proxy> = runtime.block_on(async {
        let mut proxies = Vec::new();
        for _ in 0..3 {
            proxies.push(Proxy::start(&server.addr).await);
        }
        proxies
    });
    let mut runner = TestRunner::new(Config {
        cases: 16,
        // Each case runs against a real server: report the failing case as found
        // rather than spend minutes shrinking it.
        max_shrink_iters: 0,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0);
    let reconnects = std::cell::Cell::new(0);
    let result = runner.run(&prop::collection::vec(op(), 5..60), |ops| {
        case.set(case.get() + 1);
        let n = runtime.block_on(run_case(&server, &key, &proxies, case.get(), &ops));
        reconnects.set(reconnects.get() + n);
        Ok(())
    });
    runtime.block_on(async { drop(proxies) });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The disconnects did happen (and were recovered from): a property test whose
    // clients never lost a connection would prove much less.
    eprintln!("{} cases, {} reconnections", case.get(), reconnects.get());
    assert!(
        reconnects.get() >= case.get() / 2,
        "only {} reconnections",
        reconnects.get()
    );
}
