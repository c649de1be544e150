//! Usage metering end to end, against the real binary: known traffic counted exactly
//! (messages and bytes both ways, peak connections, monthly active users; connection
//! time within a stated tolerance), nothing counted twice across a graceful restart,
//! a SIGKILL losing at most one flush interval and never over-counting, and a tenant's
//! usage being the sum of its projects' and nobody else's.
//!
//! What the server counts (docs/architecture.md, "Usage metering"): every binary
//! WebSocket message read from a joined connection (in) and every one written to it
//! (out), with its payload length; close, ping and pong frames are not messages. So the
//! expected totals follow from what the clients sent and what the server must send
//! them: the handshake (the server's sync step 1 and its step 2 answer; the client's
//! step 1 and its step 2 reply) and each update relayed to every other connection of
//! the room. These clients set no presence, so no awareness frames flow.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::harness::{Client, Closed, Cred, Server};

/// Fixed-size map values: every update carries the same payload.
const VALUE: &str = "0123456789abcdef0123456789abcdef";

/// Plans roomy enough for the traffic and for polling the usage API.
fn start(dir: &tempfile::TempDir, flush_interval: &str) -> Server {
    let plans = dir.path().join("plans.toml");
    std::fs::write(
        &plans,
        "[free]\nmessages-per-second = 100000\nmessage-burst = 100000\n\
         rest-requests-per-minute = 100000\n",
    )
    .unwrap();
    Server::start_strict(
        dir,
        &[
            "--plans",
            &plans.display().to_string(),
            "--usage-flush-interval",
            flush_interval,
        ],
    )
}

/// What a set of clients saw on the wire.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wire {
    frames_sent: usize,
    bytes_sent: usize,
    frames_received: usize,
    bytes_received: usize,
}

impl Wire {
    fn add(&mut self, c: &Client) {
        self.frames_sent += c.frames_sent;
        self.bytes_sent += c.bytes_sent;
        self.frames_received += c.frames_received;
        self.bytes_received += c.bytes_received;
    }
}

/// A project's usage summed over its buckets (today ± a day, UTC days).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Usage {
    messages_in: i64,
    messages_out: i64,
    bytes_in: i64,
    bytes_out: i64,
    connection_ms: i64,
    peak: i64,
    active_rooms: i64,
    storage_bytes: i64,
    /// Users per month, summed over the months the range touches.
    users: i64,
}

fn range(granularity: &str) -> String {
    let day = Duration::from_secs(24 * 3600);
    let now = SystemTime::now();
    format!(
        "from={}&to={}&granularity={granularity}",
        humantime::format_rfc3339_seconds(now - day),
        humantime::format_rfc3339_seconds(now + day)
    )
}

fn summed(report: &Value) -> Usage {
    let mut u = Usage::default();
    for bucket in report["buckets"].as_array().unwrap() {
        let t = &bucket["totals"];
        let n = |f: &str| t[f].as_i64().unwrap();
        u.messages_in += n("messagesIn");
        u.messages_out += n("messagesOut");
        u.bytes_in += n("bytesIn");
        u.bytes_out += n("bytesOut");
        u.connection_ms += n("connectionMs");
        u.peak = u.peak.max(n("peakConnections"));
        u.active_rooms = u.active_rooms.max(n("activeRooms"));
        u.storage_bytes = u.storage_bytes.max(n("storageBytes"));
    }
    for month in report["monthlyActiveUsers"].as_array().unwrap() {
        u.users += month["users"].as_i64().unwrap();
    }
    u
}

async fn project_usage(server: &Server, key: &str, granularity: &str) -> Value {
    let path = format!("/v1/usage?{}", range(granularity));
    server
        .call("GET", &path, Cred::Bearer(key), None)
        .await
        .expect(200)
        .json()
}

/// Polls the project's usage (daily buckets) until `done` holds for it (20 s deadline).
async fn usage_reaching(server: &Server, key: &str, done: impl Fn(&Usage) -> bool) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let usage = summed(&project_usage(server, key, "day").await);
        if done(&usage) {
            return usage;
        }
        assert!(Instant::now() < deadline, "usage stuck at {usage:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn token(server: &Server, key: &str, user: &str, room: &str) -> String {
    server
        .token(key, user, json!({ room: ["room:write"] }), None)
        .await
}

/// Connects and checks the handshake's frames: each side sent two.
async fn connect(server: &Server, room: &str, token: &str) -> Client {
    let c = Client::connect(&server.ws_url_token(room, token)).await;
    assert_eq!((c.frames_sent, c.frames_received), (2, 2), "the handshake");
    c
}

/// Waits until every client has received `n` updates.
async fn relayed(clients: &mut [Client], n: usize) {
    for c in clients {
        c.pump_until("every relay", Duration::from_secs(30), |c| {
            c.updates_received == n
        })
        .await;
    }
}

/// 3 clients × 200 updates of one size, then one user connecting a second time:
/// messages and bytes in and out exactly, peak connections 4, 3 monthly active users,
/// connection time within 2 s of the clients' own wall time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_traffic_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir, "1s");
    let (_, project) = server.project().await;
    let key = project.key.key.as_str();
    let room = "metered";
    let users = ["ada", "bob", "cyd"];
    let mut clients = Vec::new();
    let mut wall = Duration::ZERO;
    let mut opened = Vec::new();
    for user in users {
        let token = token(&server, key, user, room).await;
        opened.push(Instant::now());
        clients.push(connect(&server, room, &token).await);
    }
    let handshake_received: usize = clients.iter().map(|c| c.bytes_received).sum();
    let sent_before: usize = clients.iter().map(|c| c.bytes_sent).sum();
    for round in 0..200 {
        for (c, user) in clients.iter_mut().zip(users) {
            c.map_set(&format!("{user}-{round:03}"), VALUE).await;
        }
        if round == 99 {
            // Halfway, with every connection open, a periodic flush shows exactly the
            // traffic so far (so the rest must be counted as deltas on top of it).
            relayed(&mut clients, 200).await;
            let mut wire = Wire::default();
            clients.iter().for_each(|c| wire.add(c));
            let so_far = usage_reaching(&server, key, |u| {
                (u.messages_in, u.messages_out, u.bytes_in, u.bytes_out)
                    == (
                        wire.frames_sent as i64,
                        wire.frames_received as i64,
                        wire.bytes_sent as i64,
                        wire.bytes_received as i64,
                    )
            })
            .await;
            assert_eq!((so_far.messages_in, so_far.peak), (3 * (2 + 100), 3));
        }
    }
    let update_bytes = clients.iter().map(|c| c.bytes_sent).sum::<usize>() - sent_before;
    relayed(&mut clients, 400).await;
    // Ada again, on a second connection: four open at once.
    let token = token(&server, key, "ada", room).await;
    let again_opened = Instant::now();
    let again = connect(&server, room, &token).await;
    assert_eq!(again.map_len(), 600);

    let mut wire = Wire::default();
    wire.add(&again);
    let again_received = again.bytes_received;
    again.close().await;
    wall += again_opened.elapsed();
    for (c, at) in clients.into_iter().zip(opened) {
        wire.add(&c);
        c.close().await;
        wall += at.elapsed();
    }
    // What the server had to send: the two handshake frames, and each update to the
    // two other connections.
    assert_eq!(wire.frames_sent, 3 * (2 + 200) + 2);
    assert_eq!(wire.frames_received, 3 * (2 + 400) + 2);
    assert_eq!(
        wire.bytes_received,
        handshake_received + again_received + 2 * update_bytes
    );
    let expected = |u: &Usage| {
        (
            u.messages_in,
            u.messages_out,
            u.bytes_in,
            u.bytes_out,
            u.peak,
            u.users,
        ) == (
            wire.frames_sent as i64,
            wire.frames_received as i64,
            wire.bytes_sent as i64,
            wire.bytes_received as i64,
            4,
            3,
        )
    };
    // Flushed every second: the totals get there without a restart.
    let last = usage_reaching(&server, key, expected).await;
    assert_eq!(
        (last.active_rooms, last.storage_bytes > 0),
        (1, true),
        "{last:?}"
    );

    // A clean stop flushes the rest (the connections' last moments); nothing changes
    // but the connection time, which is then final.
    assert!(server.sigterm());
    server.restart();
    let report = project_usage(&server, key, "hour").await;
    let usage = summed(&report);
    assert!(expected(&usage), "{usage:?} after a restart, {wire:?}");
    let wall_ms = wall.as_millis() as i64;
    assert!(
        (usage.connection_ms - wall_ms).abs() <= 2_000,
        "connection time {} ms, the clients measured {wall_ms} ms",
        usage.connection_ms
    );
    // The per-room breakdown holds the same.
    let rooms: i64 = report["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["rooms"].as_array().unwrap().clone())
        .filter(|r| r["room"] == room)
        .map(|r| r["messagesIn"].as_i64().unwrap())
        .sum();
    assert_eq!(rooms, usage.messages_in);
}

/// A graceful restart in the middle of a metered run: the shutdown flushes what the
/// periodic flush (an hour away here) has not, and the totals after both phases are
/// exact: nothing lost, nothing counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_mid_run_keeps_the_totals_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir, "1h");
    let (_, project) = server.project().await;
    let key = project.key.key.clone();
    let room = "restarted";
    let users = ["ada", "bob", "cyd"];
    let mut clients = Vec::new();
    for user in users {
        let token = token(&server, &key, user, room).await;
        clients.push(connect(&server, room, &token).await);
    }
    for round in 0..100 {
        for (c, user) in clients.iter_mut().zip(users) {
            c.map_set(&format!("{user}-a{round:03}"), VALUE).await;
        }
    }
    relayed(&mut clients, 200).await;
    assert!(server.sigterm());
    let mut wire = Wire::default();
    for c in &mut clients {
        let closed = c.closed_within(Duration::from_secs(10)).await;
        assert!(matches!(closed, Closed::Code(1012, _)), "{closed:?}");
        wire.add(c);
    }
    server.restart();
    // Nothing was flushed before the shutdown: the shutdown wrote it all.
    let usage = summed(&project_usage(&server, &key, "hour").await);
    assert_eq!(
        (usage.messages_in, usage.messages_out),
        (3 * (2 + 100), 3 * (2 + 200))
    );
    assert_eq!(
        (usage.bytes_in, usage.bytes_out),
        (wire.bytes_sent as i64, wire.bytes_received as i64)
    );

    // The clients come back (their handshake uploads nothing new) and go on.
    let mut again = Vec::new();
    for (c, user) in clients.into_iter().zip(users) {
        let token = token(&server, &key, user, room).await;
        let c = c.reconnect(&server.ws_url_token(room, &token)).await;
        assert_eq!((c.frames_sent, c.frames_received), (2, 2));
        again.push(c);
    }
    for round in 0..100 {
        for (c, user) in again.iter_mut().zip(users) {
            c.map_set(&format!("{user}-b{round:03}"), VALUE).await;
        }
    }
    relayed(&mut again, 200).await;
    for c in again {
        wire.add(&c);
        c.close().await;
    }
    assert!(server.sigterm());
    server.restart();
    let usage = summed(&project_usage(&server, &key, "hour").await);
    assert_eq!(
        (usage.messages_in, usage.messages_out),
        (2 * 3 * (2 + 100), 2 * 3 * (2 + 200))
    );
    assert_eq!(
        (usage.messages_in, usage.messages_out),
        (wire.frames_sent as i64, wire.frames_received as i64)
    );
    assert_eq!(
        (usage.bytes_in, usage.bytes_out),
        (wire.bytes_sent as i64, wire.bytes_received as i64)
    );
    assert_eq!((usage.peak, usage.users), (3, 3));
}

/// SIGKILL while clients are sending: afterwards the totals never exceed what the
/// clients sent and received, and what is missing is at most what arrived in the last
/// flush interval (1 s here) before the kill, plus 1 s for the flush itself and
/// scheduling: every update sent more than 2 s before the kill is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_loses_at_most_one_flush_interval_and_never_over_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir, "1s");
    let (_, project) = server.project().await;
    let key = project.key.key.clone();
    let room = "killed";
    let users = ["ada", "bob", "cyd"];
    let mut clients = Vec::new();
    for user in users {
        let token = token(&server, &key, user, room).await;
        clients.push(connect(&server, room, &token).await);
    }
    // About 100 updates a second for 4 s, then the kill while they keep coming.
    let started = Instant::now();
    let mut sent_at = Vec::new();
    let mut killed_at = None;
    for round in 0.. {
        if killed_at.is_none() && started.elapsed() >= Duration::from_secs(4) {
            server.kill9();
            killed_at = Some(Instant::now());
        }
        if started.elapsed() >= Duration::from_secs(5) {
            break;
        }
        for (c, user) in clients.iter_mut().zip(users) {
            if c.try_map_set(&format!("{user}-{round:04}"), VALUE).await {
                sent_at.push(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let killed_at = killed_at.unwrap();
    let mut wire = Wire::default();
    for c in &mut clients {
        // Read everything the server wrote before it died.
        assert_eq!(
            c.closed_within(Duration::from_secs(10)).await,
            Closed::Dropped
        );
        wire.add(c);
    }
    server.restart();
    let usage = summed(&project_usage(&server, &key, "hour").await);
    assert!(
        usage.messages_in <= wire.frames_sent as i64,
        "{usage:?} {wire:?}"
    );
    assert!(
        usage.bytes_in <= wire.bytes_sent as i64,
        "{usage:?} {wire:?}"
    );
    assert!(
        usage.messages_out <= wire.frames_received as i64,
        "{usage:?} {wire:?}"
    );
    assert!(
        usage.bytes_out <= wire.bytes_received as i64,
        "{usage:?} {wire:?}"
    );
    let bound = killed_at - Duration::from_secs(2);
    let surely_counted = 3 * 2 + sent_at.iter().filter(|at| **at < bound).count() as i64;
    assert!(
        surely_counted > 100,
        "the test sent too little before the kill"
    );
    assert!(
        usage.messages_in >= surely_counted,
        "lost more than a flush interval: {} counted, {surely_counted} were sent over 2 s \
         before the kill",
        usage.messages_in
    );
    assert_eq!((usage.peak, usage.users), (3, 3));
}

/// A tenant's usage lists each of its projects with the figures the project's own key
/// sees, and totals that are their sums; another tenant's project is not there, and
/// each tenant's usage is a 404 to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_usage_is_the_sum_of_its_projects_and_only_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir, "1s");
    let (a, first) = server.project().await;
    let second_id = server.create_project(&a, "second").await;
    let second = server.create_secret_key(&a, &second_id).await;
    let (b, other) = server.project().await;
    // Traffic in all three projects, two rooms in one of them.
    for (key, room, user, updates) in [
        (&first.key.key, "x", "ada", 10),
        (&first.key.key, "x", "bob", 4),
        (&second.key, "y", "ada", 5),
        (&second.key, "z", "cyd", 3),
        (&other.key.key, "x", "eve", 7),
    ] {
        let token = token(&server, key, user, room).await;
        let mut c = connect(&server, room, &token).await;
        for i in 0..updates {
            c.map_set(&format!("{user}-{i}"), VALUE).await;
        }
        c.round_trip().await;
        c.close().await;
    }
    // Stopped cleanly, so the figures are final when read.
    assert!(server.sigterm());
    server.restart();
    let query = range("hour");
    let tenant = server
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage?{query}", a.tenant_id),
            Cred::Cookie(&a.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    let projects = tenant["projects"].as_array().unwrap();
    let ids: Vec<&str> = projects
        .iter()
        .map(|p| p["projectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.id.as_str(), second_id.as_str()]);
    let mut sum = Usage::default();
    for (project, key) in projects.iter().zip([&first.key.key, &second.key]) {
        let own = server
            .call(
                "GET",
                &format!("/v1/usage?{query}"),
                Cred::Bearer(key),
                None,
            )
            .await
            .expect(200)
            .json();
        assert_eq!(project["buckets"], own["buckets"]);
        assert_eq!(project["monthlyActiveUsers"], own["monthlyActiveUsers"]);
        let u = summed(&own);
        assert!(u.messages_in > 0, "{u:?}");
        sum.messages_in += u.messages_in;
        sum.messages_out += u.messages_out;
        sum.bytes_in += u.bytes_in;
        sum.bytes_out += u.bytes_out;
        sum.connection_ms += u.connection_ms;
        sum.users += u.users;
    }
    let total = summed(&tenant);
    assert_eq!(
        (
            total.messages_in,
            total.messages_out,
            total.bytes_in,
            total.bytes_out
        ),
        (
            sum.messages_in,
            sum.messages_out,
            sum.bytes_in,
            sum.bytes_out
        )
    );
    assert_eq!(
        (total.connection_ms, total.users),
        (sum.connection_ms, sum.users)
    );
    assert_eq!(
        sum.users, 4,
        "ada and bob in the first, ada and cyd in the second"
    );
    // Bucket by bucket, the totals are the projects' sums (peaks and rooms included).
    for bucket in tenant["buckets"].as_array().unwrap() {
        let start = &bucket["start"];
        for field in [
            "messagesIn",
            "bytesOut",
            "peakConnections",
            "activeRooms",
            "storageBytes",
        ] {
            let parts: i64 = projects
                .iter()
                .flat_map(|p| p["buckets"].as_array().unwrap())
                .filter(|b| &b["start"] == start)
                .map(|b| b["totals"][field].as_i64().unwrap())
                .sum();
            assert_eq!(bucket["totals"][field].as_i64().unwrap(), parts, "{field}");
        }
    }
    // The other tenant's traffic is its own, and neither sees the other's usage.
    let others = summed(&project_usage(&server, &other.key.key, "hour").await);
    assert_eq!((others.messages_in, others.users), (2 + 7 + 1, 1));
    for (tenant, cookie) in [(&b.tenant_id, &a.cookie), (&a.tenant_id, &b.cookie)] {
        let path = format!("/v1/tenants/{tenant}/usage?{query}");
        let refused = server.call("GET", &path, Cred::Cookie(cookie), None).await;
        assert_eq!(refused.expect(404).json()["code"], "not_found");
    }
    let bad = server
        .call(
            "GET",
            "/v1/usage?from=yesterday&to=today",
            Cred::Bearer(&first.key.key),
            None,
        )
        .await;
    assert_eq!(bad.expect(400).json()["code"], "invalid_request");
}
