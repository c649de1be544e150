//! Document sync, custom events and the other per-connection behaviour, through the hub.

use serde_json::json;
use yrs::{GetString, Map, Text, Transact};

use super::net::{doc_json, Net};
use crate::client::{CallError, Event, Output, SessionError, Status};
use crate::event::ServerEvent;
use crate::Message;

fn insert_text(net: &Net, i: usize, text: &str) {
    let t = net.clients[i].doc.get_or_insert_text("t");
    let mut txn = net.clients[i].doc.transact_mut();
    let len = t.len(&txn);
    t.insert(&mut txn, len, text);
}

fn text(net: &Net, i: usize) -> String {
    let t = net.clients[i].doc.get_or_insert_text("t");
    let txn = net.clients[i].doc.transact();
    t.get_string(&txn)
}

fn updates_sent(net: &Net, i: usize) -> usize {
    net.clients[i]
        .sent_messages()
        .iter()
        .filter(|m| matches!(m, Message::Update(_)))
        .count()
}

#[test]
fn handshake_reaches_synced_like_the_stock_client() {
    let mut net = Net::new(1);
    assert_eq!(net.clients[0].session.status(), &Status::Initial);
    net.connect_all();
    let c = &net.clients[0];
    assert_eq!(
        c.statuses(),
        [Status::Connecting, Status::Connected, Status::Synced]
    );
    let sent = c.sent_messages();
    // Step 1 first, then presence; then the answer to the server's step 1.
    assert!(matches!(sent[0], Message::SyncStep1(_)));
    assert!(matches!(sent[1], Message::Awareness(_)));
    assert!(matches!(sent[2], Message::SyncStep2(_)));
    assert_eq!(c.connects, [(1_000, false)]);
}

#[test]
fn two_clients_converge_and_remote_changes_are_reported() {
    let mut net = Net::new(2);
    net.connect_all();
    insert_text(&net, 0, "hello");
    {
        let m = net.clients[1].doc.get_or_insert_map("m");
        let mut txn = net.clients[1].doc.transact_mut();
        m.insert(&mut txn, "k", 7);
    }
    net.pump();
    assert_eq!(text(&net, 1), "hello");
    assert_eq!(net.clients[0].json(), net.clients[1].json());
    assert_eq!(net.clients[0].json(), doc_json(&net.hub.doc));
    for c in &net.clients {
        assert!(c.events.contains(&Event::DocumentChanged));
    }
}

#[test]
fn remote_updates_are_not_echoed_back() {
    let mut net = Net::new(2);
    net.connect_all();
    insert_text(&net, 0, "abc");
    net.pump();
    assert_eq!(updates_sent(&net, 0), 1);
    assert_eq!(
        updates_sent(&net, 1),
        0,
        "client 1 sent back what it received"
    );
}

#[test]
fn several_local_transactions_go_as_one_merged_update() {
    let mut net = Net::new(2);
    net.connect_all();
    insert_text(&net, 0, "a");
    insert_text(&net, 0, "b");
    insert_text(&net, 0, "c");
    net.pump();
    assert_eq!(updates_sent(&net, 0), 1);
    assert_eq!(text(&net, 1), "abc");
}

#[test]
fn offline_edits_are_sent_on_reconnect() {
    let mut net = Net::new(2);
    net.connect_all();
    insert_text(&net, 0, "before ");
    net.pump();
    net.cut(0);
    assert!(matches!(
        net.clients[0].session.status(),
        Status::Reconnecting { attempt: 1 }
    ));
    insert_text(&net, 0, "offline");
    insert_text(&net, 1, "|other");
    net.advance(5_000);
    assert_ne!(text(&net, 1), text(&net, 0));
    net.restore(0);
    net.advance(60_000);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
    assert_eq!(text(&net, 0), text(&net, 1));
    assert!(text(&net, 1).contains("offline"));
    assert!(text(&net, 0).contains("|other"));
    assert_eq!(net.clients[1].json(), doc_json(&net.hub.doc));
}

#[test]
fn edits_made_before_the_first_connection_are_synced() {
    let mut net = Net::new(2);
    insert_text(&net, 0, "early");
    net.connect_all();
    assert_eq!(text(&net, 1), "early");
}

#[test]
fn updates_are_not_forwarded_before_the_servers_step1_is_answered() {
    let mut net = Net::new(1);
    net.clients[0].session.connect(net.now);
    // Open the socket by hand and edit before any server frame arrives.
    let out = net.clients[0].session.poll_output();
    assert_eq!(
        out,
        Some(Output::Connect {
            refresh_token: false
        })
    );
    net.clients[0].session.on_open(net.now);
    insert_text(&net, 0, "x");
    let frames: Vec<Output> = std::iter::from_fn(|| net.clients[0].session.poll_output())
        .filter(|o| matches!(o, Output::Send(_)))
        .collect();
    assert_eq!(frames.len(), 2, "step 1 and presence only: {frames:?}");
    // The server's step 1 gets a step 2 that holds the edit.
    net.clients[0]
        .session
        .on_frame(net.now, &Message::SyncStep1(&[0]).encode());
    let Some(Output::Send(frame)) = net.clients[0].session.poll_output() else {
        panic!("expected the step 2 answer");
    };
    let Ok(Message::SyncStep2(diff)) = Message::decode(&frame) else {
        panic!("expected step 2");
    };
    assert!(diff.len() > 2);
    // From now on edits are forwarded.
    insert_text(&net, 0, "y");
    let Some(Output::Send(frame)) = net.clients[0].session.poll_output() else {
        panic!("expected an update");
    };
    assert!(matches!(Message::decode(&frame), Ok(Message::Update(_))));
}

#[test]
fn the_change_notifier_fires_for_local_changes_only() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut net = Net::new(2);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    net.clients[0]
        .session
        .set_change_notifier(Some(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })));
    net.connect_all();
    insert_text(&net, 1, "remote");
    net.pump();
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    insert_text(&net, 0, "local");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn custom_events_reach_the_others_with_their_sender() {
    let mut net = Net::new(3);
    net.connect_all();
    net.clients[0]
        .session
        .broadcast(&json!({"type": "ping", "n": 1}))
        .expect("connected");
    net.pump();
    let expected = Event::Custom(ServerEvent {
        event: json!({"type": "ping", "n": 1}),
        connection_id: Some(0),
        user_id: Some("usr_0".to_owned()),
    });
    assert!(net.clients[1].events.contains(&expected));
    assert!(net.clients[2].events.contains(&expected));
    assert!(!net.clients[0].events.contains(&expected));
}

#[test]
fn events_from_the_server_and_bad_envelopes() {
    let mut net = Net::new(1);
    net.connect_all();
    let from_server = ServerEvent {
        event: json!("maintenance"),
        connection_id: None,
        user_id: None,
    };
    net.inject(0, &Message::Event(&from_server.to_json()).encode());
    net.inject(0, &Message::Event("{\"no\":1}").encode());
    let events = &net.clients[0].events;
    assert!(events.contains(&Event::Custom(from_server)));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Error(SessionError::Protocol { .. }))));
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn broadcast_while_disconnected_is_refused() {
    let mut net = Net::new(1);
    assert_eq!(
        net.clients[0].session.broadcast(&json!(1)),
        Err(CallError::NotConnected)
    );
    net.connect_all();
    net.cut(0);
    assert_eq!(
        net.clients[0].session.broadcast(&json!(1)),
        Err(CallError::NotConnected)
    );
}

#[test]
fn auth_denied_surfaces_read_only_and_keeps_the_connection() {
    let mut net = Net::new(2);
    net.clients[0].read_only = true;
    net.connect_all();
    let c = &net.clients[0];
    assert!(c.events.contains(&Event::Error(SessionError::ReadOnly {
        reason: "read-only token".to_owned()
    })));
    assert_eq!(c.session.status(), &Status::Synced);
    assert!(c.session.is_read_only());
    // It still receives others' edits, and does not push its own.
    insert_text(&net, 1, "from writer");
    insert_text(&net, 0, "from reader");
    net.pump();
    assert!(text(&net, 0).contains("from writer"));
    assert_eq!(text(&net, 1), "from writer");
    assert_eq!(updates_sent(&net, 0), 0);
    assert!(net.clients[0].online);
}

#[test]
fn leave_withdraws_presence_closes_and_never_reconnects() {
    let mut net = Net::new(2);
    net.connect_all();
    assert_eq!(net.clients[1].session.others().len(), 1);
    net.clients[0].session.leave(net.now);
    net.pump();
    let c = &net.clients[0];
    assert_eq!(c.session.status(), &Status::Disconnected { error: None });
    assert_eq!(c.closes.len(), 1);
    let Some(Message::Awareness(last)) = c.sent_messages().last().copied() else {
        panic!("the last frame should withdraw presence");
    };
    let entries = crate::awareness::decode_update(last).expect("valid");
    assert!(entries[0].is_removal());
    assert!(net.clients[1].session.others().is_empty());
    net.advance(600_000);
    assert_eq!(net.clients[0].connects.len(), 1);
    // Entering again works.
    net.clients[0].session.connect(net.now);
    net.pump();
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn unreadable_server_frames_are_reported_and_resync_once() {
    let mut net = Net::new(1);
    net.connect_all();
    let before = net.clients[0].sent.len();
    // An unknown type from a newer server is ignored silently.
    net.inject(0, &[42, 1, 2]);
    assert_eq!(net.clients[0].events.len(), 3);
    // A sync update yrs cannot decode: reported, and step 1 is sent again (once).
    net.inject(0, &Message::Update(&[0xff, 0xff, 0xff]).encode());
    net.inject(0, &Message::Update(&[0xff, 0xff, 0xff]).encode());
    let errors = net.clients[0]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Error(SessionError::Protocol { .. })))
        .count();
    assert_eq!(errors, 2);
    let step1s = net.clients[0].sent_messages()[before..]
        .iter()
        .filter(|m| matches!(m, Message::SyncStep1(_)))
        .count();
    assert_eq!(step1s, 1);
    // A truncated frame too.
    net.inject(0, &[0, 2, 9]);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn a_session_can_move_to_another_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<crate::client::ClientSession>();
}

#[test]
fn a_dropped_session_detaches_from_the_document() {
    let doc = yrs::Doc::new();
    let mut session =
        crate::client::ClientSession::new(doc.clone(), super::net::config(1)).expect("attach");
    session.connect(0);
    session.on_open(0);
    session.on_frame(0, &Message::SyncStep1(&[0]).encode());
    drop(session);
    let t = doc.get_or_insert_text("t");
    t.insert(&mut doc.transact_mut(), 0, "still works");
    // A new session on the same document starts clean.
    let mut again =
        crate::client::ClientSession::new(doc.clone(), super::net::config(2)).expect("attach");
    assert_eq!(again.poll_output(), None);
}

#[test]
fn a_session_cannot_attach_inside_a_transaction() {
    let doc = yrs::Doc::new();
    let _txn = doc.transact_mut();
    assert_eq!(
        crate::client::ClientSession::new(doc.clone(), super::net::config(1)).err(),
        Some(CallError::DocumentBusy)
    );
}
