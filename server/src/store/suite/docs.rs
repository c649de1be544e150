//! Stories of the `DocStore`: the update log, snapshots and compaction, room lookup and
//! listing.

use bytes::Bytes;

use super::TestStore;
use crate::store::{Append, RoomId, RoomVersion, Seq};

fn append(room_id: RoomId, data: &'static [u8]) -> Append {
    Append {
        room_id,
        data: Bytes::from_static(data),
        ..Default::default()
    }
}

pub(super) async fn append_load_and_compact_story(store: TestStore) {
    let docs = store.docs();
    let a = docs.load("prj_a", "doc").await.unwrap();
    let b = docs.load("prj_b", "doc").await.unwrap();
    assert_ne!(a.room_id, b.room_id, "rooms are namespaced by project");
    assert!(a.snapshot.is_none() && a.updates.is_empty());
    assert!(docs.append(&[]).await.unwrap().is_empty());

    let seqs = docs
        .append(&[
            append(a.room_id, b"1"),
            append(b.room_id, b"x"),
            append(a.room_id, b"2"),
        ])
        .await
        .unwrap();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    let loaded = docs.load("prj_a", "doc").await.unwrap();
    assert_eq!(loaded.room_id, a.room_id);
    let data: Vec<_> = loaded.updates.iter().map(|(_, d)| d.as_ref()).collect();
    assert_eq!(data, [b"1".as_ref(), b"2".as_ref()]);
    assert_eq!(loaded.updates[0].0, seqs[0]);

    // Compact the first update only; the second stays in the log.
    let upto = seqs[0];
    let folded = docs.read_upto(a.room_id, upto).await.unwrap();
    assert_eq!(folded.updates.len(), 1);
    assert!(docs
        .replace_snapshot(a.room_id, None, upto, &[upto], b"S1")
        .await
        .unwrap());
    // A racing compaction that read the old (absent) snapshot loses.
    assert!(!docs
        .replace_snapshot(a.room_id, None, upto, &[upto], b"S?")
        .await
        .unwrap());
    let loaded = docs.load("prj_a", "doc").await.unwrap();
    assert_eq!(loaded.snapshot, Some((upto, Bytes::from_static(b"S1"))));
    assert_eq!(loaded.updates.len(), 1);
    assert_eq!(loaded.updates[0].1.as_ref(), b"2");
    // read_upto stops at `upto`; what is left of the log is all after the snapshot.
    let folded = docs.read_upto(a.room_id, seqs[2]).await.unwrap();
    assert_eq!(folded.snapshot, loaded.snapshot);
    assert_eq!(folded.updates, loaded.updates);
    assert!(docs
        .read_upto(a.room_id, seqs[1])
        .await
        .unwrap()
        .updates
        .is_empty());

    // Reopening (a restart) sees the same.
    let store = store.reopen().await;
    let docs = store.docs();
    let again = docs.load("prj_a", "doc").await.unwrap();
    assert_eq!(again.room_id, a.room_id);
    assert_eq!(again.snapshot, loaded.snapshot);
    assert_eq!(again.updates, loaded.updates);
    // A compaction that read a stale snapshot loses; the right one wins.
    assert!(!docs
        .replace_snapshot(a.room_id, Some(upto - 1), seqs[2], &[seqs[2]], b"S?")
        .await
        .unwrap());
    assert_eq!(
        docs.load("prj_a", "doc").await.unwrap().updates,
        loaded.updates,
        "a losing compaction deletes nothing"
    );
    assert!(docs
        .replace_snapshot(a.room_id, Some(upto), seqs[2], &[seqs[2]], b"S2")
        .await
        .unwrap());
    let last = docs.load("prj_a", "doc").await.unwrap();
    assert!(last.updates.is_empty());
    assert_eq!(last.snapshot.unwrap().0, seqs[2]);
    // The other project's room is untouched.
    assert_eq!(docs.load("prj_b", "doc").await.unwrap().updates.len(), 1);

    // After a restart, new updates still come after everything compacted.
    let store = store.reopen().await;
    let next = store
        .docs()
        .append(&[append(a.room_id, b"3")])
        .await
        .unwrap();
    assert!(next[0] > seqs[2]);
    let loaded = store.docs().load("prj_a", "doc").await.unwrap();
    assert_eq!(loaded.updates, [(next[0], Bytes::from_static(b"3"))]);
    store.stores.close().await;
}

pub(super) async fn a_large_batch_gets_seqs_in_order(store: TestStore) {
    let docs = store.docs();
    let a = docs.load("prj", "a").await.unwrap().room_id;
    let b = docs.load("prj", "b").await.unwrap().room_id;
    // On SQLite this crosses several INSERT chunk sizes (256 + 64 + 32 + 16 + 8 + 4 + 2 + 1).
    let batch: Vec<Append> = (0..383u32)
        .map(|i| Append {
            room_id: if i % 3 == 0 { b } else { a },
            data: Bytes::from(i.to_le_bytes().to_vec()),
            ..Default::default()
        })
        .collect();
    let seqs = docs.append(&batch).await.unwrap();
    assert_eq!(seqs.len(), batch.len());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let mut stored: Vec<(Seq, Bytes)> = docs.load("prj", "a").await.unwrap().updates;
    stored.extend(docs.load("prj", "b").await.unwrap().updates);
    stored.sort();
    // Each seq belongs to the update it was returned for.
    for ((seq, data), (item, expected)) in stored.iter().zip(batch.iter().zip(&seqs)) {
        assert_eq!((seq, data), (expected, &item.data));
    }
    // A batch naming a room that does not exist writes nothing at all.
    let bad = [append(a, b"ok"), append(RoomId::MAX, b"no such room")];
    assert!(docs.append(&bad).await.is_err());
    assert_eq!(docs.load("prj", "a").await.unwrap().updates.len(), 255);
    // A compaction folding all of them but one deletes exactly those (on SQLite in
    // several chunks) and nothing of the other room.
    let a_seqs: Vec<Seq> = docs
        .load("prj", "a")
        .await
        .unwrap()
        .updates
        .iter()
        .map(|(seq, _)| *seq)
        .collect();
    let kept = a_seqs[100];
    let folded: Vec<Seq> = a_seqs.iter().copied().filter(|seq| *seq != kept).collect();
    let upto = *a_seqs.last().unwrap();
    assert!(docs
        .replace_snapshot(a, None, upto, &folded, b"S")
        .await
        .unwrap());
    let left = docs.load("prj", "a").await.unwrap().updates;
    assert_eq!(left.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [kept]);
    assert_eq!(docs.load("prj", "b").await.unwrap().updates.len(), 128);
    store.stores.close().await;
}

pub(super) async fn room_listing_story(store: TestStore) {
    let docs = store.docs();
    // Names with LIKE wildcards, a backslash, uppercase, non-ASCII and slashes: the
    // prefix match is exact and the order bytewise on every backend.
    let names = [
        "a%b", "a_b", "a\\b", "aXb", "ab", "abc", "B", "b/1", "b/2", "b/10", "é", "z",
    ];
    let mut ids = Vec::new();
    for name in names {
        ids.push(docs.load("prj", name).await.unwrap().room_id);
    }
    docs.load("prj_other", "ab").await.unwrap();
    let listed = |prefix: Option<&'static str>, after: Option<&'static str>, limit| async move {
        docs.list_rooms("prj", prefix, after, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
    };
    let mut sorted = names.map(str::to_owned).to_vec();
    sorted.sort(); // Rust's str order is bytewise too.
    assert_eq!(listed(None, None, 100).await, sorted);
    assert_eq!(listed(Some("a%"), None, 100).await, ["a%b"]);
    assert_eq!(listed(Some("a_"), None, 100).await, ["a_b"]);
    assert_eq!(listed(Some("a\\"), None, 100).await, ["a\\b"]);
    assert_eq!(listed(Some("ab"), None, 100).await, ["ab", "abc"]);
    assert_eq!(listed(Some("b/"), None, 100).await, ["b/1", "b/10", "b/2"]);
    assert_eq!(listed(Some("é"), None, 100).await, ["é"]);
    assert!(listed(Some("x"), None, 100).await.is_empty());
    // Paging with a cursor, with and without a prefix.
    assert_eq!(listed(None, None, 2).await, sorted[..2]);
    assert_eq!(listed(None, Some("ab"), 3).await, ["abc", "b/1", "b/10"]);
    assert_eq!(listed(Some("b/"), Some("b/1"), 1).await, ["b/10"]);
    let rows = docs.list_rooms("prj", Some("z"), None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, ids[names.len() - 1]);
    assert!(rows[0].created_at > 0);

    // Lookup never creates; deleting erases the room with its document.
    assert_eq!(docs.find_room("prj", "ab").await.unwrap(), Some(ids[4]));
    assert_eq!(docs.find_room("prj", "nope").await.unwrap(), None);
    assert_eq!(docs.find_room("prj_none", "ab").await.unwrap(), None);
    let seqs = docs
        .append(&[append(ids[4], b"1"), append(ids[4], b"2")])
        .await
        .unwrap();
    assert!(docs
        .replace_snapshot(ids[4], None, seqs[0], &seqs[..1], b"S")
        .await
        .unwrap());
    docs.delete_room(ids[4]).await.unwrap();
    assert_eq!(docs.find_room("prj", "ab").await.unwrap(), None);
    assert!(docs.find_room("prj_other", "ab").await.unwrap().is_some());
    use crate::store::export::Table;
    assert_eq!(store.count(Table::RoomSnapshots).await, 0);
    assert_eq!(store.count(Table::RoomUpdates).await, 0);
    // Loading it again starts a new, empty room.
    let fresh = docs.load("prj", "ab").await.unwrap();
    assert_ne!(fresh.room_id, ids[4]);
    assert!(fresh.snapshot.is_none() && fresh.updates.is_empty());
    docs.ping().await.unwrap();
    store.stores.close().await;
}

pub(super) async fn concurrent_first_loads_find_one_room(store: TestStore) {
    let docs = store.stores.docs.clone();
    let loads = (0..8).map(|_| {
        let docs = docs.clone();
        tokio::spawn(async move { docs.load("prj", "new-room").await.unwrap().room_id })
    });
    let mut ids = Vec::new();
    for load in loads {
        ids.push(load.await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    use crate::store::export::Table;
    assert_eq!(store.count(Table::Rooms).await, 1);
    store.stores.close().await;
}

pub(super) async fn racing_compactions_story(store: TestStore) {
    let docs = store.stores.docs.clone();
    let room = docs.load("prj", "doc").await.unwrap().room_id;
    let seqs = docs
        .append(&[append(room, b"1"), append(room, b"2")])
        .await
        .unwrap();
    // Many compactions that all read "no snapshot": exactly one wins.
    let racers = (0..8).map(|i| {
        let docs = docs.clone();
        let upto = seqs[i % 2];
        let folded = seqs[..=i % 2].to_vec();
        tokio::spawn(async move {
            docs.replace_snapshot(room, None, upto, &folded, b"S")
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1);
    let loaded = docs.load("prj", "doc").await.unwrap();
    let upto = loaded.snapshot.as_ref().unwrap().0;
    assert!(loaded.updates.iter().all(|(seq, _)| *seq > upto));
    assert_eq!(loaded.updates.len(), usize::from(upto == seqs[0]));
    store.stores.close().await;
}

/// A yrs update inserting `s` at the end of the text `t` of `doc`.
fn edit(doc: &yrs::Doc, s: &str) -> Bytes {
    use yrs::Text;
    let text = doc.get_or_insert_text("t");
    let mut txn = yrs::Transact::transact_mut(doc);
    let len = text.len(&txn);
    text.insert(&mut txn, len, s);
    Bytes::from(txn.encode_update_v1())
}

/// The text `t` after applying `updates` to a fresh document, in order.
fn text_after<'a>(updates: impl IntoIterator<Item = &'a Bytes>) -> String {
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Transact};
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("t");
    for data in updates {
        let update = yrs::Update::decode_v1(data).unwrap();
        doc.transact_mut().apply_update(update).unwrap();
    }
    let txn = doc.transact();
    text.get_string(&txn)
}

/// `updates` merged into one update (a snapshot).
fn merged<'a>(updates: impl IntoIterator<Item = &'a Bytes>) -> Bytes {
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, Transact};
    let doc = yrs::Doc::new();
    for data in updates {
        let update = yrs::Update::decode_v1(data).unwrap();
        doc.transact_mut().apply_update(update).unwrap();
    }
    let state = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    Bytes::from(state)
}

/// The stored document's text: the snapshot, then every log row.
fn text_of(stored: &crate::store::StoredDoc) -> String {
    text_after(
        stored
            .snapshot
            .iter()
            .map(|(_, data)| data)
            .chain(stored.updates.iter().map(|(_, data)| data)),
    )
}

/// With several nodes on one Postgres, seqs come from a sequence but commits become
/// visible in any order: a compaction may read seqs 1 and 3 while 2 is not committed
/// yet. It must delete exactly what it folded, and loads must still read row 2 although
/// it is below the snapshot's `upto_seq`.
pub(super) async fn a_row_committed_late_survives_compaction(store: TestStore) {
    let docs = store.docs();
    let room = docs.load("prj", "doc").await.unwrap().room_id;
    // Two writers: A and C from one, B concurrently from another.
    let (one, two) = (yrs::Doc::new(), yrs::Doc::new());
    let a = edit(&one, "hello");
    let b = edit(&two, "late");
    let c = edit(&one, " world");
    let mut seqs = Vec::new();
    for data in [&a, &b, &c] {
        let batch = [Append {
            room_id: room,
            data: data.clone(),
            ..Default::default()
        }];
        seqs.extend(docs.append(&batch).await.unwrap());
    }
    let full = text_after([&a, &b, &c]);
    assert!(
        full.contains("hello world") && full.contains("late"),
        "{full}"
    );

    // A compaction that read A and C only (B committed after its read).
    assert!(docs
        .replace_snapshot(room, None, seqs[2], &[seqs[0], seqs[2]], &merged([&a, &c]))
        .await
        .unwrap());
    let loaded = docs.load("prj", "doc").await.unwrap();
    assert_eq!(loaded.snapshot.as_ref().unwrap().0, seqs[2]);
    assert_eq!(
        loaded.updates,
        [(seqs[1], b.clone())],
        "B is still in the log"
    );
    assert_eq!(text_of(&loaded), full);
    // A compaction's read sees it too, and folding it (with a newer row) empties the log.
    let read = docs.read_upto(room, seqs[2]).await.unwrap();
    assert_eq!(read.updates, loaded.updates);
    let d = edit(&one, "!");
    let d_seq = docs
        .append(&[Append {
            room_id: room,
            data: d.clone(),
            ..Default::default()
        }])
        .await
        .unwrap()[0];
    let read = docs.read_upto(room, d_seq).await.unwrap();
    assert_eq!(read.updates, [(seqs[1], b.clone()), (d_seq, d.clone())]);
    let snapshot = merged([&read.snapshot.as_ref().unwrap().1, &b, &d]);
    assert!(docs
        .replace_snapshot(room, Some(seqs[2]), d_seq, &[seqs[1], d_seq], &snapshot)
        .await
        .unwrap());

    // After a restart the document is whole.
    let store = store.reopen().await;
    let loaded = store.docs().load("prj", "doc").await.unwrap();
    assert_eq!(loaded.snapshot.as_ref().unwrap().0, d_seq);
    assert!(loaded.updates.is_empty());
    assert_eq!(text_of(&loaded), text_after([&a, &b, &c, &d]));
    store.stores.close().await;
}

pub(super) async fn room_version_story(store: TestStore) {
    let docs = store.docs();
    assert_eq!(docs.room_version(RoomId::MAX).await.unwrap(), None);
    let room = docs.load("prj", "doc").await.unwrap().room_id;
    let other = docs.load("prj", "other").await.unwrap().room_id;
    let empty = docs.room_version(room).await.unwrap().unwrap();
    assert_eq!(
        empty,
        RoomVersion {
            snapshot_upto: None,
            log_rows: 0,
            log_max: None,
            log_seq_sum: 0,
        }
    );
    // Nothing happened: the same version (loading is not a change).
    docs.load("prj", "doc").await.unwrap();
    assert_eq!(docs.room_version(room).await.unwrap(), Some(empty));

    let seqs = docs
        .append(&[append(room, b"1"), append(other, b"x"), append(room, b"2")])
        .await
        .unwrap();
    let appended = docs.room_version(room).await.unwrap().unwrap();
    assert_ne!(appended, empty);
    assert_eq!(
        appended,
        RoomVersion {
            snapshot_upto: None,
            log_rows: 2,
            log_max: Some(seqs[2]),
            log_seq_sum: seqs[0] + seqs[2],
        }
    );
    // Another room's append is not this room's change.
    docs.append(&[append(other, b"y")]).await.unwrap();
    assert_eq!(docs.room_version(room).await.unwrap(), Some(appended));

    // A compaction changes it; a losing one does not.
    assert!(docs
        .replace_snapshot(room, None, seqs[0], &seqs[..1], b"S1")
        .await
        .unwrap());
    let compacted = docs.room_version(room).await.unwrap().unwrap();
    assert_ne!(compacted, appended);
    assert_eq!(
        compacted,
        RoomVersion {
            snapshot_upto: Some(seqs[0]),
            log_rows: 1,
            log_max: Some(seqs[2]),
            log_seq_sum: seqs[2],
        }
    );
    assert!(!docs
        .replace_snapshot(room, None, seqs[2], &seqs[2..], b"S?")
        .await
        .unwrap());
    assert_eq!(docs.room_version(room).await.unwrap(), Some(compacted));
    // Compacting everything: an empty log, a newer snapshot.
    assert!(docs
        .replace_snapshot(room, Some(seqs[0]), seqs[2], &seqs[2..], b"S2")
        .await
        .unwrap());
    let all = docs.room_version(room).await.unwrap().unwrap();
    assert_eq!(
        all,
        RoomVersion {
            snapshot_upto: Some(seqs[2]),
            log_rows: 0,
            log_max: None,
            log_seq_sum: 0,
        }
    );
    // A restart changes nothing.
    let store = store.reopen().await;
    let docs = store.docs();
    assert_eq!(docs.room_version(room).await.unwrap(), Some(all));

    // Deleted: gone, and the new room of the same name is another id.
    docs.delete_room(room).await.unwrap();
    assert_eq!(docs.room_version(room).await.unwrap(), None);
    assert!(docs.room_version(other).await.unwrap().is_some());
    let fresh = docs.load("prj", "doc").await.unwrap().room_id;
    assert_eq!(docs.room_version(fresh).await.unwrap(), Some(empty));
    store.stores.close().await;
}

pub(super) async fn read_only_setting_story(store: TestStore) {
    let docs = store.docs();
    // A room that does not exist has no setting, and setting one creates nothing.
    assert_eq!(docs.read_only("prj", "doc").await.unwrap(), None);
    assert!(!docs.set_read_only("prj", "doc", true).await.unwrap());
    assert_eq!(docs.find_room("prj", "doc").await.unwrap(), None);

    let first = docs.load("prj", "doc").await.unwrap();
    assert!(!first.read_only, "rooms start writable");
    docs.load("prj_other", "doc").await.unwrap();
    assert!(docs.set_read_only("prj", "doc", true).await.unwrap());
    assert_eq!(docs.read_only("prj", "doc").await.unwrap(), Some(true));
    // Per room: the other project's room of the same name is untouched.
    assert_eq!(
        docs.read_only("prj_other", "doc").await.unwrap(),
        Some(false)
    );
    // Loading reads it, and so does the listing.
    let loaded = docs.load("prj", "doc").await.unwrap();
    assert_eq!((loaded.room_id, loaded.read_only), (first.room_id, true));
    let listed = docs.list_rooms("prj", None, None, 10).await.unwrap();
    assert!(listed[0].read_only);
    // Setting it twice is the same; turning it off works.
    assert!(docs.set_read_only("prj", "doc", true).await.unwrap());
    assert!(docs.set_read_only("prj", "doc", false).await.unwrap());
    assert!(!docs.load("prj", "doc").await.unwrap().read_only);
    // Deleting the room takes the setting with it.
    docs.set_read_only("prj", "doc", true).await.unwrap();
    docs.delete_room(first.room_id).await.unwrap();
    assert_eq!(docs.read_only("prj", "doc").await.unwrap(), None);
    assert!(!docs.load("prj", "doc").await.unwrap().read_only);
}

/// A catch-up's read: the snapshot's `upto_seq`, every log row's seq and size, and the
/// data of exactly the rows the reader has not seen, compared by seq (a row that
/// committed late below rows already seen is read; rows seen above it are not returned).
pub(super) async fn read_unseen_story(store: TestStore) {
    use std::collections::BTreeSet;

    use crate::store::LogTail;
    let docs = store.docs();
    let room = docs.load("prj", "doc").await.unwrap().room_id;
    let other = docs.load("prj", "other").await.unwrap().room_id;
    assert_eq!(
        docs.read_unseen(room, &BTreeSet::new()).await.unwrap(),
        LogTail::default()
    );
    let mut seqs = Vec::new();
    for data in [&b"a"[..], b"bb", b"ccc"] {
        seqs.extend(docs.append(&[append(room, data)]).await.unwrap());
    }
    docs.append(&[append(other, b"x")]).await.unwrap();
    let rows = vec![(seqs[0], 1), (seqs[1], 2), (seqs[2], 3)];

    // Nothing seen: everything, in seq order.
    let tail = docs.read_unseen(room, &BTreeSet::new()).await.unwrap();
    assert_eq!(tail.snapshot, None);
    assert_eq!(tail.rows, rows);
    let data: Vec<&[u8]> = tail.updates.iter().map(|(_, d)| d.as_ref()).collect();
    assert_eq!(data, [&b"a"[..], b"bb", b"ccc"]);
    // The middle row committed after the reader saw the last one: only it is read.
    let seen = BTreeSet::from([seqs[0], seqs[2]]);
    let tail = docs.read_unseen(room, &seen).await.unwrap();
    assert_eq!(tail.rows, rows);
    assert_eq!(tail.updates, [(seqs[1], Bytes::from_static(b"bb"))]);
    // Everything seen: no data read, and seqs of rows no longer stored change nothing.
    let all = BTreeSet::from([seqs[0] - 1, seqs[0], seqs[1], seqs[2]]);
    let tail = docs.read_unseen(room, &all).await.unwrap();
    assert_eq!((tail.rows.clone(), tail.updates.len()), (rows.clone(), 0));
    // A new row past what was seen: only it.
    let d = docs.append(&[append(room, b"dddd")]).await.unwrap()[0];
    let tail = docs.read_unseen(room, &all).await.unwrap();
    assert_eq!(tail.updates, [(d, Bytes::from_static(b"dddd"))]);
    assert_eq!(tail.rows.last(), Some(&(d, 4)));

    // A compaction folding the first two: the new snapshot is reported (the reader
    // compares it with the one it holds) and the folded rows are gone from the log.
    assert!(docs
        .replace_snapshot(room, None, seqs[1], &seqs[..2], b"SNAP!")
        .await
        .unwrap());
    let tail = docs.read_unseen(room, &all).await.unwrap();
    assert_eq!(tail.snapshot, Some((seqs[1], 5)));
    assert_eq!(tail.rows, [(seqs[2], 3), (d, 4)]);
    assert_eq!(tail.updates, [(d, Bytes::from_static(b"dddd"))]);
    // Another room's rows are never in it.
    let tail = docs.read_unseen(other, &BTreeSet::new()).await.unwrap();
    assert_eq!(tail.rows.len(), 1);
    assert_eq!(tail.updates[0].1.as_ref(), b"x");
    store.stores.close().await;
}
