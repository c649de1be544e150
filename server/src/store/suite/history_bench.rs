//! A measurement, not a test (ignored by default; `scripts/bench-history.sh` runs it):
//! the cost of rebuilding a room's document at a past time on a room with 100,000
//! updates, against one with 1,000, and the storage history keeps compared with the
//! compacted document alone. SQLite in a temporary directory; the store and yrs calls
//! `document?at=` makes, without HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update};

use crate::store::history::HistoryStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Append, Attribution, DocStore, RoomId, StoredDoc, Via};

/// Updates folded per compaction (the server's default `--compact-after-updates`).
const COMPACT_EVERY: usize = 500;

fn build(stored: &StoredDoc) -> Doc {
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
    doc
}

/// Writes `n` one-character edits at 10 ms intervals, compacting like the server.
async fn fill(store: &SqliteStore, name: &str, n: usize) -> RoomId {
    let room = store.load("prj_bench", name).await.unwrap().room_id;
    let author = Arc::new(Attribution {
        user_id: Some("writer".to_owned()),
        key_id: Some("key_bench".to_owned()),
        conn_id: Some(1),
        via: Via::Socket,
    });
    let writer = Doc::new();
    let text = writer.get_or_insert_text("t");
    let mut prev = None;
    let mut written = 0;
    while written < n {
        let batch: Vec<Append> = (0..COMPACT_EVERY.min(n - written))
            .map(|i| {
                let mut txn = writer.transact_mut();
                let len = text.len(&txn);
                let at = (written + i) as u32 % 97;
                text.insert(&mut txn, at.min(len), "x");
                Append {
                    room_id: room,
                    data: Bytes::from(txn.encode_update_v1()),
                    author: author.clone(),
                    written_at: ((written + i) as i64) * 10,
                }
            })
            .collect();
        written += batch.len();
        for chunk in batch.chunks(256) {
            store.append(chunk).await.unwrap();
        }
        let upto = i64::MAX;
        let read = store.read_upto(room, upto).await.unwrap();
        let folded: Vec<_> = read.updates.iter().map(|(s, _)| *s).collect();
        let merged = build(&read)
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let max = *folded.iter().max().unwrap();
        assert!(store
            .replace_snapshot(room, prev, max, &folded, &merged)
            .await
            .unwrap());
        prev = Some(max);
    }
    room
}

/// Median of `runs` timings of reading and rebuilding the document at `at`.
async fn time_at(store: &SqliteStore, room: RoomId, at: i64, runs: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let stored = store.read_at(room, at).await.unwrap().unwrap();
        let doc = build(&stored);
        let _ = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        times.push(started.elapsed());
    }
    times.sort();
    times[runs / 2]
}

#[tokio::test]
#[ignore = "a measurement: run by scripts/bench-history.sh"]
async fn history_bench() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    for n in [1_000usize, 100_000] {
        let started = Instant::now();
        let room = fill(&store, &format!("r{n}"), n).await;
        let filled = started.elapsed();
        let last = (n as i64 - 1) * 10;
        let live = store.load("prj_bench", &format!("r{n}")).await.unwrap();
        let live_bytes = live.snapshot.as_ref().map_or(0, |(_, d)| d.len()) + live.log_bytes();
        let history = store.history_bytes(room).await.unwrap();
        let checkpoints: i64 = store
            .checkpoints(room)
            .await
            .unwrap()
            .iter()
            .map(|c| c.bytes)
            .sum();
        // Half-way through a compaction interval: a checkpoint plus ~250 rows.
        let middle = ((n / 2 + COMPACT_EVERY / 2) as i64 - 1) * 10;
        let rows = store.read_at(room, middle).await.unwrap().unwrap();
        println!(
            "history_bench n={n}: filled in {filled:?}; live document {live_bytes} B, \
             history {history} B ({:.1}x the live document; checkpoints {checkpoints} B, \
             folded rows {} B); at the middle: one checkpoint + {} rows",
            history as f64 / live_bytes as f64,
            history - checkpoints,
            rows.updates.len()
        );
        for (what, at) in [("start", 5), ("middle", middle), ("end", last)] {
            let t = time_at(&store, room, at, 15).await;
            println!("history_bench n={n}: document at the {what}: median {t:?}");
        }
    }
}
