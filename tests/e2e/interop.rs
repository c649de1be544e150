//! Clients we did not write: npm `yjs` + `y-websocket` in Node against the real server.

use std::time::Duration;

use crate::harness::{node, Server};

fn last_json_line(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Two stock clients edit one Y.Text and one Y.Map concurrently and converge; a third
/// joining later gets the full state; each sees the others' awareness, and sees it
/// removed after a clean disconnect and after a dropped socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_y_websocket_clients_converge_and_share_presence() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let (ok, stdout, stderr) = node(
        "interop.mjs",
        &[&server.ws_base(), "interop/room-1"],
        Duration::from_secs(90),
    )
    .await;
    assert!(
        ok,
        "interop.mjs failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let summary = last_json_line(&stdout);
    assert_eq!(summary["ok"], true, "{stdout}");
    // Presence removal must be prompt, not the 30 s awareness timeout.
    let removed = summary["awareness_removed_after_drop_ms"].as_u64().unwrap();
    assert!(removed < 10_000, "removal took {removed} ms");
}
