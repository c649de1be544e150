//! A fake Stripe for the billing tests: an axum app on 127.0.0.1 that answers the four
//! calls Tandem's real client makes (customers, Checkout sessions, portal sessions,
//! billing meter events) with objects async-stripe can read, records every request
//! (path, form fields, `Idempotency-Key`, `Stripe-Version`, key), de-duplicates meter
//! events by `identifier` as Stripe does, and can make the meter endpoint fail. It
//! also builds and signs webhook events the way Stripe does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{json, Value};

pub const SECRET_KEY: &str = "sk_test_tandem_e2e";
pub const WEBHOOK_SECRET: &str = "whsec_tandem_e2e";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    pub authorization: Option<String>,
}

impl Recorded {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<Recorded>>,
    meter_down: AtomicBool,
    next_id: AtomicU64,
    /// identifier → (value, customer, event name, times accepted)
    meter: Mutex<BTreeMap<String, (i64, String, String, u32)>>,
}

pub struct FakeStripe {
    pub base: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(state: &FakeState, path: &str, headers: &HeaderMap, form: &[(String, String)]) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.requests.lock().unwrap().push(Recorded {
        path: path.to_owned(),
        form: form.to_vec(),
        idempotency_key: header("idempotency-key"),
        stripe_version: header("stripe-version"),
        authorization: header("authorization"),
    });
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn customers(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    record(&state, "/v1/customers", &headers, &form);
    let n = state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    Json(json!({
        "id": format!("cus_fake{n}"), "object": "customer", "created": now(), "livemode": false,
        "email": field(&form, "email"),
    }))
}

async fn checkout(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    record(&state, "/v1/checkout/sessions", &headers, &form);
    let n = state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("cs_fake{n}");
    Json(json!({
        "id": id, "object": "checkout.session",
        "automatic_tax": {"enabled": false}, "created": now(), "custom_fields": [],
        "custom_text": {}, "expires_at": now() + 3600, "livemode": false,
        "mode": "subscription", "payment_method_types": ["card"],
        "payment_status": "unpaid", "shipping_options": [], "status": "open",
        "customer": field(&form, "customer"),
        "url": format!("https://checkout.stripe.test/c/{id}"),
    }))
}

async fn portal(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    record(&state, "/v1/billing_portal/sessions", &headers, &form);
    let n = state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("bps_fake{n}");
    Json(json!({
        "id": id, "object": "billing_portal.session", "configuration": "bpc_fake",
        "created": now(), "customer": field(&form, "customer"), "livemode": false,
        "return_url": field(&form, "return_url"),
        "url": format!("https://billing.stripe.test/p/{id}"),
    }))
}

async fn meter_events(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    record(&state, "/v1/billing/meter_events", &headers, &form);
    if state.meter_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"type": "api_error", "message": "the fake is down"}})),
        )
            .into_response();
    }
    let identifier = field(&form, "identifier").to_owned();
    let value: i64 = field(&form, "payload[value]").parse().unwrap_or(-1);
    let customer = field(&form, "payload[stripe_customer_id]").to_owned();
    let event_name = field(&form, "event_name").to_owned();
    {
        let mut meter = state.meter.lock().unwrap();
        // Stripe counts an identifier once: a repeat is accepted and changes nothing.
        let entry = meter.entry(identifier.clone()).or_insert((
            value,
            customer.clone(),
            event_name.clone(),
            0,
        ));
        entry.3 += 1;
    }
    Json(json!({
        "object": "billing.meter_event", "created": now(), "event_name": event_name,
        "identifier": identifier, "livemode": false,
        "payload": {"stripe_customer_id": customer, "value": value.to_string()},
        "timestamp": field(&form, "timestamp").parse::<i64>().unwrap_or(0),
    }))
    .into_response()
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/v1/customers", post(customers))
            .route("/v1/checkout/sessions", post(checkout))
            .route("/v1/billing_portal/sessions", post(portal))
            .route("/v1/billing/meter_events", post(meter_events))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { base, state, task }
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn set_meter_down(&self, down: bool) {
        self.state.meter_down.store(down, Ordering::Relaxed);
    }

    /// Accepted meter events by identifier: (value, customer, event name, times).
    pub fn meter(&self) -> BTreeMap<String, (i64, String, String, u32)> {
        self.state.meter.lock().unwrap().clone()
    }

    /// The server options that point billing at this fake.
    pub fn args(&self, stripe_plans: &str) -> Vec<String> {
        vec![
            "--stripe-secret-key".into(),
            SECRET_KEY.into(),
            "--stripe-webhook-secret".into(),
            format!("whsec_rolled_out,{WEBHOOK_SECRET}"),
            "--stripe-plans".into(),
            stripe_plans.into(),
            "--stripe-api-base".into(),
            self.base.clone(),
            "--stripe-meter-interval".into(),
            "200ms".into(),
            "--stripe-meter-settle".into(),
            "1s".into(),
        ]
    }
}

/// A Stripe event of `kind` about `object`, created now, as JSON bytes.
pub fn event(id: &str, kind: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "type": kind, "created": now(),
        "api_version": tandem_billing::API_VERSION, "livemode": false,
        "data": {"object": object},
    }))
    .unwrap()
}

/// A subscription object as Stripe (basil and later) sends it.
pub fn subscription(id: &str, customer: &str, status: &str, price: &str, start: i64) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "start_date": start, "cancel_at_period_end": false, "metadata": {},
        "items": {"object": "list", "data": [{
            "id": "si_fake", "price": {"id": price, "object": "price"},
            "current_period_start": start, "current_period_end": start + 30 * 86_400,
        }]},
    })
}

/// The `Stripe-Signature` header for `body` signed now with `secret`.
pub fn signed(body: &[u8], secret: &str) -> String {
    tandem_billing::signature::header(body, secret.as_bytes(), now())
}

/// Signed `at` seconds in the past.
pub fn signed_ago(body: &[u8], secret: &str, ago: i64) -> String {
    tandem_billing::signature::header(body, secret.as_bytes(), now() - ago)
}

pub fn unix_now() -> i64 {
    now()
}
