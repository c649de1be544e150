//! The control plane's API on `Rooms`, driven against a real engine and store with live
//! sessions in the rooms.

use bytes::Bytes;
use serde_json::json;
use tandem_protocol::{close, Message};
use yrs::{Array, Map, MapPrelim, Text, Transact, WriteTxn};

use super::harness::{grant, key, text_of, Author, Client, Harness};
use crate::rooms::{CloseFilter, CloseReason, RoomError};

#[tokio::test]
async fn json_view_of_a_map_a_text_and_an_array() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let author = Author::new(7);
    let update = {
        let mut txn = author.doc.transact_mut();
        let meta = txn.get_or_insert_map("meta");
        meta.insert(&mut txn, "title", "Plan");
        meta.insert(&mut txn, "nested", MapPrelim::from([("n", 1)]));
        let body = txn.get_or_insert_text("body");
        body.insert(&mut txn, 0, "Hello, world");
        let items = txn.get_or_insert_array("items");
        items.push_back(&mut txn, 1);
        items.push_back(&mut txn, "two");
        Bytes::from(txn.encode_update_v1())
    };
    h.rooms.apply_update(&room, update).await.unwrap();
    assert_eq!(
        h.rooms.to_json(&room).await.unwrap(),
        Some(json!({
            "meta": {"title": "Plan", "nested": {"n": 1}},
            "body": "Hello, world",
            "items": [1, "two"],
        }))
    );

    // Reading a room that does not exist does not create it.
    let missing = key("prj_a", "nope");
    assert_eq!(h.rooms.to_json(&missing).await.unwrap(), None);
    assert!(!h.rooms.exists(&missing).await.unwrap());
    assert_eq!(h.stored_updates(&missing).await, None);
    // Nor is a room visible from another project.
    assert_eq!(h.rooms.to_json(&key("prj_b", "doc")).await.unwrap(), None);
}

#[tokio::test]
async fn encode_state_whole_and_as_a_diff() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let author = Author::new(7);
    let first = author.type_text("t", "hello");
    h.rooms.apply_update(&room, first.clone()).await.unwrap();
    let seen = author.state_vector();
    h.rooms
        .apply_update(&room, author.type_text("t", " world"))
        .await
        .unwrap();

    let whole = h.rooms.encode_state(&room, None).await.unwrap().unwrap();
    assert_eq!(text_of(&[&whole], "t"), "hello world");

    let diff = h
        .rooms
        .encode_state(&room, Some(&seen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text_of(&[&first, &diff], "t"), "hello world");
    assert!(
        !diff.windows(5).any(|w| w == b"hello"),
        "the diff leaves out what the state vector has"
    );

    let invalid = h.rooms.encode_state(&room, Some(&[5, 1])).await;
    assert!(matches!(invalid, Err(RoomError::InvalidStateVector(_))));
    let missing = key("prj_a", "nope");
    assert_eq!(h.rooms.encode_state(&missing, None).await.unwrap(), None);
    assert!(!h.rooms.exists(&missing).await.unwrap());
}

#[tokio::test]
async fn a_room_only_in_the_store_is_loaded_to_be_read() {
    let h = Harness::new().await;
    let room = key("prj_a", "cold");
    let author = Author::new(3);
    let stored = h.store.load(&room.project_id, &room.name).await.unwrap();
    h.store
        .append(&[crate::store::Append {
            room_id: stored.room_id,
            data: author.type_text("t", "from disk"),
            ..Default::default()
        }])
        .await
        .unwrap();
    assert_eq!(h.rooms.loaded_rooms(), 0);
    assert!(h.rooms.exists(&room).await.unwrap());
    assert_eq!(
        h.rooms.to_json(&room).await.unwrap(),
        Some(json!({"t": "from disk"}))
    );
    assert_eq!(h.rooms.loaded_rooms(), 1);
}

#[tokio::test]
async fn a_rest_update_reaches_connections_and_is_durable() {
    let mut h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut watcher = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    assert_eq!(h.rooms.connection_count(&room).await, 1);

    let author = Author::new(9);
    let update = author.type_text("t", "from REST");
    h.rooms.apply_update(&room, update.clone()).await.unwrap();
    // Durable when it returns…
    assert_eq!(h.stored_updates(&room).await, Some(1));
    // …and relayed to the connection.
    let relayed = watcher
        .until(|m| match m {
            Message::Update(u) => Some(u.to_vec()),
            _ => None,
        })
        .await;
    assert_eq!(relayed, update);

    // An update that changes nothing is fine.
    h.rooms.apply_update(&room, update.clone()).await.unwrap();

    // A restart loads it back from the store.
    drop(watcher);
    h.restart().await;
    assert_eq!(
        h.rooms.to_json(&room).await.unwrap(),
        Some(json!({"t": "from REST"}))
    );
}

#[tokio::test]
async fn hostile_and_invalid_updates_are_refused_without_touching_the_doc() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let author = Author::new(5);
    h.rooms
        .apply_update(&room, author.type_text("t", "safe"))
        .await
        .unwrap();
    let mut watcher = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let before = h.rooms.to_json(&room).await.unwrap();

    // Garbage, and a count that claims far more than the bytes hold.
    for bytes in [
        &[0xff_u8; 8][..],
        &[0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00][..],
    ] {
        let refused = h
            .rooms
            .apply_update(&room, Bytes::copy_from_slice(bytes))
            .await;
        assert!(
            matches!(refused, Err(RoomError::InvalidUpdate(_))),
            "{refused:?}"
        );
    }
    // A well-formed update with a gap: it builds on an edit the room never got. Over a
    // socket the client would be asked to resync; here it is refused, saying why.
    let other = Author::new(6);
    let _unsent = other.type_text("t", "skipped");
    let gap = other.type_text("t", " after the gap");
    let refused = h.rooms.apply_update(&room, gap).await;
    match refused {
        Err(RoomError::InvalidUpdate(reason)) => {
            assert!(reason.contains("depends on changes"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Larger than a message may be.
    let limit = h.rooms.config().max_message_bytes;
    let huge = Bytes::from(vec![0u8; limit + 1]);
    assert!(matches!(
        h.rooms.apply_update(&room, huge).await,
        Err(RoomError::InvalidUpdate(_))
    ));

    assert_eq!(h.rooms.to_json(&room).await.unwrap(), before);
    assert_eq!(h.stored_updates(&room).await, Some(1));
    // The connection saw none of it: the first update it gets is the next good one.
    let good = author.type_text("t", "!");
    h.rooms.apply_update(&room, good.clone()).await.unwrap();
    let relayed = watcher
        .until(|m| match m {
            Message::Update(u) => Some(u.to_vec()),
            _ => None,
        })
        .await;
    assert_eq!(relayed, good);
}

#[tokio::test]
async fn delete_closes_connections_with_4404_and_erases_the_room() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let author = Author::new(4);
    h.rooms
        .apply_update(&room, author.type_text("t", "doomed"))
        .await
        .unwrap();
    let mut a = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let mut b = Client::joined(&h.rooms, &room, grant("prj_a")).await;

    assert!(h.rooms.delete(&room).await.unwrap());
    for client in [&mut a, &mut b] {
        assert_eq!(
            client.closed().await,
            (close::ROOM_DELETED, "room deleted".to_owned())
        );
    }
    assert_eq!(h.stored_updates(&room).await, None);
    assert!(!h.rooms.exists(&room).await.unwrap());
    assert_eq!(h.rooms.loaded_rooms(), 0);
    assert!(!h.rooms.delete(&room).await.unwrap(), "already gone");

    // Connecting again starts a new, empty room.
    let again = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    assert_eq!(again.server_sv, [0], "the new room's state vector is empty");
    assert_eq!(h.rooms.to_json(&room).await.unwrap(), Some(json!({})));
}

#[tokio::test]
async fn delete_of_a_room_that_is_not_loaded() {
    let h = Harness::new().await;
    let room = key("prj_a", "cold");
    h.store.load(&room.project_id, &room.name).await.unwrap();
    assert_eq!(h.rooms.loaded_rooms(), 0);
    assert!(h.rooms.delete(&room).await.unwrap());
    assert_eq!(h.stored_updates(&room).await, None);
    assert_eq!(h.rooms.loaded_rooms(), 0);
    assert!(!h.rooms.delete(&key("prj_a", "never")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_racing_a_delete_never_sees_the_old_document() {
    let h = Harness::new().await;
    for round in 0..20 {
        let room = key("prj_a", &format!("race-{round}"));
        let author = Author::new(8);
        h.rooms
            .apply_update(&room, author.type_text("t", "old"))
            .await
            .unwrap();
        let grant = grant("prj_a");
        let (deleted, mut client) = tokio::join!(h.rooms.delete(&room), async {
            Client::joined(&h.rooms, &room, grant).await
        });
        assert!(deleted.unwrap());
        // Whichever came first, what the room holds now is not the old document. A
        // connection that joined the new room asks for its content: it is empty.
        let view = h.rooms.to_json(&room).await.unwrap();
        assert!(
            view.is_none() || view == Some(json!({})),
            "round {round}: {view:?}"
        );
        client.send(Message::SyncStep1(&[0]));
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match client.next().await {
                    crate::rooms::session::Outbound::Binary(frame) => {
                        if let Ok(Message::SyncStep2(update)) = Message::decode(&frame) {
                            return Some(update.to_vec());
                        }
                    }
                    crate::rooms::session::Outbound::Close { code, .. } => {
                        assert_eq!(code, close::ROOM_DELETED);
                        return None;
                    }
                }
            }
        })
        .await
        .unwrap();
        if let Some(update) = answer {
            assert_eq!(text_of(&[&update], "t"), "", "round {round}");
        }
    }
}

#[tokio::test]
async fn close_where_a_key_closes_only_that_keys_connections() {
    let h = Harness::new().await;
    let (one, two, elsewhere) = (
        key("prj_a", "one"),
        key("prj_a", "two"),
        key("prj_b", "one"),
    );
    let with_key = |project: &str, key_id: &str| crate::rooms::auth::Grant {
        key_id: Some(key_id.to_owned()),
        ..grant(project)
    };
    let mut revoked_1 = Client::joined(&h.rooms, &one, with_key("prj_a", "key_old")).await;
    let mut revoked_2 = Client::joined(&h.rooms, &two, with_key("prj_a", "key_old")).await;
    let _kept = Client::joined(&h.rooms, &one, with_key("prj_a", "key_new")).await;
    let _other_project = Client::joined(&h.rooms, &elsewhere, with_key("prj_b", "key_old")).await;
    assert_eq!(
        h.rooms
            .connection_counts("prj_a", &["one", "two", "three"])
            .await,
        [2, 1, 0]
    );

    let reason = CloseReason::new(close::UNAUTHORIZED, "API key revoked");
    let closed = h
        .rooms
        .close_where("prj_a", CloseFilter::Key("key_old".into()), reason)
        .await;
    assert_eq!(closed, 2);
    for client in [&mut revoked_1, &mut revoked_2] {
        assert_eq!(
            client.closed().await,
            (close::UNAUTHORIZED, "API key revoked".to_owned())
        );
    }
    assert_eq!(
        h.rooms.connection_counts("prj_a", &["one", "two"]).await,
        [1, 0]
    );
    assert_eq!(h.rooms.connection_count(&elsewhere).await, 1);

    // One user's connections.
    let as_user = crate::rooms::auth::Grant {
        user_id: Some("u_1".to_owned()),
        ..grant("prj_a")
    };
    let mut user = Client::joined(&h.rooms, &two, as_user).await;
    let reason = CloseReason::new(close::FORBIDDEN, "user removed");
    let closed = h
        .rooms
        .close_where("prj_a", CloseFilter::User("u_1".into()), reason)
        .await;
    assert_eq!(closed, 1);
    assert_eq!(user.closed().await.0, close::FORBIDDEN);

    // Everything in the project (it was deleted).
    let reason = CloseReason::new(close::FORBIDDEN, "project deleted");
    let closed = h.rooms.close_where("prj_a", CloseFilter::All, reason).await;
    assert_eq!(closed, 1);
    assert_eq!(h.rooms.connection_count(&elsewhere).await, 1);
}

#[tokio::test]
async fn a_broadcast_event_goes_to_every_connection() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut a = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let mut b = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let sent = h
        .rooms
        .broadcast_event(&room, json!({"kind": "reload"}))
        .await
        .unwrap();
    assert_eq!(sent, 2);
    for client in [&mut a, &mut b] {
        assert_eq!(
            client.event().await,
            json!({"event": {"kind": "reload"}, "connectionId": null, "userId": null})
        );
    }
    // A room that is not loaded is not loaded for this.
    let cold = key("prj_a", "cold");
    assert_eq!(h.rooms.broadcast_event(&cold, json!(1)).await.unwrap(), 0);
    assert_eq!(h.rooms.loaded_rooms(), 1);
    assert!(h.rooms.presence(&cold).await.unwrap().is_empty());
}

#[tokio::test]
async fn calls_after_shutdown_say_so() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    h.rooms.shutdown(std::time::Duration::from_secs(5)).await;
    let author = Author::new(1);
    assert_eq!(
        h.rooms
            .apply_update(&room, author.type_text("t", "x"))
            .await,
        Err(RoomError::ShuttingDown)
    );
    assert_eq!(h.rooms.delete(&room).await, Err(RoomError::ShuttingDown));
}
