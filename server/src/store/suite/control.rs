//! Stories of the `ControlStore`, one per aggregate.

use bytes::Bytes;

use super::TestStore;
use crate::control::apikey::{self, KeyKind};
use crate::ids::{KeyId, ProjectId, TenantId, UserId};
use crate::store::control::{
    AuditRow, KeyFilter, KeyKindRow, KeyRow, NewAccount, ProjectPatch, ProjectRow, Role,
    SessionRow, SigningKeyRow, TenantRow, UserRow,
};
use crate::store::export::Table;
use crate::store::{Append, StoreError, StoreResult};

pub(super) fn account(email: &str, at: i64) -> NewAccount {
    let tenant_id = TenantId::generate().unwrap();
    NewAccount {
        user: UserRow {
            id: UserId::generate().unwrap(),
            email: email.to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            created_at: at,
        },
        tenant: TenantRow {
            id: tenant_id.clone(),
            name: format!("{email}'s team"),
            plan: "free".to_owned(),
            created_at: at,
        },
        project: project(&tenant_id, "default", at),
    }
}

pub(super) fn project(tenant_id: &TenantId, name: &str, at: i64) -> ProjectRow {
    ProjectRow {
        id: ProjectId::generate().unwrap(),
        tenant_id: tenant_id.clone(),
        name: name.to_owned(),
        public_access: false,
        public_rooms: crate::store::control::DEFAULT_PUBLIC_ROOMS.to_owned(),
        public_scopes: crate::store::control::DEFAULT_PUBLIC_SCOPES.to_owned(),
        created_at: at,
    }
}

/// A realistic key row and the hash of its (generated, then dropped) plaintext.
pub(super) fn key(
    tenant_id: &TenantId,
    owner: Result<&ProjectId, &UserId>,
    kind: KeyKindRow,
    at: i64,
) -> (KeyRow, [u8; 32]) {
    let generated = match kind {
        KeyKindRow::Secret => KeyKind::Secret,
        KeyKindRow::Publishable => KeyKind::Publishable,
        KeyKindRow::Pat => KeyKind::PersonalAccessToken,
    };
    let (plaintext, hash) = apikey::generate(generated).unwrap();
    let row = KeyRow {
        id: KeyId::generate().unwrap(),
        tenant_id: tenant_id.clone(),
        project_id: owner.ok().cloned(),
        user_id: owner.err().cloned(),
        kind,
        name: format!("{} key", kind.as_str()),
        display_prefix: apikey::display_prefix(plaintext.expose()).to_owned(),
        created_at: at,
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
    };
    (row, *hash.as_bytes())
}

fn is_conflict<T: std::fmt::Debug>(result: StoreResult<T>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

pub(super) async fn account_story(test: TestStore) {
    let store = test.control();
    assert_eq!(store.count_users().await.unwrap(), 0);
    let alice = account("alice@example.com", 1_000);
    store.create_account(&alice).await.unwrap();

    assert_eq!(store.count_users().await.unwrap(), 1);
    let by_email = store.user_by_email("alice@example.com").await.unwrap();
    assert_eq!(by_email.as_ref(), Some(&alice.user));
    let by_id = store.user_by_id(&alice.user.id).await.unwrap();
    assert_eq!(by_id.as_ref(), Some(&alice.user));
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
    assert_eq!(
        store.tenants_of_user(&alice.user.id).await.unwrap(),
        [(alice.tenant.clone(), Role::Owner)]
    );
    assert_eq!(
        store.list_projects(&alice.tenant.id).await.unwrap(),
        std::slice::from_ref(&alice.project)
    );

    store
        .set_password_hash(&alice.user.id, "$argon2id$new")
        .await
        .unwrap();
    let rehashed = store.user_by_id(&alice.user.id).await.unwrap().unwrap();
    assert_eq!(rehashed.password_hash, "$argon2id$new");

    // The same email again (fresh ids): refused, and nothing of it is left behind.
    let again = account("alice@example.com", 2_000);
    assert!(is_conflict(store.create_account(&again).await));
    assert_eq!(store.count_users().await.unwrap(), 1);
    for table in [
        Table::Users,
        Table::Tenants,
        Table::Members,
        Table::Projects,
    ] {
        assert_eq!(test.count(table).await, 1, "{table:?}");
    }
    assert_eq!(store.tenant(&again.tenant.id).await.unwrap(), None);
    assert!(store
        .list_projects(&again.tenant.id)
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn session_story(test: TestStore) {
    let store = test.control();
    let alice = account("alice@example.com", 1_000);
    store.create_account(&alice).await.unwrap();
    let bob = account("bob@example.com", 1_000);
    store.create_account(&bob).await.unwrap();
    let (id_hash, other_hash) = ([7u8; 32], [8u8; 32]);
    let session = |hash: [u8; 32], user: &UserRow, created_at: i64, ua: Option<&str>| SessionRow {
        id_hash: hash.to_vec(),
        user_id: user.id.clone(),
        created_at,
        expires_at: 5_000,
        user_agent: ua.map(str::to_owned),
        ip: ua.map(|_| "192.0.2.7".to_owned()),
        last_seen_at: ua.map(|_| created_at),
    };
    store
        .create_session(&session(id_hash, &alice.user, 1_000, None))
        .await
        .unwrap();

    let user = store.session_user(&id_hash, 4_999).await.unwrap();
    assert_eq!(user, Some((alice.user.clone(), None)));
    assert_eq!(store.session_user(&id_hash, 5_000).await.unwrap(), None);
    assert_eq!(store.session_user(&other_hash, 1_000).await.unwrap(), None);
    store.touch_session(&id_hash, 1_500).await.unwrap();
    assert_eq!(
        store.session_user(&id_hash, 2_000).await.unwrap(),
        Some((alice.user.clone(), Some(1_500)))
    );

    // Listing: the user's live sessions, newest first, with what they signed in with.
    let (second, bobs) = ([9u8; 32], [10u8; 32]);
    store
        .create_session(&session(second, &alice.user, 2_000, Some("Firefox")))
        .await
        .unwrap();
    store
        .create_session(&session(bobs, &bob.user, 2_000, Some("Edge")))
        .await
        .unwrap();
    let listed = store.list_sessions(&alice.user.id, 2_500).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0],
        session(second, &alice.user, 2_000, Some("Firefox"))
    );
    assert_eq!(listed[1].id_hash, id_hash.to_vec());
    assert_eq!(listed[1].last_seen_at, Some(1_500));
    assert!(store
        .list_sessions(&alice.user.id, 5_000)
        .await
        .unwrap()
        .is_empty());
    // Ending the others keeps the one named and every other user's.
    assert_eq!(
        store
            .delete_other_sessions(&alice.user.id, &second)
            .await
            .unwrap(),
        1
    );
    let left = store.list_sessions(&alice.user.id, 2_500).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id_hash, second.to_vec());
    assert_eq!(
        store
            .list_sessions(&bob.user.id, 2_500)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.delete_session(&second).await.unwrap());
    store
        .create_session(&session(id_hash, &alice.user, 1_000, None))
        .await
        .unwrap();

    assert!(store.delete_session(&id_hash).await.unwrap());
    assert!(!store.delete_session(&id_hash).await.unwrap());
    assert_eq!(store.session_user(&id_hash, 1_000).await.unwrap(), None);
}

pub(super) async fn member_story(test: TestStore) {
    let store = test.control();
    let alice = account("alice@example.com", 1_000);
    let bob = account("bob@example.com", 2_000);
    store.create_account(&alice).await.unwrap();
    store.create_account(&bob).await.unwrap();
    let (a, b) = (&alice.tenant.id, &bob.tenant.id);

    store
        .add_member(a, &bob.user.id, Role::Member, 3_000)
        .await
        .unwrap();
    assert!(is_conflict(
        store.add_member(a, &bob.user.id, Role::Admin, 3_500).await
    ));
    let members = store.list_members(a).await.unwrap();
    let summary: Vec<_> = members
        .iter()
        .map(|m| (m.user_id.clone(), m.email.as_str(), m.role, m.created_at))
        .collect();
    assert_eq!(
        summary,
        [
            (
                alice.user.id.clone(),
                "alice@example.com",
                Role::Owner,
                1_000
            ),
            (bob.user.id.clone(), "bob@example.com", Role::Member, 3_000),
        ]
    );
    assert!(members.iter().all(|m| &m.tenant_id == a));

    assert!(store
        .set_member_role(a, &bob.user.id, Role::Admin)
        .await
        .unwrap());
    assert_eq!(
        store.member_role(a, &bob.user.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert!(!store
        .set_member_role(b, &alice.user.id, Role::Admin)
        .await
        .unwrap());
    assert_eq!(store.member_role(b, &alice.user.id).await.unwrap(), None);
    assert_eq!(
        store.tenants_of_user(&bob.user.id).await.unwrap(),
        [
            (bob.tenant.clone(), Role::Owner),
            (alice.tenant.clone(), Role::Admin)
        ]
    );

    // Bob has a PAT in both tenants, Alice one in hers.
    let (bob_in_a, hash) = key(a, Err(&bob.user.id), KeyKindRow::Pat, 4_000);
    store.insert_key(&bob_in_a, &hash).await.unwrap();
    let (bob_in_b, hash) = key(b, Err(&bob.user.id), KeyKindRow::Pat, 4_000);
    store.insert_key(&bob_in_b, &hash).await.unwrap();
    let (alice_in_a, hash) = key(a, Err(&alice.user.id), KeyKindRow::Pat, 4_000);
    store.insert_key(&alice_in_a, &hash).await.unwrap();

    assert!(store.remove_member(a, &bob.user.id, 9_000).await.unwrap());
    assert_eq!(store.member_role(a, &bob.user.id).await.unwrap(), None);
    let revoked = |key: &KeyRow| {
        let store = &store;
        let (tenant, id) = (key.tenant_id.clone(), key.id.clone());
        async move { store.key(&tenant, &id).await.unwrap().unwrap().revoked_at }
    };
    assert_eq!(revoked(&bob_in_a).await, Some(9_000));
    assert_eq!(revoked(&bob_in_b).await, None, "other tenant untouched");
    assert_eq!(revoked(&alice_in_a).await, None, "other user untouched");
    assert!(!store.remove_member(a, &bob.user.id, 9_500).await.unwrap());
    assert_eq!(revoked(&bob_in_a).await, Some(9_000));
    assert_eq!(store.list_members(a).await.unwrap().len(), 1);
}

pub(super) async fn project_story(test: TestStore) {
    let store = test.control();
    let alice = account("alice@example.com", 1_000);
    let bob = account("bob@example.com", 1_000);
    store.create_account(&alice).await.unwrap();
    store.create_account(&bob).await.unwrap();
    let (a, b) = (&alice.tenant.id, &bob.tenant.id);

    let web = project(a, "web", 2_000);
    store.create_project(&web).await.unwrap();
    assert!(is_conflict(
        store.create_project(&project(a, "web", 2_500)).await
    ));
    store
        .create_project(&project(b, "web", 2_500))
        .await
        .unwrap();
    assert_eq!(
        store.list_projects(a).await.unwrap(),
        [alice.project.clone(), web.clone()]
    );
    assert_eq!(
        store.project(a, &web.id).await.unwrap().as_ref(),
        Some(&web)
    );

    // Patches change only what they name.
    let renamed = ProjectPatch {
        name: Some("site".to_owned()),
        ..ProjectPatch::default()
    };
    let updated = store
        .update_project(a, &web.id, &renamed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.public_access),
        ("site", false)
    );
    let opened = ProjectPatch {
        public_access: Some(true),
        ..ProjectPatch::default()
    };
    let updated = store
        .update_project(a, &web.id, &opened)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.public_access),
        ("site", true)
    );
    let unchanged = store
        .update_project(a, &web.id, &ProjectPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged.as_ref(), Some(&updated));
    // The public-access settings: a new project allows every room, read and presence;
    // each setting changes alone, and a re-read sees what was written.
    assert_eq!(
        (
            updated.public_rooms.as_str(),
            updated.public_scopes.as_str()
        ),
        ("*", "room:read room:presence:write")
    );
    let narrowed = ProjectPatch {
        public_rooms: Some("lobby-*".to_owned()),
        ..ProjectPatch::default()
    };
    let updated = store
        .update_project(a, &web.id, &narrowed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            updated.public_rooms.as_str(),
            updated.public_scopes.as_str()
        ),
        ("lobby-*", "room:read room:presence:write")
    );
    let read_only = ProjectPatch {
        public_scopes: Some("room:read".to_owned()),
        ..ProjectPatch::default()
    };
    let updated = store
        .update_project(a, &web.id, &read_only)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            updated.name.as_str(),
            updated.public_access,
            updated.public_rooms.as_str(),
            updated.public_scopes.as_str()
        ),
        ("site", true, "lobby-*", "room:read")
    );
    assert_eq!(
        store.project(a, &web.id).await.unwrap().as_ref(),
        Some(&updated)
    );
    let taken = ProjectPatch {
        name: Some("default".to_owned()),
        ..ProjectPatch::default()
    };
    assert!(is_conflict(store.update_project(a, &web.id, &taken).await));

    // Another tenant sees nothing and changes nothing.
    assert_eq!(store.project(b, &web.id).await.unwrap(), None);
    assert_eq!(
        store.update_project(b, &web.id, &opened).await.unwrap(),
        None
    );
    assert!(!store.delete_project(b, &web.id).await.unwrap());

    // Keys and rooms (with documents) of the project; a room of another project.
    let (sk, hash) = key(a, Ok(&web.id), KeyKindRow::Secret, 3_000);
    store.insert_key(&sk, &hash).await.unwrap();
    let room = test
        .docs()
        .load(web.id.as_str(), "doc")
        .await
        .unwrap()
        .room_id;
    let other = test
        .docs()
        .load(alice.project.id.as_str(), "doc")
        .await
        .unwrap()
        .room_id;
    let batch = [room, room, other].map(|room_id| Append {
        room_id,
        data: Bytes::from_static(b"u"),
        ..Default::default()
    });
    let seqs = test.docs().append(&batch).await.unwrap();
    assert!(test
        .docs()
        .replace_snapshot(room, None, seqs[0], &seqs[..1], b"S")
        .await
        .unwrap());
    assert!(!store.delete_project(b, &web.id).await.unwrap());
    assert_eq!(store.key(a, &sk.id).await.unwrap().as_ref(), Some(&sk));

    assert!(store.delete_project(a, &web.id).await.unwrap());
    assert_eq!(store.project(a, &web.id).await.unwrap(), None);
    assert_eq!(store.key(a, &sk.id).await.unwrap(), None);
    assert_eq!(store.key_by_hash(&hash).await.unwrap(), None);
    assert_eq!(
        test.docs().find_room(web.id.as_str(), "doc").await.unwrap(),
        None
    );
    assert_eq!(test.count(Table::RoomSnapshots).await, 0);
    // Only the other project's room and update are left.
    assert_eq!(test.count(Table::Rooms).await, 1);
    assert_eq!(test.count(Table::RoomUpdates).await, 1);
    let kept = test
        .docs()
        .load(alice.project.id.as_str(), "doc")
        .await
        .unwrap();
    assert_eq!((kept.room_id, kept.updates.len()), (other, 1));
    assert!(!store.delete_project(a, &web.id).await.unwrap());
    assert_eq!(store.list_projects(b).await.unwrap().len(), 2);
}

pub(super) async fn key_story(test: TestStore) {
    let store = test.control();
    let alice = account("alice@example.com", 1_000);
    let bob = account("bob@example.com", 1_000);
    store.create_account(&alice).await.unwrap();
    store.create_account(&bob).await.unwrap();
    let (a, b, prj, user) = (
        &alice.tenant.id,
        &bob.tenant.id,
        &alice.project.id,
        &alice.user.id,
    );

    let (sk, sk_hash) = key(a, Ok(prj), KeyKindRow::Secret, 1_000);
    let (pk, pk_hash) = key(a, Ok(prj), KeyKindRow::Publishable, 2_000);
    let (pat, pat_hash) = key(a, Err(user), KeyKindRow::Pat, 1_500);
    for (row, hash) in [(&sk, &sk_hash), (&pk, &pk_hash), (&pat, &pat_hash)] {
        store.insert_key(row, hash).await.unwrap();
    }
    let (mut copy, _) = key(a, Ok(prj), KeyKindRow::Secret, 3_000);
    copy.id = KeyId::generate().unwrap();
    assert!(is_conflict(store.insert_key(&copy, &sk_hash).await));

    assert_eq!(
        store.key_by_hash(&pat_hash).await.unwrap().as_ref(),
        Some(&pat)
    );
    assert_eq!(store.key_by_hash(&[0; 32]).await.unwrap(), None);
    assert_eq!(store.key(a, &sk.id).await.unwrap().as_ref(), Some(&sk));
    assert_eq!(store.key(b, &sk.id).await.unwrap(), None);

    let listed = store
        .list_keys(a, &KeyFilter::Project(prj.clone()))
        .await
        .unwrap();
    assert_eq!(listed, [pk.clone(), sk.clone()], "newest first");
    let pats = store
        .list_keys(a, &KeyFilter::PatsOf(user.clone()))
        .await
        .unwrap();
    assert_eq!(pats, std::slice::from_ref(&pat));
    assert!(store
        .list_keys(b, &KeyFilter::Project(prj.clone()))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_keys(b, &KeyFilter::PatsOf(user.clone()))
        .await
        .unwrap()
        .is_empty());

    // Revoking is idempotent: the first time stands.
    assert!(sk.is_active(5_000));
    let revoked = store.revoke_key(a, &sk.id, 5_000).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(5_000));
    assert!(!revoked.is_active(4_000));
    let again = store.revoke_key(a, &sk.id, 6_000).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(5_000));
    assert_eq!(store.revoke_key(b, &pk.id, 6_000).await.unwrap(), None);
    let listed = store
        .list_keys(a, &KeyFilter::Project(prj.clone()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "revoked keys are still listed");

    // Expiring only ever brings the expiry closer.
    let expiring = |at| store.expire_key(a, &pk.id, at);
    assert_eq!(
        expiring(9_000).await.unwrap().unwrap().expires_at,
        Some(9_000)
    );
    assert_eq!(
        expiring(8_000).await.unwrap().unwrap().expires_at,
        Some(8_000)
    );
    let rolled = expiring(10_000).await.unwrap().unwrap();
    assert_eq!(rolled.expires_at, Some(8_000));
    assert!(rolled.is_active(7_999) && !rolled.is_active(8_000));
    assert_eq!(store.expire_key(b, &pk.id, 1).await.unwrap(), None);
    assert_eq!(
        store.key(a, &pk.id).await.unwrap().unwrap().expires_at,
        Some(8_000)
    );

    store.touch_key(&pat.id, 7_000).await.unwrap();
    let touched = store.key_by_hash(&pat_hash).await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(7_000));
    assert!(touched.is_active(i64::MAX));
}

pub(super) async fn api_keys_table_never_holds_the_plaintext(test: TestStore) {
    let store = test.control();
    let alice = account("alice@example.com", 1_000);
    store.create_account(&alice).await.unwrap();
    let (plaintext, hash) = apikey::generate(KeyKind::Secret).unwrap();
    let row = KeyRow {
        id: KeyId::generate().unwrap(),
        tenant_id: alice.tenant.id.clone(),
        project_id: Some(alice.project.id.clone()),
        user_id: None,
        kind: KeyKindRow::Secret,
        name: "backend".to_owned(),
        display_prefix: apikey::display_prefix(plaintext.expose()).to_owned(),
        created_at: 1_000,
        last_used_at: Some(1_001),
        expires_at: Some(2_000),
        revoked_at: None,
    };
    store.insert_key(&row, hash.as_bytes()).await.unwrap();

    let key = plaintext.expose().as_bytes();
    // Everything after the displayed prefix: stricter than the whole key (which
    // contains it), and the display prefix column legitimately holds the start.
    let hidden = &key[apikey::DISPLAY_PREFIX_LEN..];
    let rows = test.raw_rows(Table::ApiKeys).await;
    assert_eq!(rows.len(), 1);
    assert!(
        !rows[0].windows(hidden.len()).any(|w| w == hidden),
        "the api_keys row holds the secret part of the key"
    );
    // The sanity check of the check: the row does hold the display prefix.
    let shown = row.display_prefix.as_bytes();
    assert!(rows[0].windows(shown.len()).any(|w| w == shown));
    assert_eq!(store.key_by_hash(hash.as_bytes()).await.unwrap(), Some(row));
}

pub(super) async fn signing_key_story(test: TestStore) {
    let store = test.control();
    let signing = |kid: &str, at| SigningKeyRow {
        kid: kid.to_owned(),
        secret: vec![at as u8; 32],
        created_at: at,
        retired_at: None,
    };
    for (kid, at) in [("k2", 2), ("k1", 1), ("k3", 3)] {
        store.insert_signing_key(&signing(kid, at)).await.unwrap();
    }
    assert!(is_conflict(
        store.insert_signing_key(&signing("k1", 9)).await
    ));
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys, [signing("k1", 1), signing("k2", 2), signing("k3", 3)]);

    store.retire_signing_keys_except("k3", 4_000).await.unwrap();
    store.retire_signing_keys_except("k3", 5_000).await.unwrap();
    let retired: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.retired_at))
        .collect();
    let expected = [("k1", Some(4_000)), ("k2", Some(4_000)), ("k3", None)];
    assert_eq!(retired, expected.map(|(kid, at)| (kid.to_owned(), at)));

    // Sealing a seed in place (KEK) replaces only that row's secret.
    let sealed = vec![0xAB; 85];
    assert!(store.set_signing_key_secret("k2", &sealed).await.unwrap());
    assert!(!store.set_signing_key_secret("nope", &sealed).await.unwrap());
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys[1].secret, sealed);
    assert_eq!(keys[1].retired_at, Some(4_000));
    assert_eq!(keys[0].secret, signing("k1", 1).secret);
}

pub(super) async fn audit_story(test: TestStore) {
    let store = test.control();
    let (a, b) = (TenantId::generate().unwrap(), TenantId::generate().unwrap());
    let event = |tenant: &TenantId, n: i64| AuditRow {
        id: 0,
        tenant_id: tenant.clone(),
        project_id: (n % 2 == 0).then(|| ProjectId::from_db(format!("prj_{n}"))),
        actor: "system".to_owned(),
        action: format!("test.event{n}"),
        target: (n % 3 == 0).then(|| format!("key_{n}")),
        ip: Some("127.0.0.1".to_owned()),
        details: format!(r#"{{"n":{n}}}"#),
        at: 1_000 + n,
    };
    for n in 0..5 {
        store.append_audit(&event(&a, n)).await.unwrap();
        store.append_audit(&event(&b, 10 + n)).await.unwrap();
    }

    let newest = store.list_audit(&a, None, 100).await.unwrap();
    let actions: Vec<_> = newest.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "test.event4",
            "test.event3",
            "test.event2",
            "test.event1",
            "test.event0"
        ]
    );
    assert!(newest.windows(2).all(|w| w[0].id > w[1].id));
    for row in &newest {
        let n = row.at - 1_000;
        assert_eq!(
            row,
            &AuditRow {
                id: row.id,
                ..event(&a, n)
            }
        );
    }

    let page = store.list_audit(&a, None, 2).await.unwrap();
    assert_eq!(page, newest[..2]);
    let next = store.list_audit(&a, Some(page[1].id), 2).await.unwrap();
    assert_eq!(next, newest[2..4]);
    let last = store.list_audit(&a, Some(next[1].id), 2).await.unwrap();
    assert_eq!(last, newest[4..]);
    assert!(store
        .list_audit(&a, Some(last[0].id), 2)
        .await
        .unwrap()
        .is_empty());

    let other = store.list_audit(&b, None, 100).await.unwrap();
    assert_eq!(other.len(), 5);
    assert!(other.iter().all(|e| e.tenant_id == b));
}
