//! Runs the real `tandem-bench` binary against a minimal in-process y-websocket relay
//! on 127.0.0.1 (server sync step 1, answers step 1 with an empty step 2, relays
//! updates to the other clients of the room), so the tool is tested without any
//! external server. Several listeners sharing one room map stand in for the nodes of a
//! cluster.

// A panic in a test helper is a failed test with a backtrace, as clippy.toml intends for
// tests; its allow-unwrap-in-tests does not reach helpers outside #[test] functions.
#![allow(clippy::unwrap_used)]
// The handshake callback signature (and its large error type) is fixed by tungstenite.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tandem_protocol::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<(u64, Vec<u8>)>>>>;

/// Starts the relay on an ephemeral loopback port; returns the port.
fn start_relay() -> u16 {
    start_cluster(1)[0]
}

/// Starts `nodes` listeners on ephemeral loopback ports that share one room map, so an
/// update sent to one is relayed to the room's clients on all of them; returns the ports.
fn start_cluster(nodes: usize) -> Vec<u16> {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let rooms: Rooms = Default::default();
            let next_id = Arc::new(AtomicU64::new(0));
            let mut accepting = Vec::new();
            for _ in 0..nodes {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let (rooms, next_id) = (Arc::clone(&rooms), Arc::clone(&next_id));
                accepting.push(tokio::spawn(async move {
                    loop {
                        let (stream, _) = listener.accept().await.unwrap();
                        let id = next_id.fetch_add(1, Ordering::Relaxed) + 1;
                        tokio::spawn(connection(stream, id, Arc::clone(&rooms)));
                    }
                }));
            }
            for task in accepting {
                task.await.unwrap();
            }
        });
    });
    (0..nodes).map(|_| port_rx.recv().unwrap()).collect()
}

async fn connection(stream: TcpStream, me: u64, rooms: Rooms) {
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let tx = rooms
        .lock()
        .unwrap()
        .entry(path)
        .or_insert_with(|| broadcast::channel(1 << 14).0)
        .clone();
    let mut rx = tx.subscribe();
    // An empty state vector, like a fresh Yjs doc.
    if ws
        .send(WsMessage::Binary(Message::SyncStep1(&[0]).encode().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { return };
                let WsMessage::Binary(bytes) = frame else { continue };
                match Message::decode(&bytes) {
                    Ok(Message::SyncStep1(_)) => {
                        // An empty v1 update: no structs, empty delete set.
                        let step2 = Message::SyncStep2(&[0, 0]).encode();
                        if ws.send(WsMessage::Binary(step2.into())).await.is_err() {
                            return;
                        }
                    }
                    Ok(Message::Update(_)) => {
                        let _ = tx.send((me, bytes.to_vec()));
                    }
                    _ => {}
                }
            }
            relayed = rx.recv() => match relayed {
                Ok((from, frame)) if from != me => {
                    if ws.send(WsMessage::Binary(frame.into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

fn bench(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, stderr)
}

#[test]
fn load_step_delivers_every_update_and_measures_latency() {
    let port = start_relay();
    let url = format!("ws://127.0.0.1:{port}/v1/connect");
    let pid = std::process::id().to_string();
    let (ok, r, err) = bench(&[
        "--url",
        &url,
        "--rooms",
        "3",
        "--clients",
        "4",
        "--writers",
        "2",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--settle",
        "100ms",
        "--server-pid",
        &pid,
        "--query",
        "token=abc",
    ]);
    assert!(ok, "bench failed: {err}\n{r}");
    assert_eq!(r["mode"], "load");
    assert_eq!(r["connect"]["connected"], 12);
    assert_eq!(r["connect"]["failed"], 0);
    assert_eq!(r["writers"], 6);
    let step = &r["steps"][0];
    let sent = step["sent"].as_u64().unwrap();
    // 6 writers x 20/s x 1 s, give or take a tick at the window edges.
    assert!((100..=140).contains(&sent), "sent {sent}");
    assert_eq!(step["expected"].as_u64().unwrap(), sent * 3);
    assert_eq!(step["delivered"], step["expected"]);
    assert_eq!(step["duplicates"], 0);
    assert_eq!(step["loss_pct"], 0.0);
    let lat = &step["latency_ms"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{lat}");
    assert!(r["rss"]["before_bytes"].as_u64().unwrap() > 0);
    assert!(step["server_cpu_pct"].is_number());
    assert_eq!(r["disconnects"], 0);
}

#[test]
fn ramp_stops_at_the_last_step_and_idle_mode_counts_connections() {
    let port = start_relay();
    let url = format!("ws://127.0.0.1:{port}");
    let (ok, r, err) = bench(&[
        "--url",
        &url,
        "--rooms",
        "2",
        "--clients",
        "3",
        "--rate",
        "10",
        "--ramp",
        "--ramp-steps",
        "2",
        "--duration",
        "500ms",
        "--warmup",
        "200ms",
        "--settle",
        "0s",
        "--max-p99",
        "5s",
    ]);
    assert!(ok, "bench failed: {err}");
    assert_eq!(r["mode"], "ramp");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1]["rate_per_writer"], 20.0);
    assert_eq!(r["max_passing"]["rate_per_writer"], 20.0);

    let pid = std::process::id().to_string();
    let (ok, r, err) = bench(&[
        "--url",
        &url,
        "--idle",
        "--rooms",
        "7",
        "--connections",
        "300",
        "--concurrency",
        "50",
        "--settle",
        "100ms",
        "--server-pid",
        &pid,
    ]);
    assert!(ok, "bench failed: {err}");
    assert_eq!(r["mode"], "idle");
    assert_eq!(r["connect"]["connected"], 300);
    assert!(r["steps"].as_array().unwrap().is_empty());
    assert!(r["rss"]["per_connection_bytes"].is_number());
}

#[test]
fn unreachable_server_fails_with_the_error() {
    // Bind then drop to get a port with (almost certainly) nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let (ok, r, _) = bench(&["--url", &url, "--connect-timeout", "2s", "--settle", "0s"]);
    assert!(!ok);
    assert_eq!(r["connect"]["connected"], 0);
    assert_eq!(r["connect"]["failed"], 2);
    assert!(r["connect"]["errors"][0].as_str().unwrap().contains("2 x"));

    let (ok, _, err) = bench(&["--url", "ws://192.0.2.1:1"]);
    assert!(!ok);
    assert!(err.contains("non-loopback"), "{err}");
}

#[test]
fn several_urls_split_rooms_over_nodes_and_count_cross_node_deliveries() {
    let ports = start_cluster(3);
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("ws://127.0.0.1:{p}/v1/connect"))
        .collect();
    let pid = std::process::id().to_string();
    let common = [
        "--rooms",
        "4",
        "--clients",
        "6",
        "--writers",
        "2",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--settle",
        "100ms",
    ];
    let joined = urls.join(",");
    let mut args = vec!["--url", &joined, "--server-pid", &pid, "--server-pid", &pid];
    args.extend(common);
    let (ok, r, err) = bench(&args);
    assert!(ok, "bench failed: {err}\n{r}");
    assert_eq!(r["url"], joined);
    assert_eq!(r["connect"]["connected"], 24);
    assert_eq!(r["server_pid"], Value::Null);
    assert_eq!(r["server_pids"].as_array().unwrap().len(), 2);
    let nodes = r["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (node, url) in nodes.iter().zip(&urls) {
        assert_eq!(node["url"], url.as_str());
        assert_eq!(node["connected"], 8);
    }
    let writers: u64 = nodes.iter().map(|n| n["writers"].as_u64().unwrap()).sum();
    assert_eq!(writers, 8);
    let step = &r["steps"][0];
    assert_eq!(step["delivered"], step["expected"]);
    assert!(step["server_cpu_pct"].is_number());
    // Each writer has 5 receivers in its room, 1 on its own node and 4 on the others.
    let x = &step["cross_node"];
    let sent = step["sent"].as_u64().unwrap();
    assert_eq!(x["expected"].as_u64().unwrap(), sent * 4);
    assert_eq!(x["delivered"], x["expected"]);
    assert_eq!(x["same_node_delivered"].as_u64().unwrap(), sent);
    assert!(
        (x["share_pct"].as_f64().unwrap() - 80.0).abs() < 1e-9,
        "{x}"
    );
    assert_eq!(x["loss_pct"], 0.0);
    assert!(x["latency_ms"]["p50"].as_f64().unwrap() > 0.0);

    // Unconnected servers: only same-node deliveries arrive.
    let a = start_relay();
    let b = start_relay();
    let (ua, ub) = (format!("ws://127.0.0.1:{a}"), format!("ws://127.0.0.1:{b}"));
    let mut args = vec!["--url", &ua, "--url", &ub];
    args.extend(common);
    let (ok, r, err) = bench(&args);
    assert!(ok, "bench failed: {err}");
    let step = &r["steps"][0];
    let x = &step["cross_node"];
    assert_eq!(x["delivered"], 0);
    assert_eq!(x["loss_pct"], 100.0);
    assert_eq!(x["same_node_loss_pct"], 0.0);
    assert_eq!(step["delivered"], x["same_node_delivered"]);

    // One URL: the report has no node split.
    let (ok, r, _) = bench(&[&["--url", &ua][..], &common[..]].concat());
    assert!(ok);
    assert!(r.get("nodes").is_none());
    assert!(r["steps"][0].get("cross_node").is_none());
}
