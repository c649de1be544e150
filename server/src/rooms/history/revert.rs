//! The update that takes a live document back to an earlier state, for every shared
//! type at once (text with its formatting, maps, arrays, XML, nested types).
//!
//! Yjs's own recipe for "revert to a snapshot": a scratch document holds the old state;
//! the changes the live document has beyond it are applied to the scratch document
//! inside a transaction an `UndoManager` tracks; undoing that transaction re-inserts
//! what those changes deleted (as new items, copies of the old ones) and deletes what
//! they inserted. What the scratch document then has beyond the live state vector is
//! the revert: applied to the live document (or by any client that has it) it shows
//! the old state, and it is an ordinary update, so history is never rewritten and a
//! revert can be reverted.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use yrs::undo::Options;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Origin, ReadTxn, Transact, UndoManager, Update};

/// The revert as a v1 update (empty when the live document already equals `old`), or
/// why it could not be made. `old` is a full v1 state of an earlier version of `live`
/// (its updates are a subset of what `live` integrated).
pub(crate) fn revert_to(live: &Doc, old: &[u8]) -> Result<Vec<u8>, String> {
    catch_unwind(AssertUnwindSafe(|| revert(live, old)))
        .unwrap_or_else(|_| Err("the earlier version could not be restored".to_owned()))
}

fn revert(live: &Doc, old: &[u8]) -> Result<Vec<u8>, String> {
    let scratch = Doc::new();
    {
        let update = Update::decode_v1(old).map_err(|e| e.to_string())?;
        scratch
            .transact_mut()
            .apply_update(update)
            .map_err(|e| e.to_string())?;
    }
    let (since, live_sv, roots) = {
        let txn = live.transact();
        let old_sv = scratch.transact().state_vector();
        let roots: Vec<Arc<str>> = txn.root_refs().map(|(name, _)| Arc::from(name)).collect();
        (txn.encode_diff_v1(&old_sv), txn.state_vector(), roots)
    };
    let old_roots: Vec<Arc<str>> = scratch
        .transact()
        .root_refs()
        .map(|(name, _)| Arc::from(name))
        .collect();
    // Every root either side has, in the undo manager's scope. Declaring a scratch
    // root as a map changes nothing that is encoded (updates do not carry root types)
    // and nothing the undo manager does (it re-inserts items whatever their parent).
    let origin = Origin::from("tandem-restore");
    let mut undo: UndoManager = UndoManager::with_options(Options {
        capture_timeout_millis: u64::MAX,
        ..Options::default()
    });
    undo.include_origin(origin.clone());
    for name in roots.iter().chain(old_roots.iter()) {
        let root = scratch.get_or_insert_map(name.clone());
        undo.expand_scope(&scratch, &root);
    }
    {
        let update = Update::decode_v1(&since).map_err(|e| e.to_string())?;
        let mut txn = scratch.transact_mut_with(origin);
        txn.apply_update(update).map_err(|e| e.to_string())?;
    }
    if undo.can_undo() {
        undo.undo_blocking();
    }
    let revert = scratch.transact().encode_diff_v1(&live_sv);
    drop(undo);
    Ok(revert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::json::doc_to_json;
    use yrs::types::text::YChange;
    use yrs::types::Attrs;
    use yrs::StateVector;
    use yrs::{
        Any, Array, ArrayPrelim, GetString, Map, MapPrelim, Text, TextPrelim, WriteTxn,
        XmlElementPrelim, XmlFragment, XmlTextPrelim,
    };

    fn state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// A "server" document that integrates every update of `client` (like a room).
    fn server_of(client: &Doc) -> Doc {
        let server = Doc::new();
        sync(client, &server);
        server
    }

    fn sync(from: &Doc, to: &Doc) {
        let sv = to.transact().state_vector();
        let diff = from.transact().encode_diff_v1(&sv);
        to.transact_mut()
            .apply_update(Update::decode_v1(&diff).unwrap())
            .unwrap();
    }

    /// Restores `server` to `old`, applies the revert to the server and the client, and
    /// checks both show what `old` showed.
    fn restore_and_check(client: &Doc, server: &Doc, old: &[u8]) {
        let expected = {
            let doc = Doc::new();
            doc.transact_mut()
                .apply_update(Update::decode_v1(old).unwrap())
                .unwrap();
            doc_to_json(&doc)
        };
        let revert = revert_to(server, old).unwrap();
        for doc in [server, client] {
            doc.transact_mut()
                .apply_update(Update::decode_v1(&revert).unwrap())
                .unwrap();
        }
        assert_eq!(doc_to_json(server), expected);
        // A client that declared its types sees the same (roots of the server's
        // document are undefined types, rendered by inference).
        assert_eq!(doc_to_json(&server_of(client)), expected);
    }

    #[test]
    fn text_map_array_nested_and_xml_come_back() {
        let client = Doc::new();
        let text = client.get_or_insert_text("text");
        let map = client.get_or_insert_map("map");
        let array = client.get_or_insert_array("array");
        let xml = client.get_or_insert_xml_fragment("prosemirror");
        {
            let mut txn = client.transact_mut();
            text.insert(&mut txn, 0, "hello world");
            map.insert(&mut txn, "a", 1);
            map.insert(&mut txn, "nested", MapPrelim::from([("x", "y")]));
            map.insert(&mut txn, "notes", TextPrelim::new("inner"));
            array.insert_range(&mut txn, 0, [1, 2, 3]);
            let p = xml.insert(&mut txn, 0, XmlElementPrelim::empty("paragraph"));
            p.insert(&mut txn, 0, XmlTextPrelim::new("para one"));
        }
        let server = server_of(&client);
        let old = state(&server);
        {
            let mut txn = client.transact_mut();
            text.remove_range(&mut txn, 0, 6);
            text.insert(&mut txn, 5, "!!");
            map.insert(&mut txn, "a", 2);
            map.insert(&mut txn, "b", true);
            map.remove(&mut txn, "nested");
            if let Some(yrs::Out::YText(notes)) = map.get(&txn, "notes") {
                notes.insert(&mut txn, 0, "more ");
            }
            array.remove_range(&mut txn, 1, 2);
            array.push_back(&mut txn, ArrayPrelim::from([4]));
            let fragment_len = xml.len(&txn);
            xml.remove_range(&mut txn, 0, fragment_len);
            xml.insert(&mut txn, 0, XmlElementPrelim::empty("heading"));
        }
        sync(&client, &server);
        assert_ne!(doc_to_json(&server), {
            let d = Doc::new();
            d.transact_mut()
                .apply_update(Update::decode_v1(&old).unwrap())
                .unwrap();
            doc_to_json(&d)
        });
        restore_and_check(&client, &server, &old);
        assert_eq!(text.get_string(&client.transact()), "hello world");
    }

    #[test]
    fn formatting_comes_back_and_a_restore_can_be_restored() {
        let client = Doc::new();
        let text = client.get_or_insert_text("text");
        {
            let mut txn = client.transact_mut();
            let bold = Attrs::from([(Arc::from("bold"), Any::Bool(true))]);
            text.insert_with_attributes(&mut txn, 0, "bold", bold);
            let plain = Attrs::from([(Arc::from("bold"), Any::Null)]);
            text.insert_with_attributes(&mut txn, 4, " plain", plain);
        }
        let server = server_of(&client);
        let first = state(&server);
        let formatted = text.diff(&client.transact(), YChange::identity);
        assert_eq!(formatted.len(), 2, "bold run and plain run: {formatted:?}");
        {
            let mut txn = client.transact_mut();
            text.remove_range(&mut txn, 0, 4);
        }
        sync(&client, &server);
        let second = state(&server);
        restore_and_check(&client, &server, &first);
        let delta = text.diff(&client.transact(), YChange::identity);
        assert_eq!(delta, formatted);
        // Restore the restore: back to the state without "bold".
        restore_and_check(&client, &server, &second);
        assert_eq!(text.get_string(&client.transact()), " plain");
    }

    #[test]
    fn nothing_changed_since_is_an_empty_revert() {
        let client = Doc::new();
        client
            .get_or_insert_map("map")
            .insert(&mut client.transact_mut(), "k", "v");
        let server = server_of(&client);
        let old = state(&server);
        let revert = revert_to(&server, &old).unwrap();
        let update = Update::decode_v1(&revert).unwrap();
        assert!(
            update.is_empty() || {
                let before = server.transact().state_vector();
                server.transact_mut().apply_update(update).unwrap();
                server.transact().state_vector() == before
            }
        );
    }

    #[test]
    fn a_restore_to_empty_clears_every_root() {
        let client = Doc::new();
        let server = server_of(&client);
        let old = state(&server);
        {
            let mut txn = client.transact_mut();
            let map = txn.get_or_insert_map("map");
            map.insert(&mut txn, "x", 1);
            let text = txn.get_or_insert_text("text");
            text.insert(&mut txn, 0, "abc");
        }
        sync(&client, &server);
        let revert = revert_to(&server, &old).unwrap();
        server
            .transact_mut()
            .apply_update(Update::decode_v1(&revert).unwrap())
            .unwrap();
        let json = doc_to_json(&server);
        assert!(
            json.as_object().unwrap().values().all(|v| v.is_null()),
            "{json}"
        );
    }
}
