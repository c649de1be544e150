//! Presence in a room: the awareness table, who owns which awareness client id, and
//! relaying changes. States arrive already checked (and stamped with the connection's
//! user) by the session; here the room decides which entries a connection may set, and
//! closes it (4400) when one that would take effect is out of bounds.

use std::collections::HashSet;

use bytes::Bytes;
use tandem_protocol::awareness::{self, Change};
use tandem_protocol::{close, Message};

use super::{Owner, RoomActor};
use crate::rooms::cluster::Kind;
use crate::rooms::msg::OwnedEntry;
use crate::rooms::{CloseReason, ConnId};

impl RoomActor {
    pub(super) fn on_awareness(&mut self, conn: ConnId, entries: Vec<OwnedEntry>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        // A connection may only speak for client ids it introduced, or new ones. Stock
        // clients echo every state they are sent; those entries name ids someone else
        // owns and are dropped here, whatever they hold. An id another node owns stays
        // its until that node removes it (or it expires): a client that moved here
        // shows again with its next renewal.
        let allowed: Vec<&OwnedEntry> = entries
            .iter()
            .filter(|e| {
                self.awareness_owner
                    .get(&e.client_id)
                    .is_none_or(|owner| *owner == Owner::Local(conn))
            })
            .collect();
        // What would take effect must be in bounds, else the sender is closed and
        // nothing of the message is applied.
        let mut ids = c.awareness_ids.clone();
        let mut refused = None;
        for e in &allowed {
            match &e.state {
                Err(error) => {
                    if self.awareness.accepts(e.client_id, e.clock, false) {
                        refused = Some(format!("invalid presence: {error}"));
                        break;
                    }
                }
                Ok(state) => {
                    let removal = state.trim() == "null";
                    if self.awareness.accepts(e.client_id, e.clock, removal) {
                        if removal {
                            ids.remove(&e.client_id);
                        } else {
                            ids.insert(e.client_id);
                        }
                    }
                }
            }
        }
        let max = self.engine.config.max_presence_clients;
        if refused.is_none() && ids.len() > max {
            refused = Some(format!(
                "invalid presence: more than {max} awareness client ids on one connection"
            ));
        }
        if let Some(reason) = refused {
            self.remove_conn(conn, Some(CloseReason::new(close::MALFORMED, reason)));
            return;
        }
        let allowed: Vec<_> = allowed
            .iter()
            .filter_map(|e| {
                Some(awareness::AwarenessEntry {
                    client_id: e.client_id,
                    clock: e.clock,
                    state: e.state.as_deref().ok()?,
                })
            })
            .collect();
        let now = self.now_ms();
        let changes = self.awareness.apply(&allowed, now);
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            if change.state.is_some() {
                self.awareness_owner
                    .insert(change.client_id, Owner::Local(conn));
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
        self.changed();
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
            if let Some(Owner::Local(owner)) = self.awareness_owner.remove(&change.client_id) {
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
