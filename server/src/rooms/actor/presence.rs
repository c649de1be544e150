//! Presence in a room: the awareness table, which connection owns which awareness
//! client id, and relaying changes. States arrive already checked (and stamped with the
//! connection's user) by the session.

use std::collections::HashSet;

use bytes::Bytes;
use tandem_protocol::awareness::{self, Change};
use tandem_protocol::Message;

use super::remote::REMOTE_OWNER;
use super::RoomActor;
use crate::rooms::cluster::Kind;
use crate::rooms::msg::OwnedEntry;
use crate::rooms::ConnId;

impl RoomActor {
    pub(super) fn on_awareness(&mut self, conn: ConnId, entries: Vec<OwnedEntry>) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        // A connection may only speak for client ids it introduced (or new ones, or ones
        // last heard of through another node: a client that moved here).
        let allowed: Vec<_> = entries
            .iter()
            .filter(|e| {
                self.awareness_owner
                    .get(&e.client_id)
                    .is_none_or(|owner| *owner == conn || *owner == REMOTE_OWNER)
            })
            .map(|e| awareness::AwarenessEntry {
                client_id: e.client_id,
                clock: e.clock,
                state: &e.state,
            })
            .collect();
        let now = self.now_ms();
        let changes = self.awareness.apply(&allowed, now);
        // A client that moved here from another node may repeat the clock we last heard
        // from there (no change), but its state is now this connection's.
        for e in &allowed {
            let moved = self.awareness_owner.get(&e.client_id) == Some(&REMOTE_OWNER);
            if moved && !e.is_removal() && self.awareness.state(e.client_id).is_some() {
                self.awareness_owner.insert(e.client_id, conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.awareness_ids.insert(e.client_id);
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            if change.state.is_some() {
                self.awareness_owner.insert(change.client_id, conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.awareness_ids.insert(change.client_id);
                }
            } else {
                self.awareness_owner.remove(&change.client_id);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.awareness_ids.remove(&change.client_id);
                }
            }
        }
        // Like the reference server, awareness goes to everyone, the sender included:
        // stock clients count it as a sign of life and reconnect after 30 s without one.
        self.broadcast_awareness(&changes, true);
    }

    /// Sends `changes` to every local connection and, with `publish`, to the other
    /// nodes.
    pub(super) fn broadcast_awareness(&mut self, changes: &[Change], publish: bool) {
        if changes.is_empty() {
            return;
        }
        let frame = Bytes::from(Message::Awareness(&awareness::encode_changes(changes)).encode());
        if publish {
            self.publish(Kind::Awareness, &frame);
        }
        self.broadcast(None, &frame);
    }

    /// Removes states not renewed within the awareness timeout, and tells local
    /// connections (every node expires on its own clock).
    pub(super) fn expire_awareness(&mut self) {
        let now = self.now_ms();
        let expired = self
            .awareness
            .expire(now, self.engine.config.awareness_timeout.as_millis() as u64);
        for change in &expired {
            if let Some(owner) = self.awareness_owner.remove(&change.client_id) {
                if let Some(c) = self.conns.get_mut(&owner) {
                    c.awareness_ids.remove(&change.client_id);
                }
            }
        }
        self.broadcast_awareness(&expired, false);
    }

    /// Removes the states of a connection that left (`ids`, emptied), and tells everyone.
    pub(super) fn forget_awareness(&mut self, ids: &mut HashSet<u64>) {
        for id in ids.iter() {
            self.awareness_owner.remove(id);
        }
        let now = self.now_ms();
        let removed = self.awareness.remove(ids.drain(), now);
        self.broadcast_awareness(&removed, true);
    }
}
