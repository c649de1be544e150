//! Plan limits enforced by the engine, each at its boundary: the Nth connection in and
//! the N+1th refused, a document one byte over its cap refused whole, a flooding
//! connection closed after everything it sent before the limit was stored.

use std::time::Duration;

use tandem_protocol::{close, Message};

use super::harness::{grant, key, text_of, Author, Client, Harness};
use crate::rooms::auth::Grant;
use crate::rooms::limits::Limits;

fn limits() -> Limits {
    Limits {
        connections_per_project: 1_000,
        connections_per_room: 1_000,
        rooms_per_project: 1_000,
        max_document_bytes: u64::MAX,
        messages_per_second: 1_000,
        message_burst: 1_000,
        bytes_per_second: u64::MAX / 2,
        byte_burst: u64::MAX / 2,
        rest_requests_per_minute: 1_000,
        history_retention_days: 7,
    }
}

fn limited(project: &str, limits: Limits) -> Grant {
    Grant {
        limits: Some(limits),
        ..grant(project)
    }
}

/// Connects and returns the first thing the server says: `Ok` once joined, or the close.
async fn try_join(
    h: &Harness,
    room: &crate::rooms::RoomKey,
    grant: Grant,
) -> Result<Client, (u16, String)> {
    let mut client = Client::spawn_for_test(&h.rooms, room, grant);
    match client.next().await {
        crate::rooms::session::Outbound::Binary(frame) => {
            assert!(matches!(Message::decode(&frame), Ok(Message::SyncStep1(_))));
            Ok(client)
        }
        crate::rooms::session::Outbound::Close { code, reason } => Err((code, reason)),
    }
}

#[tokio::test]
async fn the_nth_connection_to_a_room_is_accepted_and_the_next_refused() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let caps = Limits {
        connections_per_room: 3,
        ..limits()
    };
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(try_join(&h, &room, limited("prj_a", caps)).await.unwrap());
    }
    let (code, reason) = try_join(&h, &room, limited("prj_a", caps))
        .await
        .err()
        .unwrap();
    assert_eq!(code, close::RATE_LIMITED);
    assert!(reason.contains("3 per room"), "{reason}");
    assert_eq!(close::retry_after(&reason), Some(Duration::from_secs(30)));
    // Another room of the project is not affected; a leaving connection frees a place.
    assert!(try_join(&h, &key("prj_a", "other"), limited("prj_a", caps))
        .await
        .is_ok());
    drop(kept.pop());
    let mut admitted = None;
    for _ in 0..100 {
        match try_join(&h, &room, limited("prj_a", caps)).await {
            Ok(client) => {
                admitted = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(
        admitted.is_some(),
        "a freed place is given to the next connection"
    );
}

#[tokio::test]
async fn the_project_cap_counts_every_room_of_the_project() {
    let h = Harness::new().await;
    let caps = Limits {
        connections_per_project: 2,
        ..limits()
    };
    let a = try_join(&h, &key("prj_a", "one"), limited("prj_a", caps))
        .await
        .unwrap();
    let _b = try_join(&h, &key("prj_a", "two"), limited("prj_a", caps))
        .await
        .unwrap();
    let (code, reason) = try_join(&h, &key("prj_a", "three"), limited("prj_a", caps))
        .await
        .err()
        .unwrap();
    assert_eq!(
        (code, reason.contains("2 per project")),
        (close::RATE_LIMITED, true),
        "{reason}"
    );
    assert!(try_join(&h, &key("prj_b", "one"), limited("prj_b", caps))
        .await
        .is_ok());
    assert_eq!(h.rooms.project_connections("prj_a"), 2);
    drop(a);
    for _ in 0..100 {
        if h.rooms.project_connections("prj_a") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(try_join(&h, &key("prj_a", "three"), limited("prj_a", caps))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_room_cap_refuses_a_new_room_but_not_existing_ones() {
    let h = Harness::new().await;
    let caps = Limits {
        rooms_per_project: 2,
        ..limits()
    };
    drop(
        try_join(&h, &key("prj_a", "one"), limited("prj_a", caps))
            .await
            .unwrap(),
    );
    drop(
        try_join(&h, &key("prj_a", "two"), limited("prj_a", caps))
            .await
            .unwrap(),
    );
    let (code, reason) = try_join(&h, &key("prj_a", "three"), limited("prj_a", caps))
        .await
        .err()
        .unwrap();
    assert_eq!(
        (code, reason.contains("2 rooms per project")),
        (close::RATE_LIMITED, true),
        "{reason}"
    );
    assert!(try_join(&h, &key("prj_a", "one"), limited("prj_a", caps))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_document_one_byte_over_its_cap_refuses_the_update_and_keeps_the_state() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let author = Author::new(1);
    let first = author.type_text("t", "hello");
    let second = author.type_text("t", " world");
    // The cap is exactly what the first update needs plus one byte less than the second.
    let cap = (first.len() + second.len() - 1) as u64;
    let caps = Limits {
        max_document_bytes: cap,
        ..limits()
    };
    let mut writer = try_join(&h, &room, limited("prj_a", caps)).await.unwrap();
    let mut reader = try_join(&h, &room, limited("prj_a", caps)).await.unwrap();
    writer.send(Message::Update(&first));
    reader
        .until(|m| matches!(m, Message::Update(_)).then_some(()))
        .await;
    writer.send(Message::Update(&second));
    let (code, reason) = writer.closed().await;
    assert_eq!(code, close::TOO_LARGE);
    assert!(reason.contains(&format!("{cap} bytes")), "{reason}");
    // The other connection never sees it, the room and the store keep the old state.
    let seen = reader.round_trip().await;
    assert!(seen
        .iter()
        .all(|f| !matches!(Message::decode(f), Ok(Message::Update(_)))));
    let stored = h.store.load("prj_a", "doc").await.unwrap();
    let updates: Vec<&[u8]> = stored.updates.iter().map(|(_, b)| b.as_ref()).collect();
    assert_eq!(text_of(&updates, "t"), "hello");
    // Exactly at the cap is allowed.
    let caps = Limits {
        max_document_bytes: cap + 1,
        ..limits()
    };
    let writer = try_join(&h, &room, limited("prj_a", caps)).await.unwrap();
    writer.send(Message::Update(&second));
    reader
        .until(|m| matches!(m, Message::Update(_)).then_some(()))
        .await;
}

#[tokio::test]
async fn a_flooding_connection_is_closed_and_everything_before_the_limit_is_stored() {
    let mut h = Harness::new().await;
    let room = key("prj_a", "doc");
    let caps = Limits {
        messages_per_second: 1,
        message_burst: 20,
        ..limits()
    };
    let mut flooder = try_join(&h, &room, limited("prj_a", caps)).await.unwrap();
    let author = Author::new(9);
    // 20 fit in the burst; the 21st (sent at once) is over the limit.
    let updates: Vec<_> = (0..25)
        .map(|i| author.type_text("t", &format!("{i},")))
        .collect();
    for update in &updates {
        flooder.send(Message::Update(update));
    }
    let (code, reason) = flooder.closed().await;
    assert_eq!(code, close::RATE_LIMITED);
    assert!(reason.contains("1 messages per second"), "{reason}");
    assert!(close::retry_after(&reason).is_some());
    h.restart().await;
    let stored = h.store.load("prj_a", "doc").await.unwrap();
    let stored: Vec<&[u8]> = stored.updates.iter().map(|(_, b)| b.as_ref()).collect();
    let expected: String = (0..20).map(|i| format!("{i},")).collect();
    assert_eq!(text_of(&stored, "t"), expected);
}
