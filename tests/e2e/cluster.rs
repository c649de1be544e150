//! Scale-out: several `tandem serve` nodes on one Postgres database and one Redis
//! (`cluster_support.rs`). Stock y-websocket clients on different nodes converge and
//! share presence; a SIGKILLed node's clients move to another node and lose nothing;
//! Redis and Postgres outages heal (Redis without any client reconnecting, Postgres
//! without losing an edit); room deletion and key revocation close connections on
//! every node, even while Redis is down (durable control events); the per-project and
//! per-room connection caps, room counts, presence listings and per-key REST quotas are
//! cluster-wide.
//!
//! Needs Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379): skipped with a message
//! when either is unreachable, except with `CI=true`, where the tests fail.

use std::time::Duration;

use serde_json::json;
use tandem_protocol::{close, Message};

use crate::cluster_support::{
    admit, awareness_states, connected_count, converge, drain_events, has_user, insert, metric,
    readyz, server_close_codes, stock, text, tokens_in, until, Cluster, CutProxy, Options,
};
use crate::control_tokens::refused;
use crate::harness::{Client, Closed, Cred, Driver};

/// Waits (up to `within`) until every stock client in `drivers` (by index) does
/// (`present`) or does not hold a presence state whose `user.name` is `name`.
async fn presence_within(
    drivers: &mut [Driver],
    which: &[usize],
    name: &str,
    present: bool,
    within: Duration,
) {
    for &i in which {
        let d = &mut drivers[i];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let states = awareness_states(d).await;
            if has_user(&states, name) == present {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client {i}: presence of {name} should be {present}; states: {states}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// [`presence_within`] 15 s: under the 30 s after which the server (and the clients)
/// would drop a state that is not renewed, so a removal seen in time was sent.
async fn presence(drivers: &mut [Driver], which: &[usize], name: &str, present: bool) {
    presence_within(drivers, which, name, present, Duration::from_secs(15)).await;
}

/// The tokens `[k{client}r{round}]` of `clients` clients over `rounds`, round by
/// round, with their client.
fn rounds(clients: usize, rounds: std::ops::Range<usize>) -> Vec<(usize, String)> {
    rounds
        .flat_map(|r| (0..clients).map(move |i| (i, format!("[k{i}r{r}]"))))
        .collect()
}

fn all(drivers: &mut [Driver]) -> Vec<&mut Driver> {
    drivers.iter_mut().collect()
}

/// 0. Nodes of a new installation starting at once on the empty database all come
///    up: one of them creates the bootstrap account, the others use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_an_empty_database_all_come_up() {
    let Some(cluster) = Cluster::start(
        "cluster::nodes_starting_together_on_an_empty_database_all_come_up",
        Options {
            together: true,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    // A node answers HTTP only after its start-up (bootstrap included) succeeded.
    for (i, node) in cluster.nodes.iter().enumerate() {
        until(
            &format!("node {i} answers /readyz with 200"),
            Duration::from_secs(20),
            || async { readyz(node).await == Some(200) },
            || async { format!("{:?}", readyz(node).await) },
        )
        .await;
    }
    let bootstrapped: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&i| {
            cluster.nodes[i]
                .stdout_lines()
                .iter()
                .any(|l| l.starts_with("first start:"))
        })
        .collect();
    assert_eq!(
        bootstrapped.len(),
        1,
        "nodes that bootstrapped: {bootstrapped:?}"
    );
}

/// 1. Stock clients on three nodes edit one text and converge; presence set on node
///    1 shows on nodes 2 and 3 (and to a client joining later); a client that leaves
///    (cleanly, or its process killed) disappears from presence on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_on_three_nodes_converge_and_share_presence() {
    let Some(cluster) = Cluster::start(
        "cluster::stock_clients_on_three_nodes_converge_and_share_presence",
        Options::default(),
    )
    .await
    else {
        return;
    };
    let room = "cluster/doc-1";
    // Clients 0..3: node 1, node 2, node 3, node 2 again.
    let mut ds = Vec::new();
    for node in [0, 1, 2, 1] {
        ds.push(stock(&cluster.node(node).ws_base(), room, None).await);
    }
    let mut tokens = Vec::new();
    for round in 0..3 {
        for (i, d) in ds.iter_mut().enumerate() {
            let token = format!("[c{i}r{round}]");
            insert(d, &token).await;
            tokens.push(token);
        }
    }
    let converged = converge(&mut all(&mut ds), &tokens, Duration::from_secs(20)).await;
    assert_eq!(tokens_in(&converged).len(), tokens.len(), "{converged}");

    // Presence from node 1 reaches nodes 2 and 3; from node 2 reaches nodes 1 and 3.
    ds[0]
        .ok(json!({"cmd": "set_awareness", "state": {"user": {"name": "ada", "color": "#f00"}}}))
        .await;
    presence(&mut ds, &[1, 2, 3], "ada", true).await;
    ds[3]
        .ok(json!({"cmd": "set_awareness", "state": {"user": {"name": "dan"}}}))
        .await;
    presence(&mut ds, &[0, 1, 2], "dan", true).await;
    // A client joining node 3 now is told about both when it joins, not only at the
    // next 15 s renewal of their states (hence a deadline under 15 s).
    ds.push(stock(&cluster.node(2).ws_base(), room, None).await);
    for name in ["ada", "dan"] {
        presence_within(&mut ds, &[4], name, true, Duration::from_secs(10)).await;
    }
    assert_eq!(text(&mut ds[4]).await, converged);

    // A clean disconnect on node 1: gone everywhere.
    ds[0].ok(json!({"cmd": "disconnect"})).await;
    presence(&mut ds, &[1, 2, 3, 4], "ada", false).await;
    // A client whose process dies on node 2 (no goodbye): gone everywhere, well before
    // the 30 s awareness timeout.
    let dan = ds.remove(3);
    drop(dan);
    presence(&mut ds, &[1, 2, 3], "dan", false).await;
}

/// 2. A node is SIGKILLed while its clients (behind a "load balancer" proxy) and
///    others edit; one of its clients dies with it. The proxy now sends the others to
///    another node; they reconnect on their own, every client converges, and every
///    edit any surviving client had seen before the kill is there (the dead client's
///    included: it was relayed, so it was durable), also for a fresh client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_move_on_and_nothing_they_saw_is_lost() {
    let Some(mut cluster) = Cluster::start(
        "cluster::a_killed_nodes_clients_move_on_and_nothing_they_saw_is_lost",
        Options::default(),
    )
    .await
    else {
        return;
    };
    let lb = CutProxy::start(&cluster.node(2).addr);
    let room = "cluster/kill";
    // Clients 0..5: node 1, node 2, and three through the proxy (node 3); client 4
    // dies with node 3.
    let mut ds = vec![
        stock(&cluster.node(0).ws_base(), room, None).await,
        stock(&cluster.node(1).ws_base(), room, None).await,
        stock(&lb.ws_base(), room, None).await,
        stock(&lb.ws_base(), room, None).await,
        stock(&lb.ws_base(), room, None).await,
    ];
    let mut tokens = Vec::new();
    for (i, t) in rounds(ds.len(), 0..3) {
        insert(&mut ds[i], &t).await;
        tokens.push(t);
    }
    converge(&mut all(&mut ds), &tokens, Duration::from_secs(20)).await;
    // Two more rounds, in flight at the kill.
    let mut last = Vec::new();
    for (i, t) in rounds(ds.len(), 3..5) {
        insert(&mut ds[i], &t).await;
        last.push((i, t));
    }
    let mut seen = Vec::new();
    for d in ds.iter_mut().take(4) {
        seen.push(text(d).await);
    }
    lb.retarget(&cluster.node(0).addr);
    cluster.nodes[2].kill9();
    drop(ds.remove(4));
    // What the survivors must end with: their own edits, and whatever of the dead
    // client's edits any of them had seen.
    tokens.extend(
        last.into_iter()
            .filter(|(i, t)| *i < 4 || seen.iter().any(|s| s.contains(t.as_str())))
            .map(|(_, t)| t),
    );
    // Editing goes on, the moved clients' edits made while they reconnect.
    for (i, t) in rounds(ds.len(), 5..8) {
        insert(&mut ds[i], &t).await;
        tokens.push(t);
    }
    for i in [2, 3] {
        let d = &mut ds[i];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            drain_events(d).await;
            if connected_count(d) >= 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client {i} did not reconnect through the proxy; events: {:?}",
                d.events
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let converged = converge(&mut all(&mut ds), &tokens, Duration::from_secs(30)).await;
    // The clients of the surviving nodes were not disturbed.
    for i in [0, 1] {
        drain_events(&mut ds[i]).await;
        assert_eq!(
            connected_count(&ds[i]),
            1,
            "client {i} reconnected; events: {:?}",
            ds[i].events
        );
    }
    for (i, before) in seen.iter().enumerate() {
        assert!(before.contains("[k4r0]"), "client {i}: {before}");
        for t in tokens_in(before) {
            assert!(
                converged.contains(&t),
                "client {i} had seen {t} before the kill; it is gone: {converged}"
            );
        }
    }
    // Stored: a fresh client on node 2 gets all of it.
    let fresh = Client::connect(&cluster.node(1).ws_url(room)).await;
    assert_eq!(fresh.text(), converged);
}

/// 3. Redis drops out while clients on every node edit; once it is back every node
///    converges, without any client reconnecting. The periodic catch-up is made long,
///    so what heals the room is the catch-up after the Redis reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_heals_without_clients_reconnecting() {
    let Some(cluster) = Cluster::start(
        "cluster::a_redis_outage_heals_without_clients_reconnecting",
        Options {
            proxy_redis: true,
            extra: vec!["--cluster-catchup-interval".into(), "10m".into()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let redis = cluster.redis.as_ref().unwrap();
    let room = "cluster/redis-cut";
    // Clients 0..4: node 1 (two), node 2, node 3.
    let mut ds = Vec::new();
    for node in [0, 0, 1, 2] {
        ds.push(stock(&cluster.node(node).ws_base(), room, None).await);
    }
    let mut tokens = Vec::new();
    for (i, d) in ds.iter_mut().enumerate() {
        let t = format!("[init{i}]");
        insert(d, &t).await;
        tokens.push(t);
    }
    converge(&mut all(&mut ds), &tokens, Duration::from_secs(20)).await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        until(
            &format!("node {i} reports tandem_redis_up 1"),
            Duration::from_secs(10),
            || async { metric(node, "tandem_redis_up").await == Some(1.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }

    redis.cut();
    for (i, node) in cluster.nodes.iter().enumerate() {
        until(
            &format!("node {i} reports tandem_redis_up 0"),
            Duration::from_secs(20),
            || async { metric(node, "tandem_redis_up").await == Some(0.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }
    for r in 0..3 {
        for (i, d) in ds.iter_mut().enumerate() {
            let t = format!("[out{i}r{r}]");
            insert(d, &t).await;
            tokens.push(t);
        }
    }
    // A node still serves its own clients meanwhile: client 1 gets client 0's edits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = text(&mut ds[1]).await;
        if (0..3).all(|r| t.contains(&format!("[out0r{r}]"))) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client 1 did not receive client 0's edits through node 1 during the outage: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    redis.restore();
    for (i, node) in cluster.nodes.iter().enumerate() {
        until(
            &format!("node {i} reports tandem_redis_up 1 again"),
            Duration::from_secs(20),
            || async { metric(node, "tandem_redis_up").await == Some(1.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }
    converge(&mut all(&mut ds), &tokens, Duration::from_secs(20)).await;
    // Pub/sub carries edits again.
    for (i, d) in ds.iter_mut().enumerate() {
        let t = format!("[after{i}]");
        insert(d, &t).await;
        tokens.push(t);
    }
    converge(&mut all(&mut ds), &tokens, Duration::from_secs(20)).await;
    for (i, d) in ds.iter_mut().enumerate() {
        drain_events(d).await;
        assert_eq!(
            connected_count(d),
            1,
            "client {i} reconnected; events: {:?}",
            d.events
        );
        assert!(
            server_close_codes(d).is_empty(),
            "client {i} was closed by the server; events: {:?}",
            d.events
        );
    }
}

/// 4. Postgres becomes unreachable: /readyz is 503 on every node, edits are not
///    relayed (they are not durable), the rooms close their clients with 1013 after
///    --persist-timeout, and the clients keep editing offline. Once Postgres is back
///    they reconnect on their own and converge, and a fresh client gets every edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_loses_no_edit() {
    let Some(cluster) = Cluster::start(
        "cluster::a_postgres_outage_loses_no_edit",
        Options {
            proxy_postgres: true,
            extra: vec![
                "--persist-timeout".into(),
                "2s".into(),
                "--cluster-catchup-interval".into(),
                "2s".into(),
            ],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let postgres = cluster.postgres.as_ref().unwrap();
    let room = "cluster/pg-cut";
    let mut ds = Vec::new();
    for node in 0..3 {
        ds.push(stock(&cluster.node(node).ws_base(), room, None).await);
    }
    let mut tokens = Vec::new();
    for (i, d) in ds.iter_mut().enumerate() {
        let t = format!("[init{i}]");
        insert(d, &t).await;
        tokens.push(t);
    }
    converge(&mut all(&mut ds), &tokens, Duration::from_secs(20)).await;
    for node in &cluster.nodes {
        assert_eq!(readyz(node).await, Some(200));
    }

    postgres.cut();
    for (i, node) in cluster.nodes.iter().enumerate() {
        until(
            &format!("node {i}: /readyz 503"),
            Duration::from_secs(20),
            || async { readyz(node).await == Some(503) },
            || async { format!("{:?}", readyz(node).await) },
        )
        .await;
    }
    let mut outage = Vec::new();
    for (i, d) in ds.iter_mut().enumerate() {
        let t = format!("[pg{i}a]");
        insert(d, &t).await;
        outage.push(t);
    }
    // Nothing of it can be durable, so nobody else may have received it.
    for (i, d) in ds.iter_mut().enumerate() {
        let t = text(d).await;
        for (j, token) in outage.iter().enumerate() {
            assert!(
                i == j || !t.contains(token.as_str()),
                "client {i} received {token} while Postgres was unreachable: {t}"
            );
        }
    }
    // After --persist-timeout the rooms close their clients with 1013 (the stock
    // client reconnects on its own).
    for (i, d) in ds.iter_mut().enumerate() {
        let e = d
            .wait_event(
                &format!("client {i} closed with 1013"),
                Duration::from_secs(20),
                |e| e["event"] == "connection-close" && e["local"] == false,
            )
            .await;
        assert_eq!(e["code"], 1013, "client {i}: {e}");
    }
    // Editing offline (or while refused) goes on.
    for (i, d) in ds.iter_mut().enumerate() {
        let t = format!("[pg{i}b]");
        insert(d, &t).await;
        outage.push(t);
    }
    tokens.extend(outage.iter().cloned());

    postgres.restore();
    for (i, node) in cluster.nodes.iter().enumerate() {
        until(
            &format!("node {i}: /readyz 200 again"),
            Duration::from_secs(20),
            || async { readyz(node).await == Some(200) },
            || async { format!("{:?}", readyz(node).await) },
        )
        .await;
    }
    let converged = converge(&mut all(&mut ds), &tokens, Duration::from_secs(30)).await;
    // Stored, on every node.
    for node in &cluster.nodes {
        let fresh = Client::connect(&node.ws_url(room)).await;
        let t = fresh.text();
        for token in &tokens {
            assert!(t.contains(token.as_str()), "{token} not stored: {t}");
        }
        assert_eq!(t, converged);
    }
}

/// 5. With the control plane: a room deleted through REST on node 1 closes its
///    connections on nodes 2 and 3 with 4404 (after custom events went between
///    nodes); revoking a key on node 1 closes the connections whose tokens it minted
///    on nodes 2 and 3 with 4401, and leaves the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_and_revocation_on_one_node_close_connections_on_every_node() {
    let Some(cluster) = Cluster::start(
        "cluster::deletion_and_revocation_on_one_node_close_connections_on_every_node",
        Options {
            strict: true,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1, n2) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (account, project) = n0.project().await;
    let k1 = project.key.clone();
    // A key made on node 1 works on node 2 (one database).
    let t1 = n1
        .token(&k1.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let k2 = n0.create_secret_key(&account, &project.id).await;
    let t2 = n2
        .token(&k2.key, "bob", json!({"*": ["room:write"]}), None)
        .await;

    // Deletion.
    let room = "doomed";
    let mut on0 = Client::connect(&n0.ws_url_token(room, &t1)).await;
    let mut on1 = Client::connect(&n1.ws_url_token(room, &t1)).await;
    let mut on2 = Client::connect(&n2.ws_url_token(room, &t2)).await;
    let mut elsewhere = Client::connect(&n1.ws_url_token("kept", &t2)).await;
    on1.text_push("soon gone").await;
    on2.pump_until("node 2's edit on node 3", Duration::from_secs(10), |c| {
        c.text() == "soon gone"
    })
    .await;
    on1.send(Message::Event(r#"{"kind":"ping"}"#).encode())
        .await;
    for (name, c) in [("node 1", &mut on0), ("node 3", &mut on2)] {
        c.pump_until(
            &format!("the event on {name}"),
            Duration::from_secs(10),
            |c| c.events.iter().any(|e| e.contains("ping")),
        )
        .await;
    }
    let ping: serde_json::Value =
        serde_json::from_str(on2.events.iter().find(|e| e.contains("ping")).unwrap()).unwrap();
    assert_eq!(ping["event"], json!({"kind": "ping"}), "{ping}");
    assert_eq!(ping["userId"], "ada", "{ping}");
    // An event sent through REST on node 1 reaches the clients of nodes 2 and 3.
    n0.call(
        "POST",
        &format!("/v1/rooms/{room}/events"),
        Cred::Bearer(&k1.key),
        Some(json!({"event": {"kind": "confetti"}})),
    )
    .await
    .expect(200);
    for (name, c) in [("node 2", &mut on1), ("node 3", &mut on2)] {
        c.pump_until(
            &format!("the REST event on {name}"),
            Duration::from_secs(10),
            |c| c.events.iter().any(|e| e.contains("confetti")),
        )
        .await;
    }
    n0.call(
        "DELETE",
        &format!("/v1/rooms/{room}"),
        Cred::Bearer(&k1.key),
        None,
    )
    .await
    .expect(204);
    for (name, c) in [
        ("node 1", &mut on0),
        ("node 2", &mut on1),
        ("node 3", &mut on2),
    ] {
        let closed = c.closed_within(Duration::from_secs(10)).await;
        assert!(
            matches!(closed, Closed::Code(code, _) if code == close::ROOM_DELETED),
            "{name}: {closed:?}"
        );
    }
    elsewhere.text_push("still here").await;
    elsewhere.round_trip().await;
    assert!(elsewhere.closed.is_none());
    // A new connection starts an empty room, on any node.
    let again = Client::connect(&n2.ws_url_token(room, &t2)).await;
    assert_eq!(again.text(), "");
    drop(again);

    // Revocation.
    let room = "doc";
    let mut a1 = Client::connect(&n1.ws_url_token(room, &t1)).await;
    let mut a2 = Client::connect(&n2.ws_url_token(room, &t1)).await;
    let mut b1 = Client::connect(&n1.ws_url_token(room, &t2)).await;
    let mut b2 = Client::connect(&n2.ws_url_token(room, &t2)).await;
    n0.call(
        "POST",
        &format!("/v1/keys/{}/revoke", k1.id),
        Cred::Bearer(&k2.key),
        None,
    )
    .await
    .expect(200);
    for (name, c) in [("node 2", &mut a1), ("node 3", &mut a2)] {
        let closed = c.closed_within(Duration::from_secs(10)).await;
        assert!(
            matches!(closed, Closed::Code(code, _) if code == close::UNAUTHORIZED),
            "{name}: {closed:?}"
        );
    }
    for node in [n1, n2] {
        let (code, reason) = refused(node, room, Some(&t1)).await;
        assert_eq!(code, close::UNAUTHORIZED, "{reason}");
    }
    // The other key's connections stay, and still hear each other across nodes.
    b2.text_push("bob was here").await;
    b1.pump_until("bob's edit across nodes", Duration::from_secs(10), |c| {
        c.text().contains("bob was here")
    })
    .await;
    assert!(b1.closed.is_none() && b2.closed.is_none());
    assert!(elsewhere.closed.is_none());
}

/// 6. The per-project connection cap counts every node: with a cap of 3, connections
///    opened alternately on the nodes are admitted up to 3 and the 4th is refused with
///    4429 whichever node it reaches; after one closes, a new one is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_connection_cap_is_cluster_wide() {
    let plans_dir = tempfile::tempdir().unwrap();
    let plans = plans_dir.path().join("plans.toml");
    std::fs::write(&plans, "[free]\nconnections-per-project = 3\n").unwrap();
    let Some(cluster) = Cluster::start(
        "cluster::the_project_connection_cap_is_cluster_wide",
        Options {
            strict: true,
            extra: vec!["--plans".into(), plans.display().to_string()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (_, project) = cluster.node(0).project().await;
    let token = cluster
        .node(1)
        .token(&project.key.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let url = |node: usize, room: &str| cluster.node(node).ws_url_token(room, &token);
    let mut open = Vec::new();
    for (node, room) in [(0, "r1"), (1, "r2"), (2, "r1")] {
        match admit(&url(node, room)).await {
            Ok(c) => open.push(c),
            Err((code, reason)) => {
                panic!(
                    "connection {} on node {node} refused: {code} {reason}",
                    open.len() + 1
                )
            }
        }
    }
    for node in 0..3 {
        match admit(&url(node, "r3")).await {
            Ok(_) => panic!("a 4th connection was admitted on node {}", node + 1),
            Err((code, reason)) => {
                assert_eq!(code, close::RATE_LIMITED, "node {}: {reason}", node + 1);
                assert!(reason.contains("per project"), "{reason}");
            }
        }
    }
    // One closes (on node 2); a new one is admitted on node 3 once the count has
    // gone round.
    let leaving = open.remove(1);
    leaving.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let replacement = loop {
        match admit(&url(2, "r2")).await {
            Ok(c) => break c,
            Err((code, reason)) => {
                assert_eq!(code, close::RATE_LIMITED, "{reason}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no connection admitted after one closed: {reason}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    open.push(replacement);
    // Full again: refused on every node.
    for node in 0..3 {
        match admit(&url(node, "r4")).await {
            Ok(_) => panic!("over the cap on node {}", node + 1),
            Err((code, reason)) => assert_eq!(code, close::RATE_LIMITED, "{reason}"),
        }
    }
    assert!(open.iter().all(|c| c.closed.is_none()));
    // The counts live in Redis, under the cluster's prefix.
    let keys = cluster.redis_keys();
    assert!(!keys.is_empty(), "no Redis key under {}:", cluster.prefix);
}

/// 7. A key's end reaches every node without Redis: rolling a key on node 1 closes its
///    tokens' connections on node 2 when the grace ends (each node's key sweep reads the
///    stored expiry), and a revoke made on node 1 while Redis is cut still closes the
///    revoked key's connections on node 2 (the sweep reads the database), within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_end_reaches_every_node_even_while_redis_is_down() {
    let Some(cluster) = Cluster::start(
        "cluster::a_keys_end_reaches_every_node_even_while_redis_is_down",
        Options {
            nodes: 2,
            strict: true,
            proxy_redis: true,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    let (account, project) = n0.project().await;
    let old = project.key.clone();
    let other = n0.create_secret_key(&account, &project.id).await;
    let doomed = n0.create_secret_key(&account, &project.id).await;
    let token = |key: &str, user: &'static str| {
        let key = key.to_owned();
        async move {
            n0.token(&key, user, json!({"doc": ["room:write"]}), None)
                .await
        }
    };
    let (t_old, t_other, t_doomed) = (
        token(&old.key, "ada").await,
        token(&other.key, "bob").await,
        token(&doomed.key, "cy").await,
    );
    let mut old_on1 = Client::connect(&n1.ws_url_token("doc", &t_old)).await;
    let mut other_on1 = Client::connect(&n1.ws_url_token("doc", &t_other)).await;
    let mut doomed_on1 = Client::connect(&n1.ws_url_token("doc", &t_doomed)).await;

    n0.call(
        "POST",
        &format!("/v1/keys/{}/roll", old.id),
        Cred::Bearer(&other.key),
        Some(json!({"gracePeriodSeconds": 2})),
    )
    .await
    .expect(200);
    let closed = old_on1.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::UNAUTHORIZED),
        "node 2: {closed:?}"
    );

    // Redis down: the revoke's cluster message is lost, the database still knows.
    cluster.redis.as_ref().expect("redis proxy").cut();
    n0.call(
        "POST",
        &format!("/v1/keys/{}/revoke", doomed.id),
        Cred::Bearer(&other.key),
        None,
    )
    .await
    .expect(200);
    let closed = doomed_on1.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::UNAUTHORIZED),
        "node 2 while Redis is down: {closed:?}"
    );
    cluster.redis.as_ref().expect("redis proxy").restore();
    other_on1.round_trip().await;
    assert!(other_on1.closed.is_none());
}

/// 8. Control events are durable (#14 item 6): with Redis cut, a room deleted through
///    REST on node 1 still closes its connections on node 2 with 4404 within seconds
///    (node 2 reads the deletion from the database's event log; its periodic catch-up is
///    set to ten minutes, so only the event log can do it), and a new connection on
///    node 2 finds the room empty. Once Redis is back, the nodes talk again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_deleted_while_redis_is_down_closes_on_every_node() {
    let Some(cluster) = Cluster::start(
        "cluster::a_room_deleted_while_redis_is_down_closes_on_every_node",
        Options {
            nodes: 2,
            strict: true,
            proxy_redis: true,
            extra: vec!["--cluster-catchup-interval".into(), "10m".into()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    let (_, project) = n0.project().await;
    let token = n0
        .token(&project.key.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let room = "doomed-offline";
    let mut on0 = Client::connect(&n0.ws_url_token(room, &token)).await;
    let mut on1 = Client::connect(&n1.ws_url_token(room, &token)).await;
    let mut kept = Client::connect(&n1.ws_url_token("kept-offline", &token)).await;
    on0.text_push("written before the cut").await;
    on1.pump_until("node 1's edit on node 2", Duration::from_secs(10), |c| {
        c.text() == "written before the cut"
    })
    .await;

    cluster.redis.as_ref().expect("redis proxy").cut();
    for (i, node) in [n0, n1].into_iter().enumerate() {
        until(
            &format!("node {} reports tandem_redis_up 0", i + 1),
            Duration::from_secs(15),
            || async { metric(node, "tandem_redis_up").await == Some(0.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }
    n0.call(
        "DELETE",
        &format!("/v1/rooms/{room}"),
        Cred::Bearer(&project.key.key),
        None,
    )
    .await
    .expect(204);
    let closed = on0.closed_within(Duration::from_secs(10)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::ROOM_DELETED),
        "node 1: {closed:?}"
    );
    let closed = on1.closed_within(Duration::from_secs(10)).await;
    assert!(
        matches!(closed, Closed::Code(code, _) if code == close::ROOM_DELETED),
        "node 2, Redis down: {closed:?}"
    );
    assert!(
        metric(n1, "tandem_cluster_durable_events_applied_total")
            .await
            .is_some_and(|n| n >= 1.0),
        "node 2 applied it from the event log"
    );
    // The room starts afresh on node 2; the other room was not touched.
    let again = Client::connect(&n1.ws_url_token(room, &token)).await;
    assert_eq!(again.text(), "");
    drop(again);
    kept.text_push("still here").await;
    kept.round_trip().await;
    assert!(kept.closed.is_none());

    cluster.redis.as_ref().expect("redis proxy").restore();
    for (i, node) in [n0, n1].into_iter().enumerate() {
        until(
            &format!("node {} reports tandem_redis_up 1 again", i + 1),
            Duration::from_secs(20),
            || async { metric(node, "tandem_redis_up").await == Some(1.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }
    let mut back0 = Client::connect(&n0.ws_url_token("after", &token)).await;
    let mut back1 = Client::connect(&n1.ws_url_token("after", &token)).await;
    back0.text_push("over Redis again").await;
    back1
        .pump_until(
            "an edit across nodes after Redis is back",
            Duration::from_secs(10),
            |c| c.text() == "over Redis again",
        )
        .await;
}

/// The REST answers about a room's connections (#14 item 17).
async fn room_connections(node: &crate::harness::Server, key: &str, room: &str) -> u64 {
    let body = node
        .call("GET", &format!("/v1/rooms/{room}"), Cred::Bearer(key), None)
        .await
        .expect(200)
        .json();
    body["connections"].as_u64().unwrap_or(u64::MAX)
}

async fn room_users(
    node: &crate::harness::Server,
    key: &str,
    room: &str,
) -> Vec<serde_json::Value> {
    let body = node
        .call(
            "GET",
            &format!("/v1/rooms/{room}/users"),
            Cred::Bearer(key),
            None,
        )
        .await
        .expect(200)
        .json();
    body["data"].as_array().cloned().unwrap_or_default()
}

/// 9. REST answers and the per-room cap are cluster-wide (#14 item 17): a room with one
///    connection on each node shows 2 `connections` on both nodes (and in the room
///    listing); with a cap of 2 per room a third connection is refused with 4429 on
///    either node; `GET …/users` on one node lists the other node's user too (with the
///    node's id); an event sent through REST on a node where the room is not loaded
///    reaches the client on the other node and reports `delivered: 1`; the users of
///    that room are listed there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_counts_presence_and_the_room_cap_are_cluster_wide() {
    let plans_dir = tempfile::tempdir().unwrap();
    let plans = plans_dir.path().join("plans.toml");
    std::fs::write(&plans, "[free]\nconnections-per-room = 2\n").unwrap();
    let Some(cluster) = Cluster::start(
        "cluster::room_counts_presence_and_the_room_cap_are_cluster_wide",
        Options {
            nodes: 2,
            strict: true,
            extra: vec!["--plans".into(), plans.display().to_string()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    let (_, project) = n0.project().await;
    let sk = project.key.key.clone();
    let ada = n0
        .token(&sk, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let bob = n0
        .token(&sk, "bob", json!({"*": ["room:write"]}), None)
        .await;

    let mut a0 = Client::connect(&n0.ws_url_token("shared", &ada)).await;
    a0.set_awareness(11, 1, r#"{"cursor":1}"#).await;
    a0.round_trip().await;
    let mut b1 = Client::connect(&n1.ws_url_token("shared", &bob)).await;
    b1.set_awareness(22, 1, r#"{"cursor":2}"#).await;
    b1.round_trip().await;
    for (i, node) in [n0, n1].into_iter().enumerate() {
        until(
            &format!("node {} counts both connections", i + 1),
            Duration::from_secs(10),
            || async { room_connections(node, &sk, "shared").await == 2 },
            || async { format!("{}", room_connections(node, &sk, "shared").await) },
        )
        .await;
    }
    let listing = n1
        .call("GET", "/v1/rooms", Cred::Bearer(&sk), None)
        .await
        .expect(200)
        .json();
    let shared = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "shared")
        .cloned()
        .unwrap_or_else(|| panic!("{listing}"));
    assert_eq!(shared["connections"], 2, "{listing}");

    // The room is full across the cluster.
    for node in [n0, n1] {
        match admit(&node.ws_url_token("shared", &ada)).await {
            Ok(_) => panic!("a third connection to a room capped at 2 was admitted"),
            Err((code, reason)) => {
                assert_eq!(code, close::RATE_LIMITED, "{reason}");
                assert!(reason.contains("per room"), "{reason}");
            }
        }
    }

    // Node 2 lists node 1's user (from the presence node 1 sent) next to its own.
    until(
        "node 2 lists both users",
        Duration::from_secs(10),
        || async {
            let users = room_users(n1, &sk, "shared").await;
            users.iter().any(|u| u["userId"] == "ada") && users.iter().any(|u| u["userId"] == "bob")
        },
        || async { format!("{:?}", room_users(n1, &sk, "shared").await) },
    )
    .await;
    let users = room_users(n1, &sk, "shared").await;
    let remote = users.iter().find(|u| u["userId"] == "ada").unwrap();
    assert!(
        remote["node"].as_str().is_some_and(|n| n.len() == 16),
        "{remote}"
    );
    assert_eq!(remote["presence"][0]["clientId"], 11, "{remote}");
    assert_eq!(remote["presence"][0]["state"]["cursor"], 1, "{remote}");
    // The local connection names this node (the one to close it on), not the other.
    let local = users.iter().find(|u| u["userId"] == "bob").unwrap();
    assert!(
        local["node"].as_str().is_some_and(|n| n.len() == 16),
        "{local}"
    );
    assert_ne!(local["node"], remote["node"], "{local} {remote}");
    assert_ne!(local["connectionId"], 0, "{local}");

    // A room with a client on node 2 only: node 1 has not loaded it.
    let mut solo = Client::connect(&n1.ws_url_token("solo", &ada)).await;
    solo.set_awareness(33, 1, r#"{"cursor":3}"#).await;
    solo.round_trip().await;
    until(
        "node 1 counts node 2's connection",
        Duration::from_secs(10),
        || async { room_connections(n0, &sk, "solo").await == 1 },
        || async { format!("{}", room_connections(n0, &sk, "solo").await) },
    )
    .await;
    let sent = n0
        .call(
            "POST",
            "/v1/rooms/solo/events",
            Cred::Bearer(&sk),
            Some(json!({"event": {"kind": "hello"}})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(sent["delivered"], 1, "{sent}");
    solo.pump_until("the REST event from node 1", Duration::from_secs(10), |c| {
        c.events.iter().any(|e| e.contains("hello"))
    })
    .await;
    until(
        "node 1 lists node 2's user of a room it had not loaded",
        Duration::from_secs(10),
        || async {
            room_users(n0, &sk, "solo")
                .await
                .iter()
                .any(|u| u["userId"] == "ada" && u["presence"][0]["clientId"] == 33)
        },
        || async { format!("{:?}", room_users(n0, &sk, "solo").await) },
    )
    .await;
    assert!(a0.closed.is_none() && b1.closed.is_none() && solo.closed.is_none());
}

/// 10. A key's REST quota is cluster-wide (#14 item 17): with 4 requests per minute,
///     requests alternating between two nodes get 4 answers and then 429 on either
///     node (per-node budgets would allow 8). With Redis cut, each node falls back to
///     its own budget (as the connection caps do): requests still get answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_rest_quota_is_shared_by_every_node() {
    let plans_dir = tempfile::tempdir().unwrap();
    let plans = plans_dir.path().join("plans.toml");
    std::fs::write(&plans, "[free]\nrest-requests-per-minute = 4\n").unwrap();
    let Some(cluster) = Cluster::start(
        "cluster::a_keys_rest_quota_is_shared_by_every_node",
        Options {
            nodes: 2,
            strict: true,
            proxy_redis: true,
            extra: vec!["--plans".into(), plans.display().to_string()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    for (i, node) in [n0, n1].into_iter().enumerate() {
        until(
            &format!("node {} reports tandem_redis_up 1", i + 1),
            Duration::from_secs(15),
            || async { metric(node, "tandem_redis_up").await == Some(1.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }
    let (account, project) = n0.project().await;
    let sk = project.key.key.clone();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let node = [n0, n1][i % 2];
        let r = node.call("GET", "/v1/rooms", Cred::Bearer(&sk), None).await;
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "{}", r.text());
            let policy = r.header("ratelimit-policy").unwrap_or_default().to_owned();
            assert!(policy.contains("q=4"), "{policy}");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429], "{statuses:?}");

    // Redis down: each node's own limiter decides (a fresh key, so its budget is whole).
    let other = n0.create_secret_key(&account, &project.id).await;
    cluster.redis.as_ref().expect("redis proxy").cut();
    for (i, node) in [n0, n1].into_iter().enumerate() {
        until(
            &format!("node {} reports tandem_redis_up 0", i + 1),
            Duration::from_secs(15),
            || async { metric(node, "tandem_redis_up").await == Some(0.0) },
            || async { format!("{:?}", metric(node, "tandem_redis_up").await) },
        )
        .await;
    }
    for node in [n0, n1] {
        for _ in 0..4 {
            node.call("GET", "/v1/rooms", Cred::Bearer(&other.key), None)
                .await
                .expect(200);
        }
        let r = node
            .call("GET", "/v1/rooms", Cred::Bearer(&other.key), None)
            .await;
        assert_eq!(r.status, 429, "{}", r.text());
    }
    assert!(metric(n0, "tandem_cluster_rate_fallbacks_total")
        .await
        .is_some_and(|n| n >= 5.0));
    cluster.redis.as_ref().expect("redis proxy").restore();
}
