//! The events seam: what happens in rooms (created, deleted, a user entered or left, the
//! document changed, a plan limit refused something), told to a [`RoomEvents`] sink the
//! control plane provides (`control::events::EventHub`, which turns them into the
//! project's webhooks and change feed). Like the authorizer seam, the engine knows only
//! the trait.
//!
//! The sink is called from room actors and sessions, so it must never block or wait:
//! implementations queue in memory and write elsewhere. Document changes are not told per
//! update: each actor tallies its durable updates and hands the tally over at most once a
//! tick (see [`ChangeTally`]).

use super::RoomKey;
use crate::store::Seq;

/// What changed in a room's document since the last report: the durable seqs this node
/// stored and the users whose connections wrote them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeTally {
    /// The lowest and highest seq stored (`None`: nothing durable yet).
    pub seqs: Option<(Seq, Seq)>,
    /// How many updates were stored.
    pub updates: u64,
    /// The user ids of the writers (distinct, at most [`MAX_WRITERS`]); anonymous
    /// writers and the REST API are not named.
    pub writers: Vec<String>,
    /// The document's stored size when the tally was handed over (bytes of snapshot and
    /// log), so a consumer can decide cheaply whether to attach the document itself.
    pub stored_bytes: u64,
}

/// The most writers one tally names.
pub const MAX_WRITERS: usize = 64;

impl ChangeTally {
    /// Adds a durable update.
    pub fn stored(&mut self, seq: Seq) {
        self.updates += 1;
        self.seqs = Some(match self.seqs {
            None => (seq, seq),
            Some((low, high)) => (low.min(seq), high.max(seq)),
        });
    }

    /// Adds a writer.
    pub fn wrote(&mut self, user_id: Option<&str>) {
        if let Some(user) = user_id {
            if self.writers.len() < MAX_WRITERS && !self.writers.iter().any(|w| w == user) {
                self.writers.push(user.to_owned());
            }
        }
    }

    /// Merges a later tally into this one.
    pub fn merge(&mut self, later: ChangeTally) {
        if let Some((low, high)) = later.seqs {
            self.seqs = Some(match self.seqs {
                None => (low, high),
                Some((l, h)) => (l.min(low), h.max(high)),
            });
        }
        self.updates += later.updates;
        self.stored_bytes = later.stored_bytes;
        for writer in later.writers {
            self.wrote(Some(&writer));
        }
    }
}

/// One thing that happened in a room.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// The room's row was created (its first load).
    Created,
    /// The room was deleted (through the API).
    Deleted,
    /// A connection joined.
    UserEntered {
        connection_id: u64,
        user_id: Option<String>,
    },
    /// A connection left.
    UserLeft {
        connection_id: u64,
        user_id: Option<String>,
    },
    /// Updates became durable.
    DocumentUpdated(ChangeTally),
    /// A plan limit refused a connection or an update (`connections`, `room_connections`,
    /// `rooms`, `document_bytes`).
    LimitReached { limit: &'static str },
}

/// Receives what happens in rooms. Must return at once (no I/O, no waiting).
pub trait RoomEvents: Send + Sync + 'static {
    /// `event` happened in `room`.
    fn room_event(&self, room: &RoomKey, event: RoomEvent);

    /// Writes whatever is still held, at shutdown: after every room has stopped (and
    /// told its last changes), before the store closes.
    fn flush(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Drops everything (no control plane: tests of the engine, `--allow-anonymous`).
#[derive(Debug, Default)]
pub struct NoEvents;

impl RoomEvents for NoEvents {
    fn room_event(&self, _room: &RoomKey, _event: RoomEvent) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_keeps_the_range_and_distinct_writers() {
        let mut tally = ChangeTally::default();
        tally.wrote(Some("ann"));
        tally.stored(7);
        tally.wrote(Some("bob"));
        tally.wrote(Some("ann"));
        tally.wrote(None);
        tally.stored(5);
        let mut later = ChangeTally::default();
        later.stored(9);
        later.wrote(Some("cy"));
        tally.merge(later);
        assert_eq!(tally.seqs, Some((5, 9)));
        assert_eq!(tally.updates, 3);
        assert_eq!(tally.writers, ["ann", "bob", "cy"]);
        for i in 0..200 {
            tally.wrote(Some(&format!("u{i}")));
        }
        assert_eq!(tally.writers.len(), MAX_WRITERS);
    }
}
