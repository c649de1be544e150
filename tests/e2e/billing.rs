//! Stripe billing end to end: the real binary with its real Stripe client (async-stripe)
//! pointed at a local fake Stripe (billing_support.rs) that checks what it is sent and
//! whose webhook events the tests sign and post back. Checkout → webhook → the plan
//! changes → the new limits hold on a socket that stayed open; a replayed event is
//! applied once; bad and stale signatures are 400 and change nothing; cancellation
//! downgrades (and the open socket feels it); meter events survive an outage and a
//! SIGKILL with every hour reported exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tandem_protocol::close;

use crate::billing_support::{self as fake, FakeStripe};
use crate::harness::{eventually, Account, Client, Closed, Cred, Server};

/// Plans small enough to reach: the free plan's documents stop at 2000 bytes.
fn files(dir: &tempfile::TempDir) -> (String, String) {
    let plans = dir.path().join("plans.toml");
    std::fs::write(
        &plans,
        "[free]\nmax-document-bytes = 2000\n[pro]\nmax-document-bytes = 1000000\n",
    )
    .unwrap();
    let stripe = dir.path().join("stripe.toml");
    std::fs::write(
        &stripe,
        "[prices]\npro = \"price_pro\"\n\n[meters]\nmessages = \"tandem_messages\"\nconnection-minutes = \"tandem_connection_minutes\"\n",
    )
    .unwrap();
    (plans.display().to_string(), stripe.display().to_string())
}

async fn start(dir: &tempfile::TempDir, stripe: &FakeStripe) -> Server {
    let (plans, stripe_plans) = files(dir);
    let mut args = vec!["--plans".to_owned(), plans];
    args.extend(stripe.args(&stripe_plans));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_strict(dir, &args)
}

async fn plan_of(server: &Server, account: &Account) -> String {
    let tenant = server
        .call(
            "GET",
            &format!("/v1/tenants/{}", account.tenant_id),
            Cred::Cookie(&account.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    tenant["plan"].as_str().unwrap().to_owned()
}

async fn post_event(server: &Server, body: &[u8], signature: &str) -> crate::harness::HttpResponse {
    server
        .request(
            "POST",
            "/v1/billing/stripe/webhook",
            &[("Stripe-Signature", signature)],
            Some(("application/json", body.to_vec())),
        )
        .await
}

async fn checkout(server: &Server, account: &Account) -> serde_json::Value {
    server
        .call(
            "POST",
            &format!("/v1/tenants/{}/billing/checkout", account.tenant_id),
            Cred::Cookie(&account.cookie),
            Some(json!({"plan": "pro"})),
        )
        .await
        .expect(201)
        .json()
}

async fn audit_actions(server: &Server, account: &Account) -> Vec<String> {
    let log = server
        .call(
            "GET",
            &format!("/v1/tenants/{}/audit-log", account.tenant_id),
            Cred::Cookie(&account.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    log["data"]
        .as_array()
        .expect("an audit page")
        .iter()
        .filter_map(|i| i["action"].as_str().map(str::to_owned))
        .collect()
}

/// An open socket in the tenant's project, and a text of `n` bytes pushed on it.
async fn writer(server: &Server, key: &str) -> Client {
    let token = server
        .token(key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    Client::connect(&server.ws_url_token("doc", &token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_then_webhook_raises_the_limits_of_an_open_socket_once() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = FakeStripe::start().await;
    let server = start(&dir, &stripe).await;
    let (account, project) = server.project().await;

    // Checkout: a customer is created (once), then a subscription-mode session.
    let session = checkout(&server, &account).await;
    assert!(session["url"]
        .as_str()
        .unwrap()
        .starts_with("https://checkout.stripe.test/"));
    checkout(&server, &account).await;
    let customers = stripe.requests("/v1/customers");
    assert_eq!(customers.len(), 1, "the customer is remembered");
    let customer = &customers[0];
    assert_eq!(
        customer.field("metadata[tenant_id]"),
        Some(account.tenant_id.as_str())
    );
    assert_eq!(
        customer.idempotency_key.as_deref(),
        Some(format!("tandem-customer-{}", account.tenant_id).as_str())
    );
    assert_eq!(
        customer.authorization.as_deref(),
        Some(format!("Bearer {}", fake::SECRET_KEY).as_str())
    );
    let version = customer.stripe_version.clone().unwrap();
    assert!(version.as_str() >= "2025-03-31.basil", "{version}");
    let sessions = stripe.requests("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 2);
    let s = &sessions[0];
    assert_eq!(s.field("mode"), Some("subscription"));
    assert_eq!(s.field("line_items[0][price]"), Some("price_pro"));
    assert_eq!(s.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(
        s.field("client_reference_id"),
        Some(account.tenant_id.as_str())
    );
    assert_eq!(s.field("customer"), Some("cus_fake1"));
    assert!(s
        .field("success_url")
        .unwrap()
        .contains(&format!("/dashboard/t/{}/plan", account.tenant_id)));
    // Only plans with a price can be bought.
    server
        .call(
            "POST",
            &format!("/v1/tenants/{}/billing/checkout", account.tenant_id),
            Cred::Cookie(&account.cookie),
            Some(json!({"plan": "enterprise"})),
        )
        .await
        .expect(400);

    // A socket on the free plan: a document past 2000 bytes would be refused.
    let mut client = writer(&server, &project.key.key).await;
    client.text_push(&"a".repeat(500)).await;
    client.round_trip().await;
    assert_eq!(plan_of(&server, &account).await, "free");

    let body = fake::event(
        "evt_checkout_1",
        "checkout.session.completed",
        json!({
            "id": "cs_fake2", "object": "checkout.session", "client_reference_id": account.tenant_id,
            "customer": "cus_fake1", "subscription": "sub_1", "mode": "subscription",
            "payment_status": "paid", "metadata": {"tenant_id": account.tenant_id, "plan": "pro"},
        }),
    );
    // Refused first: a wrong secret, a stale timestamp, no header. Nothing changes.
    for bad in [
        fake::signed(&body, "whsec_someone_else"),
        fake::signed_ago(&body, fake::WEBHOOK_SECRET, 400),
        "t=1,v1=".to_owned(),
    ] {
        let refused = post_event(&server, &body, &bad).await;
        assert_eq!(refused.status, 400, "{}", refused.text());
    }
    let unsigned = server
        .request(
            "POST",
            "/v1/billing/stripe/webhook",
            &[],
            Some(("application/json", body.clone())),
        )
        .await;
    assert_eq!(unsigned.status, 400);
    assert_eq!(
        plan_of(&server, &account).await,
        "free",
        "refused events change nothing"
    );

    let applied = post_event(&server, &body, &fake::signed(&body, fake::WEBHOOK_SECRET)).await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(applied.json()["applied"], true);
    assert_eq!(plan_of(&server, &account).await, "pro");

    // The same socket, still open, now takes a document the free plan would refuse.
    client.text_push(&"b".repeat(5000)).await;
    client.round_trip().await;
    assert_eq!(client.text().len(), 5500);

    // A replay (Stripe retries, or an attacker resends a captured delivery) is applied
    // once.
    let replay = post_event(&server, &body, &fake::signed(&body, fake::WEBHOOK_SECRET)).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.json()["applied"], false);
    let actions = audit_actions(&server, &account).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "billing.plan_changed")
            .count(),
        1,
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "billing.checkout_completed"));
    assert!(actions.iter().any(|a| a == "billing.checkout_started"));

    // The portal for the remembered customer.
    let portal = server
        .call(
            "POST",
            &format!("/v1/tenants/{}/billing/portal", account.tenant_id),
            Cred::Cookie(&account.cookie),
            None,
        )
        .await
        .expect(201)
        .json();
    assert!(portal["url"]
        .as_str()
        .unwrap()
        .starts_with("https://billing.stripe.test/"));
    let portals = stripe.requests("/v1/billing_portal/sessions");
    assert_eq!(portals[0].field("customer"), Some("cus_fake1"));

    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("tandem_billing_webhook_events_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tandem_billing_webhook_duplicates_total 1"));
    assert!(metrics.contains("tandem_billing_webhook_rejected_total 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_downgrades_and_the_open_socket_gets_the_free_limits() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = FakeStripe::start().await;
    let server = start(&dir, &stripe).await;
    let (account, project) = server.project().await;
    checkout(&server, &account).await;

    let start = fake::unix_now() - 60;
    let created = fake::event(
        "evt_sub_created",
        "customer.subscription.created",
        fake::subscription("sub_9", "cus_fake1", "active", "price_pro", start),
    );
    post_event(
        &server,
        &created,
        &fake::signed(&created, fake::WEBHOOK_SECRET),
    )
    .await
    .expect(200);
    assert_eq!(plan_of(&server, &account).await, "pro");

    let mut client = writer(&server, &project.key.key).await;
    client.text_push(&"a".repeat(3000)).await;
    client.round_trip().await;

    let deleted = fake::event(
        "evt_sub_deleted",
        "customer.subscription.deleted",
        fake::subscription("sub_9", "cus_fake1", "canceled", "price_pro", start),
    );
    post_event(
        &server,
        &deleted,
        &fake::signed(&deleted, fake::WEBHOOK_SECRET),
    )
    .await
    .expect(200);
    assert_eq!(plan_of(&server, &account).await, "free");
    let actions = audit_actions(&server, &account).await;
    assert!(
        actions.iter().any(|a| a == "billing.plan_changed"),
        "{actions:?}"
    );

    // The document is past the free plan's 2000 bytes: the next write on the socket that
    // was admitted under pro is refused with 4413.
    let _ = client.try_text_push("more").await;
    match client.closed_within(Duration::from_secs(10)).await {
        Closed::Code(code, _) => assert_eq!(code, close::TOO_LARGE),
        Closed::Dropped => panic!("dropped without a close frame"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_events_survive_an_outage_and_a_sigkill_with_every_hour_reported_once() {
    use tandem_server::store::usage::{RoomHour, UsageBatch};
    let dir = tempfile::tempdir().unwrap();
    let stripe = FakeStripe::start().await;
    stripe.set_meter_down(true);
    let mut server = start(&dir, &stripe).await;
    let (account, _project) = server.project().await;
    checkout(&server, &account).await;

    // Three finished hours of usage in the tenant's project, written as the engine's
    // flusher writes them.
    let hour = 3_600_000_i64;
    let now_ms = fake::unix_now() * 1000;
    let current = now_ms - now_ms.rem_euclid(hour);
    let hours: Vec<i64> = (2..=4).map(|h| current - h * hour).collect();
    let stores = tandem_server::store::Stores::open(None, dir.path())
        .await
        .unwrap();
    let mut batch = UsageBatch::default();
    for (i, start) in hours.iter().enumerate() {
        for room in ["a", "b"] {
            batch.rooms.push(RoomHour {
                project_id: account.project_id.clone(),
                room: room.into(),
                hour_start: *start,
                messages_in: 10 * (i as i64 + 1),
                messages_out: 5,
                connection_ms: 90_000,
                active: true,
                ..Default::default()
            });
        }
    }
    assert!(stores
        .usage
        .apply_usage("e2e-billing", &batch, now_ms)
        .await
        .unwrap());
    stores.close().await;
    let mut expected = BTreeMap::new();
    for (i, start) in hours.iter().enumerate() {
        let secs = start / 1000;
        let p = &account.project_id;
        expected.insert(
            format!("tandem:{p}:{secs}:messages"),
            (2 * (10 * (i as i64 + 1) + 5), "tandem_messages"),
        );
        // 2 rooms × 90 s = 3 minutes.
        expected.insert(
            format!("tandem:{p}:{secs}:connection-minutes"),
            (3, "tandem_connection_minutes"),
        );
    }

    // The subscription began before those hours: they are billed.
    let start = hours[2] / 1000 - 60;
    let created = fake::event(
        "evt_meter_sub",
        "customer.subscription.created",
        fake::subscription("sub_m", "cus_fake1", "active", "price_pro", start),
    );
    post_event(
        &server,
        &created,
        &fake::signed(&created, fake::WEBHOOK_SECRET),
    )
    .await
    .expect(200);

    // Stripe is down: attempts fail and back off, visible in /metrics and on the page.
    eventually("meter failures", Duration::from_secs(30), || async {
        let (_, metrics) = server.get("/metrics").await;
        metric(&metrics, "tandem_billing_meter_failures_total") >= 3.0
            && metric(&metrics, "tandem_billing_meter_failing") >= 1.0
    })
    .await;
    let page = server
        .request(
            "GET",
            &format!("/dashboard/t/{}/plan", account.tenant_id),
            &[("Cookie", &account.cookie)],
            None,
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("failing"), "{}", page.text());
    assert!(stripe.meter().is_empty());

    // SIGKILL mid-outage; Stripe recovers; the restarted server reports every hour.
    server.kill9();
    stripe.set_meter_down(false);
    server.restart();
    eventually("every hour reported", Duration::from_secs(60), || async {
        stripe.meter().len() >= expected.len()
    })
    .await;
    eventually("the outbox drained", Duration::from_secs(30), || async {
        let (_, metrics) = server.get("/metrics").await;
        metric(&metrics, "tandem_billing_meter_pending") == 0.0
    })
    .await;
    let meter = stripe.meter();
    let got: BTreeMap<String, (i64, &str)> = meter
        .iter()
        .map(|(id, (value, customer, _, _))| {
            assert_eq!(customer, "cus_fake1");
            let name = expected.get(id).map_or("?", |(_, n)| *n);
            assert_eq!(meter[id].2, name);
            (id.clone(), (*value, name))
        })
        .collect();
    assert_eq!(
        got, expected,
        "each hour and quantity exactly once, with its value"
    );
    for request in stripe.requests("/v1/billing/meter_events") {
        assert_eq!(
            request.idempotency_key.as_deref(),
            request.field("identifier")
        );
    }
    // Nothing is queued twice or sent again once reported.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let accepted = stripe.requests("/v1/billing/meter_events").len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(stripe.requests("/v1/billing/meter_events").len(), accepted);
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A plan change reaches every node at once: the webhook lands on node 1, and a socket
/// open on node 2 (admitted under free) may then write a document free would refuse,
/// with no reconnect. Then cancellation, posted to node 2, brings node 1's new socket
/// back to free (4413 past 2000 bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_reaches_open_sockets_on_every_node() {
    use crate::cluster_support::{Cluster, Options};
    let dir = tempfile::tempdir().unwrap();
    let stripe = FakeStripe::start().await;
    let (plans, stripe_plans) = files(&dir);
    let mut extra = vec!["--plans".to_owned(), plans];
    extra.extend(stripe.args(&stripe_plans));
    let Some(cluster) = Cluster::start(
        "billing::a_plan_change_reaches_open_sockets_on_every_node",
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
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (account, project) = n1.project().await;
    checkout(n1, &account).await;

    // On free, node 2's socket may hold at most 2000 bytes: it stays under that.
    let mut on_n2 = writer(n2, &project.key.key).await;
    on_n2.text_push(&"a".repeat(1500)).await;
    on_n2.round_trip().await;

    let start = fake::unix_now() - 60;
    let created = fake::event(
        "evt_cluster_sub_created",
        "customer.subscription.created",
        fake::subscription("sub_c", "cus_fake1", "active", "price_pro", start),
    );
    post_event(n1, &created, &fake::signed(&created, fake::WEBHOOK_SECRET))
        .await
        .expect(200);
    assert_eq!(plan_of(n2, &account).await, "pro");

    // Node 2 enforces pro on the socket it admitted under free. The event reaches it
    // over Redis at once, or from the durable event log within about a second; wait
    // past that, then 3000 more bytes are applied, not refused (a refusal closes the
    // socket with 4413 and the round trip fails).
    tokio::time::sleep(Duration::from_secs(3)).await;
    on_n2.text_push(&"b".repeat(3000)).await;
    on_n2.round_trip().await;
    let doc = n2
        .call(
            "GET",
            "/v1/rooms/doc/document",
            Cred::Bearer(&project.key.key),
            None,
        )
        .await
        .expect(200)
        .json();
    assert!(doc.to_string().len() > 4000, "{doc}");

    // Cancellation posted to node 2: node 1's socket, admitted under pro, is refused
    // (4413) on its next write, since the document is past free's 2000 bytes.
    let mut on_n1 = writer(n1, &project.key.key).await;
    on_n1.round_trip().await;
    let deleted = fake::event(
        "evt_cluster_sub_deleted",
        "customer.subscription.deleted",
        fake::subscription("sub_c", "cus_fake1", "canceled", "price_pro", start),
    );
    post_event(n2, &deleted, &fake::signed(&deleted, fake::WEBHOOK_SECRET))
        .await
        .expect(200);
    assert_eq!(plan_of(n1, &account).await, "free");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = on_n1.try_text_push("more").await;
    match on_n1.closed_within(Duration::from_secs(10)).await {
        Closed::Code(code, _) => assert_eq!(code, close::TOO_LARGE),
        Closed::Dropped => panic!("dropped without a close frame"),
    }
}
