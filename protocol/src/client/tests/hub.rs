//! A fake room server built from the same codec: a yrs `Doc`, an `AwarenessTable`, and the
//! relay rules of Tandem's server (step 1 on connect, step 2 answers, updates to the other
//! connections, awareness to everyone with `user` attached, events to the others).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::awareness::{self, AwarenessEntry, AwarenessTable};
use crate::event::ServerEvent;
use crate::Message;

/// One open connection at the hub.
#[derive(Debug, Default)]
struct HubConn {
    user_id: String,
    read_only: bool,
    awareness_ids: Vec<u64>,
}

/// Frames addressed to clients (by index).
pub type Outbox = Vec<(usize, Vec<u8>)>;

/// The fake server.
pub struct Hub {
    pub doc: Doc,
    pub awareness: AwarenessTable,
    conns: BTreeMap<usize, HubConn>,
}

impl Hub {
    pub fn new() -> Self {
        Self {
            doc: Doc::with_client_id(1),
            awareness: AwarenessTable::new(),
            conns: BTreeMap::new(),
        }
    }

    /// A client connected: greet it with our step 1 and the live presence.
    pub fn open(&mut self, client: usize, read_only: bool) -> Outbox {
        self.conns.insert(
            client,
            HubConn {
                user_id: format!("usr_{client}"),
                read_only,
                awareness_ids: Vec::new(),
            },
        );
        let sv = self.doc.transact().state_vector().encode_v1();
        let mut out = vec![(client, Message::SyncStep1(&sv).encode())];
        if read_only {
            out.push((client, Message::AuthDenied("read-only token").encode()));
        }
        if let Some(live) = self.awareness.encode_live() {
            out.push((client, Message::Awareness(&live).encode()));
        }
        out
    }

    /// A connection ended: remove its presence and tell the others.
    pub fn close(&mut self, client: usize, now_ms: u64) -> Outbox {
        let Some(conn) = self.conns.remove(&client) else {
            return Vec::new();
        };
        let removed = self.awareness.remove(conn.awareness_ids, now_ms);
        if removed.is_empty() {
            return Vec::new();
        }
        let frame = Message::Awareness(&awareness::encode_changes(&removed)).encode();
        self.to_all(&frame)
    }

    pub fn is_open(&self, client: usize) -> bool {
        self.conns.contains_key(&client)
    }

    /// A frame from `from`.
    pub fn receive(&mut self, from: usize, frame: &[u8], now_ms: u64) -> Outbox {
        let message = Message::decode(frame).expect("clients send valid frames");
        match message {
            Message::SyncStep1(sv) => {
                let sv = StateVector::decode_v1(sv).expect("valid state vector");
                let diff = self.doc.transact().encode_diff_v1(&sv);
                vec![(from, Message::SyncStep2(&diff).encode())]
            }
            Message::SyncStep2(update) | Message::Update(update) => {
                if self.conns.get(&from).is_none_or(|c| c.read_only) {
                    return Vec::new();
                }
                let decoded = Update::decode_v1(update).expect("valid update");
                self.doc
                    .transact_mut()
                    .apply_update(decoded)
                    .expect("update applies");
                let relay = Message::Update(update).encode();
                self.conns
                    .keys()
                    .filter(|c| **c != from)
                    .map(|c| (*c, relay.clone()))
                    .collect()
            }
            Message::Awareness(bytes) => self.on_awareness(from, bytes, now_ms),
            Message::QueryAwareness => match self.awareness.encode_live() {
                Some(live) => vec![(from, Message::Awareness(&live).encode())],
                None => Vec::new(),
            },
            Message::Event(json) => {
                let event: Value = serde_json::from_str(json).expect("events are JSON");
                let wrapped = ServerEvent {
                    event,
                    connection_id: Some(from as u64),
                    user_id: self.conns.get(&from).map(|c| c.user_id.clone()),
                }
                .to_json();
                let frame = Message::Event(&wrapped).encode();
                self.conns
                    .keys()
                    .filter(|c| **c != from)
                    .map(|c| (*c, frame.clone()))
                    .collect()
            }
            Message::AuthDenied(_)
            | Message::Hello(_)
            | Message::RefreshToken(_)
            | Message::Refreshed(_)
            | Message::Saved(_) => Vec::new(),
        }
    }

    fn on_awareness(&mut self, from: usize, bytes: &[u8], now_ms: u64) -> Outbox {
        let entries = awareness::decode_update(bytes).expect("valid awareness");
        let Some(conn) = self.conns.get_mut(&from) else {
            return Vec::new();
        };
        // Like the real server: the token's user info overwrites `state.user`.
        let states: Vec<String> = entries
            .iter()
            .map(|e| {
                if e.is_removal() {
                    return "null".to_owned();
                }
                let mut state: Value = serde_json::from_str(e.state).expect("JSON state");
                if let Value::Object(map) = &mut state {
                    map.insert("user".to_owned(), json!({ "id": conn.user_id }));
                }
                state.to_string()
            })
            .collect();
        let entries: Vec<AwarenessEntry<'_>> = entries
            .iter()
            .zip(&states)
            .map(|(e, state)| AwarenessEntry {
                client_id: e.client_id,
                clock: e.clock,
                state,
            })
            .collect();
        for e in &entries {
            if !conn.awareness_ids.contains(&e.client_id) {
                conn.awareness_ids.push(e.client_id);
            }
        }
        let changes = self.awareness.apply(&entries, now_ms);
        if changes.is_empty() {
            return Vec::new();
        }
        let frame = Message::Awareness(&awareness::encode_changes(&changes)).encode();
        self.to_all(&frame)
    }

    fn to_all(&self, frame: &[u8]) -> Outbox {
        self.conns.keys().map(|c| (*c, frame.to_vec())).collect()
    }
}
