//! The cluster layer against the real Redis on 127.0.0.1:6379 (or `TANDEM_TEST_REDIS`),
//! each test under its own random prefix. Without Redis these tests are skipped with a
//! message, except in CI (`CI=true`), where they fail.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::*;
use crate::rooms::limits::ProjectConnections;

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// A fresh prefix on a reachable Redis, or `None` (skip) outside CI.
async fn redis() -> Option<(String, String)> {
    let url = std::env::var("TANDEM_TEST_REDIS").unwrap_or_else(|_| DEFAULT_URL.into());
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    if tokio::time::timeout(Duration::from_secs(3), reachable)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        let message = format!("Redis at {url} is not reachable; skipping this test");
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{message} (CI=true: this test must run)"
        );
        eprintln!("{message}");
        return None;
    }
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    let prefix = format!(
        "tandem_test_{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Some((url, prefix))
}

fn options(url: &str, prefix: &str) -> ClusterOptions {
    ClusterOptions {
        redis_url: url.to_owned(),
        prefix: prefix.to_owned(),
        catchup_interval: Duration::from_secs(10),
    }
}

fn key(name: &str) -> RoomKey {
    RoomKey {
        project_id: "prj_t".into(),
        name: name.into(),
    }
}

async fn recv_remote(rx: &mut mpsc::Receiver<RoomMsg>) -> Option<(Kind, Bytes)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if let RoomMsg::Remote(Remote::Frame { kind, frame, .. }) = msg {
            return Some((kind, frame));
        }
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn room_messages_reach_other_nodes_but_never_echo() {
    let Some((url, prefix)) = redis().await else {
        return;
    };
    let a = Cluster::start(&options(&url, &prefix), Arc::default(), None).unwrap();
    let b = Cluster::start(&options(&url, &prefix), Arc::default(), None).unwrap();
    until("both subscribed", || a.is_up() && b.is_up()).await;
    let (a_tx, mut a_rx) = mpsc::channel(16);
    let (b_tx, mut b_rx) = mpsc::channel(16);
    let _a_link = a.join_room(&key("r"), a_tx.downgrade()).await;
    let b_link = b.join_room(&key("r"), b_tx.downgrade()).await;
    // Another room's traffic does not arrive here.
    let (c_tx, mut c_rx) = mpsc::channel(16);
    let _c_link = b.join_room(&key("other"), c_tx.downgrade()).await;

    b_link.publish(Kind::Update, b"frame-1");
    let (kind, frame) = recv_remote(&mut a_rx).await.expect("a receives b's update");
    assert_eq!((kind, &frame[..]), (Kind::Update, &b"frame-1"[..]));
    a.publish_room(&key("r"), Kind::Awareness, b"presence");
    let (kind, frame) = recv_remote(&mut b_rx)
        .await
        .expect("b receives a's presence");
    assert_eq!((kind, &frame[..]), (Kind::Awareness, &b"presence"[..]));
    // Nobody got their own message back, and the other room got nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b_rx.try_recv().is_err(), "b's own update echoed back");
    assert!(a_rx.try_recv().is_err(), "a's own presence echoed back");
    assert!(c_rx.try_recv().is_err(), "another room received it");
    assert!(a.metrics().published.load(Ordering::Relaxed) >= 1);
    assert!(a.metrics().received.load(Ordering::Relaxed) >= 1);

    // After the link is dropped, b's room no longer receives.
    drop(b_link);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.publish_room(&key("r"), Kind::Update, b"frame-2");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b_rx.try_recv().is_err(), "an unlinked room still received");
    a.stop();
    b.stop();
}

#[tokio::test]
async fn control_events_reach_every_other_node() {
    let Some((url, prefix)) = redis().await else {
        return;
    };
    let a = Cluster::start(&options(&url, &prefix), Arc::default(), None).unwrap();
    let b = Cluster::start(&options(&url, &prefix), Arc::default(), None).unwrap();
    until("both subscribed", || a.is_up() && b.is_up()).await;
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let sa = seen_a.clone();
    a.on_control(move |e| sa.lock().unwrap().push(e.clone()));
    let sb = seen_b.clone();
    b.on_control(move |e| sb.lock().unwrap().push(e.clone()));
    let event = ControlEvent::Close {
        project_id: "prj_t".into(),
        filter: WireFilter::Key("key_1".into()),
        code: 4401,
        reason: "key revoked".into(),
    };
    a.publish_control(&event);
    until("b hears it", || seen_b.lock().unwrap().len() == 1).await;
    assert_eq!(seen_b.lock().unwrap()[0], event);
    // From outside any node (the rotate-signing-key command).
    let nodes = announce(&url, &prefix, &ControlEvent::SigningKeysChanged)
        .await
        .unwrap();
    assert_eq!(nodes, 2, "both nodes subscribe to the control channel");
    until("both hear the rotation", || {
        seen_a
            .lock()
            .unwrap()
            .contains(&ControlEvent::SigningKeysChanged)
            && seen_b
                .lock()
                .unwrap()
                .contains(&ControlEvent::SigningKeysChanged)
    })
    .await;
    assert!(
        !seen_a.lock().unwrap().contains(&event),
        "a acted on its own event"
    );
    a.stop();
    b.stop();
}

#[tokio::test]
async fn the_connection_cap_counts_every_live_node() {
    let Some((url, prefix)) = redis().await else {
        return;
    };
    let project: Arc<str> = "prj_cap".into();
    let local_a = Arc::new(ProjectConnections::default());
    let local_b = Arc::new(ProjectConnections::default());
    let a = Cluster::start(&options(&url, &prefix), local_a.clone(), None).unwrap();
    let b = Cluster::start(&options(&url, &prefix), local_b.clone(), None).unwrap();
    let hook = a.clone();
    local_a.on_release(move |p| hook.count_changed(p));

    // Cap 3: two on a, one on b, then a fourth is refused on either node.
    let cap = 3;
    let mut slots_a = Vec::new();
    for expected_total in 1..=2 {
        let slot = local_a.admit(&project, cap).unwrap();
        let admission = a.admit(&project, cap).await.expect("redis answers");
        assert_eq!(
            admission,
            Admission {
                admitted: true,
                total: expected_total
            }
        );
        slots_a.push(slot);
    }
    let _slot_b = local_b.admit(&project, cap).unwrap();
    assert_eq!(
        b.admit(&project, cap).await.unwrap(),
        Admission {
            admitted: true,
            total: 3
        }
    );
    let extra_b = local_b.admit(&project, cap).unwrap();
    let refused = b.admit(&project, cap).await.unwrap();
    assert!(!refused.admitted, "b admitted a 4th: {refused:?}");
    drop(extra_b);
    let extra_a = local_a.admit(&project, cap).unwrap();
    assert!(!a.admit(&project, cap).await.unwrap().admitted);
    drop(extra_a);

    // One leaves on a: b may admit again once a's count is mirrored.
    slots_a.pop();
    let mut admitted = false;
    for _ in 0..50 {
        let slot = local_b.admit(&project, cap).unwrap();
        if b.admit(&project, cap).await.unwrap().admitted {
            std::mem::forget(slot);
            admitted = true;
            break;
        }
        drop(slot);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the freed slot never became available on b");

    // A node that dies stops counting once its liveness key expires: simulate the
    // expiry by deleting a's key after stopping it.
    a.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let node_key = format!("{prefix}:node:{:016x}", a.node_id());
    redis::cmd("DEL")
        .arg(&node_key)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let _more = local_b.admit(&project, cap).unwrap();
    let admission = b.admit(&project, cap).await.unwrap();
    assert_eq!(
        admission,
        Admission {
            admitted: true,
            total: 3
        },
        "a's connection should no longer count"
    );
    b.stop();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:conns:{project}"))
        .arg(format!("{prefix}:node:{:016x}", b.node_id()))
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Control events published durably reach a node whose Redis is unreachable (here:
/// nothing listens on the URL), through the database's event log; the node that
/// recorded an event does not apply it itself, and each is applied once.
#[tokio::test]
async fn durable_control_events_reach_a_node_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let store: crate::store::SharedDocStore = Arc::new(
        crate::store::sqlite::SqliteStore::open_dir(dir.path())
            .await
            .unwrap(),
    );
    // An event recorded before the nodes started is not theirs to apply.
    store
        .append_event(r#"{"origin":"01","type":"signing_keys_changed"}"#, 1)
        .await
        .unwrap();
    // A port nothing listens on: Redis is "down" for both nodes throughout.
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let opts = options(
        &format!("redis://127.0.0.1:{nowhere}"),
        "tandem_test_durable",
    );
    let a = Cluster::start(&opts, Arc::default(), Some(store.clone())).unwrap();
    let b = Cluster::start(&opts, Arc::default(), Some(store.clone())).unwrap();
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let sa = seen_a.clone();
    a.on_control(move |e| sa.lock().unwrap().push(e.clone()));
    let sb = seen_b.clone();
    b.on_control(move |e| sb.lock().unwrap().push(e.clone()));
    // Both pollers have read the log's end.
    until("both started", || {
        a.inner.cursor().started() && b.inner.cursor().started()
    })
    .await;
    let close = ControlEvent::Close {
        project_id: "prj_t".into(),
        filter: WireFilter::Key("key_1".into()),
        code: 4401,
        reason: "key revoked".into(),
    };
    let deleted = ControlEvent::RoomDeleted {
        project_id: "prj_t".into(),
        room: "doc".into(),
    };
    a.publish_durable(&close).await;
    a.publish_durable(&deleted).await;
    until("b applies both from the database", || {
        seen_b.lock().unwrap().len() >= 2
    })
    .await;
    // A few more polls: nothing is applied twice, nothing older than the start is.
    tokio::time::sleep(durable::POLL_INTERVAL * 3).await;
    assert_eq!(*seen_b.lock().unwrap(), vec![close, deleted]);
    assert!(
        seen_a.lock().unwrap().is_empty(),
        "a applied its own events"
    );
    assert_eq!(b.metrics().durable_applied.load(Ordering::Relaxed), 2);
    assert!(!a.is_up() && !b.is_up(), "Redis was never reachable");
    a.stop();
    b.stop();
}

/// With Redis up, a durable event arrives over Redis first and the event log does not
/// apply it a second time.
#[tokio::test]
async fn a_durable_event_that_came_over_redis_is_not_applied_again() {
    let Some((url, prefix)) = redis().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store: crate::store::SharedDocStore = Arc::new(
        crate::store::sqlite::SqliteStore::open_dir(dir.path())
            .await
            .unwrap(),
    );
    let a = Cluster::start(&options(&url, &prefix), Arc::default(), Some(store.clone())).unwrap();
    let b = Cluster::start(&options(&url, &prefix), Arc::default(), Some(store.clone())).unwrap();
    until("both subscribed", || a.is_up() && b.is_up()).await;
    until("both started", || {
        a.inner.cursor().started() && b.inner.cursor().started()
    })
    .await;
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let sb = seen_b.clone();
    b.on_control(move |e| sb.lock().unwrap().push(e.clone()));
    let event = ControlEvent::Close {
        project_id: "prj_t".into(),
        filter: WireFilter::All,
        code: 4404,
        reason: "project deleted".into(),
    };
    a.publish_durable(&event).await;
    until("b hears it", || seen_b.lock().unwrap().len() == 1).await;
    tokio::time::sleep(durable::POLL_INTERVAL * 3).await;
    assert_eq!(*seen_b.lock().unwrap(), vec![event], "applied once");
    a.stop();
    b.stop();
}
