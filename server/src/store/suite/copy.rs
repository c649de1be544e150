//! Stories of `tandem store copy`: a populated SQLite installation copied into a fresh
//! store of the backend under test, verified, then used through the runtime traits.

use bytes::Bytes;
use yrs::{GetString, Text, Transact};

use super::control::{account, key, project};
use super::usage::{peak, room, user, FEB, H0, JAN};
use super::TestStore;
use crate::store::control::{AuditRow, KeyFilter, KeyKindRow, NewAccount, Role, SigningKeyRow};
use crate::store::copy::{self, CopyError, CopyOptions};
use crate::store::export::Table;
use crate::store::usage::{UsageBatch, HOUR_MS};
use crate::store::{Append, RoomId, StoredDoc};

/// The flush id of [`usage_batch`] in [`populate`].
const FLUSH: &str = "0123456789abcdef0123456789abcdef";
/// When [`populate`] applies its flushes.
const FLUSHED_AT: i64 = H0 + 2 * HOUR_MS;

/// A flush spanning two hours, two projects and two months; one room not measured, one
/// not active.
fn usage_batch() -> UsageBatch {
    let mut idle = room("prj_other", "idle", H0 + HOUR_MS, 0);
    idle.active = false;
    idle.storage_bytes = None;
    UsageBatch {
        rooms: vec![
            room("prj_usage", "doc", H0, 3),
            room("prj_usage", "b/2 é%_", H0, 1),
            room("prj_usage", "doc", H0 + HOUR_MS, 5),
            idle,
        ],
        projects: vec![
            peak("prj_usage", H0, 4),
            peak("prj_usage", H0 + HOUR_MS, 5),
            peak("prj_other", H0 + HOUR_MS, 0),
        ],
        users: vec![
            user("prj_usage", JAN, "ada"),
            user("prj_usage", JAN, "bob"),
            user("prj_usage", FEB, "ada"),
            user("prj_other", FEB, "Zoë"),
        ],
    }
}

/// Every usage figure of the projects [`populate`] meters, as the usage API reads them.
async fn usage_figures(store: &TestStore) -> Vec<String> {
    let usage = store.usage();
    let mut figures = Vec::new();
    for project in ["prj_usage", "prj_other"] {
        let (from, to) = (JAN, FEB + 31 * 24 * HOUR_MS);
        figures.push(format!(
            "{project}: {:?} {:?} {:?}",
            usage.room_hours(project, from, to).await.unwrap(),
            usage.project_hours(project, from, to).await.unwrap(),
            usage.monthly_users(project, from, to).await.unwrap(),
        ));
    }
    figures
}

/// What [`populate`] made, to check the copy against.
struct Populated {
    alice: NewAccount,
    bob: NewAccount,
    sk_hash: [u8; 32],
    /// (project, room name) of every room left.
    rooms: Vec<(String, String)>,
    /// The fully compacted room: no log rows, its snapshot covers the newest seq.
    compacted: (String, RoomId, i64),
    text: String,
}

/// A yrs update inserting `s` at the end of the text `t` of `doc`.
fn edit(doc: &yrs::Doc, s: &str) -> Bytes {
    let text = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    let len = text.len(&txn);
    text.insert(&mut txn, len, s);
    Bytes::from(txn.encode_update_v1())
}

fn state(doc: &yrs::Doc) -> Vec<u8> {
    use yrs::ReadTxn;
    doc.transact()
        .encode_state_as_update_v1(&yrs::StateVector::default())
}

/// An installation with a bit of everything, written through the runtime traits.
async fn populate(source: &TestStore) -> Populated {
    let (control, docs) = (source.control(), source.docs());
    let alice = account("alice@example.com", 1_000);
    let bob = account("bob@example.com", 1_100);
    control.create_account(&alice).await.unwrap();
    control.create_account(&bob).await.unwrap();
    let a = &alice.tenant.id;
    control
        .add_member(a, &bob.user.id, Role::Admin, 1_200)
        .await
        .unwrap();
    let mut web = project(a, "web", 1_300);
    web.public_access = true;
    web.public_rooms = "lobby-*".to_owned();
    web.public_scopes = "room:read".to_owned();
    control.create_project(&web).await.unwrap();
    let (sk, sk_hash) = key(a, Ok(&alice.project.id), KeyKindRow::Secret, 1_400);
    control.insert_key(&sk, &sk_hash).await.unwrap();
    let (pk, hash) = key(a, Ok(&web.id), KeyKindRow::Publishable, 1_500);
    control.insert_key(&pk, &hash).await.unwrap();
    control.expire_key(a, &pk.id, 9_000).await.unwrap();
    let (pat, hash) = key(a, Err(&bob.user.id), KeyKindRow::Pat, 1_600);
    control.insert_key(&pat, &hash).await.unwrap();
    control.touch_key(&pat.id, 1_700).await.unwrap();
    control.revoke_key(a, &pat.id, 1_800).await.unwrap();
    for (hash, user, expires_at, agent) in [
        ([1u8; 32], &alice.user, i64::MAX, Some("Firefox")),
        ([2u8; 32], &bob.user, 3_000, None),
    ] {
        let session = crate::store::control::SessionRow {
            id_hash: hash.to_vec(),
            user_id: user.id.clone(),
            created_at: 2_000,
            expires_at,
            user_agent: agent.map(str::to_owned),
            ip: agent.map(|_| "192.0.2.9".to_owned()),
            last_seen_at: agent.map(|_| 2_500),
        };
        control.create_session(&session).await.unwrap();
    }
    for (kid, at) in [("k1", 10), ("k2", 20)] {
        let row = SigningKeyRow {
            kid: kid.to_owned(),
            secret: vec![at as u8; 32],
            created_at: at,
            retired_at: None,
        };
        control.insert_signing_key(&row).await.unwrap();
    }
    control.retire_signing_keys_except("k2", 30).await.unwrap();
    for n in 0..5 {
        let event = AuditRow {
            id: 0,
            tenant_id: if n % 2 == 0 {
                a.clone()
            } else {
                bob.tenant.id.clone()
            },
            project_id: (n == 0).then(|| web.id.clone()),
            actor: "system".to_owned(),
            action: format!("test.event{n}"),
            target: (n == 1).then(|| "key_x".to_owned()),
            ip: Some("127.0.0.1".to_owned()),
            details: "{}".to_owned(),
            at: 3_000 + n,
        };
        control.append_audit(&event).await.unwrap();
    }
    // Invitations (one accepted), a user's security log and the email outbox.
    let invited = crate::store::invitations::InvitationRow {
        id: crate::ids::InvitationId::generate().unwrap(),
        tenant_id: alice.tenant.id.clone(),
        email: bob.user.email.clone(),
        role: Role::Admin,
        invited_by: alice.user.id.clone(),
        created_at: 4_000,
        expires_at: 9_000,
        accepted_at: None,
        accepted_by: None,
        revoked_at: None,
    };
    control.create_invitation(&invited, &[7; 32]).await.unwrap();
    control
        .accept_invitation(&[7; 32], &bob.user.id, 4_500)
        .await
        .unwrap()
        .unwrap();
    for n in 0..2 {
        control
            .append_security_event(&crate::store::invitations::SecurityEventRow {
                id: 0,
                user_id: bob.user.id.clone(),
                action: "login.failed".to_owned(),
                ip: Some("192.0.2.1".to_owned()),
                details: "{}".to_owned(),
                at: 5_000 + n,
            })
            .await
            .unwrap();
        control
            .queue_email(&crate::store::invitations::OutboxEmail {
                id: 0,
                recipient: bob.user.email.clone(),
                subject: format!("notice {n}"),
                body: "hello".to_owned(),
                created_at: 5_000 + n,
            })
            .await
            .unwrap();
    }

    // Documents: a room with a snapshot and a log tail, one in a project with no project
    // row (anonymous access) and an awkward name, an empty one, a deleted one (a gap in
    // ids and seqs), and last a room compacted completely, so its snapshot covers the
    // newest seq while no log row holds it.
    let doc = yrs::Doc::new();
    let main = docs.load(alice.project.id.as_str(), "notes").await.unwrap();
    let mut seqs = Vec::new();
    for word in ["hello", " ", "world", "!", " again"] {
        let update = edit(&doc, word);
        seqs.extend(
            docs.append(&[Append {
                room_id: main.room_id,
                data: update,
                ..Default::default()
            }])
            .await
            .unwrap(),
        );
    }
    let snapshot_doc = yrs::Doc::new();
    let folded = docs.read_upto(main.room_id, seqs[2]).await.unwrap();
    for (_, data) in &folded.updates {
        use yrs::updates::decoder::Decode;
        let update = yrs::Update::decode_v1(data).unwrap();
        snapshot_doc.transact_mut().apply_update(update).unwrap();
    }
    assert!(docs
        .replace_snapshot(
            main.room_id,
            None,
            seqs[2],
            &seqs[..3],
            &state(&snapshot_doc)
        )
        .await
        .unwrap());

    let other = yrs::Doc::new();
    let odd = docs.load("anonymous", "b/2 é%_").await.unwrap();
    let update = edit(&other, "anonymous text");
    docs.append(&[Append {
        room_id: odd.room_id,
        data: update,
        ..Default::default()
    }])
    .await
    .unwrap();
    docs.load(web.id.as_str(), "empty").await.unwrap();
    // A setting travels with the room.
    assert!(docs
        .set_read_only(web.id.as_str(), "empty", true)
        .await
        .unwrap());
    let gone = docs.load(web.id.as_str(), "gone").await.unwrap();
    docs.append(&[Append {
        room_id: gone.room_id,
        data: edit(&yrs::Doc::new(), "x"),
        ..Default::default()
    }])
    .await
    .unwrap();
    docs.delete_room(gone.room_id).await.unwrap();

    let last = yrs::Doc::new();
    let compacted = docs.load(web.id.as_str(), "compacted").await.unwrap();
    let mut folded = Vec::new();
    for word in ["all", " folded"] {
        let update = edit(&last, word);
        folded.extend(
            docs.append(&[Append {
                room_id: compacted.room_id,
                data: update,
                ..Default::default()
            }])
            .await
            .unwrap(),
        );
    }
    let upto = folded[1];
    assert!(docs
        .replace_snapshot(compacted.room_id, None, upto, &folded, &state(&last))
        .await
        .unwrap());

    // Usage: a flush with a known id, and a second adding to some of its rows.
    let usage = source.usage();
    assert!(usage
        .apply_usage(FLUSH, &usage_batch(), FLUSHED_AT)
        .await
        .unwrap());
    let more = UsageBatch {
        rooms: vec![room("prj_usage", "doc", H0, 2)],
        projects: vec![peak("prj_usage", H0, 9)],
        users: vec![user("prj_usage", JAN, "ada"), user("prj_usage", JAN, "cy")],
    };
    assert!(usage
        .apply_usage("second-flush", &more, FLUSHED_AT + 1)
        .await
        .unwrap());

    let text = doc.get_or_insert_text("t").get_string(&doc.transact());
    Populated {
        rooms: vec![
            (alice.project.id.to_string(), "notes".to_owned()),
            ("anonymous".to_owned(), "b/2 é%_".to_owned()),
            (web.id.to_string(), "empty".to_owned()),
            (web.id.to_string(), "compacted".to_owned()),
        ],
        compacted: (web.id.to_string(), compacted.room_id, upto),
        alice,
        bob,
        sk_hash,
        text,
    }
}

fn text_of(stored: &StoredDoc) -> String {
    use yrs::updates::decoder::Decode;
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("t");
    let snapshot = stored.snapshot.iter().map(|(_, data)| data);
    for data in snapshot.chain(stored.updates.iter().map(|(_, data)| data)) {
        let update = yrs::Update::decode_v1(data).unwrap();
        doc.transact_mut().apply_update(update).unwrap();
    }
    let txn = doc.transact();
    text.get_string(&txn)
}

pub(super) async fn copy_story(dest: TestStore) {
    let source = TestStore::sqlite().await.unwrap();
    let made = populate(&source).await;
    let report = copy::copy(
        &source.stores,
        &dest.stores,
        &CopyOptions { sessions: true },
    )
    .await
    .unwrap();
    for (table, rows) in &report.rows {
        assert_eq!(*rows, source.count(*table).await, "{table:?}");
    }
    let rows = |table| report.rows.iter().find(|(t, _)| *t == table).unwrap().1;
    assert_eq!(
        (
            rows(Table::Users),
            rows(Table::Rooms),
            rows(Table::RoomUpdates)
        ),
        (2, 4, 3)
    );
    assert_eq!(
        (
            rows(Table::UsageFlushes),
            rows(Table::UsageHourly),
            rows(Table::UsageProjectHourly),
            rows(Table::UsageUsers)
        ),
        (2, 4, 3, 5)
    );

    // Usage reads the same through the destination's `UsageStore`, and a flush retried
    // against it after the move (the same id) is not counted again; a new one is.
    let figures = usage_figures(&source).await;
    assert!(figures[0].contains("messages_in: 5"), "{figures:?}");
    assert_eq!(usage_figures(&dest).await, figures);
    assert!(!dest
        .usage()
        .apply_usage(FLUSH, &usage_batch(), FLUSHED_AT + 2)
        .await
        .unwrap());
    assert_eq!(
        usage_figures(&dest).await,
        figures,
        "the retry counted nothing"
    );
    assert!(dest
        .usage()
        .apply_usage("after-the-move", &usage_batch(), FLUSHED_AT + 3)
        .await
        .unwrap());
    assert_ne!(usage_figures(&dest).await, figures);

    // Through the destination's runtime traits: the same accounts, keys and documents.
    let (from, to) = (source.control(), dest.control());
    let (a, b) = (&made.alice.tenant.id, &made.bob.tenant.id);
    assert_eq!(
        to.user_by_email("alice@example.com").await.unwrap(),
        Some(made.alice.user.clone())
    );
    assert_eq!(
        to.session_user(&[1; 32], 5_000).await.unwrap(),
        Some((made.alice.user.clone(), Some(2_500)))
    );
    assert_eq!(
        to.session_user(&[2; 32], 5_000).await.unwrap(),
        None,
        "expired"
    );
    let sk = to.key_by_hash(&made.sk_hash).await.unwrap().unwrap();
    assert_eq!(
        Some(&sk),
        from.key_by_hash(&made.sk_hash).await.unwrap().as_ref()
    );
    assert_eq!(
        to.tenants_of_user(&made.bob.user.id).await.unwrap(),
        from.tenants_of_user(&made.bob.user.id).await.unwrap()
    );
    assert_eq!(
        to.list_members(a).await.unwrap(),
        from.list_members(a).await.unwrap()
    );
    assert_eq!(
        to.list_projects(a).await.unwrap(),
        from.list_projects(a).await.unwrap()
    );
    let pats = KeyFilter::PatsOf(made.bob.user.id.clone());
    assert_eq!(
        to.list_keys(a, &pats).await.unwrap(),
        from.list_keys(a, &pats).await.unwrap()
    );
    assert_eq!(
        to.signing_keys().await.unwrap(),
        from.signing_keys().await.unwrap()
    );
    for tenant in [a, b] {
        assert_eq!(
            to.list_audit(tenant, None, 100).await.unwrap(),
            from.list_audit(tenant, None, 100).await.unwrap()
        );
    }
    for (project, name) in &made.rooms {
        let (x, y) = (
            source.docs().load(project, name).await.unwrap(),
            dest.docs().load(project, name).await.unwrap(),
        );
        assert_eq!(
            (x.room_id, x.snapshot, x.updates, x.read_only),
            (y.room_id, y.snapshot, y.updates, y.read_only)
        );
        assert_eq!(y.read_only, name == "empty", "{name}");
    }

    let notes = dest
        .docs()
        .load(made.alice.project.id.as_str(), "notes")
        .await
        .unwrap();
    assert!(notes.snapshot.is_some() && notes.updates.len() == 2);
    assert_eq!(text_of(&notes), made.text);
    let listed = dest
        .docs()
        .list_rooms("anonymous", Some("b/"), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    // The destination goes on from there: new log rows come after every snapshot (also
    // the one whose rows are gone), new rooms and events do not reuse ids, and the
    // copy's unique rules hold.
    let (project, compacted, upto) = made.compacted.clone();
    let seq = dest
        .docs()
        .append(&[Append {
            room_id: compacted,
            data: edit(&yrs::Doc::new(), "more"),
            ..Default::default()
        }])
        .await
        .unwrap()[0];
    assert!(
        seq > upto,
        "new seq {seq} must follow the snapshot's {upto}"
    );
    let loaded = dest.docs().load(&project, "compacted").await.unwrap();
    assert_eq!(loaded.updates.len(), 1, "the new update is loaded");
    let new_room = dest.docs().load(&project, "new").await.unwrap().room_id;
    let max_room = source
        .docs()
        .load(&project, "compacted")
        .await
        .unwrap()
        .room_id;
    assert!(new_room > max_room);
    let event = AuditRow {
        id: 0,
        tenant_id: a.clone(),
        project_id: None,
        actor: "system".to_owned(),
        action: "after.copy".to_owned(),
        target: None,
        ip: None,
        details: "{}".to_owned(),
        at: 9_000,
    };
    to.append_audit(&event).await.unwrap();
    let newest = to.list_audit(a, None, 1).await.unwrap();
    assert_eq!(newest[0].action, "after.copy");
    assert_eq!(to.list_audit(a, None, 100).await.unwrap().len(), 4);
    // The new tables' id counters moved past the copied ids too.
    let bob_id = &made.bob.user.id;
    to.append_security_event(&crate::store::invitations::SecurityEventRow {
        id: 0,
        user_id: bob_id.clone(),
        action: "after.copy".to_owned(),
        ip: None,
        details: "{}".to_owned(),
        at: 9_000,
    })
    .await
    .unwrap();
    let log = to.list_security_events(bob_id, None, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].action, "after.copy");
    assert_eq!(
        to.member_role(&made.alice.tenant.id, bob_id).await.unwrap(),
        Some(Role::Admin),
        "the accepted invitation's membership was copied"
    );
    assert_eq!(to.emails_to(&made.bob.user.email).await.unwrap().len(), 2);
    assert!(matches!(
        to.create_account(&account("alice@example.com", 9_000))
            .await,
        Err(crate::store::StoreError::Conflict(_))
    ));
    to.create_account(&account("carol@example.com", 9_000))
        .await
        .unwrap();
    dest.stores.close().await;
    source.stores.close().await;
}

pub(super) async fn copy_refuses_a_destination_with_data(dest: TestStore) {
    let source = TestStore::sqlite().await.unwrap();
    populate(&source).await;
    // Only a room: still not empty.
    dest.docs().load("prj", "doc").await.unwrap();
    let refused = copy::copy(
        &source.stores,
        &dest.stores,
        &CopyOptions { sessions: true },
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(CopyError::NotEmpty {
                table: "rooms",
                rows: 1
            })
        ),
        "{refused:?}"
    );
    for table in Table::ALL {
        let expected = i64::from(table == Table::Rooms);
        assert_eq!(dest.count(table).await, expected, "{table:?}");
    }
    dest.stores.close().await;
    source.stores.close().await;
}

pub(super) async fn copy_refuses_a_destination_with_only_usage(dest: TestStore) {
    let source = TestStore::sqlite().await.unwrap();
    populate(&source).await;
    // Only an applied flush id with nothing in it: still not empty.
    assert!(dest
        .usage()
        .apply_usage("early", &UsageBatch::default(), FLUSHED_AT)
        .await
        .unwrap());
    let refused = copy::copy(
        &source.stores,
        &dest.stores,
        &CopyOptions { sessions: true },
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(CopyError::NotEmpty {
                table: "usage_flushes",
                rows: 1
            })
        ),
        "{refused:?}"
    );
    for table in Table::ALL {
        let expected = i64::from(table == Table::UsageFlushes);
        assert_eq!(dest.count(table).await, expected, "{table:?}");
    }
    dest.stores.close().await;
    source.stores.close().await;
}

pub(super) async fn verify_catches_a_difference(dest: TestStore) {
    let source = TestStore::sqlite().await.unwrap();
    let made = populate(&source).await;
    let options = CopyOptions { sessions: false };
    let report = copy::copy(&source.stores, &dest.stores, &options)
        .await
        .unwrap();
    assert!(report.rows.contains(&(Table::Sessions, 0)));
    assert_eq!(dest.count(Table::Sessions).await, 0);
    copy::verify(&source.stores, &dest.stores, &options)
        .await
        .unwrap();
    let mismatch = |found: Result<_, CopyError>, what: &str| match found {
        Err(CopyError::Mismatch(m)) => assert!(m.contains(what), "{m:?} should name {what:?}"),
        other => panic!("expected a mismatch naming {what:?}, got {other:?}"),
    };

    // A control-plane row changed, then changed back.
    let bob = &made.bob.user;
    let to = dest.control();
    to.set_password_hash(&bob.id, "$argon2id$changed")
        .await
        .unwrap();
    mismatch(
        copy::verify(&source.stores, &dest.stores, &options).await,
        "users",
    );
    to.set_password_hash(&bob.id, &bob.password_hash)
        .await
        .unwrap();
    copy::verify(&source.stores, &dest.stores, &options)
        .await
        .unwrap();

    // One more update in a room of the copy; then the same in the source (and it gets
    // the same seq there: the copy continues the source's sequence).
    let project = made.alice.project.id.as_str();
    let notes = dest.docs().load(project, "notes").await.unwrap().room_id;
    let extra = Append {
        room_id: notes,
        data: edit(&yrs::Doc::new(), "?"),
        ..Default::default()
    };
    dest.docs()
        .append(std::slice::from_ref(&extra))
        .await
        .unwrap();
    mismatch(
        copy::verify(&source.stores, &dest.stores, &options).await,
        "room_updates has 4 rows, the source 3",
    );
    source.docs().append(&[extra]).await.unwrap();
    copy::verify(&source.stores, &dest.stores, &options)
        .await
        .unwrap();

    // Usage: a flush applied to the copy only; then the same flush in the source.
    let extra = UsageBatch {
        rooms: vec![room("prj_usage", "doc", H0, 1)],
        ..UsageBatch::default()
    };
    dest.usage()
        .apply_usage("late", &extra, FLUSHED_AT)
        .await
        .unwrap();
    mismatch(
        copy::verify(&source.stores, &dest.stores, &options).await,
        "usage_flushes has 3 rows, the source 2",
    );
    source
        .usage()
        .apply_usage("late", &extra, FLUSHED_AT)
        .await
        .unwrap();
    copy::verify(&source.stores, &dest.stores, &options)
        .await
        .unwrap();
    // The same row counts, different figures: one more flush on each side, counting
    // different messages under the same id.
    let (mut here, mut there) = (extra.clone(), extra);
    here.rooms[0].messages_in = 1;
    there.rooms[0].messages_in = 2;
    dest.usage()
        .apply_usage("diverging", &here, FLUSHED_AT)
        .await
        .unwrap();
    source
        .usage()
        .apply_usage("diverging", &there, FLUSHED_AT)
        .await
        .unwrap();
    mismatch(
        copy::verify(&source.stores, &dest.stores, &options).await,
        "rows of usage_hourly differ",
    );
    // Evened out (the upserts add): equal again.
    dest.usage()
        .apply_usage("evening", &there, FLUSHED_AT)
        .await
        .unwrap();
    source
        .usage()
        .apply_usage("evening", &here, FLUSHED_AT)
        .await
        .unwrap();
    copy::verify(&source.stores, &dest.stores, &options)
        .await
        .unwrap();

    // The same row counts, different documents: an update lands in one room of the
    // copy and in another room of the source.
    let data = edit(&yrs::Doc::new(), "!");
    let odd = dest
        .docs()
        .load("anonymous", "b/2 é%_")
        .await
        .unwrap()
        .room_id;
    let appended = [Append {
        room_id: odd,
        data: data.clone(),
        ..Default::default()
    }];
    dest.docs().append(&appended).await.unwrap();
    let elsewhere = [Append {
        room_id: notes,
        data,
        ..Default::default()
    }];
    source.docs().append(&elsewhere).await.unwrap();
    mismatch(
        copy::verify(&source.stores, &dest.stores, &options).await,
        "stored rows differ",
    );
    dest.stores.close().await;
    source.stores.close().await;
}
