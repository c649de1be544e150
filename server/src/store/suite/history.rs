//! Version history on both backends: attribution stored with the append, compaction
//! keeping folded rows and checkpoints, the document at past times (also with a row
//! that committed late), retention pruning exactly what no time in the window needs,
//! names, sizes, deletion.

use std::sync::Arc;

use bytes::Bytes;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Map, ReadTxn, StateVector, Transact, Update};

use super::TestStore;
use crate::store::history::VersionName;
use crate::store::{Append, Attribution, RoomId, StoredDoc, Via};

/// Updates that each set one key of the map "m", from a client of its own, so that
/// none depends on another (any subset applies cleanly).
struct Writer;

impl Writer {
    fn new() -> Self {
        Self
    }

    fn push(&self, key: &str) -> Bytes {
        let doc = Doc::new();
        let map = doc.get_or_insert_map("m");
        let mut txn = doc.transact_mut();
        map.insert(&mut txn, key, true);
        Bytes::from(txn.encode_update_v1())
    }
}

fn author(user: &str, via: Via) -> Arc<Attribution> {
    Arc::new(Attribution {
        user_id: Some(user.to_owned()),
        key_id: Some("key_1".to_owned()),
        conn_id: Some(7),
        via,
    })
}

fn append(room_id: RoomId, data: Bytes, user: &str, at: i64) -> Append {
    Append {
        room_id,
        data,
        author: author(user, Via::Socket),
        written_at: at,
    }
}

/// The keys a stored document's map holds, sorted and joined.
fn text_of(stored: &StoredDoc) -> String {
    let doc = Doc::new();
    let map = doc.get_or_insert_map("m");
    let parts = stored
        .snapshot
        .iter()
        .map(|(_, d)| d)
        .chain(stored.updates.iter().map(|(_, d)| d));
    for data in parts {
        doc.transact_mut()
            .apply_update(Update::decode_v1(data).unwrap())
            .unwrap();
    }
    let txn = doc.transact();
    let mut keys: Vec<String> = map.keys(&txn).map(str::to_owned).collect();
    keys.sort();
    keys.concat()
}

/// Snapshot + rows merged, as a compaction writes it.
fn merged(stored: &StoredDoc) -> Vec<u8> {
    let doc = Doc::new();
    let parts = stored
        .snapshot
        .iter()
        .map(|(_, d)| d)
        .chain(stored.updates.iter().map(|(_, d)| d));
    for data in parts {
        doc.transact_mut()
            .apply_update(Update::decode_v1(data).unwrap())
            .unwrap();
    }
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    state
}

async fn text_at(store: &TestStore, room: RoomId, at: i64) -> Option<String> {
    store
        .docs()
        .read_at(room, at)
        .await
        .unwrap()
        .map(|stored| text_of(&stored))
}

pub(super) async fn history_story(store: TestStore) {
    let docs = store.docs();
    let room = docs.load("prj_h", "doc").await.unwrap().room_id;
    let w = Writer::new();
    let seqs = docs
        .append(&[
            append(room, w.push("a"), "alice", 100),
            append(room, w.push("b"), "bob", 200),
        ])
        .await
        .unwrap();
    let more = docs
        .append(&[append(room, w.push("c"), "alice", 300)])
        .await
        .unwrap();
    // Attribution is stored with the append.
    let rows = docs.history_rows(room, None, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [more[0], seqs[1], seqs[0]]
    );
    assert_eq!(rows[1].author, *author("bob", Via::Socket));
    assert_eq!(rows[1].written_at, 200);
    assert!(rows[1].bytes > 0);

    // Compacting the first two keeps them, as history, and the snapshot as a checkpoint.
    let read = docs.read_upto(room, seqs[1]).await.unwrap();
    assert!(docs
        .replace_snapshot(room, None, seqs[1], &seqs, &merged(&read))
        .await
        .unwrap());
    let loaded = docs.load("prj_h", "doc").await.unwrap();
    assert_eq!(loaded.updates.len(), 1, "the live log holds only the tail");
    assert_eq!(text_of(&loaded), "abc");
    assert_eq!(docs.history_rows(room, None, 10).await.unwrap(), rows);
    let checkpoints = docs.checkpoints(room).await.unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(
        (checkpoints[0].upto_seq, checkpoints[0].max_at),
        (seqs[1], 200)
    );

    let later = docs
        .append(&[
            append(room, w.push("d"), "bob", 400),
            append(room, w.push("e"), "bob", 500),
        ])
        .await
        .unwrap();
    let read = docs.read_upto(room, later[1]).await.unwrap();
    let folded: Vec<_> = read.updates.iter().map(|(s, _)| *s).collect();
    assert!(docs
        .replace_snapshot(room, Some(seqs[1]), later[1], &folded, &merged(&read))
        .await
        .unwrap());

    // The document at each time is what had been written by then.
    for (at, expected) in [
        (50, ""),
        (100, "a"),
        (150, "a"),
        (250, "ab"),
        (350, "abc"),
        (450, "abcd"),
        (10_000, "abcde"),
    ] {
        assert_eq!(
            text_at(&store, room, at).await.as_deref(),
            Some(expected),
            "at {at}"
        );
    }
    // Between two times: the writes after the first, oldest first.
    let between = docs.rows_between(room, 150, 400, 100).await.unwrap();
    assert_eq!(
        between
            .iter()
            .map(|(r, _)| r.written_at)
            .collect::<Vec<_>>(),
        [200, 300, 400]
    );
    assert_eq!(docs.row_time(room, more[0]).await.unwrap(), Some(300));
    let history = docs.history_bytes(room).await.unwrap();
    assert!(history > 0);

    // Names, kept until retention passes them.
    for (at_ms, name) in [(150, "early"), (450, "late")] {
        let named = VersionName {
            at_ms,
            name: name.to_owned(),
            created_at: 1,
            created_by: "key_1".to_owned(),
        };
        docs.name_version(room, &named).await.unwrap();
        docs.name_version(room, &named).await.unwrap();
    }
    assert_eq!(docs.version_names(room).await.unwrap().len(), 2);

    // Retention with the window starting at 450: the newest checkpoint all older than
    // it (the first, max_at 200) becomes the base; its rows go, nothing else.
    let pruned = docs.prune_history(room, 450).await.unwrap();
    assert_eq!((pruned.rows, pruned.checkpoints), (2, 0));
    assert_eq!(text_at(&store, room, 150).await, None, "before the base");
    for (at, expected) in [(200, "ab"), (350, "abc"), (450, "abcd"), (600, "abcde")] {
        assert_eq!(
            text_at(&store, room, at).await.as_deref(),
            Some(expected),
            "at {at}"
        );
    }
    let left: Vec<_> = docs.history_rows(room, None, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.written_at).collect::<Vec<_>>(),
        [500, 400, 300]
    );
    let names = docs.version_names(room).await.unwrap();
    assert_eq!(
        names.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["late"]
    );
    assert!(docs.checkpoints(room).await.unwrap()[0].base);
    assert!(docs.history_bytes(room).await.unwrap() < history);

    // Far past everything: the last checkpoint is the base; the live document stays.
    let pruned = docs.prune_history(room, 100_000).await.unwrap();
    assert_eq!((pruned.rows, pruned.checkpoints), (3, 1));
    assert_eq!(text_at(&store, room, 499).await, None);
    assert_eq!(text_at(&store, room, 500).await.as_deref(), Some("abcde"));
    assert_eq!(text_of(&docs.load("prj_h", "doc").await.unwrap()), "abcde");
    // Pruning again finds nothing more.
    let pruned = docs.prune_history(room, 100_000).await.unwrap();
    assert_eq!((pruned.rows, pruned.checkpoints), (0, 0));

    // Deleting the room erases its history.
    docs.delete_room(room).await.unwrap();
    assert!(docs.history_rows(room, None, 10).await.unwrap().is_empty());
    assert!(docs.checkpoints(room).await.unwrap().is_empty());
    assert!(docs.version_names(room).await.unwrap().is_empty());
}

/// A row that a compaction did not read (it committed late, with a smaller seq than
/// rows it folded) is still in every past document written after it.
pub(super) async fn history_keeps_a_late_row(store: TestStore) {
    let docs = store.docs();
    let room = docs.load("prj_h", "late").await.unwrap().room_id;
    let w = Writer::new();
    let seqs = docs
        .append(&[
            append(room, w.push("a"), "alice", 100),
            append(room, w.push("b"), "bob", 200),
            append(room, w.push("c"), "alice", 300),
        ])
        .await
        .unwrap();
    // The compaction "did not see" the middle row: it folds the first and the last.
    let read = docs.read_upto(room, seqs[2]).await.unwrap();
    let seen = StoredDoc {
        updates: read
            .updates
            .iter()
            .filter(|(s, _)| *s != seqs[1])
            .cloned()
            .collect(),
        ..read
    };
    let folded = [seqs[0], seqs[2]];
    assert!(docs
        .replace_snapshot(room, None, seqs[2], &folded, &merged(&seen))
        .await
        .unwrap());
    assert_eq!(text_at(&store, room, 350).await.as_deref(), Some("abc"));
    // The next compaction folds it (and a newer row) into a second checkpoint.
    let newer = docs
        .append(&[append(room, w.push("d"), "bob", 400)])
        .await
        .unwrap();
    let read = docs.read_upto(room, newer[0]).await.unwrap();
    let folded: Vec<_> = read.updates.iter().map(|(s, _)| *s).collect();
    assert_eq!(folded, [seqs[1], newer[0]]);
    assert!(docs
        .replace_snapshot(room, Some(seqs[2]), newer[0], &folded, &merged(&read))
        .await
        .unwrap());
    // At 350 the first checkpoint is the newest written by then; it lacks "b", which
    // the second checkpoint's rows supply.
    for (at, expected) in [(150, "a"), (250, "ab"), (350, "abc"), (450, "abcd")] {
        assert_eq!(
            text_at(&store, room, at).await.as_deref(),
            Some(expected),
            "at {at}"
        );
    }
}
