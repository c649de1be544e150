//! Webhooks and the change feed end to end: a local receiver (`tests/js/receiver.mjs`)
//! verifies every delivery with the npm `standardwebhooks` package, a verifier we did not
//! write. Events arrive for connect, edit, leave and delete, also when the receiver fails
//! for a while first; deliveries pending at a SIGKILL arrive after the restart; two
//! cluster nodes deliver each event once; a loopback URL is refused without the operator
//! flag; an endpoint failing for the whole retry period is disabled; the feed resumes
//! from a cursor, long-polls, and streams as server-sent events from `Last-Event-ID`.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::cluster_support::{Cluster, Options};
use crate::harness::{enc, eventually, js_dir, Client, Cred, Server};

/// Flags every webhook test server gets: the receiver is on 127.0.0.1 over http, and
/// retries and debouncing are quick.
const FLAGS: &[&str] = &[
    "--webhook-allow-private",
    "--webhook-allow-http",
    "--webhook-retry-base",
    "100ms",
    "--webhook-debounce",
    "200ms",
];

/// The receiver process and what it reported.
struct Receiver {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    port: u16,
    reports: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let dir = js_dir();
        let mut child = tokio::process::Command::new("node")
            .arg("receiver.mjs")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver starts")
            .unwrap()
            .expect("a port line");
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if value.get("ack").is_none() {
                        sink.lock().unwrap().push(value);
                    }
                }
            }
        });
        Receiver {
            child,
            stdin,
            port,
            reports,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    async fn command(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    fn reports(&self) -> Vec<Value> {
        self.reports.lock().unwrap().clone()
    }

    /// The verified deliveries it acknowledged (200), in arrival order.
    fn accepted(&self) -> Vec<Value> {
        self.reports()
            .into_iter()
            .filter(|r| r["verified"] == true && r["status"] == 200)
            .collect()
    }

    fn accepted_types(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .map(|r| r["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn create_webhook(server: &Server, sk: &str, url: &str, events: Value) -> Value {
    server
        .call(
            "POST",
            "/v1/webhooks",
            Cred::Bearer(sk),
            Some(json!({"url": url, "events": events, "description": "e2e"})),
        )
        .await
        .expect(201)
        .json()
}

async fn feed(server: &Server, sk: &str, query: &str) -> Value {
    server
        .call(
            "GET",
            &format!("/v1/events?{query}"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(200)
        .json()
}

async fn deliveries(server: &Server, sk: &str, webhook: &str) -> Vec<Value> {
    let page = server
        .call(
            "GET",
            &format!("/v1/webhooks/{webhook}/deliveries?limit=200"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(200)
        .json();
    page["data"].as_array().unwrap().clone()
}

/// Connects as `user`, writes, and leaves `room`.
async fn visit(server: &Server, sk: &str, user: &str, room: &str) {
    let token = server
        .token(sk, user, json!({room: ["room:write"]}), None)
        .await;
    let mut client = Client::connect(&server.ws_url_token(room, &token)).await;
    client.map_set("k", user).await;
    client.round_trip().await;
    client.close().await;
}

/// Connect, edit, leave and delete each produce their event, signed so that
/// `standardwebhooks` verifies it, although the receiver answers 500 to the first
/// deliveries; once it recovers every event arrives, in seq order for the room, and
/// the feed lists the same events, resumes from a cursor and long-polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_after_the_receiver_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = FLAGS.to_vec();
    flags.extend(["--webhook-document-json-bytes", "65536"]);
    let server = Server::start_strict(&dir, &flags);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let mut receiver = Receiver::start().await;
    receiver.command(json!({"fail": 4})).await;
    let created = create_webhook(&server, sk, &receiver.url(), json!(["*"])).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let webhook = created["id"].as_str().unwrap().to_owned();
    receiver.command(json!({"secret": secret})).await;
    // The secret is shown once: never in a read.
    let read = server
        .call(
            "GET",
            &format!("/v1/webhooks/{webhook}"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(200)
        .json();
    assert!(read.get("secret").is_none());
    assert_eq!(read["enabled"], true);

    visit(&server, sk, "ada", "hooks/doc").await;
    // The edit's debounce window closes before the delete (which would close it early,
    // without the document: the room is gone by then).
    let (s, k) = (&server, sk);
    eventually(
        "document.updated is recorded",
        Duration::from_secs(10),
        || async move {
            feed(s, k, "after=0").await["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "document.updated")
        },
    )
    .await;
    server
        .call(
            "DELETE",
            &format!("/v1/rooms/{}", enc("hooks/doc")),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(204);

    let wanted = [
        "room.created",
        "user.entered",
        "document.updated",
        "user.left",
        "room.deleted",
    ];
    let r = &receiver;
    eventually(
        "every event is delivered",
        Duration::from_secs(30),
        || async move {
            let types = r.accepted_types();
            wanted.iter().all(|t| types.iter().any(|x| x == t))
        },
    )
    .await;
    let reports = receiver.reports();
    assert!(
        reports.iter().filter(|r| r["status"] == 500).count() >= 4,
        "the first deliveries were refused: {reports:?}"
    );
    assert!(
        reports.iter().all(|r| r["verified"] == true),
        "every delivery verified: {reports:?}"
    );
    let accepted = receiver.accepted();
    let by_type = |t: &str| accepted.iter().find(|r| r["type"] == t).unwrap().clone();
    assert_eq!(by_type("user.entered")["data"]["userId"], "ada");
    assert_eq!(by_type("user.left")["data"]["room"], "hooks/doc");
    let updated = by_type("document.updated");
    assert_eq!(updated["data"]["userIds"], json!(["ada"]));
    // A small document travels with the event (--webhook-document-json-bytes).
    let document = &updated["data"]["document"];
    assert!(
        document.is_object() && document.to_string().contains("\"ada\""),
        "{updated}"
    );
    assert!(
        updated["data"]["fromSeq"].as_i64().unwrap() <= updated["data"]["toSeq"].as_i64().unwrap()
    );
    assert!(updated["data"]["documentUrl"]
        .as_str()
        .unwrap()
        .ends_with("/v1/rooms/hooks%2Fdoc/document"));
    // The webhook-id is the event id; the room's events arrived in seq order.
    let mut seqs = Vec::new();
    let mut seen = HashSet::new();
    for r in &accepted {
        assert_eq!(r["webhookId"], r["id"]);
        if seen.insert(r["id"].as_str().unwrap().to_owned()) {
            seqs.push(r["seq"].as_i64().unwrap());
        }
    }
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(seqs, sorted, "delivered in seq order");

    // The deliveries list shows the retries and the answers.
    let listed = deliveries(&server, sk, &webhook).await;
    assert!(
        listed.iter().all(|d| d["status"] == "delivered"),
        "{listed:?}"
    );
    assert!(listed.iter().any(|d| d["attempts"].as_i64().unwrap() > 1));
    assert!(listed.iter().all(|d| d["responseStatus"] == 200));

    // The feed has the same events in seq order, and resumes from a cursor.
    let all = feed(&server, sk, "after=0").await;
    let events = all["data"].as_array().unwrap();
    let feed_seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(feed_seqs, (1..=feed_seqs.len() as i64).collect::<Vec<_>>());
    // The feed also has the key created before the webhook existed.
    assert_eq!(events[0]["type"], "key.created");
    let feed_ids: HashSet<String> = events[1..]
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        feed_ids, seen,
        "the feed and the webhook carry the same events"
    );
    let cursor = feed_seqs[1];
    let rest = feed(&server, sk, &format!("after={cursor}&limit=2")).await;
    let rest_seqs: Vec<i64> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(rest_seqs, vec![cursor + 1, cursor + 2]);
    assert_eq!(rest["nextAfter"], cursor + 2);

    // A long poll at the end of the feed answers when the next event is recorded.
    let last = all["nextAfter"].as_i64().unwrap();
    let (s, k) = (&server, sk);
    let poll = async move { feed(s, k, &format!("after={last}&wait=20")).await };
    let act = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        visit(s, k, "bob", "hooks/other").await;
    };
    let (polled, ()) = tokio::join!(poll, act);
    let first = &polled["data"][0];
    assert_eq!(first["seq"], last + 1);
    assert_eq!(first["type"], "room.created");
    assert_eq!(first["data"]["room"], "hooks/other");
}

/// A graceful stop (SIGTERM) inside a debounce window still records the window's
/// `document.updated` (and the leave it caused), and they are in the feed after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_inside_the_debounce_window_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, &["--webhook-debounce", "1h"]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let token = server
        .token(sk, "ada", json!({"term/doc": ["room:write"]}), None)
        .await;
    let mut client = Client::connect(&server.ws_url_token("term/doc", &token)).await;
    client.map_set("k", "v").await;
    client.round_trip().await;
    assert!(server.sigterm(), "a graceful stop");
    drop(client);
    server.restart();
    let events = feed(&server, sk, "after=0").await;
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"document.updated"), "{types:?}");
    assert!(types.contains(&"user.left"), "{types:?}");
}

/// Deliveries pending when the server is SIGKILLed are delivered after it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_strict(&dir, FLAGS);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    let mut receiver = Receiver::start().await;
    receiver.command(json!({"fail": -1})).await;
    let created = create_webhook(&server, sk, &receiver.url(), json!(["room.*", "user.*"])).await;
    let webhook = created["id"].as_str().unwrap().to_owned();
    receiver.command(json!({"secret": created["secret"]})).await;
    visit(&server, sk, "ada", "kill/doc").await;
    let (s, w) = (&server, webhook.as_str());
    eventually(
        "deliveries are pending and tried",
        Duration::from_secs(20),
        || async move {
            let listed = deliveries(s, sk, w).await;
            // One room: its deliveries go in order, so only the first is being tried.
            listed.len() == 3
                && listed.iter().all(|d| d["status"] == "pending")
                && listed.iter().any(|d| d["attempts"].as_i64().unwrap() >= 2)
        },
    )
    .await;
    // Only the wanted types: no document.updated.
    assert!(deliveries(&server, sk, &webhook)
        .await
        .iter()
        .all(|d| d["eventType"] != "document.updated"));
    server.kill9();
    receiver.command(json!({"fail": 0})).await;
    server.restart();
    let r = &receiver;
    eventually(
        "the pending events arrive after the restart",
        Duration::from_secs(30),
        || async move {
            let types = r.accepted_types();
            ["room.created", "user.entered", "user.left"]
                .iter()
                .all(|t| types.iter().any(|x| x == t))
        },
    )
    .await;
    let listed = deliveries(&server, sk, &webhook).await;
    assert!(
        listed.iter().all(|d| d["status"] == "delivered"),
        "{listed:?}"
    );
}

/// An endpoint that fails for the whole retry period is disabled, with a reason and an
/// audit entry; its pending deliveries wait, and resume once it is re-enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_the_retry_period_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = FLAGS.to_vec();
    flags.extend(["--webhook-retry-for", "1500ms"]);
    let server = Server::start_strict(&dir, &flags);
    let (account, project) = server.project().await;
    let sk = project.key.key.as_str();
    let mut receiver = Receiver::start().await;
    receiver.command(json!({"fail": -1})).await;
    let created = create_webhook(&server, sk, &receiver.url(), json!(["room.created"])).await;
    let webhook = created["id"].as_str().unwrap().to_owned();
    receiver.command(json!({"secret": created["secret"]})).await;
    visit(&server, sk, "ada", "fail/doc").await;
    let (s, w) = (&server, webhook.as_str());
    eventually(
        "the endpoint is disabled",
        Duration::from_secs(20),
        || async move {
            let read = s
                .call("GET", &format!("/v1/webhooks/{w}"), Cred::Bearer(sk), None)
                .await
                .expect(200)
                .json();
            read["enabled"] == false
        },
    )
    .await;
    let read = server
        .call(
            "GET",
            &format!("/v1/webhooks/{webhook}"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(200)
        .json();
    assert!(
        read["disabledReason"].as_str().unwrap().contains("500"),
        "{read}"
    );
    let listed = deliveries(&server, sk, &webhook).await;
    assert_eq!(listed[0]["status"], "failed");
    let audit = server
        .call(
            "GET",
            &format!("/v1/tenants/{}/audit-log", account.tenant_id),
            Cred::Cookie(&account.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook.disabled"),
        "{audit}"
    );
    // Re-enabled and retried, the failed delivery goes through.
    receiver.command(json!({"fail": 0})).await;
    server
        .call(
            "PATCH",
            &format!("/v1/webhooks/{webhook}"),
            Cred::Bearer(sk),
            Some(json!({"enabled": true})),
        )
        .await
        .expect(200);
    let delivery = listed[0]["id"].as_str().unwrap();
    server
        .call(
            "POST",
            &format!("/v1/webhooks/{webhook}/deliveries/{delivery}/retry"),
            Cred::Bearer(sk),
            None,
        )
        .await
        .expect(202);
    let r = &receiver;
    eventually(
        "the retried delivery arrives",
        Duration::from_secs(20),
        || async move { r.accepted_types().iter().any(|t| t == "room.created") },
    )
    .await;
}

/// Without `--webhook-allow-private`, URLs on loopback and private addresses are
/// refused; without `--webhook-allow-http`, plain http is. The test delivery reports
/// what the receiver answered, signed with two signatures during a secret roll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_without_the_operator_flag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &["--webhook-allow-http"]);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:9/hook",
        "http://100.64.0.1/",
    ] {
        let refused = server
            .call(
                "POST",
                "/v1/webhooks",
                Cred::Bearer(sk),
                Some(json!({"url": url, "events": ["*"]})),
            )
            .await
            .expect(400)
            .json();
        assert!(
            refused["detail"].as_str().unwrap().contains("public"),
            "{url}: {refused}"
        );
    }
    let dir2 = tempfile::tempdir().unwrap();
    let strict = Server::start_strict(&dir2, &[]);
    let (_, p2) = strict.project().await;
    let refused = strict
        .call(
            "POST",
            "/v1/webhooks",
            Cred::Bearer(&p2.key.key),
            Some(json!({"url": "http://example.com/", "events": ["*"]})),
        )
        .await
        .expect(400)
        .json();
    assert!(
        refused["detail"].as_str().unwrap().contains("https"),
        "{refused}"
    );
    let unknown = strict
        .call(
            "POST",
            "/v1/webhooks",
            Cred::Bearer(&p2.key.key),
            Some(json!({"url": "https://example.com/", "events": ["room.exploded"]})),
        )
        .await
        .expect(400);
    assert!(unknown.text().contains("unknown event type"));

    // With the flags: the test delivery verifies, and during a roll both secrets do.
    let dir3 = tempfile::tempdir().unwrap();
    let open = Server::start_strict(&dir3, FLAGS);
    let (_, p3) = open.project().await;
    let sk3 = p3.key.key.as_str();
    let mut receiver = Receiver::start().await;
    let created = create_webhook(&open, sk3, &receiver.url(), json!(["*"])).await;
    let webhook = created["id"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();
    let rolled = open
        .call(
            "POST",
            &format!("/v1/webhooks/{webhook}/roll-secret"),
            Cred::Bearer(sk3),
            Some(json!({"overlapSeconds": 3600})),
        )
        .await
        .expect(200)
        .json();
    let new = rolled["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(rolled["previousSecretExpiresAt"].is_string());
    for secret in [&old, &new] {
        receiver.command(json!({"secret": secret})).await;
        tokio::time::sleep(Duration::from_millis(100)).await; // the command is read first
        let tested = open
            .call(
                "POST",
                &format!("/v1/webhooks/{webhook}/test"),
                Cred::Bearer(sk3),
                None,
            )
            .await
            .expect(200)
            .json();
        assert_eq!(tested["delivered"], true, "{tested}");
        assert_eq!(tested["status"], 200);
    }
    let r = &receiver;
    eventually(
        "both test reports",
        Duration::from_secs(10),
        || async move {
            r.accepted()
                .iter()
                .filter(|r| r["type"] == "webhook.test")
                .count()
                == 2
        },
    )
    .await;
    let tests: Vec<Value> = receiver
        .accepted()
        .into_iter()
        .filter(|r| r["type"] == "webhook.test")
        .collect();
    assert_eq!(tests.len(), 2);
    assert!(
        tests.iter().all(|t| t["signatures"] == 2),
        "two signatures during the roll"
    );
    // A secret that is neither fails verification.
    receiver
        .command(json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tested = open
        .call(
            "POST",
            &format!("/v1/webhooks/{webhook}/test"),
            Cred::Bearer(sk3),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(tested["delivered"], false);
    let r = &receiver;
    eventually(
        "the refusal is reported",
        Duration::from_secs(10),
        || async move { r.reports().iter().any(|r| r["verified"] == false) },
    )
    .await;
    // Another project's key sees none of it.
    let (_, other) = open.project().await;
    open.call(
        "GET",
        &format!("/v1/webhooks/{webhook}"),
        Cred::Bearer(&other.key.key),
        None,
    )
    .await
    .expect(404);
}

/// `GET /v1/events/stream`: server-sent events with the seq as `id`, resuming after
/// `Last-Event-ID`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, FLAGS);
    let (_, project) = server.project().await;
    let sk = project.key.key.as_str();
    visit(&server, sk, "ada", "sse/doc").await;
    let (s, k) = (&server, sk);
    eventually(
        "four events recorded",
        Duration::from_secs(20),
        || async move {
            feed(s, k, "after=0").await["data"]
                .as_array()
                .unwrap()
                .len()
                >= 4
        },
    )
    .await;
    let first = sse_ids(&server, sk, None, 4).await;
    assert_eq!(
        first.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(first[0].1, "key.created", "the project's first key");
    assert_eq!(first[1].1, "room.created");
    let resumed = sse_ids(&server, sk, Some(2), 2).await;
    assert_eq!(
        resumed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

/// Reads `count` events from the stream (raw HTTP: the stream does not end).
async fn sse_ids(server: &Server, sk: &str, last: Option<i64>, count: usize) -> Vec<(i64, String)> {
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let resume = last.map_or(String::new(), |l| format!("Last-Event-ID: {l}\r\n"));
    let request = format!(
        "GET /v1/events/stream HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {sk}\r\nAccept: text/event-stream\r\n{resume}\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if complete_messages(&text).len() >= count {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("{count} events within 20 s"));
    assert!(text.contains("text/event-stream"), "{text}");
    complete_messages(&text)
}

/// The (id, event) of every complete server-sent event in `text` (HTTP/1.0: no chunk
/// framing; a message ends with a blank line).
fn complete_messages(text: &str) -> Vec<(i64, String)> {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let parts: Vec<&str> = body.split("\n\n").collect();
    let field = |message: &str, name: &str| {
        message.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        })
    };
    parts[..parts.len().saturating_sub(1)]
        .iter()
        .filter_map(|m| Some((field(m, "id")?.parse().ok()?, field(m, "event")?)))
        .collect()
}

/// Two nodes on one Postgres and Redis: each event is delivered once (every delivery
/// is claimed by one node), and the feed is the same on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once() {
    let extra: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
    let Some(cluster) = Cluster::start(
        "webhooks::two_nodes_deliver_each_event_once",
        Options {
            nodes: 2,
            strict: true,
            extra,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (_, project) = a.project().await;
    let sk = project.key.key.as_str();
    let mut receiver = Receiver::start().await;
    let created = create_webhook(a, sk, &receiver.url(), json!(["*"])).await;
    receiver.command(json!({"secret": created["secret"]})).await;
    let mut rooms = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { a } else { b };
        let room = format!("cluster/hook-{i}");
        visit(node, sk, &format!("user{i}"), &room).await;
        rooms.push(room);
    }
    let r = &receiver;
    eventually(
        "every room's events arrive",
        Duration::from_secs(40),
        || async move {
            let created: HashSet<String> = r
                .accepted()
                .iter()
                .filter(|e| e["type"] == "room.created")
                .map(|e| e["data"]["room"].as_str().unwrap().to_owned())
                .collect();
            let left = r
                .accepted()
                .iter()
                .filter(|e| e["type"] == "user.left")
                .count();
            created.len() == 6 && left == 6
        },
    )
    .await;
    // A moment for any duplicate to show up, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for report in receiver.reports() {
        assert_eq!(report["verified"], true, "{report}");
        *counts
            .entry(report["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let fa = feed(a, sk, "after=0&limit=1000").await;
    let fb = feed(b, sk, "after=0&limit=1000").await;
    assert_eq!(fa["data"], fb["data"]);
    let seqs: Vec<i64> = fa["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "no gap, no duplicate seq"
    );
    // Every event but the key created before the webhook.
    assert_eq!(counts.len(), seqs.len() - 1, "every event delivered");
}
