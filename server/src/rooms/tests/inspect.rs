//! The inspector's operations on a live engine: the read-only setting (writes refused
//! for everyone but `room:admin`, reads and presence unaffected, kept across a restart),
//! closing one connection, what the connection listing shows, and the change watch.

use std::time::Duration;

use tandem_protocol::{close, Message};

use super::harness::{grant, key, Author, Client, Harness};
use crate::rooms::auth::Grant;
use crate::rooms::inspect::{Closed, CLOSED_BY_ADMIN};
use crate::rooms::Rights;

const DEADLINE: Duration = Duration::from_secs(10);

fn admin(project: &str) -> Grant {
    Grant {
        can_admin: true,
        ..grant(project)
    }
}

fn text(h: &serde_json::Value) -> String {
    h["t"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_read_only_room_refuses_writes_except_from_admins() {
    let mut h = Harness::new().await;
    let room = key("prj_a", "doc");
    let author = Author::new(1);
    h.rooms
        .apply_update(&room, author.type_text("t", "a"))
        .await
        .unwrap();
    let mut writer = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let mut watcher = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let mut moderator = Client::joined(&h.rooms, &room, admin("prj_a")).await;
    assert!(h.rooms.set_read_only(&room, true).await.unwrap());
    assert_eq!(h.rooms.read_only(&room).await.unwrap(), Some(true));

    // An open connection's write is refused (it is told once) and not applied.
    let refused = Author::new(2);
    writer.send(Message::Update(&refused.type_text("t", "X")));
    let told = writer
        .until(|m| match m {
            Message::AuthDenied(reason) => Some((*reason).to_owned()),
            _ => None,
        })
        .await;
    assert!(told.contains("read-only"), "{told}");
    writer.send(Message::Update(&refused.type_text("t", "Y")));
    let after = writer.round_trip().await;
    assert!(
        !after
            .iter()
            .any(|f| matches!(Message::decode(f), Ok(Message::AuthDenied(_)))),
        "told only once"
    );
    let doc = h.rooms.to_json(&room).await.unwrap().unwrap();
    assert_eq!(text(&doc), "a");
    assert_eq!(h.stored_updates(&room).await, Some(1));

    // Presence still goes through, and the others still get updates.
    writer.send_awareness(22, 1, r#"{"cursor":1}"#);
    watcher
        .until(|m| matches!(m, Message::Awareness(_)).then_some(()))
        .await;
    let by_admin = Author::new(3);
    moderator.send(Message::Update(&by_admin.type_text("t", "b")));
    watcher
        .until(|m| matches!(m, Message::Update(_)).then_some(()))
        .await;
    let doc = h.rooms.to_json(&room).await.unwrap().unwrap();
    assert_eq!(text(&doc).len(), 2, "the admin's write landed: {doc}");
    // The REST API is an admin too.
    h.rooms
        .apply_update(&room, author.type_text("t", "c"))
        .await
        .unwrap();
    let _ = moderator.round_trip().await;

    // The setting is stored: after a restart a new connection is read-only too.
    h.restart().await;
    let mut late = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    late.send(Message::Update(&Author::new(4).type_text("t", "Z")));
    late.until(|m| matches!(m, Message::AuthDenied(_)).then_some(()))
        .await;
    assert!(!text(&h.rooms.to_json(&room).await.unwrap().unwrap()).contains('Z'));

    // Writable again: the next write lands.
    assert!(h.rooms.set_read_only(&room, false).await.unwrap());
    let fresh = Author::new(5);
    late.send(Message::Update(&fresh.type_text("u", "ok")));
    let _ = late.round_trip().await;
    let doc = h.rooms.to_json(&room).await.unwrap().unwrap();
    assert_eq!(doc["u"], "ok", "{doc}");

    // A room that does not exist has no setting to change (and is not created).
    let missing = key("prj_a", "nope");
    assert!(!h.rooms.set_read_only(&missing, true).await.unwrap());
    assert_eq!(h.rooms.read_only(&missing).await.unwrap(), None);
    assert_eq!(h.stored_updates(&missing).await, None);
}

#[tokio::test]
async fn one_connection_is_closed_with_4403_and_the_listing_says_who() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let with_key = Grant {
        user_id: Some("ada".into()),
        key_id: Some("key_1".into()),
        can_write: false,
        ..grant("prj_a")
    };
    let before = crate::store::unix_ms();
    let mut ada = Client::joined(&h.rooms, &room, with_key).await;
    let mut bob = Client::joined(&h.rooms, &room, admin("prj_a")).await;
    let listed = h.rooms.presence(&room).await.unwrap();
    assert_eq!(listed.len(), 2);
    let entry = &listed[0];
    assert_eq!(entry.user_id.as_deref(), Some("ada"));
    assert_eq!(entry.key_id.as_deref(), Some("key_1"));
    assert_eq!(
        entry.rights,
        Rights {
            write: false,
            presence: true,
            admin: false
        }
    );
    assert_eq!(entry.rights.scopes(), ["room:read", "room:presence:write"]);
    assert_eq!(
        listed[1].rights.scopes(),
        [
            "room:read",
            "room:write",
            "room:presence:write",
            "room:admin"
        ]
    );
    assert!(entry.connected_at >= before && entry.connected_at <= crate::store::unix_ms());
    assert_eq!(entry.node, None, "no cluster, no node");
    let by_project = h.rooms.project_presence("prj_a").await.unwrap();
    assert_eq!(by_project.len(), 2);
    assert!(by_project.iter().all(|(name, _)| name == "doc"));
    assert!(h.rooms.project_presence("prj_b").await.unwrap().is_empty());

    let closed = h
        .rooms
        .close_connection(&room, None, entry.connection_id)
        .await
        .unwrap();
    assert_eq!(closed, Closed::Here);
    let (code, reason) = ada.closed().await;
    assert_eq!((code, reason.as_str()), (close::FORBIDDEN, CLOSED_BY_ADMIN));
    // The other connection stays; the closed one is gone from the listing.
    let _ = bob.round_trip().await;
    let listed = h.rooms.presence(&room).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        h.rooms
            .close_connection(&room, None, entry.connection_id)
            .await
            .unwrap(),
        Closed::NotFound
    );
    // Another room's (or project's) connection is not reachable by this room's name.
    assert_eq!(
        h.rooms
            .close_connection(&key("prj_b", "doc"), None, listed[0].connection_id)
            .await
            .unwrap(),
        Closed::NotFound
    );
}

#[tokio::test]
async fn the_watch_changes_with_the_room_and_ends_with_it() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    assert!(
        h.rooms.watch(&room).await.unwrap().is_none(),
        "no room, no watch"
    );
    h.rooms
        .apply_update(&room, Author::new(1).type_text("t", "a"))
        .await
        .unwrap();
    let mut watch = h.rooms.watch(&room).await.unwrap().unwrap();
    let changed = |watch: &mut tokio::sync::watch::Receiver<u64>| {
        let mut watch = watch.clone();
        async move {
            tokio::time::timeout(DEADLINE, watch.changed())
                .await
                .expect("a change before the deadline")
        }
    };
    // A join, an update, presence, a setting: each is a change.
    let client = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    changed(&mut watch).await.unwrap();
    watch.borrow_and_update();
    client.send(Message::Update(&Author::new(2).type_text("t", "b")));
    changed(&mut watch).await.unwrap();
    watch.borrow_and_update();
    client.send_awareness(9, 1, r#"{"x":1}"#);
    changed(&mut watch).await.unwrap();
    watch.borrow_and_update();
    h.rooms.set_read_only(&room, true).await.unwrap();
    changed(&mut watch).await.unwrap();
    watch.borrow_and_update();
    // Reads are not.
    h.rooms.to_json(&room).await.unwrap();
    h.rooms.presence(&room).await.unwrap();
    assert!(!watch.has_changed().unwrap());
    // Deleting the room ends the watch; asking again finds nothing.
    assert!(h.rooms.delete(&room).await.unwrap());
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            if watch.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ends when the room does");
    assert!(h.rooms.watch(&room).await.unwrap().is_none());
}
