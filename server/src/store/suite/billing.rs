//! Stories of the `BillingStore`: a customer remembered once, a Stripe event applied
//! once with its plan change and audit rows, grace expiry taken once, usage hours queued
//! once per cursor move with identifiers derived from the rows, and the outbox's claim,
//! failure and sent marks.

use super::control::account;
use super::usage::{room, H0};
use super::TestStore;
use crate::store::billing::{meter_identifier, BillingAccountRow, BillingChange, Quantity};
use crate::store::control::AuditRow;
use crate::store::usage::{ProjectHour, UsageBatch, HOUR_MS};

fn fresh(tenant: &crate::ids::TenantId, customer: &str, at: i64) -> BillingAccountRow {
    BillingAccountRow {
        tenant_id: tenant.clone(),
        customer_id: customer.to_owned(),
        subscription_id: None,
        subscription_status: None,
        price_id: None,
        current_period_end: None,
        cancel_at_period_end: false,
        payment_failed_at: None,
        grace_until: None,
        metered_through: None,
        state_event_at: 0,
        created_at: at,
        updated_at: at,
    }
}

pub(super) async fn billing_story(test: TestStore) {
    let ada = account("ada@example.com", 1);
    test.control().create_account(&ada).await.unwrap();
    let tenant = &ada.tenant.id;
    let project = ada.project.id.to_string();
    let store = &*test.stores.billing;

    // The first customer remembered wins.
    assert!(store.billing_account(tenant).await.unwrap().is_none());
    let first = store
        .remember_customer(&fresh(tenant, "cus_1", 5))
        .await
        .unwrap();
    let second = store
        .remember_customer(&fresh(tenant, "cus_2", 6))
        .await
        .unwrap();
    assert_eq!(first.customer_id, "cus_1");
    assert_eq!(second, first);
    assert_eq!(
        store
            .billing_account_by_customer("cus_1")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        *tenant
    );

    // An event applied once, with its plan and audit rows.
    let mut next = first.clone();
    next.subscription_id = Some("sub_1".into());
    next.subscription_status = Some("active".into());
    next.cancel_at_period_end = true;
    next.metered_through = Some(H0 - 2 * HOUR_MS);
    next.state_event_at = 77;
    let change = BillingChange {
        account: Some(next.clone()),
        plan: Some("pro".into()),
        audit: vec![AuditRow {
            id: 0,
            tenant_id: tenant.clone(),
            project_id: None,
            actor: "stripe".into(),
            action: "billing.plan_changed".into(),
            target: Some("evt_1".into()),
            ip: None,
            details: "{}".into(),
            at: 10,
        }],
    };
    assert!(store
        .apply_stripe_event(
            "evt_1",
            "customer.subscription.created",
            Some(tenant),
            10,
            &change
        )
        .await
        .unwrap());
    assert!(!store
        .apply_stripe_event(
            "evt_1",
            "customer.subscription.created",
            Some(tenant),
            11,
            &change
        )
        .await
        .unwrap());
    assert_eq!(store.billing_account(tenant).await.unwrap().unwrap(), next);
    assert_eq!(
        test.control().tenant(tenant).await.unwrap().unwrap().plan,
        "pro"
    );
    let audit = test.control().list_audit(tenant, None, 50).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "billing.plan_changed")
            .count(),
        1
    );

    // Grace expiry: taken once, only while grace_until is what was read.
    let mut graced = next.clone();
    graced.grace_until = Some(50);
    store
        .apply_stripe_event(
            "evt_2",
            "invoice.payment_failed",
            Some(tenant),
            12,
            &BillingChange {
                account: Some(graced.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(store.accounts_past_grace(49).await.unwrap().is_empty());
    assert_eq!(store.accounts_past_grace(50).await.unwrap().len(), 1);
    let downgrade = BillingChange {
        account: Some(BillingAccountRow {
            grace_until: None,
            ..graced.clone()
        }),
        plan: Some("free".into()),
        audit: vec![],
    };
    assert!(!store
        .apply_grace_expiry(tenant, 49, &downgrade)
        .await
        .unwrap());
    assert!(store
        .apply_grace_expiry(tenant, 50, &downgrade)
        .await
        .unwrap());
    assert!(!store
        .apply_grace_expiry(tenant, 50, &downgrade)
        .await
        .unwrap());
    assert_eq!(
        test.control().tenant(tenant).await.unwrap().unwrap().plan,
        "free"
    );

    // Usage: two hours of two rooms, plus another tenant's project that must not count.
    let bob = account("bob@example.com", 1);
    test.control().create_account(&bob).await.unwrap();
    let other = bob.project.id.to_string();
    let h1 = H0 - 2 * HOUR_MS;
    let h2 = H0 - HOUR_MS;
    let batch = UsageBatch {
        rooms: vec![
            room(&project, "a", h1, 1),
            room(&project, "b", h1, 2),
            room(&project, "a", h2, 3),
            room(&other, "a", h1, 9),
        ],
        projects: vec![ProjectHour {
            project_id: project.clone(),
            hour_start: h1,
            peak_connections: 4,
        }],
        users: vec![],
    };
    assert!(test.usage().apply_usage("f1", &batch, H0).await.unwrap());
    let meters = vec![
        (Quantity::Messages, "msgs".to_owned()),
        (Quantity::ConnectionMinutes, "mins".to_owned()),
        (Quantity::PeakConnections, "peak".to_owned()),
    ];
    assert_eq!(store.accounts_to_meter(h1).await.unwrap().len(), 0);
    assert_eq!(store.accounts_to_meter(H0).await.unwrap().len(), 1);
    // Only the cursor's owner moves it.
    assert_eq!(
        store
            .queue_meter_hours(tenant, h2, H0, &meters, 100)
            .await
            .unwrap(),
        None
    );
    let queued = store
        .queue_meter_hours(tenant, h1, H0, &meters, 100)
        .await
        .unwrap();
    // h1: messages, minutes, peak; h2: messages, minutes (no peak row).
    assert_eq!(queued, Some(5));
    assert_eq!(
        store
            .queue_meter_hours(tenant, h1, H0, &meters, 100)
            .await
            .unwrap(),
        None,
        "queued once"
    );
    let due = store.due_meter_events(100, 50).await.unwrap();
    assert_eq!(due.len(), 5);
    let messages_h1 = due
        .iter()
        .find(|r| r.identifier == meter_identifier(&project, h1, Quantity::Messages))
        .unwrap();
    // Rooms a (1 in, 2 out) and b (2 in, 4 out).
    assert_eq!(messages_h1.value, 9);
    assert_eq!(messages_h1.customer_id, "cus_1");
    assert_eq!(messages_h1.event_name, "msgs");
    let minutes_h1 = due
        .iter()
        .find(|r| r.identifier == meter_identifier(&project, h1, Quantity::ConnectionMinutes))
        .unwrap();
    assert_eq!(minutes_h1.value, 1, "3 s rounds up to a minute");
    assert!(due.iter().all(|r| r.project_id == project));

    // Claim, fail, retry later, send.
    let row = &due[0];
    assert!(store
        .claim_meter_event(&row.identifier, row.next_attempt_at, 1_000)
        .await
        .unwrap());
    assert!(!store
        .claim_meter_event(&row.identifier, row.next_attempt_at, 1_000)
        .await
        .unwrap());
    store
        .meter_event_failed(&row.identifier, 2_000, "HTTP 503")
        .await
        .unwrap();
    let stats = store.meter_stats(Some(tenant)).await.unwrap();
    assert_eq!((stats.pending, stats.failing, stats.sent), (5, 1, 0));
    assert_eq!(stats.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(stats.next_attempt_at, Some(2_000));
    assert_eq!(store.due_meter_events(1_999, 50).await.unwrap().len(), 4);
    for row in store.due_meter_events(2_000, 50).await.unwrap() {
        store
            .meter_event_sent(&row.identifier, 2_001)
            .await
            .unwrap();
    }
    let stats = store.meter_stats(None).await.unwrap();
    assert_eq!((stats.pending, stats.failing, stats.sent), (0, 0, 5));
    assert!(store
        .due_meter_events(i64::MAX, 50)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.meter_rows(tenant, 10).await.unwrap().len(), 5);
    assert!(store
        .meter_rows(&bob.tenant.id, 10)
        .await
        .unwrap()
        .is_empty());
}
