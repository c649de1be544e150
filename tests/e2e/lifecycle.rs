//! Compaction and idle unload, slow consumers, and graceful shutdown.

use std::time::Duration;

use sqlx::Row;
use yrs::{Map, ReadTxn, Transact};

use crate::harness::{eventually, Client, Closed, Server};

fn content(c: &Client) -> (String, Vec<(String, String)>, Vec<u8>) {
    use yrs::updates::encoder::Encode;
    let text = c.text();
    let map = c.doc.get_or_insert_map("map");
    let txn = c.doc.transact();
    let mut entries: Vec<_> = map
        .iter(&txn)
        .map(|(k, v)| (k.to_string(), v.to_string(&txn)))
        .collect();
    entries.sort();
    (text, entries, txn.state_vector().encode_v1())
}

async fn log_rows(server: &Server) -> (i64, i64) {
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data_dir.join("tandem.db").display()
    );
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let updates: i64 = sqlx::query("SELECT COUNT(*) AS n FROM room_updates")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
    let snapshots: i64 = sqlx::query("SELECT COUNT(*) AS n FROM room_snapshots")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
    (updates, snapshots)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_unload_and_restart_yield_the_same_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &dir,
        &["--compact-after-updates", "50", "--room-idle-timeout", "1s"],
    );
    let url = server.ws_url("compacted");
    let mut writer = Client::connect(&url).await;
    let mut observer = Client::connect(&url).await;
    for i in 0..400 {
        if i % 2 == 0 {
            writer.text_push(&format!("<{i}>")).await;
        } else {
            writer
                .map_set(&format!("k{}", i % 37), &i.to_string())
                .await;
        }
    }
    observer
        .pump_until("all 400 updates", Duration::from_secs(30), |c| {
            c.updates_received == 400
        })
        .await;
    let before = content(&observer);

    // The log was folded into a snapshot while the room was live.
    eventually("compaction", Duration::from_secs(20), || async {
        let (updates, snapshots) = log_rows(&server).await;
        eprintln!("log rows {updates}, snapshots {snapshots}");
        snapshots == 1 && updates < 100
    })
    .await;

    writer.close().await;
    observer.close().await;
    eventually("the idle room unloads", Duration::from_secs(20), || async {
        server.loaded_rooms().await == 0
    })
    .await;
    // Unloading folds what was left of the log.
    assert_eq!(log_rows(&server).await.0, 0);

    let reloaded = Client::connect(&url).await;
    assert_eq!(content(&reloaded), before, "state after unload + reload");
    reloaded.close().await;

    assert!(server.sigterm(), "clean exit on SIGTERM");
    server.restart();
    let restarted = Client::connect(&server.ws_url("compacted")).await;
    assert_eq!(content(&restarted), before, "state after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_and_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &["--outbound-queue", "32", "--send-timeout", "2s"]);
    let url = server.ws_url("slow");
    // Joins, then never reads again.
    let mut slow = Client::connect(&url).await;
    let mut writer = Client::connect(&url).await;
    let mut reader = Client::connect(&url).await;
    // 25 MB: more than loopback socket buffers (a few MB each way) plus a 32-frame queue
    // can hold. The writer goes in lock-step with the reader, so only `slow` lags.
    let chunk = "x".repeat(64 * 1024);
    let count = 400;
    for batch in 0..count / 10 {
        for i in 0..10 {
            writer
                .map_set(&format!("k{}", batch * 10 + i), &chunk)
                .await;
        }
        reader
            .pump_until("reader keeps up", Duration::from_secs(30), |c| {
                c.map_len() == (batch + 1) * 10
            })
            .await;
    }
    let rss = server.rss_bytes();
    match slow.closed_within(Duration::from_secs(30)).await {
        Closed::Code(code, _) => assert_eq!(code, 1013, "too slow → try again later"),
        Closed::Dropped => {} // the close frame could not get through the full socket
    }
    assert!(
        slow.map_len() < count,
        "the slow client was cut off, not buffered for"
    );
    // The server did not keep the slow client's backlog in memory.
    assert!(rss < 512 * 1024 * 1024, "server RSS {rss} bytes");
    // The room still works for the others.
    writer.map_set("after", "1").await;
    reader
        .pump_until("room still live", Duration::from_secs(10), |c| {
            c.map_len() == count + 1
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_1012_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let url = server.ws_url("shutdown");
    let mut a = Client::connect(&url).await;
    let mut b = Client::connect(&url).await;
    for i in 0..100 {
        a.map_set(&format!("k{i}"), "v").await;
    }
    b.pump_until("b has all", Duration::from_secs(20), |c| c.map_len() == 100)
        .await;
    let pid = server.pid();
    let stopper = std::thread::spawn(move || {
        let mut s = server;
        let clean = s.sigterm();
        (s, clean)
    });
    for c in [&mut a, &mut b] {
        match c.closed_within(Duration::from_secs(20)).await {
            Closed::Code(code, _) => assert_eq!(code, 1012, "server restarting"),
            other => panic!("expected a 1012 close, got {other:?}"),
        }
    }
    let (mut server, clean) = stopper.join().unwrap();
    assert!(clean, "tandem (pid {pid}) exits 0 on SIGTERM");
    server.restart();
    let fresh = Client::connect(&server.ws_url("shutdown")).await;
    assert_eq!(fresh.map_len(), 100);
}

/// Presence that is not renewed times out on the server and the removal reaches the
/// others; a connection that closes has its presence removed at once; and a connection
/// cannot overwrite another connection's awareness client id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_times_out_and_cannot_be_forged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &["--awareness-timeout", "1s"]);
    let url = server.ws_url("presence");
    let mut a = Client::connect(&url).await;
    let mut b = Client::connect(&url).await;
    let mut c = Client::connect(&url).await;
    a.set_awareness(101, 1, r#"{"user":"a"}"#).await;
    c.set_awareness(303, 1, r#"{"user":"c"}"#).await;
    b.pump_until("b sees a and c", Duration::from_secs(10), |b| {
        b.others.contains_key(&101) && b.others.contains_key(&303)
    })
    .await;
    // b tries to take over a's client id with a newer clock: ignored.
    b.set_awareness(101, 9, r#"{"user":"mallory"}"#).await;
    // c keeps renewing; a never does.
    for clock in 2..6 {
        c.set_awareness(303, clock, r#"{"user":"c"}"#).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.pump_until("a's stale state removed", Duration::from_secs(10), |b| {
        !b.others.contains_key(&101)
    })
    .await;
    assert!(b.others.contains_key(&303), "renewed state is kept");
    // Closing c removes its state promptly (well under the timeout's renewals).
    c.close().await;
    b.pump_until("c's state removed on close", Duration::from_secs(10), |b| {
        !b.others.contains_key(&303)
    })
    .await;
    let forged = b
        .awareness_log
        .iter()
        .any(|(id, s)| *id == 101 && s.as_deref().is_some_and(|s| s.contains("mallory")));
    assert!(
        !forged,
        "a connection overwrote another connection's presence"
    );
    drop(a);
}

/// `/healthz` answers while the process runs; `/readyz` reports ready with the number of
/// loaded rooms while storage answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["loaded_rooms"], 0);
    let _client = Client::connect(&server.ws_url("r")).await;
    assert_eq!(server.loaded_rooms().await, 1);
}
