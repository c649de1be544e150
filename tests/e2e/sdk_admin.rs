//! The Rust admin client (`tandem_sdk::admin`) against the real server: every method,
//! a token it minted used by the SDK, pagination over 250 rooms, keys, usage, the tenant
//! routes with a PAT, typed errors from problem documents, and 429s from a small
//! plans-file quota retried after Retry-After within the caller's bounds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tandem_sdk::admin::{
    AdminClient, Authorize, Granularity, KeyKind, ListRooms, RetryOn429, Scope, UsageRange,
};
use tandem_sdk::dev::SecretKeyTokenProvider;
use tandem_sdk::{Error, RoomEvent, StaticToken};
use yrs::updates::decoder::Decode;
use yrs::{Array, Doc, ReadTxn, StateVector, Transact, Update};

use crate::harness::{Cred, Server};
use crate::sdk_support::{client, synced, until};

const WAIT: Duration = Duration::from_secs(20);

/// A strict server whose per-key REST quota no test here reaches (the 250-room test
/// alone makes ~260 requests in seconds), with a plans file in `dir`.
fn server(dir: &tempfile::TempDir, requests_per_minute: u32) -> Server {
    let plans = dir.path().join("plans.toml");
    std::fs::write(
        &plans,
        format!("[free]\nrest-requests-per-minute = {requests_per_minute}\n"),
    )
    .unwrap();
    Server::start_strict(dir, &["--plans", plans.to_str().unwrap()])
}

fn admin(server: &Server, key: &str) -> AdminClient {
    AdminClient::builder(format!("http://{}", server.addr))
        .secret_key(key)
        .build()
        .unwrap()
}

fn update_with(f: impl FnOnce(&Doc)) -> (Doc, Vec<u8>) {
    let doc = Doc::new();
    f(&doc);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    (doc, update)
}

fn api(error: &Error) -> &tandem_sdk::ApiError {
    match error {
        Error::Api(api) => api,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// authorize → a token the SDK syncs with; apply_update, document (JSON and binary,
/// whole and by state vector), get, active users, broadcast (received by the SDK),
/// delete (the SDK's room stops with RoomDeleted, the REST room is a 404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_documents_users_events_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir, 100_000);
    let (_, project) = server.project().await;
    let admin = admin(&server, &project.key.key);
    let base = format!("http://{}", server.addr);
    let room_name = "admin/rooms-1";

    let minted = admin
        .authorize(
            &Authorize::new("ada")
                .user_info(json!({"name": "Ada"}))
                .allow(room_name, [Scope::Write])
                .expires_in(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    assert_eq!(minted.token.split('.').count(), 3, "{}", minted.token);
    assert_eq!(minted.project_id, project.id);
    assert_eq!(minted.user_id, "ada");
    assert!(!minted.expires_at.is_empty());

    // REST first: the update creates the room.
    let (source, update) = update_with(|doc| {
        let todos = doc.get_or_insert_array("todos");
        let mut txn = doc.transact_mut();
        todos.push_back(&mut txn, "one");
        todos.push_back(&mut txn, "two");
    });
    admin
        .rooms()
        .apply_update(room_name, update.as_slice())
        .await
        .unwrap();
    let document = admin.rooms().document(room_name).await.unwrap();
    assert_eq!(document["todos"], json!(["one", "two"]));

    let whole = admin
        .rooms()
        .document_update(room_name, None)
        .await
        .unwrap();
    let copy = Doc::new();
    copy.transact_mut()
        .apply_update(Update::decode_v1(&whole).unwrap())
        .unwrap();
    let copy_sv = copy.transact().state_vector();
    assert_eq!(copy_sv, source.transact().state_vector());
    let diff = admin
        .rooms()
        .document_update(
            room_name,
            Some(&yrs::updates::encoder::Encode::encode_v1(&copy_sv)),
        )
        .await
        .unwrap();
    assert!(
        diff.len() < whole.len(),
        "{} vs {}",
        diff.len(),
        whole.len()
    );
    copy.transact_mut()
        .apply_update(Update::decode_v1(&diff).unwrap())
        .unwrap();
    assert_eq!(copy.transact().state_vector(), copy_sv);

    let room = admin.rooms().get(room_name).await.unwrap();
    assert_eq!((room.name.as_str(), room.connections), (room_name, 0));
    assert!(admin
        .rooms()
        .active_users(room_name)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        admin
            .rooms()
            .broadcast_event(room_name, json!({"nobody": true}))
            .await
            .unwrap()
            .delivered,
        0
    );

    // The SDK with the minted token: it gets the document, is listed with its
    // token's user and presence, receives the event and the next REST update.
    let sdk = client(&base, StaticToken::new(minted.token.clone()));
    let ada = sdk.enter(room_name).await.unwrap();
    let mut events = ada.events();
    synced(&ada).await;
    assert_eq!(ada.list("todos").to_json(), json!(["one", "two"]));
    ada.update_presence(json!({"cursor": 3})).unwrap();
    assert_eq!(admin.rooms().get(room_name).await.unwrap().connections, 1);
    let deadline = std::time::Instant::now() + WAIT;
    let users = loop {
        let users = admin.rooms().active_users(room_name).await.unwrap();
        if users.len() == 1
            && users[0]
                .presence
                .iter()
                .any(|p| p.state.get("cursor") == Some(&json!(3)))
        {
            break users;
        }
        assert!(std::time::Instant::now() < deadline, "{users:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(users[0].user_id.as_deref(), Some("ada"));
    assert_eq!(
        users[0].user_info.clone().map(Value::Object),
        Some(json!({"name": "Ada"}))
    );
    assert_eq!(users[0].presence[0].state["user"]["name"], json!("Ada"));

    let sent = admin
        .rooms()
        .broadcast_event(room_name, json!({"kind": "ping", "n": 1}))
        .await
        .unwrap();
    assert_eq!(sent.delivered, 1);
    let received = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(RoomEvent::Custom(event)) = events.recv().await {
                return event;
            }
        }
    })
    .await
    .expect("the event reached the SDK");
    assert_eq!(received.event, json!({"kind": "ping", "n": 1}));
    assert_eq!(received.connection_id, None);

    let (_, more) = update_with(|doc| {
        doc.transact_mut()
            .apply_update(Update::decode_v1(&whole).unwrap())
            .unwrap();
        let todos = doc.get_or_insert_array("todos");
        todos.push_back(&mut doc.transact_mut(), "three");
    });
    admin
        .rooms()
        .apply_update(room_name, more.as_slice())
        .await
        .unwrap();
    until(
        "the REST update at the SDK",
        WAIT,
        || ada.list("todos").len() == 3,
        || ada.list("todos").to_json().to_string(),
    )
    .await;

    admin.rooms().delete(room_name).await.unwrap();
    let stopped = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(RoomEvent::Error(e)) if e.is_fatal() => return e,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("the SDK's room stopped");
    assert!(matches!(stopped, Error::RoomDeleted { .. }), "{stopped:?}");
    let gone = admin.rooms().get(room_name).await.unwrap_err();
    assert_eq!((gone.status(), gone.code()), (Some(404), "not_found"));
}

/// 250 rooms listed through the cursor in name order, as pages and as one stream,
/// filtered by prefix; the SDK's dev provider mints through the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_the_cursor_over_250_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir, 100_000);
    let (_, project) = server.project().await;
    let admin = admin(&server, &project.key.key);
    let prefix = "page-";
    let names: Vec<String> = (0..250).map(|i| format!("{prefix}{i:03}")).collect();
    let (_, update) = update_with(|doc| {
        let m = doc.get_or_insert_map("m");
        yrs::Map::insert(&m, &mut doc.transact_mut(), "k", 1);
    });
    // One request per room, 25 at a time.
    let rooms = admin.rooms();
    for chunk in names.chunks(25) {
        let calls = chunk
            .iter()
            .map(|name| rooms.apply_update(name, update.as_slice()));
        for result in futures_util::future::join_all(calls).await {
            result.unwrap();
        }
    }
    admin
        .rooms()
        .apply_update("zz-not-paged", update.as_slice())
        .await
        .unwrap();

    let listed: Vec<String> = admin
        .rooms()
        .list(ListRooms::default().prefix(prefix))
        .stream()
        .map_ok(|room| room.name)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, names);

    let pages: Vec<usize> = admin
        .rooms()
        .list(ListRooms::default().prefix(prefix).page_size(100))
        .pages()
        .map_ok(|page| page.data.len())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages, [100, 100, 50]);

    let small = admin
        .rooms()
        .list(ListRooms::default().prefix(prefix).page_size(7))
        .all()
        .await
        .unwrap();
    assert_eq!(small.into_iter().map(|r| r.name).collect::<Vec<_>>(), names);
    let everything = admin
        .rooms()
        .list(ListRooms::default())
        .all()
        .await
        .unwrap();
    assert_eq!(everything.len(), 251);
    assert_eq!(
        everything.last().map(|r| r.name.as_str()),
        Some("zz-not-paged")
    );

    // A bad page size is the server's typed 400, at the first page.
    let mut bad = admin
        .rooms()
        .list(ListRooms::default().page_size(1000))
        .stream();
    let error = bad.next().await.unwrap().unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert!(bad.next().await.is_none(), "the stream ends after an error");

    // The dev token provider goes through the same client.
    let provider = SecretKeyTokenProvider::with_admin(admin.clone(), "lin");
    let sdk = client(&format!("http://{}", server.addr), provider);
    let room = sdk.enter("page-000").await.unwrap();
    synced(&room).await;
    assert_eq!(room.map("m").to_json(), json!({"k": 1}));
}

/// Keys: list, create, roll, revoke, each with the typed errors a revoked or rolled
/// key gets; typed errors of the other routes (404, 401, 400, network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir, 100_000);
    let (_, project) = server.project().await;
    let admin = admin(&server, &project.key.key);

    let before = admin.keys().list().await.unwrap();
    assert!(before
        .iter()
        .any(|k| k.kind == KeyKind::Secret && k.active && k.id == project.key.id));

    let created = admin
        .keys()
        .create(KeyKind::Secret, Some("ci"))
        .await
        .unwrap();
    assert!(created.key.starts_with("sk_"), "{}", created.key);
    assert_eq!(created.info.name, "ci");
    let second = self::admin(&server, &created.key);
    assert!(second
        .keys()
        .list()
        .await
        .unwrap()
        .iter()
        .any(|k| k.id == created.info.id));

    let rolled = admin
        .keys()
        .roll(&created.info.id, Duration::ZERO)
        .await
        .unwrap();
    assert!(rolled.new_key.key.starts_with("sk_"));
    assert_eq!(rolled.old_key.id, created.info.id);
    let refused = second
        .rooms()
        .list(ListRooms::default())
        .all()
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401));

    let publishable = admin
        .keys()
        .create(KeyKind::Publishable, None)
        .await
        .unwrap();
    assert!(publishable.key.starts_with("pk_"));
    let revoked = admin.keys().revoke(&publishable.info.id).await.unwrap();
    assert!(!revoked.active);
    assert!(revoked.revoked_at.is_some());
    let listed = admin.keys().list().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|k| k.id == publishable.info.id)
            .map(|k| k.active),
        Some(false)
    );

    let third = self::admin(&server, &rolled.new_key.key);
    third.keys().revoke(&rolled.new_key.info.id).await.unwrap();
    let error = third.keys().list().await.unwrap_err();
    let problem = api(&error);
    assert_eq!(problem.status, 401);
    assert_eq!(problem.code, "unauthenticated");
    assert!(!problem.detail.is_empty());
    let missing_key = admin.keys().revoke("key_doesnotexist").await.unwrap_err();
    assert_eq!(missing_key.status(), Some(404));

    // Typed errors of the room and token routes.
    let missing = admin.rooms().get("no-such-room-ever").await.unwrap_err();
    let problem = api(&missing);
    assert_eq!((problem.status, problem.code.as_str()), (404, "not_found"));
    assert_eq!(
        problem.problem.as_ref().map(|p| p.kind.as_str()),
        Some("urn:tandem:problem:not_found")
    );
    assert!(problem.request_id.is_some());
    assert!(
        missing
            .to_string()
            .contains("GET /v1/rooms/no-such-room-ever"),
        "{missing}"
    );
    let missing_doc = admin
        .rooms()
        .document("no-such-room-ever")
        .await
        .unwrap_err();
    assert_eq!(missing_doc.code(), "not_found");

    let bad = self::admin(&server, "sk_notarealkey");
    let unauthorized = bad.rooms().get("x").await.unwrap_err();
    assert_eq!(
        (unauthorized.status(), unauthorized.code()),
        (Some(401), "unauthenticated")
    );
    let minted = bad
        .authorize(&Authorize::new("u").allow("x", [Scope::Read]))
        .await
        .unwrap_err();
    assert_eq!(minted.status(), Some(401));

    let invalid = admin
        .rooms()
        .apply_update("bad-update", [0xffu8, 0xff, 0xff].as_slice())
        .await
        .unwrap_err();
    assert_eq!(invalid.status(), Some(400));
    let too_long = admin
        .authorize(
            &Authorize::new("u")
                .allow("x", [Scope::Read])
                .expires_in(Duration::from_secs(1_000_000_000)),
        )
        .await
        .unwrap_err();
    assert_eq!(too_long.status(), Some(400));
    let bad_name = admin.rooms().get("a\u{202e}b").await.unwrap_err();
    assert_eq!(bad_name.status(), Some(400));

    let nowhere = AdminClient::builder("http://127.0.0.1:1")
        .secret_key(&project.key.key)
        .build()
        .unwrap();
    let down = nowhere.rooms().get("x").await.unwrap_err();
    assert!(matches!(down, Error::Connection { .. }), "{down:?}");
    assert_eq!(down.code(), "connection");
}

/// Project usage (hourly, daily, a reversed range refused); the tenant routes with a
/// PAT: me, tenant, projects, tenant usage, the audit log over pages, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_the_tenant_routes_with_a_pat() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir, 100_000);
    let (account, project) = server.project().await;
    let admin = admin(&server, &project.key.key);

    let now = SystemTime::now();
    let (from, to) = (
        now - Duration::from_secs(86_400),
        now + Duration::from_secs(3_600),
    );
    let hourly = admin
        .usage(&UsageRange::new(from, to).granularity(Granularity::Hour))
        .await
        .unwrap();
    assert_eq!(hourly.project_id, project.id);
    assert_eq!(hourly.granularity, Granularity::Hour);
    assert!(!hourly.monthly_active_users.is_empty());
    let daily = admin
        .usage(&UsageRange::new(from, to).granularity(Granularity::Day))
        .await
        .unwrap();
    assert_eq!(daily.granularity, Granularity::Day);
    let reversed = admin.usage(&UsageRange::new(to, from)).await.unwrap_err();
    assert_eq!(reversed.status(), Some(400));

    let created = server
        .call(
            "POST",
            &format!("/v1/tenants/{}/personal-access-tokens", account.tenant_id),
            Cred::Cookie(&account.cookie),
            Some(json!({"name": "rust sdk test"})),
        )
        .await
        .expect(201)
        .json();
    let pat = created["key"].as_str().unwrap().to_owned();
    let management = AdminClient::builder(format!("http://{}", server.addr))
        .pat(pat)
        .build()
        .unwrap();
    let me = management.me().await.unwrap();
    assert_eq!(me.user.email, account.email);
    assert!(me.tenants.iter().any(|t| t.id == account.tenant_id));
    let tenant = management.tenant(&account.tenant_id);
    assert_eq!(tenant.get().await.unwrap().id, account.tenant_id);
    let projects = tenant.projects().await.unwrap();
    assert!(projects.iter().any(|p| p.id == project.id));
    let usage = tenant.usage(&UsageRange::new(from, to)).await.unwrap();
    assert_eq!(usage.tenant_id, account.tenant_id);
    assert!(usage.projects.iter().any(|p| p.project_id == project.id));

    let audit = admin
        .keys()
        .create(KeyKind::Publishable, Some("audit"))
        .await
        .unwrap();
    admin.keys().revoke(&audit.info.id).await.unwrap();
    let entries: Vec<_> = tenant
        .audit_log(Some(2))
        .stream()
        .try_collect()
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for expected in ["key.created", "key.revoked", "pat.created"] {
        assert!(actions.contains(&expected), "{actions:?}");
    }
    assert!(entries.len() > 2, "more than one page: {actions:?}");
    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, each once");

    // A secret key is not a PAT: the tenant routes refuse it.
    let wrong = AdminClient::builder(format!("http://{}", server.addr))
        .pat(project.key.key.clone())
        .build()
        .unwrap();
    let refused = wrong.tenant(&account.tenant_id).get().await.unwrap_err();
    assert_eq!(refused.status(), Some(401));
}

/// Spends the key's quota: requests until one is refused (bounded); returns the 429.
async fn exhaust(admin: &AdminClient) -> Error {
    for _ in 0..200 {
        if let Err(error) = admin.rooms().list(ListRooms::default()).page(None).await {
            assert_eq!(error.status(), Some(429), "{error:?}");
            return error;
        }
    }
    panic!("no 429 in 200 requests");
}

/// With a 60-a-minute quota: a 429 is a typed error with `retry_after` by default; the
/// opt-in retry waits Retry-After and succeeds; a Retry-After past `max_delay` is
/// returned without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_typed_and_retried_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir, 60);
    let (_, project) = server.project().await;
    let plain = admin(&server, &project.key.key);

    let error = exhaust(&plain).await;
    let problem = api(&error);
    assert_eq!(problem.code, "rate_limited");
    let retry_after = problem.retry_after.expect("Retry-After");
    assert!(
        retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(60),
        "{retry_after:?}"
    );

    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = retries.clone();
    let patient = AdminClient::builder(format!("http://{}", server.addr))
        .secret_key(&project.key.key)
        .retry_on_429(
            RetryOn429 {
                max_attempts: 5,
                ..RetryOn429::default()
            }
            .on_retry(move |info| {
                seen.lock()
                    .unwrap()
                    .push((info.attempt, info.delay, info.error.clone()))
            }),
        )
        .build()
        .unwrap();
    exhaust(&plain).await;
    let rooms = patient
        .rooms()
        .list(ListRooms::default())
        .all()
        .await
        .unwrap();
    assert!(rooms.is_empty());
    let retries = retries.lock().unwrap().clone();
    assert!(!retries.is_empty(), "at least one 429 was retried");
    let (attempt, delay, error) = &retries[0];
    assert_eq!(*attempt, 1);
    assert_eq!(error.status, 429);
    assert_eq!(Some(*delay), error.retry_after);

    exhaust(&plain).await;
    let hasty_retries = Arc::new(Mutex::new(0));
    let counted = hasty_retries.clone();
    let hasty = AdminClient::builder(format!("http://{}", server.addr))
        .secret_key(&project.key.key)
        .retry_on_429(
            RetryOn429 {
                max_delay: Duration::from_millis(10),
                ..RetryOn429::default()
            }
            .on_retry(move |_| *counted.lock().unwrap() += 1),
        )
        .build()
        .unwrap();
    let refused = hasty.rooms().get("x").await.unwrap_err();
    assert_eq!(refused.status(), Some(429));
    assert_eq!(*hasty_retries.lock().unwrap(), 0);
}
