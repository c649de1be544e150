//! Presence through the hub: others appear with the server-attached user, change,
//! disappear, time out; our own state is renewed and defended.

use serde_json::json;

use super::net::Net;
use crate::awareness::{self, AwarenessEntry};
use crate::client::{CallError, Event, Other};
use crate::Message;

fn others_events(net: &Net, i: usize) -> Vec<Vec<Other>> {
    net.clients[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::OthersChanged(list) => Some(list.clone()),
            _ => None,
        })
        .collect()
}

fn awareness_frame(client_id: u64, clock: u64, state: &str) -> Vec<u8> {
    let update = awareness::encode_update([AwarenessEntry {
        client_id,
        clock,
        state,
    }]);
    Message::Awareness(&update).encode()
}

fn awareness_sent(net: &Net, i: usize) -> usize {
    net.clients[i]
        .sent_messages()
        .iter()
        .filter(|m| matches!(m, Message::Awareness(_)))
        .count()
}

#[test]
fn others_appear_with_the_server_attached_user() {
    let mut net = Net::new(2);
    net.connect_all();
    net.clients[0]
        .session
        .set_presence(net.now, json!({"cursor": 4, "user": {"id": "forged"}}))
        .expect("object");
    net.pump();
    let others = net.clients[1].session.others();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].client_id, net.clients[0].session.client_id());
    assert_eq!(others[0].presence, json!({"cursor": 4}));
    assert_eq!(others[0].user_id(), Some("usr_0"));
    assert_eq!(others_events(&net, 1).last(), Some(&others));
    // We never list ourselves, though the server echoes our state back.
    assert!(net.clients[0]
        .session
        .others()
        .iter()
        .all(|o| o.client_id != net.clients[0].session.client_id()));
}

#[test]
fn update_presence_merges_and_non_objects_are_refused() {
    let mut net = Net::new(2);
    net.connect_all();
    let s = &mut net.clients[0].session;
    s.set_presence(0, json!({"a": 1, "b": 2})).expect("object");
    s.update_presence(0, json!({"b": 3})).expect("object");
    assert_eq!(
        s.presence().cloned().map(serde_json::Value::Object),
        Some(json!({"a": 1, "b": 3}))
    );
    assert_eq!(
        s.set_presence(0, json!([1])),
        Err(CallError::PresenceNotAnObject)
    );
    net.pump();
    assert_eq!(
        net.clients[1].session.others()[0].presence,
        json!({"a": 1, "b": 3})
    );
}

#[test]
fn presence_set_while_offline_is_sent_on_connect() {
    let mut net = Net::new(2);
    net.clients[0]
        .session
        .set_presence(net.now, json!({"name": "early"}))
        .expect("object");
    net.connect_all();
    assert_eq!(
        net.clients[1].session.others()[0].presence,
        json!({"name": "early"})
    );
}

#[test]
fn others_disappear_when_they_leave_or_hide_or_we_disconnect() {
    let mut net = Net::new(3);
    net.connect_all();
    assert_eq!(net.clients[2].session.others().len(), 2);
    net.clients[0].session.clear_presence(net.now);
    net.pump();
    assert_eq!(net.clients[2].session.others().len(), 1);
    net.clients[1].session.leave(net.now);
    net.pump();
    assert!(net.clients[2].session.others().is_empty());
    assert_eq!(others_events(&net, 2).last(), Some(&Vec::new()));
    // Our own disconnection empties the list too (the server resends it on reconnect).
    net.clients[0]
        .session
        .set_presence(net.now, json!({}))
        .expect("object");
    net.pump();
    assert_eq!(net.clients[2].session.others().len(), 1);
    net.cut(2);
    assert!(net.clients[2].session.others().is_empty());
    net.restore(2);
    net.advance(60_000);
    assert_eq!(net.clients[2].session.others().len(), 1);
}

#[test]
fn others_time_out_without_renewal() {
    let mut net = Net::new(1);
    net.connect_all();
    // A client the server relays once and then never again.
    net.inject(0, &awareness_frame(77, 3, r#"{"x":1}"#));
    assert_eq!(net.clients[0].session.others().len(), 1);
    net.advance(29_000);
    assert_eq!(net.clients[0].session.others().len(), 1);
    net.advance(1_000);
    assert!(net.clients[0].session.others().is_empty());
    assert_eq!(others_events(&net, 0).last(), Some(&Vec::new()));
}

#[test]
fn renewals_keep_others_alive_without_reporting_changes() {
    let mut net = Net::new(2);
    net.connect_all();
    let before = others_events(&net, 1).len();
    net.advance(120_000);
    assert_eq!(net.clients[1].session.others().len(), 1);
    assert_eq!(others_events(&net, 1).len(), before);
}

#[test]
fn presence_is_renewed_every_15_seconds() {
    let mut net = Net::new(1);
    net.connect_all();
    let initial = awareness_sent(&net, 0);
    net.advance(14_999);
    assert_eq!(awareness_sent(&net, 0), initial);
    net.advance(1);
    assert_eq!(awareness_sent(&net, 0), initial + 1);
    net.advance(45_000);
    assert_eq!(awareness_sent(&net, 0), initial + 4);
    // The echoes of those renewals keep the connection alive.
    assert_eq!(net.clients[0].connects.len(), 1);
}

#[test]
fn a_remote_removal_of_our_state_is_overruled() {
    let mut net = Net::new(2);
    net.connect_all();
    let me = net.clients[0].session.client_id();
    let clock = {
        let Some(Message::Awareness(bytes)) = net.clients[0]
            .sent_messages()
            .into_iter()
            .rev()
            .find(|m| matches!(m, Message::Awareness(_)))
        else {
            panic!("presence was sent");
        };
        awareness::decode_update(bytes).expect("valid")[0].clock
    };
    let sent = awareness_sent(&net, 0);
    net.inject(0, &awareness_frame(me, clock, "null"));
    assert_eq!(awareness_sent(&net, 0), sent + 1);
    assert_eq!(net.clients[1].session.others().len(), 1);
}

#[test]
fn query_awareness_is_answered_with_our_state() {
    let mut net = Net::new(1);
    net.connect_all();
    let sent = awareness_sent(&net, 0);
    net.inject(0, &Message::QueryAwareness.encode());
    assert_eq!(awareness_sent(&net, 0), sent + 1);
}

#[test]
fn a_reconnected_client_is_visible_again_at_once() {
    // The server bumps our clock when it removes us; the next announcement must beat it.
    let mut net = Net::new(2);
    net.connect_all();
    net.server_close(0, 1012, "restarting");
    net.pump();
    assert!(net.clients[1].session.others().is_empty());
    net.advance(1_000);
    assert_eq!(net.clients[1].session.others().len(), 1);
}
