//! Hostile presence never reaches the others: states out of bounds close only their
//! sender (4400) and are neither relayed nor listed; echoes of other clients' states are
//! dropped without closing anyone; and another node may only change the awareness ids it
//! owns (what arrives over Redis is delivered to the room as `Remote` messages, which is
//! what these tests send).

use bytes::Bytes;
use tandem_protocol::awareness::{self, AwarenessEntry};
use tandem_protocol::{close, Message};

use super::harness::{grant, key, Client, Harness};
use crate::rooms::cluster::Kind;
use crate::rooms::msg::{Open, Remote, RoomMsg};
use crate::rooms::{RoomKey, Rooms};

/// Every awareness entry for `client_id` among `frames`.
fn about(frames: &[Vec<u8>], client_id: u64) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match Message::decode(f) {
            Ok(Message::Awareness(bytes)) => Some(
                awareness::decode_update(bytes)
                    .unwrap()
                    .iter()
                    .filter(|e| e.client_id == client_id)
                    .map(|e| e.state.to_owned())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The REST presence listing's states, as `(client id, JSON text)`.
async fn listed(rooms: &Rooms, room: &RoomKey) -> Vec<(u64, String)> {
    let mut states: Vec<(u64, String)> = rooms
        .presence(room)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|e| e.states)
        .map(|(id, state)| (id, state.to_string()))
        .collect();
    states.sort();
    states
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test]
async fn out_of_bounds_states_close_their_sender_and_reach_nobody() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    bob.send_awareness(1, 1, r#"{"name":"bob"}"#);
    assert_eq!(
        about(&bob.round_trip().await, 1),
        [r#"{"name":"bob"}"#.to_owned()]
    );
    let max = h.rooms.config().max_presence_bytes;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("arrays 1k deep", entry(7, 1, &nested(1000, "[", "]"))),
        (
            "objects 100k deep",
            entry(7, 1, &nested(100_000, "{\"a\":", "}")),
        ),
        (
            "mixed 1M deep",
            entry(7, 1, &nested(500_000, "[{\"a\":", "}]")),
        ),
        ("33 deep", entry(7, 1, &nested(33, "[", "]"))),
        (
            "oversized",
            entry(7, 1, &format!("\"{}\"", "x".repeat(max))),
        ),
        ("not JSON", entry(7, 1, "{\"a\":")),
        ("two documents", entry(7, 1, "{} {}")),
        ("client id past 2^53", entry(1 << 53, 1, "{}")),
        ("clock past 2^53", entry(7, 1 << 53, "{}")),
    ];
    for (name, frame) in cases {
        let mut mallory = Client::joined(&h.rooms, &room, grant("prj_a")).await;
        mallory.send(Message::Awareness(&frame));
        let (code, reason) = mallory.closed().await;
        assert_eq!(code, close::MALFORMED, "{name}: {reason}");
        let seen = bob.round_trip().await;
        assert!(about(&seen, 7).is_empty(), "{name} reached bob");
        assert!(about(&seen, 1 << 53).is_empty(), "{name} reached bob");
        assert_eq!(
            listed(&h.rooms, &room).await,
            [(1, r#"{"name":"bob"}"#.to_owned())],
            "{name}"
        );
    }
    // A late joiner sees bob only.
    let mut late = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let frames = late.round_trip().await;
    assert!(about(&frames, 7).is_empty());
}

fn entry(client_id: u64, clock: u64, state: &str) -> Vec<u8> {
    awareness::encode_update([AwarenessEntry {
        client_id,
        clock,
        state,
    }])
}

#[tokio::test]
async fn an_echo_of_someone_elses_state_is_dropped_without_closing() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut alice = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    alice.send_awareness(1, 3, r#"{"n":"alice"}"#);
    alice.round_trip().await;
    bob.round_trip().await;
    // A stock client re-encodes what it echoes (`1e20` comes back as 21 digits), so an
    // echo may be over the size limit: it is not the echoing client's to set anyway.
    let max = h.rooms.config().max_presence_bytes;
    let grown = format!("[{}0]", "100000000000000000000,".repeat(max / 22 + 1));
    bob.send(Message::Awareness(&entry(1, 4, &grown)));
    bob.send_awareness(1, 5, "null");
    let seen = bob.round_trip().await;
    assert!(about(&seen, 1).is_empty(), "{seen:?}");
    assert_eq!(
        listed(&h.rooms, &room).await,
        [(1, r#"{"n":"alice"}"#.to_owned())]
    );
    // Its own state still counts, within bounds.
    bob.send_awareness(2, 1, "{}");
    assert_eq!(about(&alice.round_trip().await, 2), ["{}".to_owned()]);
}

#[tokio::test]
async fn one_connection_holds_a_bounded_number_of_client_ids() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let max = h.rooms.config().max_presence_clients as u64;
    let mut mallory = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    for id in 0..max {
        mallory.send_awareness(100 + id, 1, "{}");
    }
    mallory.round_trip().await;
    // Leaving frees an id: still within the bound.
    mallory.send_awareness(100, 1, "null");
    mallory.send_awareness(200, 1, "{}");
    mallory.round_trip().await;
    mallory.send_awareness(300, 1, "{}");
    assert_eq!(mallory.closed().await.0, close::MALFORMED);
    let seen = bob.round_trip().await;
    assert!(about(&seen, 300).is_empty());
    // Its states went with it.
    assert!(listed(&h.rooms, &room).await.is_empty());
}

/// Delivers an awareness update from node `node`, as the cluster layer would.
async fn from_node(rooms: &Rooms, room: &RoomKey, node: u64, entries: &[(u64, u64, &str)]) {
    let update =
        awareness::encode_update(
            entries
                .iter()
                .map(|(client_id, clock, state)| AwarenessEntry {
                    client_id: *client_id,
                    clock: *clock,
                    state,
                }),
        );
    let frame = Bytes::from(Message::Awareness(&update).encode());
    let remote = Remote::Frame {
        node,
        kind: Kind::Awareness,
        frame,
    };
    let handle = rooms.room(room, || Open::Create);
    handle.tx.send(RoomMsg::Remote(remote)).await.unwrap();
}

#[tokio::test]
async fn another_node_changes_only_the_ids_it_owns() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut alice = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    alice.send_awareness(1, 1, r#"{"n":"alice"}"#);
    bob.round_trip().await;
    alice.round_trip().await;
    // Node 7's client 50 appears here.
    from_node(&h.rooms, &room, 7, &[(50, 1, r#"{"n":"carol"}"#)]).await;
    assert_eq!(
        about(&bob.round_trip().await, 50),
        [r#"{"n":"carol"}"#.to_owned()]
    );
    // Node 8 may neither overwrite nor delete node 7's client, nor this node's.
    from_node(
        &h.rooms,
        &room,
        8,
        &[(50, 9, r#"{"n":"forged"}"#), (1, 9, "null")],
    )
    .await;
    from_node(&h.rooms, &room, 7, &[(1, 9, r#"{"n":"forged"}"#)]).await;
    // Nor may a local connection take node 7's client over.
    bob.send_awareness(50, 10, "null");
    let seen = bob.round_trip().await;
    assert!(
        about(&seen, 50).is_empty() && about(&seen, 1).is_empty(),
        "{seen:?}"
    );
    // Hostile states from a node are not relayed either.
    let deep = nested(10_000, "[", "]");
    from_node(&h.rooms, &room, 7, &[(51, 1, &deep)]).await;
    from_node(&h.rooms, &room, 7, &[(52, 1, "{")]).await;
    from_node(&h.rooms, &room, 7, &[(1 << 60, 1, "{}")]).await;
    let seen = bob.round_trip().await;
    assert!(about(&seen, 51).is_empty() && about(&seen, 52).is_empty());
    assert!(about(&seen, 1 << 60).is_empty());
    // Node 7 may change its own.
    from_node(&h.rooms, &room, 7, &[(50, 2, "null")]).await;
    assert_eq!(about(&bob.round_trip().await, 50), ["null".to_owned()]);
    assert_eq!(
        listed(&h.rooms, &room).await,
        [(1, r#"{"n":"alice"}"#.to_owned())]
    );
    // Alice heard nothing about herself meanwhile: her state was never touched.
    assert!(about(&alice.round_trip().await, 1).is_empty());
}

#[tokio::test]
async fn events_are_bounded_like_presence() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let max = h.rooms.config().max_event_bytes;
    for bad in [
        nested(1000, "[", "]"),
        nested(33, "{\"a\":", "}"),
        format!("\"{}\"", "x".repeat(max)),
    ] {
        let mallory = Client::joined(&h.rooms, &room, grant("prj_a")).await;
        let mut mallory = mallory;
        mallory.send(Message::Event(&bad));
        assert_eq!(mallory.closed().await.0, close::MALFORMED);
    }
    assert!(super::harness::events(&bob.round_trip().await).is_empty());
    // The REST route holds events to the same bounds.
    let deep: serde_json::Value = serde_json::from_str(&nested(40, "[", "]")).unwrap();
    assert!(matches!(
        h.rooms.broadcast_event(&room, deep).await,
        Err(crate::rooms::RoomError::InvalidEvent(_))
    ));
    // And from another node: not relayed.
    let frame = Bytes::from(Message::Event(&nested(100, "[", "]")).encode());
    let handle = h.rooms.room(&room, || Open::Create);
    let remote = Remote::Frame {
        node: 7,
        kind: Kind::Event,
        frame,
    };
    handle.tx.send(RoomMsg::Remote(remote)).await.unwrap();
    assert!(super::harness::events(&bob.round_trip().await).is_empty());
}
