//! The yrs side of a room: decoding peer input with panics contained, applying updates,
//! and rebuilding or merging a document from what the store holds.
//!
//! Frames reach this module already bounded by the envelope codec, so yrs only ever sees
//! payloads no larger than one message. A panic inside yrs on hostile input is caught
//! here and turned into an error for that one update.

use std::panic::{catch_unwind, AssertUnwindSafe};

use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::store::StoredDoc;

/// Why a peer's update was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// yrs refused it; the document is unchanged.
    #[error("invalid update: {0}")]
    Invalid(String),
    /// yrs panicked while integrating it; the in-memory document may be damaged and is
    /// rebuilt from the store.
    #[error("update could not be applied")]
    Panicked,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Decodes a v1 update from a peer.
pub(crate) fn decode_update(bytes: &[u8]) -> Result<Update, String> {
    match catch_unwind(|| Update::decode_v1(bytes)) {
        Ok(Ok(update)) => Ok(update),
        Ok(Err(e)) => Err(format!("invalid update: {e}")),
        Err(panic) => Err(format!("invalid update: {}", panic_message(&*panic))),
    }
}

/// Decodes a state vector from a peer's sync step 1.
pub(crate) fn decode_state_vector(bytes: &[u8]) -> Result<StateVector, String> {
    match catch_unwind(|| StateVector::decode_v1(bytes)) {
        Ok(Ok(sv)) => Ok(sv),
        Ok(Err(e)) => Err(format!("invalid state vector: {e}")),
        Err(panic) => Err(format!("invalid state vector: {}", panic_message(&*panic))),
    }
}

/// Applies an update to the room's document; `true` if it changed anything (inserted
/// or deleted something the document did not have).
pub(crate) fn apply(doc: &Doc, update: Update) -> Result<bool, ApplyError> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(update).map(|()| txn.has_changes())
    }));
    match result {
        Ok(Ok(changed)) => Ok(changed),
        Ok(Err(e)) => Err(ApplyError::Invalid(e.to_string())),
        Err(panic) => {
            tracing::error!(panic = %panic_message(&*panic), "yrs panicked applying an update");
            Err(ApplyError::Panicked)
        }
    }
}

/// What the peer with state vector `sv` lacks.
pub(crate) fn diff(doc: &Doc, sv: &StateVector) -> Vec<u8> {
    doc.transact().encode_diff_v1(sv)
}

/// The document's state vector.
pub(crate) fn state_vector_of(doc: &Doc) -> StateVector {
    doc.transact().state_vector()
}

/// The document's state vector, encoded.
pub(crate) fn state_vector(doc: &Doc) -> Vec<u8> {
    use yrs::updates::encoder::Encode;
    doc.transact().state_vector().encode_v1()
}

/// Rebuilds a document from a snapshot and log. Stored updates were validated before
/// they were written; one that still fails is logged and skipped rather than making the
/// whole room unloadable.
pub(crate) fn build(stored: &StoredDoc) -> Doc {
    let doc = Doc::new();
    let snapshot = stored.snapshot.iter().map(|(seq, data)| (*seq, data));
    for (seq, data) in snapshot.chain(stored.updates.iter().map(|(seq, data)| (*seq, data))) {
        let result = decode_update(data)
            .map_err(ApplyError::Invalid)
            .and_then(|u| apply(&doc, u));
        if let Err(error) = result {
            tracing::error!(room_id = stored.room_id, seq, %error, "skipping a stored update that does not apply");
        }
    }
    doc
}

/// Merges a snapshot and log into one update (the new snapshot).
pub(crate) fn merge(stored: &StoredDoc) -> Vec<u8> {
    build(stored)
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use yrs::{GetString, Text};

    fn update_inserting(doc: &Doc, at: u32, s: &str) -> Vec<u8> {
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, at, s);
        txn.encode_update_v1()
    }

    /// What decides whether a remote update is relayed: one that brings nothing new
    /// (a catch-up applied it first) is `false`, also when it deletes something (every
    /// map overwrite does), so local clients never get it twice.
    #[test]
    fn apply_tells_whether_an_update_changed_anything() {
        use yrs::Map;
        let writer = Doc::new();
        let map = writer.get_or_insert_map("m");
        let first = {
            let mut txn = writer.transact_mut();
            map.insert(&mut txn, "k", 1);
            txn.encode_update_v1()
        };
        let overwrite = {
            let mut txn = writer.transact_mut();
            map.insert(&mut txn, "k", 2);
            txn.encode_update_v1()
        };
        let overwrite_update = decode_update(&overwrite).unwrap();
        assert!(
            !overwrite_update.delete_set().is_empty(),
            "an overwrite deletes"
        );

        let room = Doc::new();
        assert!(apply(&room, decode_update(&first).unwrap()).unwrap());
        assert!(apply(&room, overwrite_update).unwrap());
        // The same updates again (from Redis after a catch-up brought them): nothing.
        assert!(!apply(&room, decode_update(&overwrite).unwrap()).unwrap());
        assert!(!apply(&room, decode_update(&first).unwrap()).unwrap());
        // A whole state holding them adds nothing either; a delete-only update that
        // deletes something new does.
        let whole = merge(&StoredDoc {
            room_id: 1,
            snapshot: None,
            updates: vec![(1, Bytes::from(first)), (2, Bytes::from(overwrite))],
            read_only: false,
            created: false,
        });
        assert!(!apply(&room, decode_update(&whole).unwrap()).unwrap());
        let removal = {
            let mut txn = writer.transact_mut();
            map.remove(&mut txn, "k");
            txn.encode_update_v1()
        };
        assert!(apply(&room, decode_update(&removal).unwrap()).unwrap());
        assert!(!apply(&room, decode_update(&removal).unwrap()).unwrap());
    }

    #[test]
    fn merge_equals_replaying_the_log() {
        let source = Doc::new();
        let updates: Vec<_> = (0..20)
            .map(|i| {
                (
                    i as i64 + 1,
                    Bytes::from(update_inserting(&source, 0, &i.to_string())),
                )
            })
            .collect();
        let stored = StoredDoc {
            room_id: 1,
            snapshot: None,
            updates,
            read_only: false,
            created: false,
        };
        let merged = merge(&stored);
        let rebuilt = build(&StoredDoc {
            room_id: 1,
            snapshot: Some((20, Bytes::from(merged))),
            updates: vec![],
            read_only: false,
            created: false,
        });
        let expected = source
            .get_or_insert_text("t")
            .get_string(&source.transact());
        let got = rebuilt
            .get_or_insert_text("t")
            .get_string(&rebuilt.transact());
        assert_eq!(got, expected);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_update(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode_state_vector(&[5, 1]).is_err());
    }

    use proptest::prelude::*;

    /// Valid updates made by random edits, to mutate.
    fn valid_updates(ops: &[(u8, u16, u8)]) -> Vec<Vec<u8>> {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        let map = doc.get_or_insert_map("m");
        let mut out = Vec::new();
        for &(kind, at, byte) in ops {
            use yrs::Map;
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            match kind % 3 {
                0 => text.insert(
                    &mut txn,
                    u32::from(at) % (len + 1),
                    &char::from(b'a' + byte % 26).to_string(),
                ),
                1 if len > 0 => text.remove_range(&mut txn, u32::from(at) % len, 1),
                _ => {
                    map.insert(&mut txn, format!("k{}", byte % 8), i64::from(at));
                }
            }
            out.push(txn.encode_update_v1());
        }
        out
    }

    proptest! {
        // 512 cases unless PROPTEST_CASES says otherwise (a longer run, e.g. after a
        // security change).
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(512),
            ..ProptestConfig::default()
        })]

        /// The apply path's fuzz target: valid updates with random bytes flipped,
        /// inserted or cut, fed through the server's validation and into a document
        /// that already holds some state. Everything either applies or is refused;
        /// nothing escapes as a panic (or worse: without the validation, yrs 0.28.1
        /// can be driven to a SIGSEGV, see bad_input.rs in the e2e tests).
        #[test]
        fn mutated_updates_never_escape_the_apply_path(
            ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..20),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let updates = valid_updates(&ops);
            let target = Doc::new();
            let mut panicked = false;
            for u in &updates[..updates.len() / 2] {
                let _ = decode_update(u).map(|u| apply(&target, u));
            }
            for u in &updates {
                let mut bytes = u.clone();
                for (at, value) in &flips {
                    if !bytes.is_empty() {
                        let i = at % bytes.len();
                        bytes[i] ^= value;
                    }
                }
                bytes.truncate(cut % (bytes.len() + 1) + bytes.len() / 2);
                bytes.extend_from_slice(&garbage);
                // The server's path: stateless check, decode, check against the doc, apply.
                let limits = crate::rooms::validate::Limits::default();
                if crate::rooms::validate::validate_update_v1(&bytes, &limits).is_err() {
                    continue;
                }
                let Ok(update) = decode_update(&bytes) else { continue };
                let sv = state_vector_of(&target);
                let clock = |c| sv.get(&yrs::block::ClientID::new(c));
                if crate::rooms::validate::validate_update_v1_for_doc(&bytes, &limits, &clock).is_ok() {
                    panicked |= matches!(apply(&target, update), Err(ApplyError::Panicked));
                }
            }
            // Unless yrs panicked (then the room rebuilds the doc from the store), the
            // document is still consistent enough to encode.
            if !panicked {
                let _ = state_vector(&target);
                let _ = diff(&target, &StateVector::default());
            }
        }

        /// Random bytes as a state vector, then a diff against it.
        #[test]
        fn random_state_vectors_never_escape(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(sv) = decode_state_vector(&bytes) {
                let doc = Doc::new();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| diff(&doc, &sv)));
            }
        }
    }
}
