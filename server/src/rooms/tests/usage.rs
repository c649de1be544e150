//! Usage metering through the real session and rooms: every binary frame read from and
//! written to a connection is counted (the handshake, relays, answers, the read-only
//! refusal), refused connections are not metered, and the shutdown flush leaves exact
//! totals in the store.

use tandem_protocol::{close, Message};

use super::harness::{grant, key, Author, Client, Harness};
use crate::rooms::auth::Grant;
use crate::rooms::limits::Limits;
use crate::rooms::session::Outbound;
use crate::store::usage::{month_start, RoomHour};

fn user(project: &str, id: &str) -> Grant {
    Grant {
        user_id: Some(id.to_owned()),
        ..grant(project)
    }
}

/// Reads binary frames until `n` have arrived; returns their lengths.
async fn frames(client: &mut Client, n: usize) -> Vec<usize> {
    let mut lengths = Vec::new();
    while lengths.len() < n {
        match client.next().await {
            Outbound::Binary(frame) => lengths.push(frame.len()),
            Outbound::Close { code, reason } => panic!("closed: {code} {reason}"),
        }
    }
    lengths
}

/// Sends `message` and returns its length on the wire.
fn send(client: &Client, message: Message<'_>) -> usize {
    let len = message.encode().len();
    client.send(message);
    len
}

fn totals(rows: &[RoomHour]) -> [i64; 4] {
    rows.iter().fold([0; 4], |t, r| {
        [
            t[0] + r.messages_in,
            t[1] + r.messages_out,
            t[2] + r.bytes_in,
            t[3] + r.bytes_out,
        ]
    })
}

#[tokio::test]
async fn every_frame_in_and_out_is_metered_exactly() {
    let mut h = Harness::new().await;
    let room = key("prj_m", "doc");
    let (mut bytes_in, mut bytes_out) = (0, 0);
    // Joined: each got the room's sync step 1 (one frame).
    let mut a = Client::joined(&h.rooms, &room, user("prj_m", "ada")).await;
    let mut b = Client::joined(&h.rooms, &room, user("prj_m", "bob")).await;
    let mut reader = Client::joined(
        &h.rooms,
        &room,
        Grant {
            can_write: false,
            ..user("prj_m", "ada")
        },
    )
    .await;
    let empty_step1 = Message::SyncStep1(&[0]).encode().len();
    bytes_out += 3 * empty_step1;

    let author = Author::new(7);
    for i in 0..10 {
        let update = author.type_text("t", &"x".repeat(i + 1));
        bytes_in += send(&a, Message::Update(&update));
    }
    // Relayed to the two others, never back to the sender.
    bytes_out += frames(&mut b, 10).await.iter().sum::<usize>();
    bytes_out += frames(&mut reader, 10).await.iter().sum::<usize>();
    // A write from the read-only connection: dropped, answered with the auth refusal.
    let update = Author::new(8).type_text("t", "no");
    bytes_in += send(&reader, Message::Update(&update));
    bytes_out += frames(&mut reader, 1).await.iter().sum::<usize>();
    // Sync step 1 and its answer.
    bytes_in += send(&a, Message::SyncStep1(&[0]));
    bytes_out += frames(&mut a, 1).await.iter().sum::<usize>();

    // Shutdown: the sessions end, then the last flush writes everything.
    h.restart().await;
    let rows = h.usage.room_hours("prj_m", 0, i64::MAX).await.unwrap();
    let in_frames = 10 + 1 + 1;
    let out_frames = 3 + 10 + 10 + 1 + 1;
    assert_eq!(
        totals(&rows),
        [in_frames, out_frames, bytes_in as i64, bytes_out as i64]
    );
    assert!(rows.iter().all(|r| r.active && r.room == "doc"));
    assert_eq!(rows.iter().map(|r| r.peak_connections).max(), Some(3));
    let peaks = h.usage.project_hours("prj_m", 0, i64::MAX).await.unwrap();
    assert_eq!(peaks.iter().map(|p| p.peak_connections).max(), Some(3));
    // Two users (ada twice), in this month.
    let now = crate::store::unix_ms();
    let users = h
        .usage
        .monthly_users("prj_m", month_start(now) - 1, i64::MAX)
        .await
        .unwrap();
    assert_eq!(users.iter().map(|m| m.users).sum::<i64>(), 2);
    // The room's stored size was measured while it was loaded.
    let stored: i64 = rows.iter().filter_map(|r| r.storage_bytes).max().unwrap();
    let logged: usize = h
        .store
        .load("prj_m", "doc")
        .await
        .unwrap()
        .updates
        .iter()
        .map(|(_, u)| u.len())
        .sum();
    assert_eq!(stored, logged as i64);
}

#[tokio::test]
async fn refused_connections_are_not_metered() {
    let mut h = Harness::new().await;
    let room = key("prj_r", "doc");
    let one = Limits {
        connections_per_project: 1,
        connections_per_room: 1,
        rooms_per_project: 10,
        max_document_bytes: u64::MAX,
        messages_per_second: 1_000,
        message_burst: 1_000,
        bytes_per_second: u64::MAX / 2,
        byte_burst: u64::MAX / 2,
        rest_requests_per_minute: 1_000,
        history_retention_days: 7,
    };
    let limited = |id: &str| Grant {
        limits: Some(one),
        ..user("prj_r", id)
    };
    let _kept = Client::joined(&h.rooms, &room, limited("ada")).await;
    let mut refused = Client::spawn_for_test(&h.rooms, &room, limited("eve"));
    assert_eq!(refused.closed().await.0, close::RATE_LIMITED);
    h.restart().await;
    let rows = h.usage.room_hours("prj_r", 0, i64::MAX).await.unwrap();
    assert_eq!(
        totals(&rows),
        [0, 1, 0, Message::SyncStep1(&[0]).encode().len() as i64]
    );
    let users = h.usage.monthly_users("prj_r", 0, i64::MAX).await.unwrap();
    assert_eq!(
        users.iter().map(|m| m.users).sum::<i64>(),
        1,
        "eve never got in"
    );
}
