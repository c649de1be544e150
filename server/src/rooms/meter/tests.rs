//! The meter and the flusher with a hand-moved clock and a recording fake store: deltas,
//! hour splitting, peaks (also of connections carried into an hour), users once,
//! storage readings, and exactly-once flushing across failures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::sync::Mutex;

use async_trait::async_trait;

use super::flusher::{merge, Flusher};
use super::*;
use crate::store::usage::{MonthUsers, UsageStore};
use crate::store::{StoreError, StoreResult};

/// 2025-01-31T22:59:30Z: thirty seconds before an hour (and a day and month) ends.
const T0: i64 = 1_738_364_370_000;
const H22: i64 = 1_738_360_800_000;
const H23: i64 = H22 + HOUR_MS;

struct Clock(Arc<AtomicI64>);

impl Clock {
    fn at(&self, ms: i64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

fn meter() -> (Arc<Meter>, Clock) {
    let now = Arc::new(AtomicI64::new(T0));
    let read = now.clone();
    let meter = Arc::new(Meter::new(
        Arc::new(move || read.load(Ordering::Relaxed)),
        true,
    ));
    (meter, Clock(now))
}

fn key(project: &str, room: &str) -> RoomKey {
    RoomKey {
        project_id: project.into(),
        name: room.into(),
    }
}

fn row<'a>(batch: &'a UsageBatch, room: &str, hour: i64) -> &'a RoomHour {
    batch
        .rooms
        .iter()
        .find(|r| r.room == room && r.hour_start == hour)
        .unwrap_or_else(|| panic!("no row for {room} at {hour} in {batch:?}"))
}

fn project_peak(batch: &UsageBatch, project: &str, hour: i64) -> Option<i64> {
    batch
        .projects
        .iter()
        .find(|p| p.project_id == project && p.hour_start == hour)
        .map(|p| p.peak_connections)
}

#[test]
fn counters_are_taken_as_deltas() {
    let (meter, clock) = meter();
    let conn = meter.connect(&key("prj_a", "doc"), Some("ada"));
    conn.counters().received(10);
    conn.counters().received(5);
    conn.counters().sent(3, 300);
    clock.at(T0 + 1_000);
    let first = meter.take(T0 + 1_000);
    let r = row(&first, "doc", H22);
    assert_eq!(
        (r.messages_in, r.bytes_in, r.messages_out, r.bytes_out),
        (2, 15, 3, 300)
    );
    assert_eq!(r.connection_ms, 1_000);
    assert_eq!((r.peak_connections, r.active), (1, true));
    conn.counters().received(7);
    let second = meter.take(T0 + 3_000);
    let r = row(&second, "doc", H22);
    assert_eq!((r.messages_in, r.bytes_in, r.messages_out), (1, 7, 0));
    assert_eq!(r.connection_ms, 2_000, "only the time since the last take");
    assert_eq!(r.peak_connections, 0, "no connect since the last take");
    assert!(second.users.is_empty(), "users are sent once");
}

#[test]
fn connection_time_is_split_at_the_hour_and_carried_into_its_peak() {
    let (meter, _clock) = meter();
    let _a = meter.connect(&key("prj_a", "doc"), None);
    let _b = meter.connect(&key("prj_a", "doc"), None);
    // The flush at the boundary runs a little late.
    let batch = meter.take(H23 + 10_000);
    assert_eq!(row(&batch, "doc", H22).connection_ms, 2 * 30_000);
    assert_eq!(row(&batch, "doc", H23).connection_ms, 2 * 10_000);
    assert_eq!(project_peak(&batch, "prj_a", H22), Some(2));
    // Nobody connected during 23:00, but two were open as it began.
    assert_eq!(project_peak(&batch, "prj_a", H23), Some(2));
    assert_eq!(row(&batch, "doc", H23).peak_connections, 2);
    assert!(row(&batch, "doc", H23).active);
}

#[test]
fn an_ended_connection_counts_up_to_its_end_then_is_forgotten() {
    let (meter, clock) = meter();
    let conn = meter.connect(&key("prj_a", "doc"), None);
    conn.counters().received(1);
    clock.at(T0 + 5_000);
    drop(conn);
    let batch = meter.take(T0 + 20_000);
    let r = row(&batch, "doc", H22);
    assert_eq!((r.connection_ms, r.messages_in), (5_000, 1));
    assert!(meter.take(T0 + 40_000).is_empty());
    // Ended exactly at the hour: not open as the next hour starts.
    let conn = meter.connect(&key("prj_a", "doc"), None);
    clock.at(H23);
    drop(conn);
    let batch = meter.take(H23 + 1_000);
    assert_eq!(project_peak(&batch, "prj_a", H23), None);
}

#[test]
fn peaks_are_the_most_open_at_once_per_project_and_room() {
    let (meter, clock) = meter();
    let a = meter.connect(&key("prj_a", "x"), None);
    let b = meter.connect(&key("prj_a", "x"), None);
    let _c = meter.connect(&key("prj_a", "x"), None);
    let _d = meter.connect(&key("prj_a", "y"), None);
    let _other = meter.connect(&key("prj_b", "x"), None);
    drop(a);
    drop(b);
    let _e = meter.connect(&key("prj_a", "y"), None);
    let batch = meter.take(T0 + 1_000);
    assert_eq!(project_peak(&batch, "prj_a", H22), Some(4));
    assert_eq!(project_peak(&batch, "prj_b", H22), Some(1));
    assert_eq!(row(&batch, "x", H22).peak_connections, 3);
    assert_eq!(row(&batch, "y", H22).peak_connections, 2);
    // Three remain open into the next hour: x 1, y 2.
    clock.at(H23 + 5);
    let batch = meter.take(H23 + 5);
    assert_eq!(project_peak(&batch, "prj_a", H23), Some(3));
    assert_eq!(row(&batch, "y", H23).peak_connections, 2);
}

#[test]
fn users_are_counted_once_per_project_and_month() {
    let (meter, clock) = meter();
    let _a = meter.connect(&key("prj_a", "x"), Some("ada"));
    let _b = meter.connect(&key("prj_a", "y"), Some("ada"));
    let _c = meter.connect(&key("prj_b", "x"), Some("ada"));
    let _anonymous = meter.connect(&key("prj_a", "x"), None);
    clock.at(H23 + HOUR_MS); // 2025-02-01T00:00Z
    let _d = meter.connect(&key("prj_a", "x"), Some("ada"));
    let batch = meter.take(H23 + HOUR_MS);
    let seen: Vec<_> = batch
        .users
        .iter()
        .map(|u| (u.project_id.as_str(), u.month_start, u.user_id.as_str()))
        .collect();
    let jan = crate::store::usage::month_start(T0);
    let feb = H23 + HOUR_MS;
    assert_eq!(
        seen,
        [
            ("prj_a", jan, "ada"),
            ("prj_a", feb, "ada"),
            ("prj_b", jan, "ada")
        ]
    );
}

#[test]
fn storage_is_reported_when_it_changes_and_once_per_hour() {
    let (meter, _clock) = meter();
    let storage = meter.room_storage(&key("prj_a", "doc"), 100);
    let batch = meter.take(T0);
    assert_eq!(row(&batch, "doc", H22).storage_bytes, Some(100));
    assert!(!row(&batch, "doc", H22).active, "loaded is not active");
    assert!(meter.take(T0 + 1).is_empty(), "unchanged: nothing to write");
    storage.set(250);
    assert_eq!(
        row(&meter.take(T0 + 2), "doc", H22).storage_bytes,
        Some(250)
    );
    // A new hour gets its own reading even when unchanged.
    assert_eq!(
        row(&meter.take(H23 + 1), "doc", H23).storage_bytes,
        Some(250)
    );
    // Unloaded and loaded again before a flush: the newest reading wins.
    storage.set(300);
    drop(storage);
    let again = meter.room_storage(&key("prj_a", "doc"), 40);
    let batch = meter.take(H23 + 2);
    assert_eq!(row(&batch, "doc", H23).storage_bytes, Some(40));
    drop(again);
    assert!(meter.take(H23 + 3).is_empty());
    assert!(
        meter.lock().gauges.is_empty(),
        "unloaded gauges are forgotten"
    );
}

#[test]
fn a_meter_without_a_flusher_records_nothing() {
    let meter = Arc::new(Meter::new(Arc::new(|| T0), false));
    let conn = meter.connect(&key("prj_a", "doc"), Some("ada"));
    conn.counters().received(1);
    let _storage = meter.room_storage(&key("prj_a", "doc"), 1);
    assert!(meter.take(T0 + 1_000).is_empty());
    assert!(meter.lock().conns.is_empty());
}

#[test]
fn merging_is_what_applying_both_would_do() {
    let r = |n: i64, storage: Option<i64>| RoomHour {
        project_id: "prj_a".into(),
        room: "doc".into(),
        hour_start: H22,
        messages_in: n,
        peak_connections: n,
        active: n > 1,
        storage_bytes: storage,
        ..RoomHour::default()
    };
    let mut a = UsageBatch {
        rooms: vec![r(2, Some(10))],
        ..UsageBatch::default()
    };
    merge(
        &mut a,
        UsageBatch {
            rooms: vec![r(1, None)],
            ..UsageBatch::default()
        },
    );
    assert_eq!(
        a.rooms,
        vec![RoomHour {
            messages_in: 3,
            ..r(2, Some(10))
        }]
    );
    merge(
        &mut a,
        UsageBatch {
            rooms: vec![r(1, Some(7))],
            ..UsageBatch::default()
        },
    );
    assert_eq!(a.rooms[0].storage_bytes, Some(7), "the later reading");
}

/// Applies batches in memory, exactly once per id; can be told to fail the next calls,
/// either before writing or after (an answer lost after the commit).
#[derive(Default)]
struct FakeStore {
    applied: Mutex<HashSet<String>>,
    calls: Mutex<Vec<String>>,
    messages_in: AtomicI64,
    fail_before: AtomicUsize,
    fail_after: AtomicUsize,
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn failure() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolTimedOut)
}

#[async_trait]
impl UsageStore for FakeStore {
    async fn apply_usage(&self, id: &str, batch: &UsageBatch, _now: i64) -> StoreResult<bool> {
        self.calls.lock().unwrap().push(id.to_owned());
        if take_one(&self.fail_before) {
            return Err(failure());
        }
        let new = self.applied.lock().unwrap().insert(id.to_owned());
        if new {
            let n: i64 = batch.rooms.iter().map(|r| r.messages_in).sum();
            self.messages_in.fetch_add(n, Ordering::Relaxed);
        }
        if take_one(&self.fail_after) {
            return Err(failure());
        }
        Ok(new)
    }
    async fn room_hours(&self, _: &str, _: i64, _: i64) -> StoreResult<Vec<RoomHour>> {
        Ok(Vec::new())
    }
    async fn project_hours(&self, _: &str, _: i64, _: i64) -> StoreResult<Vec<ProjectHour>> {
        Ok(Vec::new())
    }
    async fn monthly_users(&self, _: &str, _: i64, _: i64) -> StoreResult<Vec<MonthUsers>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_failed_flush_is_retried_with_its_id_and_counted_once() {
    let (meter, _clock) = meter();
    let store = Arc::new(FakeStore::default());
    let mut flusher = Flusher::new(meter.clone(), store.clone());
    let conn = meter.connect(&key("prj_a", "doc"), None);

    // Committed, but the answer is lost.
    conn.counters().received(1);
    store.fail_after.store(1, Ordering::Relaxed);
    assert!(!flusher.flush().await);
    // The store is down while more arrives: that waits in a batch never sent.
    conn.counters().received(1);
    store.fail_before.store(1, Ordering::Relaxed);
    assert!(!flusher.flush().await);
    conn.counters().received(1);
    conn.counters().received(1);
    // Back: the first batch again (same id, found applied), then the rest as one.
    assert!(flusher.flush().await);
    assert_eq!(store.messages_in.load(Ordering::Relaxed), 4);
    let calls = store.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0], calls[1]);
    assert_eq!(calls[1], calls[2], "retried as it was");
    assert_ne!(calls[2], calls[3], "the waiting batch gets its own id");
    assert!(flusher.flush().await);
    assert_eq!(store.calls.lock().unwrap().len(), 5, "connection time only");
    assert_eq!(store.messages_in.load(Ordering::Relaxed), 4);
}
