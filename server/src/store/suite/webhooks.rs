//! Stories of the `WebhookStore`: events get consecutive per-project seqs and their
//! deliveries in the same transaction; claims are exclusive (a lease), respect a room's
//! order and disabled endpoints; outcomes, retries, disabling, pruning.

use super::control::account;
use super::TestStore;
use crate::ids::{EventId, ProjectId, WebhookId};
use crate::store::webhooks::{AttemptOutcome, DeliveryStatus, NewEvent, WebhookPatch, WebhookRow};

fn endpoint(project: &ProjectId, types: &[&str], at: i64) -> WebhookRow {
    WebhookRow {
        id: WebhookId::generate().unwrap(),
        project_id: project.clone(),
        url: "https://example.com/hook".into(),
        description: "d".into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        secret: vec![7; 32],
        previous_secret: None,
        previous_expires_at: None,
        disabled_at: None,
        disabled_reason: None,
        last_success_at: None,
        created_at: at,
        updated_at: at,
    }
}

fn event(ty: &str, room: Option<&str>, at: i64) -> NewEvent {
    NewEvent {
        id: EventId::generate().unwrap(),
        event_type: ty.into(),
        room: room.map(str::to_owned),
        data: "{}".into(),
        created_at: at,
    }
}

pub(super) async fn webhook_story(test: TestStore) {
    let store = test.control();
    let ada = account("ada@example.com", 1);
    store.create_account(&ada).await.unwrap();
    let project = &ada.project.id;
    let all = endpoint(project, &["*"], 10);
    let rooms_only = endpoint(project, &["room.*"], 11);
    store.create_webhook(&all).await.unwrap();
    store.create_webhook(&rooms_only).await.unwrap();
    assert_eq!(store.list_webhooks(project).await.unwrap().len(), 2);
    assert_eq!(
        store.project_tenant(project).await.unwrap(),
        Some(ada.tenant.id.clone())
    );

    // Seqs 1, 2, 3 then 4; deliveries to the endpoints that want each type.
    let recorded = store
        .record_events(
            project,
            &[
                event("room.created", Some("a"), 100),
                event("user.entered", Some("a"), 100),
                event("room.created", Some("b"), 100),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        recorded.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let more = store
        .record_events(project, &[event("key.created", None, 101)])
        .await
        .unwrap();
    assert_eq!(more[0].seq, 4);
    let gone = ProjectId::generate().unwrap();
    assert!(store
        .record_events(&gone, &[event("room.created", None, 1)])
        .await
        .unwrap()
        .is_empty());
    let listed = store.list_events(project, 1, 2).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(listed[0], recorded[1]);
    assert_eq!(
        store
            .list_deliveries(project, &all.id, None, 50)
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        store
            .list_deliveries(project, &rooms_only.id, None, 50)
            .await
            .unwrap()
            .len(),
        2
    );

    // One claim takes each due delivery once; room "a"'s second event waits for its
    // first; nothing is due before its time.
    assert!(store
        .claim_deliveries(99, 1000, 100)
        .await
        .unwrap()
        .is_empty());
    let claimed = store.claim_deliveries(200, 1000, 100).await.unwrap();
    let seqs = |c: &[crate::store::webhooks::ClaimedDelivery], w: &WebhookId| {
        let mut s: Vec<i64> = c
            .iter()
            .filter(|c| c.webhook.id == *w)
            .map(|c| c.event.seq)
            .collect();
        s.sort_unstable();
        s
    };
    assert_eq!(seqs(&claimed, &all.id), [1, 3, 4]);
    assert_eq!(seqs(&claimed, &rooms_only.id), [1, 3]);
    assert!(
        store
            .claim_deliveries(200, 1000, 100)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let first = claimed
        .iter()
        .find(|c| c.webhook.id == all.id && c.event.seq == 1)
        .unwrap();
    assert_eq!(first.event.event_type, "room.created");
    store
        .finish_attempt(
            &first.delivery.id,
            &AttemptOutcome::Retry {
                status: Some(500),
                error: "no".into(),
                next_attempt_at: 300,
            },
            201,
        )
        .await
        .unwrap();
    // Still pending: seq 2 of room "a" waits; at 300 the retry is due again.
    assert!(store
        .claim_deliveries(250, 2000, 100)
        .await
        .unwrap()
        .is_empty());
    let again = store.claim_deliveries(300, 2000, 100).await.unwrap();
    assert_eq!(seqs(&again, &all.id), [1]);
    store
        .finish_attempt(
            &again[0].delivery.id,
            &AttemptOutcome::Delivered { status: 204 },
            301,
        )
        .await
        .unwrap();
    let next = store.claim_deliveries(302, 2000, 100).await.unwrap();
    assert_eq!(seqs(&next, &all.id), [2], "then the room's next event");
    let row = store.webhook(project, &all.id).await.unwrap().unwrap();
    assert_eq!(row.last_success_at, Some(301));
    let delivered = store
        .list_deliveries(project, &all.id, None, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.event_seq == 1)
        .unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.attempts, 2);
    assert_eq!(delivered.last_status, Some(204));
    assert_eq!(delivered.delivered_at, Some(301));

    // An expired lease frees the delivery for another node.
    let stolen = store.claim_deliveries(2001, 3000, 100).await.unwrap();
    assert!(stolen
        .iter()
        .any(|c| c.webhook.id == all.id && c.event.seq == 2));

    // Failed, then retried by hand; a disabled endpoint is never claimed.
    let d3 = stolen
        .iter()
        .find(|c| c.webhook.id == rooms_only.id && c.event.seq == 3)
        .unwrap();
    store
        .finish_attempt(
            &d3.delivery.id,
            &AttemptOutcome::Failed {
                status: None,
                error: "refused".into(),
            },
            2002,
        )
        .await
        .unwrap();
    let disabled = store
        .disable_webhook(&rooms_only.id, "failing", 2003)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(disabled.disabled_at, Some(2003));
    assert!(store
        .disable_webhook(&rooms_only.id, "again", 2004)
        .await
        .unwrap()
        .is_none());
    let retried = store
        .retry_delivery(project, &rooms_only.id, &d3.delivery.id, 5000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    let claimable = store.claim_deliveries(9000, 10_000, 100).await.unwrap();
    assert!(claimable.iter().all(|c| c.webhook.id != rooms_only.id));
    let enabled = store
        .update_webhook(
            project,
            &rooms_only.id,
            &WebhookPatch {
                enabled: Some(true),
                description: Some("again".into()),
                ..WebhookPatch::default()
            },
            9001,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (enabled.disabled_at, enabled.description.as_str()),
        (None, "again")
    );
    assert_eq!(enabled.url, "https://example.com/hook");
    let patched = store
        .update_webhook(
            project,
            &rooms_only.id,
            &WebhookPatch {
                event_types: Some(vec!["room.deleted".into()]),
                enabled: Some(false),
                ..WebhookPatch::default()
            },
            9002,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.event_types, ["room.deleted"]);
    assert_eq!(patched.disabled_at, Some(9002));
    let other = ProjectId::generate().unwrap();
    assert!(store
        .update_webhook(&other, &rooms_only.id, &WebhookPatch::default(), 1)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .retry_delivery(&other, &rooms_only.id, &d3.delivery.id, 1)
        .await
        .unwrap()
        .is_none());

    // Rolling keeps the old secret as the previous one.
    let rolled = store
        .roll_webhook_secret(project, &all.id, &[8; 32], 7777, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rolled.secret, vec![8; 32]);
    assert_eq!(rolled.previous_secret, Some(vec![7; 32]));
    assert_eq!(rolled.previous_expires_at, Some(7777));

    // Pruning deletes old events with their deliveries; deleting an endpoint, its own.
    assert_eq!(store.prune_events(101).await.unwrap(), 3);
    assert_eq!(store.list_events(project, 0, 10).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_deliveries(project, &all.id, None, 50)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.delete_webhook(project, &all.id).await.unwrap());
    assert!(!store.delete_webhook(project, &all.id).await.unwrap());
    assert!(store.webhook(project, &all.id).await.unwrap().is_none());
    // Seqs keep counting after pruning.
    let later = store
        .record_events(project, &[event("room.deleted", Some("a"), 200)])
        .await
        .unwrap();
    assert_eq!(later[0].seq, 5);
}
