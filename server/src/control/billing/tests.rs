//! The billing service against the recording fake Stripe and a real SQLite store, with
//! a manual clock: checkout creates the customer once (owners only), webhook deliveries
//! apply once and only when signed, plan changes reach the hook, a failed payment's
//! grace period ends in a downgrade, and the meter outbox backs off and sends each row
//! once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tandem_billing::fake::{Call, RecordingStripe};
use tandem_billing::{signature, StripeError};

use super::{Billing, BillingConfig, Secret};
use crate::control::clock::ManualClock;
use crate::control::plane::{RequestMeta, TenantAccess};
use crate::control::{ControlConfig, ControlError, ControlPlane};
use crate::ids::{ProjectId, TenantId};
use crate::rooms::limits::Limits;
use crate::store::billing::Quantity;
use crate::store::control::Role;
use crate::store::sqlite::SqliteStore;
use crate::store::usage::{RoomHour, UsageBatch, UsageStore};

const SECRET: &str = "whsec_unit";

type Changes = Arc<Mutex<Vec<(Vec<ProjectId>, Limits)>>>;

struct Setup {
    billing: Billing,
    plane: ControlPlane,
    stripe: Arc<RecordingStripe>,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
    changes: Changes,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
    let plane = ControlPlane::new(store.clone(), clock.clone(), ControlConfig::default())
        .await
        .unwrap();
    let stripe = Arc::new(RecordingStripe::new());
    let config = BillingConfig {
        secret_key: Secret::new("sk_test"),
        webhook_secrets: vec![Secret::new("whsec_old"), Secret::new(SECRET)],
        prices: [("pro".to_owned(), "price_pro".to_owned())].into(),
        meters: vec![(Quantity::Messages, "msgs".to_owned())],
        api_base: None,
        grace_period: Duration::from_secs(3600),
        meter_interval: Duration::from_secs(1),
        meter_settle: Duration::from_secs(60),
    };
    let billing = Billing::new(config, stripe.clone(), store.clone(), plane.clone());
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    billing.on_plan_change(Arc::new(move |projects, limits| {
        seen.lock().unwrap().push((projects.to_vec(), limits));
    }));
    Setup {
        billing,
        plane,
        stripe,
        clock,
        store,
        changes,
        _dir: dir,
    }
}

async fn owner(s: &Setup, email: &str) -> TenantAccess {
    let (auth, tenant) = crate::control::test_support::signed_up(&s.plane, email).await;
    s.plane
        .tenant_access(&auth, &tenant, Role::Owner)
        .await
        .unwrap()
}

impl Setup {
    fn now_s(&self) -> i64 {
        self.plane.now_ms() / 1000
    }

    async fn deliver(
        &self,
        id: &str,
        kind: &str,
        object: serde_json::Value,
    ) -> super::webhook::Outcome {
        let body = serde_json::to_vec(&json!({
            "id": id, "type": kind, "created": self.now_s(), "data": {"object": object}
        }))
        .unwrap();
        let header = signature::header(&body, SECRET.as_bytes(), self.now_s());
        self.billing
            .handle_webhook(&body, Some(&header))
            .await
            .unwrap()
    }

    async fn plan(&self, tenant: &TenantId) -> String {
        self.plane
            .store()
            .tenant(tenant)
            .await
            .unwrap()
            .unwrap()
            .plan
    }
}

fn subscription(customer: &str, status: &str, start: i64) -> serde_json::Value {
    json!({
        "id": "sub_1", "customer": customer, "status": status, "start_date": start,
        "items": {"data": [{"price": {"id": "price_pro"}, "current_period_end": start + 100}]},
    })
}

#[tokio::test]
async fn checkout_creates_the_customer_once_and_only_for_owners() {
    let s = setup().await;
    let access = owner(&s, "ada@example.com").await;
    let meta = RequestMeta::default();
    let one = s
        .billing
        .checkout(&access, "pro", "https://t.example", &meta)
        .await
        .unwrap();
    s.billing
        .checkout(&access, "pro", "https://t.example", &meta)
        .await
        .unwrap();
    let calls = s.stripe.calls();
    let customers: Vec<_> = calls
        .iter()
        .filter(|c| matches!(c, Call::Customer(_)))
        .collect();
    assert_eq!(customers.len(), 1);
    let Call::Checkout(sent) = &calls[1] else {
        panic!("{calls:?}")
    };
    assert_eq!(sent.price_id, "price_pro");
    assert_eq!(sent.customer_id, "cus_fake_1");
    assert_eq!(
        sent.success_url,
        format!(
            "https://t.example/dashboard/t/{}/plan?checkout=done",
            access.tenant_id
        )
    );
    assert!(one.url.starts_with("https://checkout.stripe.test/"));

    assert!(matches!(
        s.billing.checkout(&access, "free", "x", &meta).await,
        Err(ControlError::Invalid(_))
    ));
    let admin = TenantAccess {
        role: Role::Admin,
        ..access.clone()
    };
    assert!(matches!(
        s.billing.checkout(&admin, "pro", "x", &meta).await,
        Err(ControlError::Forbidden(_))
    ));
    assert!(matches!(
        s.billing.portal(&admin, "x", &meta).await,
        Err(ControlError::Forbidden(_))
    ));
    let bob = owner(&s, "bob@example.com").await;
    assert!(
        matches!(
            s.billing.portal(&bob, "x", &meta).await,
            Err(ControlError::Conflict(_))
        ),
        "no customer yet"
    );
    // A Stripe failure is an error, and no customer is remembered.
    s.stripe.fail_next(
        1,
        StripeError {
            status: Some(500),
            message: "down".into(),
        },
    );
    assert!(s.billing.checkout(&bob, "pro", "x", &meta).await.is_err());
    assert!(s.store_account(&bob.tenant_id).await.is_none());
}

impl Setup {
    async fn store_account(
        &self,
        tenant: &TenantId,
    ) -> Option<crate::store::billing::BillingAccountRow> {
        use crate::store::billing::BillingStore;
        self.store.billing_account(tenant).await.unwrap()
    }
}

#[tokio::test]
async fn webhooks_apply_once_change_the_plan_and_reach_the_hook() {
    let s = setup().await;
    let access = owner(&s, "ada@example.com").await;
    s.billing
        .checkout(&access, "pro", "x", &RequestMeta::default())
        .await
        .unwrap();
    let now = s.now_s();

    // Unsigned or wrongly signed: refused, nothing changes.
    let body = serde_json::to_vec(&json!({
        "id": "evt_x", "type": "customer.subscription.created", "created": now,
        "data": {"object": subscription("cus_fake_1", "active", now)}
    }))
    .unwrap();
    assert!(s.billing.handle_webhook(&body, None).await.is_err());
    let wrong = signature::header(&body, b"whsec_nope", now);
    assert!(s.billing.handle_webhook(&body, Some(&wrong)).await.is_err());
    assert_eq!(s.plan(&access.tenant_id).await, "free");

    use super::webhook::Outcome;
    let created = subscription("cus_fake_1", "active", now);
    assert_eq!(
        s.deliver("evt_1", "customer.subscription.created", created.clone())
            .await,
        Outcome::Applied
    );
    assert_eq!(
        s.deliver("evt_1", "customer.subscription.created", created)
            .await,
        Outcome::Duplicate
    );
    assert_eq!(s.plan(&access.tenant_id).await, "pro");
    let changes = s.changes.lock().unwrap().clone();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].1, ControlConfig::default().plans.limits("pro"));
    assert_eq!(changes[0].0.len(), 1, "the tenant's project");
    let account = s.store_account(&access.tenant_id).await.unwrap();
    assert_eq!(account.current_period_end, Some((now + 100) * 1000));
    assert!(account.metered_through.is_some());

    // A payment fails: still pro through the grace period, then free.
    s.deliver(
        "evt_2",
        "invoice.payment_failed",
        json!({"id": "in_1", "customer": "cus_fake_1"}),
    )
    .await;
    assert_eq!(s.billing.expire_grace().await, 0);
    assert_eq!(s.plan(&access.tenant_id).await, "pro");
    s.clock.advance(Duration::from_secs(3601));
    assert_eq!(s.billing.expire_grace().await, 1);
    assert_eq!(s.billing.expire_grace().await, 0, "once");
    assert_eq!(s.plan(&access.tenant_id).await, "free");
    assert_eq!(s.changes.lock().unwrap().len(), 2);
    let audit = s.plane.audit_log(&access, None, 50).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for expected in [
        "billing.payment_failed",
        "billing.downgraded",
        "billing.plan_changed",
        "billing.subscription_updated",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }

    // An older state event delivered late does not undo a newer one.
    let mut stale = subscription("cus_fake_1", "active", now);
    stale["id"] = json!("sub_1");
    let body = serde_json::to_vec(&json!({
        "id": "evt_old", "type": "customer.subscription.updated", "created": now - 10,
        "data": {"object": stale}
    }))
    .unwrap();
    let header = signature::header(&body, SECRET.as_bytes(), s.now_s());
    assert_eq!(
        s.billing
            .handle_webhook(&body, Some(&header))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(s.plan(&access.tenant_id).await, "free");
}

#[tokio::test]
async fn the_meter_outbox_backs_off_and_sends_each_row_once() {
    let s = setup().await;
    // Mid-hour, so the last three whole hours are settled.
    s.clock.advance(Duration::from_secs(1800));
    let access = owner(&s, "ada@example.com").await;
    s.billing
        .checkout(&access, "pro", "x", &RequestMeta::default())
        .await
        .unwrap();
    let now_ms = s.plane.now_ms();
    let hour = 3_600_000;
    let start = now_ms - now_ms.rem_euclid(hour) - 3 * hour;
    s.deliver(
        "evt_1",
        "customer.subscription.created",
        subscription("cus_fake_1", "active", start / 1000),
    )
    .await;
    let project = s.plane.list_projects(&access).await.unwrap()[0]
        .id
        .to_string();
    let batch = UsageBatch {
        rooms: (0..3)
            .map(|h| RoomHour {
                project_id: project.clone(),
                room: "r".into(),
                hour_start: start + h * hour,
                messages_in: 4,
                messages_out: 1,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    s.store.apply_usage("f", &batch, now_ms).await.unwrap();

    s.stripe.fail_next(
        3,
        StripeError {
            status: Some(503),
            message: "down".into(),
        },
    );
    assert_eq!(s.billing.queue_settled_hours().await, 3);
    assert_eq!(s.billing.queue_settled_hours().await, 0, "queued once");
    assert_eq!(s.billing.send_due().await, 0);
    assert_eq!(s.billing.send_due().await, 0, "backing off: nothing due");
    s.clock.advance(Duration::from_millis(1_500));
    assert_eq!(s.billing.send_due().await, 3);
    s.clock.advance(Duration::from_secs(120));
    assert_eq!(
        s.billing.send_due().await,
        0,
        "sent rows are not sent again"
    );
    let events = s.stripe.meter_events();
    assert_eq!(events.len(), 6, "three failed, three sent");
    let mut ids: Vec<_> = events[3..].iter().map(|e| e.identifier.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        events[0].identifier, events[3].identifier,
        "a retry keeps its identifier"
    );
    assert!(events
        .iter()
        .all(|e| e.value == 5 && e.customer_id == "cus_fake_1"));
    assert_eq!(
        s.billing
            .metrics()
            .meter_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}
