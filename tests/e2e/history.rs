//! Version history end to end, with stock y-websocket clients of two users: the
//! document at past times equals what the clients had then (JSON and binary), the
//! versions and diffs name who wrote what, a restore with both clients connected makes
//! both converge to the old state live, a restore is itself restorable, history
//! survives compaction, a SIGKILL and a restart, forks copy a room as it was, and times
//! outside the retention are refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use yrs::updates::decoder::Decode;
use yrs::{GetString, Map, Transact, Update};

use crate::harness::{enc, Cred, Driver, Server};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// What a stock client shows: its text and its map.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    text: String,
    map: Value,
}

async fn seen(d: &mut Driver) -> Seen {
    let state = d.ok(json!({"cmd": "get"})).await;
    Seen {
        text: state["text"].as_str().unwrap().to_owned(),
        map: state["map"].clone(),
    }
}

/// Waits until both clients show the same, and returns it.
async fn converged(a: &mut Driver, b: &mut Driver) -> Seen {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (x, y) = (seen(a).await, seen(b).await);
        if x == y {
            return x;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "clients did not converge: {x:?} vs {y:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `d` shows `expected`.
async fn shows(d: &mut Driver, expected: &Seen) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen(d).await;
        if got == *expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client shows {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's JSON view of a client's state: text and map roots, an empty text or map
/// being `null` (deleted content no longer says what it was).
fn as_view(seen: &Seen) -> Value {
    let empty_map = seen.map.as_object().is_none_or(|m| m.is_empty());
    json!({
        "text": if seen.text.is_empty() { Value::Null } else { json!(seen.text) },
        "map": if empty_map { Value::Null } else { seen.map.clone() },
    })
}

/// The view with absent roots as `null` (a root nobody wrote yet is not listed).
fn normalized(mut view: Value) -> Value {
    for root in ["text", "map"] {
        if view.get(root).is_none() {
            view[root] = Value::Null;
        }
    }
    view
}

async fn get_json(server: &Server, sk: &str, path: &str) -> (u16, Value) {
    let r = server.call("GET", path, Cred::Bearer(sk), None).await;
    let status = r.status;
    let body = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (status, body)
}

async fn document_at(server: &Server, sk: &str, room: &str, at: &str) -> Value {
    let path = format!("/v1/rooms/{}/document?at={}", enc(room), enc(at));
    let (status, body) = get_json(server, sk, &path).await;
    assert_eq!(status, 200, "{path}: {body}");
    normalized(body)
}

/// The binary update at `at`, applied to a fresh yrs document: its text and map.
async fn binary_at(server: &Server, sk: &str, room: &str, at: &str) -> (String, usize) {
    let path = format!("/v1/rooms/{}/document/update?at={}", enc(room), enc(at));
    let auth = format!("Bearer {sk}");
    let r = server
        .request("GET", &path, &[("Authorization", &auth)], None)
        .await
        .expect(200);
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("text");
    let map = doc.get_or_insert_map("map");
    doc.transact_mut()
        .apply_update(Update::decode_v1(&r.body).unwrap())
        .unwrap();
    let txn = doc.transact();
    (text.get_string(&txn), map.len(&txn) as usize)
}

async fn post(server: &Server, sk: &str, path: &str, body: Value) -> (u16, Value) {
    let r = server
        .call("POST", path, Cred::Bearer(sk), Some(body))
        .await;
    let status = r.status;
    (status, r.json())
}

/// Every author (user id or key id) of a diff change.
fn change_authors(change: &Value) -> Vec<String> {
    change["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a["userId"]
                .as_str()
                .or(a["keyId"].as_str())
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

fn find_change<'a>(diff: &'a Value, root: &str, key: Option<&str>) -> &'a Value {
    diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["root"] == root && c["key"].as_str() == key)
        .unwrap_or_else(|| panic!("no change of {root}/{key:?} in {diff}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_two_stock_clients() {
    let dir = tempfile::tempdir().unwrap();
    // A checkpoint every four updates, so past documents come from several.
    let mut server = Server::start_strict(&dir, &["--compact-after-updates", "4"]);
    let (account, project) = server.project().await;
    let sk = project.key.key.clone();
    let room = "history/doc";
    let perms = json!({room: ["room:write"]});
    let alice = server.token(&sk, "alice", perms.clone(), None).await;
    let bob = server.token(&sk, "bob", perms, None).await;
    let mut a = Driver::start(&server.ws_base(), room, Some(&alice)).await;
    let mut b = Driver::start(&server.ws_base(), room, Some(&bob)).await;
    a.ok(json!({"cmd": "wait_synced"})).await;
    b.ok(json!({"cmd": "wait_synced"})).await;

    // Four steps, each by both users; after each, what both clients show and when.
    let mut steps: Vec<(i64, Seen)> = Vec::new();
    let mut record = |at: i64, seen: Seen| steps.push((at, seen));
    a.ok(json!({"cmd": "text_insert", "index": 0, "text": "Hello"}))
        .await;
    a.ok(json!({"cmd": "text_insert", "index": 5, "text": "!"}))
        .await;
    b.ok(json!({"cmd": "wait_text", "equals": "Hello!"})).await;
    let s = converged(&mut a, &mut b).await;
    record(now_ms(), s);
    tokio::time::sleep(Duration::from_millis(40)).await;

    b.ok(json!({"cmd": "map_set", "key": "title", "value": "Draft"}))
        .await;
    b.ok(json!({"cmd": "map_set", "key": "count", "value": 1}))
        .await;
    a.ok(json!({"cmd": "wait_map_size", "size": 2})).await;
    let s = converged(&mut a, &mut b).await;
    record(now_ms(), s);
    tokio::time::sleep(Duration::from_millis(40)).await;

    a.ok(json!({"cmd": "text_insert", "index": 5, "text": " world"}))
        .await;
    b.ok(json!({"cmd": "wait_text", "equals": "Hello world!"}))
        .await;
    b.ok(json!({"cmd": "map_set", "key": "status", "value": "ok"}))
        .await;
    a.ok(json!({"cmd": "wait_map_size", "size": 3})).await;
    let s = converged(&mut a, &mut b).await;
    record(now_ms(), s);
    tokio::time::sleep(Duration::from_millis(40)).await;

    b.ok(json!({"cmd": "text_delete", "index": 0, "len": 6}))
        .await;
    a.ok(json!({"cmd": "wait_text", "equals": "world!"})).await;
    a.ok(json!({"cmd": "map_set", "key": "title", "value": "Final"}))
        .await;
    a.ok(json!({"cmd": "map_delete", "key": "count"})).await;
    b.ok(json!({"cmd": "wait_map_size", "size": 2})).await;
    let s = converged(&mut a, &mut b).await;
    record(now_ms(), s);
    let before_any = steps[0].0 - 60_000;

    // The document at each time is what both clients had then; and before anything was
    // written, nothing.
    for (at, seen) in &steps {
        let view = document_at(&server, &sk, room, &rfc3339(*at)).await;
        assert_eq!(view, as_view(seen), "at {}", rfc3339(*at));
        let (text, map_len) = binary_at(&server, &sk, room, &rfc3339(*at)).await;
        assert_eq!(text, seen.text);
        assert_eq!(map_len, seen.map.as_object().unwrap().len());
    }
    let empty = document_at(&server, &sk, room, &rfc3339(before_any)).await;
    assert_eq!(empty, json!({"text": null, "map": null}));

    // Attribution: what changed between steps, and by whom.
    let diff_path = |from: i64, to: i64| {
        format!(
            "/v1/rooms/{}/diff?from={}&to={}",
            enc(room),
            enc(&rfc3339(from)),
            enc(&rfc3339(to))
        )
    };
    let (status, diff) = get_json(&server, &sk, &diff_path(steps[0].0, steps[1].0)).await;
    assert_eq!(status, 200, "{diff}");
    let title = find_change(&diff, "map", Some("title"));
    assert_eq!(title["kind"], "added");
    assert_eq!(title["after"], "Draft");
    assert_eq!(change_authors(title), ["bob"]);
    assert_eq!(diff["changes"].as_array().unwrap().len(), 2, "{diff}");
    let (_, diff) = get_json(&server, &sk, &diff_path(steps[1].0, steps[2].0)).await;
    let text = find_change(&diff, "text", None);
    assert_eq!(
        (text["kind"].as_str(), text["index"].as_u64()),
        (Some("text"), Some(5))
    );
    assert_eq!(text["after"], " world");
    assert_eq!(change_authors(text), ["alice"]);
    assert_eq!(
        change_authors(find_change(&diff, "map", Some("status"))),
        ["bob"]
    );
    let (_, diff) = get_json(&server, &sk, &diff_path(steps[2].0, steps[3].0)).await;
    let text = find_change(&diff, "text", None);
    assert_eq!(
        (text["before"].as_str(), text["after"].as_str()),
        (Some("Hello "), Some(""))
    );
    assert_eq!(change_authors(text), ["bob"]);
    let title = find_change(&diff, "map", Some("title"));
    assert_eq!(
        (title["kind"].as_str(), title["after"].as_str()),
        (Some("changed"), Some("Final"))
    );
    assert_eq!(change_authors(title), ["alice"]);
    assert_eq!(find_change(&diff, "map", Some("count"))["kind"], "removed");
    let writers: Vec<&str> = diff["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["userId"].as_str().unwrap())
        .collect();
    assert_eq!(writers, ["alice", "bob"]);

    // The versions name both writers (the edits are one burst: less than 5 s apart).
    let (status, versions) =
        get_json(&server, &sk, &format!("/v1/rooms/{}/versions", enc(room))).await;
    assert_eq!(status, 200, "{versions}");
    let first = &versions["data"][0];
    let users: Vec<&str> = first["authors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["userId"].as_str())
        .collect();
    assert_eq!(users, ["alice", "bob"], "{versions}");

    // Name a version.
    let (status, named) = post(
        &server,
        &sk,
        &format!("/v1/rooms/{}/versions", enc(room)),
        json!({"name": "before the big edit", "at": rfc3339(steps[1].0)}),
    )
    .await;
    assert_eq!(status, 201, "{named}");

    // Restore step 2 with both clients connected: both converge to it, live.
    let before_restore = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, restored) = post(
        &server,
        &sk,
        &format!("/v1/rooms/{}/restore", enc(room)),
        json!({"at": rfc3339(steps[1].0)}),
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    assert!(restored["updateBytes"].as_u64().unwrap() > 0);
    shows(&mut a, &steps[1].1).await;
    shows(&mut b, &steps[1].1).await;
    let live = normalized(
        get_json(&server, &sk, &format!("/v1/rooms/{}/document", enc(room)))
            .await
            .1,
    );
    assert_eq!(live, as_view(&steps[1].1), "nothing else changed");
    // The clients keep editing on top of it.
    a.ok(json!({"cmd": "text_insert", "index": 0, "text": ">"}))
        .await;
    b.ok(json!({"cmd": "wait_text", "equals": ">Hello!"})).await;
    b.ok(json!({"cmd": "text_delete", "index": 0, "len": 1}))
        .await;
    a.ok(json!({"cmd": "wait_text", "equals": "Hello!"})).await;

    // Restore the restore: back to what was there before it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, _) = post(
        &server,
        &sk,
        &format!("/v1/rooms/{}/restore", enc(room)),
        json!({"at": rfc3339(before_restore)}),
    )
    .await;
    assert_eq!(status, 200);
    shows(&mut a, &steps[3].1).await;
    shows(&mut b, &steps[3].1).await;
    let after_restores = converged(&mut a, &mut b).await;
    let restores_done = now_ms();

    // The dashboard's inspector shows the timeline, and restores from it.
    let page = format!(
        "/dashboard/t/{}/p/{}/room?name={}",
        account.tenant_id,
        project.id,
        enc(room)
    );
    let html = server
        .request_unchecked("GET", &page, &[("Cookie", &account.cookie)], None)
        .await;
    assert_eq!(html.status, 200);
    let html = html.text();
    assert!(html.contains("Restore this version"), "{html}");
    let (_, now_listed) =
        get_json(&server, &sk, &format!("/v1/rooms/{}/versions", enc(room))).await;
    let newest = now_listed["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        html.contains(&newest),
        "the newest version {newest} is on the timeline"
    );
    let restore_form = page.replacen("/room?", "/room/restore?", 1);
    let posted = server
        .request_unchecked(
            "POST",
            &restore_form,
            &[
                ("Cookie", &account.cookie),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some((
                "application/x-www-form-urlencoded",
                format!("at={}", enc(&newest)).into_bytes(),
            )),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert!(posted.text().contains("Restored to"), "{}", posted.text());
    // The newest version is what the clients have: nothing changes for them.
    assert_eq!(converged(&mut a, &mut b).await, after_restores);

    // The restore is a version, written through "restore" by the key.
    let (_, versions) = get_json(&server, &sk, &format!("/v1/rooms/{}/versions", enc(room))).await;
    let via: Vec<&str> = versions["data"][0]["via"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(via.contains(&"restore"), "{versions}");
    let keys: Vec<&str> = versions["data"][0]["authors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["userId"].is_null())
        .filter_map(|a| a["keyId"].as_str())
        .collect();
    assert_eq!(keys, [project.key.id.as_str()]);
    let named: Vec<&Value> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["names"].as_array().unwrap())
        .collect();
    assert_eq!(named, [&json!("before the big edit")], "{versions}");

    // Fork the room as it was at step 2.
    let fork_path = format!("/v1/rooms/{}/fork", enc(room));
    let (status, forked) = post(
        &server,
        &sk,
        &fork_path,
        json!({"at": rfc3339(steps[1].0), "to": "history/fork"}),
    )
    .await;
    assert_eq!(status, 201, "{forked}");
    let fork = normalized(
        get_json(
            &server,
            &sk,
            &format!("/v1/rooms/{}/document", enc("history/fork")),
        )
        .await
        .1,
    );
    assert_eq!(fork, as_view(&steps[1].1));
    let (status, refused) = post(
        &server,
        &sk,
        &fork_path,
        json!({"at": rfc3339(steps[1].0), "to": "history/fork"}),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("room_exists"))
    );

    // Older than the free plan's 7 days: refused.
    let week_ago = rfc3339(now_ms() - 8 * 24 * 3600 * 1000);
    let path = format!("/v1/rooms/{}/document?at={}", enc(room), enc(&week_ago));
    let (status, gone) = get_json(&server, &sk, &path).await;
    assert_eq!(
        (status, gone["code"].as_str()),
        (410, Some("outside_history"))
    );
    let (status, _) = get_json(
        &server,
        &sk,
        &format!("/v1/rooms/{}/document?at=yesterday", enc(room)),
    )
    .await;
    assert_eq!(status, 400);

    // History survives a SIGKILL and a restart (the room was compacted many times).
    drop(a);
    drop(b);
    server.kill9();
    server.restart();
    let mut all = steps.clone();
    all.push((restores_done, after_restores));
    for (at, seen) in &all {
        let view = document_at(&server, &sk, room, &rfc3339(*at)).await;
        assert_eq!(view, as_view(seen), "after SIGKILL, at {}", rfc3339(*at));
    }
    // And a clean restart, after the room unloaded and compacted on shutdown.
    assert!(server.sigterm());
    server.restart();
    for (at, seen) in &all {
        let view = document_at(&server, &sk, room, &rfc3339(*at)).await;
        assert_eq!(view, as_view(seen), "after restart, at {}", rfc3339(*at));
    }
}

/// In a cluster (three nodes, one Postgres, Redis): edits made through two nodes are in
/// the history any node reads, and a restore asked of the third node reaches the stock
/// clients on the other two live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_restore_across_a_cluster() {
    use crate::cluster_support::{stock, Cluster, Options};
    let Some(cluster) = Cluster::start(
        "history::history_and_restore_across_a_cluster",
        Options {
            strict: true,
            extra: vec!["--compact-after-updates".into(), "3".into()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1, n2) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (_, project) = n0.project().await;
    let sk = project.key.key.clone();
    let room = "history/cluster";
    let perms = json!({room: ["room:write"]});
    let alice = n0.token(&sk, "alice", perms.clone(), None).await;
    let bob = n1.token(&sk, "bob", perms, None).await;
    let mut a = stock(&n0.ws_base(), room, Some(&alice)).await;
    let mut b = stock(&n1.ws_base(), room, Some(&bob)).await;

    a.ok(json!({"cmd": "text_insert", "index": 0, "text": "one"}))
        .await;
    b.ok(json!({"cmd": "wait_text", "equals": "one", "timeout_ms": 20_000}))
        .await;
    b.ok(json!({"cmd": "map_set", "key": "k", "value": "v1"}))
        .await;
    a.ok(json!({"cmd": "wait_map_size", "size": 1, "timeout_ms": 20_000}))
        .await;
    let first = converged(&mut a, &mut b).await;
    let first_at = now_ms();
    tokio::time::sleep(Duration::from_millis(40)).await;
    b.ok(json!({"cmd": "text_insert", "index": 3, "text": " two"}))
        .await;
    a.ok(json!({"cmd": "map_set", "key": "k", "value": "v2"}))
        .await;
    a.ok(json!({"cmd": "map_set", "key": "j", "value": 2}))
        .await;
    a.ok(json!({"cmd": "wait_text", "equals": "one two", "timeout_ms": 20_000}))
        .await;
    b.ok(json!({"cmd": "wait_map_size", "size": 2, "timeout_ms": 20_000}))
        .await;
    let second = converged(&mut a, &mut b).await;
    let second_at = now_ms();

    // Every node reads the same history.
    for node in [n0, n1, n2] {
        for (at, seen) in [(first_at, &first), (second_at, &second)] {
            let view = document_at(node, &sk, room, &rfc3339(at)).await;
            assert_eq!(view, as_view(seen));
        }
    }
    // A restore through the third node, which has no client in the room.
    let (status, body) = post(
        n2,
        &sk,
        &format!("/v1/rooms/{}/restore", enc(room)),
        json!({"at": rfc3339(first_at)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    shows(&mut a, &first).await;
    shows(&mut b, &first).await;
    let diff = get_json(
        n1,
        &sk,
        &format!(
            "/v1/rooms/{}/diff?from={}&to={}",
            enc(room),
            enc(&rfc3339(first_at)),
            enc(&rfc3339(second_at))
        ),
    )
    .await
    .1;
    assert_eq!(change_authors(find_change(&diff, "text", None)), ["bob"]);
    assert_eq!(
        change_authors(find_change(&diff, "map", Some("j"))),
        ["alice"]
    );
}
