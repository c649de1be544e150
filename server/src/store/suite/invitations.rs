//! Stories of the `InvitationStore`: invitations accepted once, revoked, expired; the
//! security log per user; the email outbox.

use super::control::account;
use super::TestStore;
use crate::ids::{InvitationId, UserId};
use crate::store::control::Role;
use crate::store::invitations::{InvitationRow, OutboxEmail, SecurityEventRow};

fn invitation(tenant: &crate::ids::TenantId, by: &UserId, email: &str, at: i64) -> InvitationRow {
    InvitationRow {
        id: InvitationId::generate().unwrap(),
        tenant_id: tenant.clone(),
        email: email.to_owned(),
        role: Role::Admin,
        invited_by: by.clone(),
        created_at: at,
        expires_at: at + 1_000,
        accepted_at: None,
        accepted_by: None,
        revoked_at: None,
    }
}

pub(super) async fn invitation_story(test: TestStore) {
    let store = test.control();
    let ada = account("ada@example.com", 1);
    let bob = account("bob@example.com", 1);
    store.create_account(&ada).await.unwrap();
    store.create_account(&bob).await.unwrap();
    let tenant = &ada.tenant.id;
    let by = &ada.user.id;

    let first = invitation(tenant, by, "bob@example.com", 10);
    store.create_invitation(&first, &[1; 32]).await.unwrap();
    let found = store.invitation_by_token(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found, first);
    assert!(store.invitation_by_token(&[9; 32]).await.unwrap().is_none());
    assert!(
        store
            .create_invitation(&invitation(tenant, by, "x@example.com", 11), &[1; 32])
            .await
            .is_err(),
        "token hashes are unique"
    );

    // Accepted once: the membership appears; a second accept finds nothing pending.
    let accepted = store
        .accept_invitation(&[1; 32], &bob.user.id, 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.accepted_at, Some(20));
    assert_eq!(accepted.accepted_by.as_ref(), Some(&bob.user.id));
    assert_eq!(
        store.member_role(tenant, &bob.user.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert!(store
        .accept_invitation(&[1; 32], &bob.user.id, 21)
        .await
        .unwrap()
        .is_none());

    // Expired: not accepted at or after `expires_at`.
    let late = invitation(tenant, by, "carol@example.com", 30);
    store.create_invitation(&late, &[2; 32]).await.unwrap();
    assert!(store
        .accept_invitation(&[2; 32], &bob.user.id, late.expires_at)
        .await
        .unwrap()
        .is_none());

    // Revoked: only a pending one of this tenant; then it cannot be accepted.
    let revoked = invitation(tenant, by, "dan@example.com", 40);
    store.create_invitation(&revoked, &[3; 32]).await.unwrap();
    assert!(
        store
            .revoke_invitation(&bob.tenant.id, &revoked.id, 41)
            .await
            .unwrap()
            .is_none(),
        "another tenant's invitation is not found"
    );
    let row = store
        .revoke_invitation(tenant, &revoked.id, 42)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.revoked_at, Some(42));
    assert!(store
        .revoke_invitation(tenant, &revoked.id, 43)
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .revoke_invitation(tenant, &first.id, 43)
            .await
            .unwrap()
            .is_none(),
        "accepted"
    );
    assert!(store
        .accept_invitation(&[3; 32], &bob.user.id, 44)
        .await
        .unwrap()
        .is_none());

    let listed = store.list_invitations(tenant).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, [revoked.id, late.id, first.id], "newest first");
    assert!(store
        .list_invitations(&bob.tenant.id)
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn security_log_and_outbox_story(test: TestStore) {
    let store = test.control();
    let ada = account("ada@example.com", 1);
    let bob = account("bob@example.com", 1);
    store.create_account(&ada).await.unwrap();
    store.create_account(&bob).await.unwrap();
    for (i, action) in ["login.failed", "login.succeeded", "login.failed"]
        .iter()
        .enumerate()
    {
        store
            .append_security_event(&SecurityEventRow {
                id: 0,
                user_id: ada.user.id.clone(),
                action: (*action).to_owned(),
                ip: Some("192.0.2.1".to_owned()),
                details: "{}".to_owned(),
                at: 100 + i as i64,
            })
            .await
            .unwrap();
    }
    let page = store
        .list_security_events(&ada.user.id, None, 2)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].at, 102, "newest first");
    let rest = store
        .list_security_events(&ada.user.id, Some(page[1].id), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].action, "login.failed");
    assert!(store
        .list_security_events(&bob.user.id, None, 10)
        .await
        .unwrap()
        .is_empty());

    for subject in ["one", "two"] {
        store
            .queue_email(&OutboxEmail {
                id: 0,
                recipient: "ada@example.com".to_owned(),
                subject: subject.to_owned(),
                body: "hello".to_owned(),
                created_at: 5,
            })
            .await
            .unwrap();
    }
    let mail = store.emails_to("ada@example.com").await.unwrap();
    let subjects: Vec<_> = mail.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, ["one", "two"]);
    assert!(store.emails_to("bob@example.com").await.unwrap().is_empty());
}
