//! The durability contract: whatever a client has received from the server is on disk.
//! Writers send updates; the moment an observer has received all of them the server is
//! SIGKILLed; after a restart a fresh client must receive every one.

use std::time::Duration;

use crate::harness::{Client, Server};

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
