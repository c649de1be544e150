//! Yjs awareness (presence): the update codec and a sans-IO table of states with the
//! same rules as y-protocols' `applyAwarenessUpdate`.
//!
//! An awareness update is a varuint count, then per client a varuint client id, a
//! varuint clock and a var string holding the JSON state (`null` means "gone"). A newer
//! clock replaces an older state; a `null` at the same clock removes it. The table takes
//! `now` (milliseconds) as a parameter so expiry is testable without waiting.
//!
//! Every receiver parses every state it is sent, so [`decode_checked`] also bounds what
//! a hostile peer could make others parse: ids and clocks JavaScript can read, and
//! states that are JSON within [`crate::json::MAX_DEPTH`] levels.

use std::collections::HashMap;

use crate::json::{self, JsonLimits};
use crate::lib0::{var_u64_len, Reader, Writer};
use crate::DecodeError;

/// The largest client id or clock a JavaScript client can read: lib0's `readVarUint`
/// throws past `Number.MAX_SAFE_INTEGER`, inside the provider's message handler.
pub const MAX_SAFE: u64 = (1 << 53) - 1;

/// The most entries one awareness message may hold. An honest message holds at most
/// one per state in the room (a stock client echoes what it is sent), so this only
/// bounds what a decoded message costs.
pub const MAX_ENTRIES: usize = 16_384;

/// One client's entry in an awareness update, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwarenessEntry<'a> {
    /// The Yjs client id the state belongs to.
    pub client_id: u64,
    /// Lamport-style clock; higher wins.
    pub clock: u64,
    /// The JSON state; `"null"` removes the client.
    pub state: &'a str,
}

impl AwarenessEntry<'_> {
    /// Whether this entry removes the client (its state is JSON `null`).
    pub fn is_removal(&self) -> bool {
        self.state.trim() == "null"
    }

    /// Checks what every receiver of this entry will read: the client id at most
    /// [`MAX_SAFE`], the clock below it (a removal bumps it by one), and the state one
    /// JSON document nested at most [`json::MAX_DEPTH`] levels. The state's size is
    /// not checked here (see [`json::check`]): a stock client re-encodes the states it
    /// echoes, which may make them longer than they were sent.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.client_id > MAX_SAFE {
            return Err(DecodeError::OutOfRange {
                what: "client id",
                value: self.client_id,
                max: MAX_SAFE,
            });
        }
        if self.clock >= MAX_SAFE {
            return Err(DecodeError::OutOfRange {
                what: "clock",
                value: self.clock,
                max: MAX_SAFE - 1,
            });
        }
        json::check(self.state, JsonLimits::new(usize::MAX))
    }
}

/// [`decode_update`], then at most [`MAX_ENTRIES`] entries, each passing
/// [`AwarenessEntry::check`].
pub fn decode_checked(bytes: &[u8]) -> Result<Vec<AwarenessEntry<'_>>, DecodeError> {
    let entries = decode_update(bytes)?;
    if entries.len() > MAX_ENTRIES {
        return Err(DecodeError::LengthTooLarge {
            claimed: entries.len() as u64,
            remaining: MAX_ENTRIES,
        });
    }
    for entry in &entries {
        entry.check()?;
    }
    Ok(entries)
}

/// The smallest encoded entry: one byte each for id, clock and an empty string.
const MIN_ENTRY_BYTES: usize = 3;

/// Decodes an awareness update. The entry count is checked against the bytes left, so
/// a hostile count cannot make it reserve memory the frame does not back.
pub fn decode_update(bytes: &[u8]) -> Result<Vec<AwarenessEntry<'_>>, DecodeError> {
    let mut r = Reader::new(bytes);
    let count = r.read_len()?;
    if count > r.remaining() / MIN_ENTRY_BYTES {
        return Err(DecodeError::LengthTooLarge {
            claimed: count as u64,
            remaining: r.remaining(),
        });
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let client_id = r.read_var_u64()?;
        let clock = r.read_var_u64()?;
        let state = r.read_var_str()?;
        entries.push(AwarenessEntry {
            client_id,
            clock,
            state,
        });
    }
    r.finish()?;
    Ok(entries)
}

/// Encodes entries as one awareness update.
pub fn encode_update<'a>(entries: impl IntoIterator<Item = AwarenessEntry<'a>>) -> Vec<u8> {
    let entries: Vec<_> = entries.into_iter().collect();
    let size: usize = entries
        .iter()
        .map(|e| {
            var_u64_len(e.client_id)
                + var_u64_len(e.clock)
                + var_u64_len(e.state.len() as u64)
                + e.state.len()
        })
        .sum();
    let mut w = Writer::with_capacity(size + 10);
    w.write_var_u64(entries.len() as u64);
    for e in entries {
        w.write_var_u64(e.client_id)
            .write_var_u64(e.clock)
            .write_var_str(e.state);
    }
    w.into_inner()
}

#[derive(Debug, Clone)]
struct Meta {
    clock: u64,
    /// `None` once the client was removed; the clock is kept so that an older update
    /// arriving late cannot bring it back.
    state: Option<String>,
    last_updated_ms: u64,
}

/// An owned entry the table accepted, to be relayed to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The client id.
    pub client_id: u64,
    /// Its new clock.
    pub clock: u64,
    /// The new JSON state, or `None` when the client was removed.
    pub state: Option<String>,
}

impl Change {
    /// Borrows the change as an entry for [`encode_update`].
    pub fn as_entry(&self) -> AwarenessEntry<'_> {
        AwarenessEntry {
            client_id: self.client_id,
            clock: self.clock,
            state: self.state.as_deref().unwrap_or("null"),
        }
    }
}

/// Encodes accepted changes as one awareness update.
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    encode_update(changes.iter().map(Change::as_entry))
}

/// Every client's current awareness state in one room.
#[derive(Debug, Default, Clone)]
pub struct AwarenessTable {
    clients: HashMap<u64, Meta>,
}

impl AwarenessTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many clients have a live (non-null) state.
    pub fn live_count(&self) -> usize {
        self.clients.values().filter(|m| m.state.is_some()).count()
    }

    /// The live state of one client.
    pub fn state(&self, client_id: u64) -> Option<&str> {
        self.clients.get(&client_id)?.state.as_deref()
    }

    /// Whether [`apply`](Self::apply) would take an entry for `client_id` at `clock`
    /// (a removal when `removal`): a newer clock, or a removal at the same clock of a
    /// live state. Clocks only move forward: anything older is ignored.
    pub fn accepts(&self, client_id: u64, clock: u64, removal: bool) -> bool {
        let (current_clock, live) = match self.clients.get(&client_id) {
            Some(m) => (m.clock, m.state.is_some()),
            None => (0, false),
        };
        current_clock < clock || (current_clock == clock && removal && live)
    }

    /// Applies entries with y-protocols' rules and returns the ones that took effect
    /// (renewals of an unchanged state included: they keep the state alive for others).
    pub fn apply(&mut self, entries: &[AwarenessEntry<'_>], now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        for e in entries {
            let removal = e.is_removal();
            if !self.accepts(e.client_id, e.clock, removal) {
                continue;
            }
            let state = (!removal).then(|| e.state.to_owned());
            self.clients.insert(
                e.client_id,
                Meta {
                    clock: e.clock,
                    state: state.clone(),
                    last_updated_ms: now_ms,
                },
            );
            changes.push(Change {
                client_id: e.client_id,
                clock: e.clock,
                state,
            });
        }
        changes
    }

    /// Removes live clients (a connection closed), bumping their clocks so that every
    /// peer accepts the removal. Returns the removals to broadcast.
    pub fn remove(
        &mut self,
        client_ids: impl IntoIterator<Item = u64>,
        now_ms: u64,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for id in client_ids {
            if let Some(meta) = self.clients.get_mut(&id) {
                if meta.state.take().is_some() {
                    meta.clock = meta.clock.saturating_add(1);
                    meta.last_updated_ms = now_ms;
                    changes.push(Change {
                        client_id: id,
                        clock: meta.clock,
                        state: None,
                    });
                }
            }
        }
        changes
    }

    /// Removes live states not renewed for `timeout_ms` (y-protocols uses 30 s; clients
    /// renew every 15 s). Returns the removals to broadcast.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<Change> {
        let stale: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, m)| {
                m.state.is_some() && now_ms.saturating_sub(m.last_updated_ms) >= timeout_ms
            })
            .map(|(id, _)| *id)
            .collect();
        self.remove(stale, now_ms)
    }

    /// One client's live entry (its clock and state), `None` if it has no state.
    pub fn live_entry(&self, client_id: u64) -> Option<AwarenessEntry<'_>> {
        let meta = self.clients.get(&client_id)?;
        Some(AwarenessEntry {
            client_id,
            clock: meta.clock,
            state: meta.state.as_deref()?,
        })
    }

    /// Every live client as `(client id, JSON state)`, in no particular order.
    pub fn live(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        self.clients
            .iter()
            .filter_map(|(id, m)| Some((*id, m.state.as_deref()?)))
    }

    /// When the least recently renewed live state was last updated (milliseconds, the
    /// `now` given to [`apply`](Self::apply)), or `None` without live states. A caller
    /// that expires states after `timeout_ms` has nothing to do before this plus the
    /// timeout.
    pub fn oldest_live_update_ms(&self) -> Option<u64> {
        self.clients
            .values()
            .filter(|m| m.state.is_some())
            .map(|m| m.last_updated_ms)
            .min()
    }

    /// Every live state as one update, or `None` when there is none.
    pub fn encode_live(&self) -> Option<Vec<u8>> {
        let mut ids: Vec<_> = self
            .clients
            .iter()
            .filter(|(_, m)| m.state.is_some())
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return None;
        }
        ids.sort_unstable();
        Some(encode_update(ids.iter().filter_map(|id| {
            let m = self.clients.get(id)?;
            Some(AwarenessEntry {
                client_id: *id,
                clock: m.clock,
                state: m.state.as_deref()?,
            })
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(client_id: u64, clock: u64, state: &str) -> AwarenessEntry<'_> {
        AwarenessEntry {
            client_id,
            clock,
            state,
        }
    }

    #[test]
    fn codec_roundtrips_and_matches_y_protocols_bytes() {
        // y-protocols: encodeAwarenessUpdate(awareness, [5]) with clock 1, state {"a":1}
        let bytes = encode_update([entry(5, 1, r#"{"a":1}"#)]);
        assert_eq!(
            bytes,
            [1, 5, 1, 7, b'{', b'"', b'a', b'"', b':', b'1', b'}']
        );
        assert_eq!(
            decode_update(&bytes).unwrap(),
            vec![entry(5, 1, r#"{"a":1}"#)]
        );
    }

    #[test]
    fn hostile_counts_are_refused_without_allocating() {
        // Claims 2^40 entries in six bytes.
        let mut w = Writer::default();
        w.write_var_u64(1 << 40);
        let err = decode_update(&w.into_inner()).unwrap_err();
        assert!(matches!(err, DecodeError::LengthTooLarge { .. }));
        assert_eq!(
            decode_update(&[1, 1, 0x80, 0x80]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode_update(&[0, 0]), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(
            decode_update(&[1, 1, 1, 1, 0xff]),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn newer_clock_wins_and_older_is_ignored() {
        let mut t = AwarenessTable::new();
        assert_eq!(t.apply(&[entry(1, 2, "\"b\"")], 0).len(), 1);
        assert!(t.apply(&[entry(1, 1, "\"a\"")], 0).is_empty());
        assert_eq!(t.state(1), Some("\"b\""));
        // A renewal with the same content still counts (it keeps the state alive).
        assert_eq!(t.apply(&[entry(1, 3, "\"b\"")], 0).len(), 1);
    }

    #[test]
    fn null_at_same_clock_removes_and_stale_update_cannot_resurrect() {
        let mut t = AwarenessTable::new();
        t.apply(&[entry(1, 4, "{}")], 0);
        let changes = t.apply(&[entry(1, 4, "null")], 0);
        assert_eq!(changes[0].state, None);
        assert_eq!(t.live_count(), 0);
        assert!(t.apply(&[entry(1, 3, "{}")], 0).is_empty());
        assert!(t.encode_live().is_none());
    }

    #[test]
    fn remove_bumps_clock_so_peers_accept_it() {
        let mut t = AwarenessTable::new();
        t.apply(&[entry(7, 10, "{}")], 0);
        let changes = t.remove([7, 8], 5);
        assert_eq!(
            changes,
            vec![Change {
                client_id: 7,
                clock: 11,
                state: None
            }]
        );
        // A peer holding clock 10 applies it.
        let mut peer = AwarenessTable::new();
        peer.apply(&[entry(7, 10, "{}")], 0);
        let bytes = encode_changes(&changes);
        assert_eq!(peer.apply(&decode_update(&bytes).unwrap(), 6).len(), 1);
        assert_eq!(peer.live_count(), 0);
    }

    #[test]
    fn states_expire_after_the_timeout_unless_renewed() {
        let mut t = AwarenessTable::new();
        t.apply(&[entry(1, 1, "{}"), entry(2, 1, "{}")], 0);
        t.apply(&[entry(2, 2, "{}")], 20_000);
        assert!(t.expire(29_999, 30_000).is_empty());
        let gone = t.expire(30_000, 30_000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].client_id, 1);
        assert_eq!(t.live_count(), 1);
    }

    #[test]
    fn live_lists_states_and_oldest_update_tracks_renewals() {
        let mut t = AwarenessTable::new();
        assert_eq!(t.oldest_live_update_ms(), None);
        t.apply(&[entry(1, 1, "{}"), entry(2, 1, "[]")], 10);
        t.apply(&[entry(2, 2, "[]")], 20);
        let mut live: Vec<_> = t.live().collect();
        live.sort_unstable();
        assert_eq!(live, vec![(1, "{}"), (2, "[]")]);
        assert_eq!(t.oldest_live_update_ms(), Some(10));
        t.remove([1], 30);
        assert_eq!(t.live().count(), 1);
        assert_eq!(t.oldest_live_update_ms(), Some(20));
    }

    #[test]
    fn checked_entries_are_what_javascript_can_read() {
        assert_eq!(entry(MAX_SAFE, MAX_SAFE - 1, "{}").check(), Ok(()));
        assert!(matches!(
            entry(MAX_SAFE + 1, 1, "{}").check(),
            Err(DecodeError::OutOfRange {
                what: "client id",
                ..
            })
        ));
        assert!(matches!(
            entry(1, MAX_SAFE, "{}").check(),
            Err(DecodeError::OutOfRange { what: "clock", .. })
        ));
        assert_eq!(entry(1, 1, "{").check(), Err(DecodeError::NotJson));
        let deep = "[".repeat(100_000);
        assert!(matches!(
            entry(1, 1, &deep).check(),
            Err(DecodeError::JsonTooDeep { .. })
        ));
        let many: Vec<_> = (0..=MAX_ENTRIES as u64).map(|i| entry(i, 1, "0")).collect();
        assert!(matches!(
            decode_checked(&encode_update(many)),
            Err(DecodeError::LengthTooLarge { .. })
        ));
        let fine = encode_update([entry(3, 4, r#"{"user":{"name":"A"}}"#)]);
        assert_eq!(decode_checked(&fine).unwrap().len(), 1);
    }

    #[test]
    fn a_removal_at_the_largest_clock_does_not_wrap() {
        let mut t = AwarenessTable::new();
        t.apply(&[entry(1, u64::MAX, "{}")], 0);
        let removed = t.remove([1], 1);
        assert_eq!(removed[0].clock, u64::MAX);
        // Nothing older can bring it back.
        assert!(t.apply(&[entry(1, 0, "{}")], 2).is_empty());
    }

    proptest! {
        /// The validator against an independent model of what a receiver accepts.
        #[test]
        fn checked_states_are_bounded_json(
            client_id in prop_oneof![0u64..10, (MAX_SAFE - 2)..=(MAX_SAFE + 2), any::<u64>()],
            clock in prop_oneof![0u64..10, (MAX_SAFE - 2)..=(MAX_SAFE + 2), any::<u64>()],
            depth in 0usize..80,
            shape in any::<u64>(),
            garbage in proptest::option::of("[\\[\\]{}\":,a0-9 ]{0,12}"),
        ) {
            let mut state = String::new();
            for i in 0..depth {
                state.push_str(if shape >> (i % 64) & 1 == 1 { "{\"a\":" } else { "[" });
            }
            state.push_str(garbage.as_deref().unwrap_or("1"));
            for i in (0..depth).rev() {
                state.push(if shape >> (i % 64) & 1 == 1 { '}' } else { ']' });
            }
            let e = entry(client_id, clock, &state);
            let parsed: Option<serde_json::Value> = serde_json::from_str(&state).ok();
            let expect_ok = client_id <= MAX_SAFE
                && clock < MAX_SAFE
                && parsed.as_ref().is_some_and(|v| value_depth(v) <= json::MAX_DEPTH)
                && json::depth(&state, usize::MAX) <= json::MAX_DEPTH;
            prop_assert_eq!(e.check().is_ok(), expect_ok, "{}", state);
            // What passes survives the codec unchanged.
            if expect_ok {
                let bytes = encode_update([e]);
                prop_assert_eq!(decode_checked(&bytes).unwrap(), vec![e]);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_update(&bytes);
            let _ = decode_checked(&bytes);
        }
    }

    fn value_depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
            serde_json::Value::Object(m) => 1 + m.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}
