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
    for (name, help, value) in [
        (
            "tandem_messages_received_total",
            "WebSocket messages read from clients.",
            &m.messages_received,
        ),
        (
            "tandem_received_bytes_total",
            "Bytes of those messages.",
            &m.bytes_received,
        ),
        (
            "tandem_messages_sent_total",
            "WebSocket messages written to clients.",
            &m.messages_sent,
        ),
        (
            "tandem_sent_bytes_total",
            "Bytes of those messages.",
            &m.bytes_sent,
        ),
        (
            "tandem_limit_refusals_total",
            "Connections refused or closed by a plan limit (4429 / 4413).",
            &m.limit_refusals,
        ),
    ] {
        render_value(
            &mut out,
            name,
            "counter",
            help,
            value.load(Ordering::Relaxed) as f64,
        );
    }
    if let Some(cluster) = rooms.cluster() {
        render_cluster(&mut out, cluster);
    }
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
    if let Some(billing) = &state.billing {
        render_billing(&mut out, billing.metrics());
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

fn render_billing(out: &mut String, b: &crate::control::billing::BillingMetrics) {
    for (name, help, value) in [
        (
            "tandem_billing_webhook_events_total",
            "Stripe webhook events applied.",
            &b.webhook_applied,
        ),
        (
            "tandem_billing_webhook_duplicates_total",
            "Stripe webhook deliveries of events applied before (nothing changed).",
            &b.webhook_duplicates,
        ),
        (
            "tandem_billing_webhook_rejected_total",
            "Stripe webhook deliveries refused (bad or stale signature, not an event).",
            &b.webhook_rejected,
        ),
        (
            "tandem_billing_meter_events_sent_total",
            "Billing meter events Stripe accepted.",
            &b.meter_sent,
        ),
        (
            "tandem_billing_meter_failures_total",
            "Billing meter event attempts that failed (retried with backoff).",
            &b.meter_failures,
        ),
        (
            "tandem_billing_plan_changes_total",
            "Plan changes applied (Stripe events and ended grace periods).",
            &b.plan_changes,
        ),
    ] {
        render_value(
            out,
            name,
            "counter",
            help,
            value.load(Ordering::Relaxed) as f64,
        );
    }
    render_value(
        out,
        "tandem_billing_meter_pending",
        "gauge",
        "Meter events waiting to be sent (as of the outbox's last round).",
        b.meter_pending.load(Ordering::Relaxed) as f64,
    );
    render_value(
        out,
        "tandem_billing_meter_failing",
        "gauge",
        "Waiting meter events that have failed at least once.",
        b.meter_failing.load(Ordering::Relaxed) as f64,
    );
}

fn render_cluster(out: &mut String, cluster: &crate::rooms::cluster::Cluster) {
    render_value(
        out,
        "tandem_redis_up",
        "gauge",
        "Whether this node's Redis subscription is live.",
        if cluster.is_up() { 1.0 } else { 0.0 },
    );
    let c = cluster.metrics();
    for (name, help, value) in [
        (
            "tandem_cluster_published_total",
            "Messages published to the other nodes.",
            &c.published,
        ),
        (
            "tandem_cluster_received_total",
            "Messages received from the other nodes.",
            &c.received,
        ),
        (
            "tandem_cluster_publish_dropped_total",
            "Messages not published (Redis unreachable or the queue full); the other nodes catch up from the database.",
            &c.publish_dropped,
        ),
        (
            "tandem_cluster_delivery_dropped_total",
            "Messages not delivered to a room whose inbox was full; the room catches up.",
            &c.delivery_dropped,
        ),
        (
            "tandem_redis_reconnects_total",
            "Redis subscriptions re-established after being lost.",
            &c.reconnects,
        ),
        (
            "tandem_cluster_catchups_total",
            "Loaded rooms compared with the database.",
            &c.catchups,
        ),
        (
            "tandem_cluster_catchup_repairs_total",
            "Comparisons that found updates this node had missed.",
            &c.catchup_repairs,
        ),
        (
            "tandem_cluster_admission_fallbacks_total",
            "Connections admitted on this node's count alone because Redis did not answer.",
            &c.admission_fallbacks,
        ),
        (
            "tandem_cluster_durable_events_applied_total",
            "Control events applied from the database's event log (their Redis message was missed).",
            &c.durable_applied,
        ),
        (
            "tandem_cluster_rate_fallbacks_total",
            "HTTP requests charged to this node's own per-key limiter because Redis did not answer.",
            &c.rate_fallbacks,
        ),
    ] {
        render_value(out, name, "counter", help, value.load(Ordering::Relaxed) as f64);
    }
}
