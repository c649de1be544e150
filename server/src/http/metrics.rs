//! `GET /metrics`: the Prometheus text format (version 0.0.4). Connections, loaded
//! rooms, group-commit latency and batch sizes, store failures and health, slow
//! consumers closed. Like `/healthz` it is an operator endpoint, outside `/v1` and the
//! API spec; expose it only where your monitoring can reach it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::rooms::metrics::render_value;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let rooms = &state.rooms;
    let m = rooms.metrics();
    let mut out = String::with_capacity(4096);
    render_value(
        &mut out,
        "tandem_connections",
        "gauge",
        "Live WebSocket connections in loaded rooms.",
        rooms.total_connections() as f64,
    );
    render_value(
        &mut out,
        "tandem_rooms_loaded",
        "gauge",
        "Rooms loaded in memory.",
        rooms.loaded_rooms() as f64,
    );
    m.persist_seconds.render(
        &mut out,
        "tandem_persist_seconds",
        "Time for a group commit to become durable, retries included.",
    );
    m.commit_batch.render(
        &mut out,
        "tandem_group_commit_batch_size",
        "Updates written per group commit (one sync to disk each).",
    );
    render_value(
        &mut out,
        "tandem_persist_failures_total",
        "counter",
        "Group commits that gave up because the store stayed unavailable.",
        m.persist_failures.load(Ordering::Relaxed) as f64,
    );
    render_value(
        &mut out,
        "tandem_slow_consumers_closed_total",
        "counter",
        "Connections closed because their outbound queue was full.",
        m.slow_consumers_closed.load(Ordering::Relaxed) as f64,
    );
    let started = Instant::now();
    let up = rooms.store_ready().await;
    render_value(
        &mut out,
        "tandem_store_up",
        "gauge",
        "Whether the database answered a ping during this scrape.",
        if up { 1.0 } else { 0.0 },
    );
    render_value(
        &mut out,
        "tandem_store_ping_seconds",
        "gauge",
        "How long that ping took.",
        started.elapsed().as_secs_f64(),
    );
    render_value(
        &mut out,
        "tandem_shutting_down",
        "gauge",
        "1 while the server drains for shutdown.",
        if rooms.is_shutting_down() { 1.0 } else { 0.0 },
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}
