//! Identity in the room: the user the token names is attached to presence, and custom
//! events are relayed to the other connections with their sender.

use serde_json::{json, Value};
use tandem_protocol::awareness;
use tandem_protocol::{close, Message};

use super::harness::{events, grant, key, Client, Harness};
use crate::rooms::auth::Grant;

fn alice_grant() -> Grant {
    Grant {
        user_id: Some("u_alice".to_owned()),
        user_info: Some(json!({"name": "Alice", "color": "#f00"})),
        ..grant("prj_a")
    }
}

/// The state of `client_id` if `message` is an awareness update about it: `Some(None)`
/// when it removes the client.
fn state_of(message: &Message<'_>, client_id: u64) -> Option<Option<Value>> {
    let Message::Awareness(bytes) = message else {
        return None;
    };
    let entries = awareness::decode_update(bytes).unwrap();
    let entry = entries.iter().find(|e| e.client_id == client_id)?;
    Some(serde_json::from_str::<Option<Value>>(entry.state).unwrap())
}

#[tokio::test]
async fn presence_carries_the_user_the_token_names() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut alice = Client::joined(&h.rooms, &room, alice_grant()).await;
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;

    // Alice's client claims to be someone else; the server says who she is.
    alice.send_awareness(
        11,
        1,
        r##"{"user":{"name":"Mallory","color":"#000"},"cursor":{"anchor":3}}"##,
    );
    let expected = json!({
        "user": {"name": "Alice", "color": "#f00", "id": "u_alice"},
        "cursor": {"anchor": 3},
    });
    let seen = bob.until(|m| state_of(m, 11)).await;
    assert_eq!(seen.as_ref(), Some(&expected));

    let presence = h.rooms.presence(&room).await.unwrap();
    assert_eq!(presence.len(), 2);
    let entry = presence
        .iter()
        .find(|e| e.user_id.as_deref() == Some("u_alice"))
        .unwrap();
    assert_eq!(
        entry.user_info,
        Some(json!({"name": "Alice", "color": "#f00"}))
    );
    assert_eq!(entry.states, vec![(11, expected)]);
    let anonymous = presence.iter().find(|e| e.user_id.is_none()).unwrap();
    assert!(anonymous.states.is_empty());

    // A connection without a user: its state passes through as sent.
    bob.send_awareness(22, 1, r#"{"user":{"name":"Bob"}}"#);
    let seen = alice.until(|m| state_of(m, 22)).await;
    assert_eq!(seen, Some(json!({"user": {"name": "Bob"}})));

    // Leaving (`null`) passes through.
    alice.send_awareness(11, 1, "null");
    assert_eq!(bob.until(|m| state_of(m, 11)).await, None);
    let presence = h.rooms.presence(&room).await.unwrap();
    let entry = presence
        .iter()
        .find(|e| e.user_id.as_deref() == Some("u_alice"))
        .unwrap();
    assert!(entry.states.is_empty());

    // A state that is not an object has nowhere to carry the user: refused.
    alice.send_awareness(11, 2, r#""just a string""#);
    assert_eq!(alice.closed().await.0, close::MALFORMED);
}

#[tokio::test]
async fn events_go_to_the_other_connections_with_their_sender() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut alice = Client::joined(&h.rooms, &room, alice_grant()).await;
    let mut bob = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    let no_presence = Grant {
        can_presence: false,
        ..grant("prj_a")
    };
    let mut carol = Client::joined(&h.rooms, &room, no_presence).await;
    let alice_conn = h
        .rooms
        .presence(&room)
        .await
        .unwrap()
        .iter()
        .find(|e| e.user_id.as_deref() == Some("u_alice"))
        .unwrap()
        .connection_id;

    alice.send(Message::Event(r#"{"kind":"jump","to":3}"#));
    let first = json!({
        "event": {"kind": "jump", "to": 3},
        "connectionId": alice_conn,
        "userId": "u_alice",
    });
    assert_eq!(bob.event().await, first);
    // Receiving needs no permission.
    assert_eq!(events(&carol.round_trip().await), [first]);
    // Not back to the sender.
    assert!(events(&alice.round_trip().await).is_empty());

    // Carol may not send events: hers is dropped (by the time she has her sync answer,
    // her session has handled it), so the next event Bob sees is Alice's second.
    carol.send(Message::Event(r#""from carol""#));
    carol.round_trip().await;
    alice.send(Message::Event("2"));
    assert_eq!(bob.event().await["event"], json!(2));

    // A connection without a user sends with a null user id.
    bob.send(Message::Event("[]"));
    let from_bob = alice.event().await;
    assert_eq!(from_bob["event"], json!([]));
    assert_eq!(from_bob["userId"], Value::Null);
    assert!(from_bob["connectionId"].is_u64());

    // Events are not stored.
    assert_eq!(h.stored_updates(&room).await, Some(0));

    // An event must be JSON.
    bob.send(Message::Event("{not json"));
    assert_eq!(bob.closed().await.0, close::MALFORMED);
}
