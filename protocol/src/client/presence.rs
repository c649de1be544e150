//! Presence on the client side: this client's own awareness state with its clock
//! ([`LocalPresence`]) and everyone else's, as the server relays them ([`Others`]).
//!
//! The rules are y-protocols': a state is sent with a clock that grows on every change
//! and renewal; others' states are kept by [`AwarenessTable`] and expire when not
//! renewed. Our own id is never kept among the others: the server echoes our state back,
//! and a remote removal of our own state is answered by re-announcing it.

use serde_json::{Map, Value};

use crate::awareness::{self, AwarenessEntry, AwarenessTable};
use crate::Message;

/// Another client in the room, as its presence describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Other {
    /// Its Yjs client id (the key of its awareness state).
    pub client_id: u64,
    /// What it published as presence, without the `user` member.
    pub presence: Value,
    /// The presence's `user` member. Tandem's server sets it from the connection's token
    /// (an object with at least `"id"`), overwriting whatever the client put there, so
    /// it can be trusted when the room requires tokens. In anonymous rooms it is
    /// whatever the other client sent (stock y-websocket apps often put a name and a
    /// colour there).
    pub user: Option<Value>,
}

impl Other {
    /// The user id the server attached (`user.id`), if it is a string.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref()?.get("id")?.as_str()
    }

    fn from_state(client_id: u64, state: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(state).ok()?;
        let (presence, user) = match value {
            Value::Object(mut object) => {
                let user = object.remove("user");
                (Value::Object(object), user)
            }
            other => (other, None),
        };
        Some(Self {
            client_id,
            presence,
            user,
        })
    }
}

/// This client's awareness state and clock.
#[derive(Debug, Clone)]
pub(crate) struct LocalPresence {
    client_id: u64,
    clock: u64,
    /// The state as JSON text, `None` when hidden.
    json: Option<String>,
    state: Option<Map<String, Value>>,
    /// When the state was last sent; renewals are due `renew_ms` after it.
    pub(crate) last_sent_ms: u64,
}

impl LocalPresence {
    /// The stock client's starting point: an empty object, so others see this client as
    /// soon as it connects.
    pub(crate) fn new(client_id: u64) -> Self {
        Self {
            client_id,
            clock: 0,
            json: Some("{}".to_owned()),
            state: Some(Map::new()),
            last_sent_ms: 0,
        }
    }

    pub(crate) fn state(&self) -> Option<&Map<String, Value>> {
        self.state.as_ref()
    }

    pub(crate) fn is_live(&self) -> bool {
        self.json.is_some()
    }

    pub(crate) fn set(&mut self, state: Map<String, Value>) {
        self.clock += 1;
        self.json = Some(Value::Object(state.clone()).to_string());
        self.state = Some(state);
    }

    /// Hides this client: the next frame carries `null` with a newer clock.
    pub(crate) fn clear(&mut self) {
        self.clock += 1;
        self.json = None;
        self.state = None;
    }

    /// A renewal: same state, newer clock.
    pub(crate) fn renew(&mut self) {
        self.clock += 1;
    }

    /// Called on every new connection. The server bumped our clock by one when it
    /// removed our state as the previous connection ended, and ignores clocks at or
    /// below that one; jumping by two makes the next announcement win.
    pub(crate) fn on_reconnect(&mut self) {
        self.clock += 2;
    }

    /// The awareness frame announcing the current state (`null` when hidden).
    pub(crate) fn frame(&self) -> Vec<u8> {
        self.frame_with(self.json.as_deref().unwrap_or("null"))
    }

    /// The frame a leaving client sends: `null` at the *same* clock, which y-protocols
    /// treats as a removal.
    pub(crate) fn leave_frame(&self) -> Vec<u8> {
        self.frame_with("null")
    }

    fn frame_with(&self, state: &str) -> Vec<u8> {
        let update = awareness::encode_update([AwarenessEntry {
            client_id: self.client_id,
            clock: self.clock,
            state,
        }]);
        Message::Awareness(&update).encode()
    }

    /// Looks at a relayed entry for our own id. Returns whether our state must be
    /// announced again because someone removed it or claimed a newer clock for it
    /// (y-protocols: "never let a remote client remove this local state").
    pub(crate) fn on_own_entry(&mut self, entry: &AwarenessEntry<'_>) -> bool {
        if !self.is_live() {
            self.clock = self.clock.max(entry.clock);
            return false;
        }
        let overruled =
            entry.clock > self.clock || (entry.clock == self.clock && entry.is_removal());
        if overruled {
            self.clock = entry.clock + 1;
        }
        overruled
    }
}

/// The other clients' presence in one room.
#[derive(Debug, Clone)]
pub(crate) struct Others {
    own_id: u64,
    table: AwarenessTable,
}

impl Others {
    pub(crate) fn new(own_id: u64) -> Self {
        Self {
            own_id,
            table: AwarenessTable::new(),
        }
    }

    /// Applies relayed entries (our own id excluded). Returns whether the list of others
    /// changed; renewals of an unchanged state do not count.
    pub(crate) fn apply(&mut self, entries: &[AwarenessEntry<'_>], now_ms: u64) -> bool {
        let theirs: Vec<AwarenessEntry<'_>> = entries
            .iter()
            .filter(|e| e.client_id != self.own_id)
            .copied()
            .collect();
        let before: Vec<Option<String>> = theirs
            .iter()
            .map(|e| self.table.state(e.client_id).map(str::to_owned))
            .collect();
        self.table.apply(&theirs, now_ms);
        theirs
            .iter()
            .zip(before)
            .any(|(e, before)| self.table.state(e.client_id) != before.as_deref())
    }

    /// Drops states not renewed within `timeout_ms`. Returns whether any went.
    pub(crate) fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> bool {
        !self.table.expire(now_ms, timeout_ms).is_empty()
    }

    /// When the next state expires, if any is live.
    pub(crate) fn next_expiry_ms(&self, timeout_ms: u64) -> Option<u64> {
        Some(
            self.table
                .oldest_live_update_ms()?
                .saturating_add(timeout_ms),
        )
    }

    /// Forgets everyone (the connection is gone; the server resends the live states on
    /// the next one). Returns whether anyone was there.
    pub(crate) fn clear(&mut self) -> bool {
        let had_any = self.table.live_count() > 0;
        self.table = AwarenessTable::new();
        had_any
    }

    /// The others, sorted by client id. States that are not JSON are skipped (the server
    /// refuses them, so there are none in practice).
    pub(crate) fn list(&self) -> Vec<Other> {
        let mut others: Vec<Other> = self
            .table
            .live()
            .filter_map(|(id, state)| Other::from_state(id, state))
            .collect();
        others.sort_unstable_by_key(|o| o.client_id);
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(client_id: u64, clock: u64, state: &str) -> AwarenessEntry<'_> {
        AwarenessEntry {
            client_id,
            clock,
            state,
        }
    }

    #[test]
    fn others_split_user_from_presence_and_skip_own_id() {
        let mut others = Others::new(1);
        let changed = others.apply(
            &[
                entry(1, 5, "{}"),
                entry(2, 1, r#"{"cursor":3,"user":{"id":"usr_b","name":"B"}}"#),
                entry(3, 1, "[1]"),
            ],
            0,
        );
        assert!(changed);
        let list = others.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].client_id, 2);
        assert_eq!(list[0].presence, json!({"cursor": 3}));
        assert_eq!(list[0].user_id(), Some("usr_b"));
        assert_eq!(list[1].presence, json!([1]));
        assert_eq!(list[1].user, None);
    }

    #[test]
    fn renewals_do_not_count_as_changes() {
        let mut others = Others::new(1);
        assert!(others.apply(&[entry(2, 1, r#"{"a":1}"#)], 0));
        assert!(!others.apply(&[entry(2, 2, r#"{"a":1}"#)], 10));
        assert!(others.apply(&[entry(2, 3, r#"{"a":2}"#)], 20));
        assert!(others.apply(&[entry(2, 3, "null")], 30));
        assert!(others.list().is_empty());
    }

    #[test]
    fn a_removal_of_our_own_state_is_answered_with_a_newer_clock() {
        let mut me = LocalPresence::new(1);
        me.set(Map::new());
        assert_eq!(me.clock, 1);
        // Our own echo changes nothing.
        assert!(!me.on_own_entry(&entry(1, 1, "{}")));
        // A removal at our clock, or a newer claim, is overruled.
        assert!(me.on_own_entry(&entry(1, 1, "null")));
        assert_eq!(me.clock, 2);
        assert!(me.on_own_entry(&entry(1, 9, "{}")));
        assert_eq!(me.clock, 10);
        // Once hidden, we only keep up with the clock.
        me.clear();
        assert!(!me.on_own_entry(&entry(1, 20, "null")));
        assert_eq!(me.clock, 20);
    }
}
