//! The durability contract: whatever a client has received from the server is on disk.
//! Writers send updates; the moment an observer has received all of them the server is
//! SIGKILLed; after a restart a fresh client must receive every one.

use std::time::Duration;

use crate::harness::{Client, Closed, Server};

async fn sigkill_after_receipt(rooms: usize, writers: usize, per_writer: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir, &[]);
    let total = (writers * per_writer) as u32;

    let mut observers = Vec::new();
    let mut tasks = Vec::new();
    for r in 0..rooms {
        let url = server.ws_url(&format!("durable-{r}"));
        observers.push(Client::connect(&url).await);
        for w in 0..writers {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(&url).await;
                for i in 0..per_writer {
                    c.map_set(&format!("w{w}-{i}"), &format!("{r}:{w}:{i}"))
                        .await;
                }
                c
            }));
        }
    }
    let mut writer_clients = Vec::new();
    for t in tasks {
        writer_clients.push(t.await.unwrap());
    }
    for o in &mut observers {
        o.pump_until(
            "observer received every update",
            Duration::from_secs(60),
            |c| c.map_len() == total,
        )
        .await;
    }
    // Received by a client ⇒ on disk. No grace period, no shutdown code.
    server.kill9();
    drop(writer_clients);

    server.restart();
    for (r, o) in observers.iter().enumerate() {
        let fresh = Client::connect(&server.ws_url(&format!("durable-{r}"))).await;
        assert_eq!(
            fresh.map_len(),
            total,
            "room {r} lost updates across SIGKILL"
        );
        let want = o.doc.get_or_insert_map("map");
        let got = fresh.doc.get_or_insert_map("map");
        use yrs::{Map, Transact};
        let (wt, gt) = (o.doc.transact(), fresh.doc.transact());
        for (key, value) in want.iter(&wt) {
            assert_eq!(
                got.get(&gt, key).map(|v| v.to_string(&gt)),
                Some(value.to_string(&wt))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_receipt_loses_nothing() {
    sigkill_after_receipt(1, 1, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_concurrent_writers_and_rooms_loses_nothing() {
    sigkill_after_receipt(3, 4, 100).await;
}

/// Storage unavailable: relaying waits (nothing undurable is sent), then clients are
/// closed with 1013; they keep their edits, and after reconnecting nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_outage_pauses_relaying_then_closes_with_1013_and_loses_nothing() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &["--persist-timeout", "1s"]);
    let url = server.ws_url("outage");
    let mut a = Client::connect(&url).await;
    let mut b = Client::connect(&url).await;
    a.map_set("before", "1").await;
    b.pump_until("first update", Duration::from_secs(10), |c| {
        c.map_len() == 1
    })
    .await;

    // Another process takes SQLite's write lock and holds it: the server's group commit
    // gets SQLITE_BUSY until its persist timeout runs out.
    let db = format!("sqlite://{}", server.data_dir.join("tandem.db").display());
    let mut blocker = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();

    a.map_set("during", "2").await;
    // The update was applied in memory but is not durable: b must not receive it.
    match b.closed_within(Duration::from_secs(30)).await {
        Closed::Code(code, _) => assert_eq!(code, 1013, "storage unavailable → try again later"),
        other => panic!("expected 1013, got {other:?}"),
    }
    assert_eq!(b.map_len(), 1, "an update that was not on disk was relayed");
    match a.closed_within(Duration::from_secs(10)).await {
        Closed::Code(code, _) => assert_eq!(code, 1013),
        other => panic!("expected 1013, got {other:?}"),
    }

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    drop(blocker);

    // a reconnects with its document and re-uploads what the server lacks.
    let a = a.reconnect(&url).await;
    assert_eq!(a.map_len(), 2);
    let mut fresh = Client::connect(&url).await;
    fresh
        .pump_until("a's offline edit arrives", Duration::from_secs(10), |c| {
            c.map_len() == 2
        })
        .await;
}
