//! `/metrics` in the Prometheus text format reflects what the server is doing.

use std::time::Duration;

use crate::harness::{eventually, Client, Server};

/// The value of the sample `name` (a line `name value`), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_rooms_and_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(sample(&text, "tandem_connections"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "tandem_store_up"), Some(1.0), "{text}");
    assert!(
        text.contains("# TYPE tandem_persist_seconds histogram"),
        "{text}"
    );

    let mut a = Client::connect(&server.ws_url("m-1")).await;
    let _b = Client::connect(&server.ws_url("m-1")).await;
    let _c = Client::connect(&server.ws_url("m-2")).await;
    for i in 0..5 {
        a.map_set(&format!("k{i}"), "v").await;
    }
    a.round_trip().await;
    eventually("metrics show the load", Duration::from_secs(10), || async {
        let (_, text) = server.get("/metrics").await;
        sample(&text, "tandem_connections") == Some(3.0)
            && sample(&text, "tandem_rooms_loaded") == Some(2.0)
            && sample(&text, "tandem_group_commit_batch_size_count").is_some_and(|n| n >= 1.0)
            && sample(&text, "tandem_group_commit_batch_size_sum").is_some_and(|n| n >= 5.0)
            && sample(&text, "tandem_persist_seconds_bucket{le=\"+Inf\"}")
                == sample(&text, "tandem_persist_seconds_count")
    })
    .await;
}
