//! Usage metering, counted off the hot path. Each connection gets a [`ConnMeter`] of
//! relaxed atomics that its session bumps for every binary frame it reads or writes (no
//! lock, no allocation per message). The [`Meter`] (one per engine) knows every
//! connection's project, room, user and start, and every loaded room's stored size;
//! connects, disconnects and room loads take its lock, messages never do.
//!
//! A flush ([`Meter::take`], run by the [`flusher`]) turns what happened since the last
//! one into a [`UsageBatch`]: each connection's counter deltas (`swap(0)`), its
//! connection time split across UTC hours, the peak of concurrent connections per
//! project and room, the users seen, and storage readings that changed. Time comes from
//! an injected clock, so all of this is unit-tested without sleeping.

pub(crate) mod flusher;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::RoomKey;
use crate::store::usage::{
    hour_start, month_start, to_db, MonthlyUser, ProjectHour, RoomHour, UsageBatch, HOUR_MS,
};

/// The wall clock, in unix milliseconds.
pub(crate) type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// One connection's counters: what its session read and wrote.
#[derive(Debug, Default)]
pub(crate) struct ConnMeter {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
}

impl ConnMeter {
    /// A binary frame of `bytes` was read from the peer.
    #[inline]
    pub(crate) fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `frames` binary frames of `bytes` in all were written to the peer's socket.
    #[inline]
    pub(crate) fn sent(&self, frames: u64, bytes: u64) {
        self.messages_out.fetch_add(frames, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes what was counted since the last take.
    fn take(&self) -> [u64; 4] {
        [
            self.messages_in.swap(0, Ordering::Relaxed),
            self.messages_out.swap(0, Ordering::Relaxed),
            self.bytes_in.swap(0, Ordering::Relaxed),
            self.bytes_out.swap(0, Ordering::Relaxed),
        ]
    }
}

/// A connection as the meter tracks it.
struct Conn {
    key: RoomKey,
    counters: Arc<ConnMeter>,
    /// Its time and counters are accounted up to here (unix ms).
    accounted: i64,
    /// When it ended (`None`: live). Ended connections are forgotten at the next flush.
    ended: Option<i64>,
}

/// A loaded room's stored size, kept current by its actor.
#[derive(Debug, Default)]
pub(crate) struct StorageGauge {
    bytes: AtomicU64,
    unloaded: AtomicBool,
}

struct Gauge {
    key: RoomKey,
    gauge: Arc<StorageGauge>,
    /// The last reading put into a batch, and its hour.
    reported: Option<(i64, u64)>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    live_projects: HashMap<Arc<str>, u32>,
    live_rooms: HashMap<RoomKey, u32>,
    /// Live counts seen right after each connect, as maxima per hour.
    project_peaks: HashMap<(Arc<str>, i64), u32>,
    room_peaks: HashMap<(RoomKey, i64), u32>,
    /// (project, month start, user id) seen since the last flush.
    users: HashSet<(Arc<str>, i64, String)>,
    /// In load order, so a room reloaded within one flush reports its newest reading.
    gauges: BTreeMap<u64, Gauge>,
}

/// The engine's usage meter.
pub(crate) struct Meter {
    now: Now,
    /// Without a flusher nothing is recorded (nothing would ever drain it).
    enabled: bool,
    state: Mutex<State>,
}

impl Meter {
    /// A meter reading time from `now`; `enabled: false` counts nothing.
    pub(crate) fn new(now: Now, enabled: bool) -> Self {
        Self {
            now,
            enabled,
            state: Mutex::default(),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        (self.now)()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent before anything can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection that joined `key`, for `user` (the token's `sub`).
    pub(crate) fn connect(self: &Arc<Self>, key: &RoomKey, user: Option<&str>) -> Metered {
        let counters = Arc::new(ConnMeter::default());
        if !self.enabled {
            return Metered {
                meter: None,
                id: 0,
                counters,
            };
        }
        let now = self.now();
        let hour = hour_start(now);
        let mut state = self.lock();
        let state = &mut *state;
        let id = state.next_id;
        state.next_id += 1;
        state.conns.insert(
            id,
            Conn {
                key: key.clone(),
                counters: counters.clone(),
                accounted: now,
                ended: None,
            },
        );
        let in_project = bump(&mut state.live_projects, &key.project_id);
        let in_room = bump(&mut state.live_rooms, key);
        raise(
            &mut state.project_peaks,
            (key.project_id.clone(), hour),
            in_project,
        );
        raise(&mut state.room_peaks, (key.clone(), hour), in_room);
        if let Some(user) = user {
            let month = month_start(now);
            let seen = (key.project_id.clone(), month, user.to_owned());
            state.users.insert(seen);
        }
        Metered {
            meter: Some(self.clone()),
            id,
            counters,
        }
    }

    /// Raises this hour's peak for the key's project to `live`: the project's
    /// connections across the cluster, as counted when one was admitted.
    pub(crate) fn saw_project_live(&self, key: &RoomKey, live: u32) {
        if !self.enabled {
            return;
        }
        let hour = hour_start(self.now());
        let mut state = self.lock();
        raise(
            &mut state.project_peaks,
            (key.project_id.clone(), hour),
            live,
        );
    }

    fn end(&self, id: u64) {
        let now = self.now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(conn) = state.conns.get_mut(&id) else {
            return;
        };
        conn.ended = Some(now.max(conn.accounted));
        let key = conn.key.clone();
        drop_one(&mut state.live_projects, &key.project_id);
        drop_one(&mut state.live_rooms, &key);
    }

    /// Registers a loaded room's storage gauge; the handle reports it unloaded when
    /// dropped.
    pub(crate) fn room_storage(&self, key: &RoomKey, bytes: u64) -> RoomStorage {
        let gauge = Arc::new(StorageGauge::default());
        gauge.bytes.store(bytes, Ordering::Relaxed);
        if self.enabled {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.gauges.insert(
                id,
                Gauge {
                    key: key.clone(),
                    gauge: gauge.clone(),
                    reported: None,
                },
            );
        }
        RoomStorage { gauge }
    }

    /// Everything since the last take, accounted up to `now`.
    pub(crate) fn take(&self, now: i64) -> UsageBatch {
        let mut acc = Accumulator::default();
        let mut state = self.lock();
        let state = &mut *state;
        for ((project, hour), peak) in state.project_peaks.drain() {
            acc.project_peak(project, hour, peak);
        }
        for ((key, hour), peak) in state.room_peaks.drain() {
            acc.room(&key, hour).peak(peak);
        }
        for conn in state.conns.values_mut() {
            let end = conn.ended.unwrap_or(now).max(conn.accounted);
            let [messages_in, messages_out, bytes_in, bytes_out] = conn.counters.take();
            // Counters go to the hour their collection started in: the flusher also runs
            // at every hour boundary, so that is the hour they were counted in.
            let r = acc.room(&conn.key, hour_start(conn.accounted));
            r.messages_in += messages_in;
            r.messages_out += messages_out;
            r.bytes_in += bytes_in;
            r.bytes_out += bytes_out;
            r.active = true;
            let mut t = conn.accounted;
            while t < end {
                let boundary = hour_start(t) + HOUR_MS;
                let next = boundary.min(end);
                let r = acc.room(&conn.key, hour_start(t));
                r.connection_ms += u64::try_from(next - t).unwrap_or(0);
                r.active = true;
                // Open as `boundary`'s hour starts: part of that hour's concurrency.
                if boundary < end || (boundary == end && conn.ended.is_none()) {
                    acc.open_at(&conn.key, boundary);
                }
                t = next;
            }
            conn.accounted = end;
        }
        state.conns.retain(|_, c| c.ended.is_none());
        acc.fold_open_at_start();
        let hour = hour_start(now);
        state.gauges.retain(|_, gauge| {
            // Unloaded first: once it is seen, the room's last reading is visible too.
            let unloaded = gauge.gauge.unloaded.load(Ordering::Acquire);
            let bytes = gauge.gauge.bytes.load(Ordering::Relaxed);
            if gauge.reported != Some((hour, bytes)) {
                acc.room(&gauge.key, hour).storage_bytes = Some(bytes);
                gauge.reported = Some((hour, bytes));
            }
            !unloaded
        });
        let mut users: Vec<MonthlyUser> = state
            .users
            .drain()
            .map(|(project, month, user)| MonthlyUser {
                project_id: project.to_string(),
                month_start: month,
                user_id: user,
            })
            .collect();
        users.sort();
        acc.into_batch(users)
    }
}

/// Per-flush sums before they become rows.
#[derive(Default)]
struct Accumulator {
    rooms: BTreeMap<(RoomKey, i64), Sums>,
    projects: BTreeMap<(Arc<str>, i64), u32>,
    /// Connections open at the start of an hour, per room.
    open_at_start: HashMap<(RoomKey, i64), u32>,
}

#[derive(Default)]
struct Sums {
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    connection_ms: u64,
    peak: u32,
    active: bool,
    storage_bytes: Option<u64>,
}

impl Sums {
    fn peak(&mut self, n: u32) {
        self.peak = self.peak.max(n);
        self.active = true;
    }
}

impl Accumulator {
    fn room(&mut self, key: &RoomKey, hour: i64) -> &mut Sums {
        self.rooms.entry((key.clone(), hour)).or_default()
    }

    fn project_peak(&mut self, project: Arc<str>, hour: i64, n: u32) {
        let peak = self.projects.entry((project, hour)).or_default();
        *peak = (*peak).max(n);
    }

    fn open_at(&mut self, key: &RoomKey, hour: i64) {
        *self.open_at_start.entry((key.clone(), hour)).or_default() += 1;
    }

    /// The connections open as an hour starts are a concurrency that hour reached even
    /// if nobody connected during it.
    fn fold_open_at_start(&mut self) {
        let mut per_project: HashMap<(Arc<str>, i64), u32> = HashMap::new();
        for ((key, hour), n) in std::mem::take(&mut self.open_at_start) {
            *per_project
                .entry((key.project_id.clone(), hour))
                .or_default() += n;
            self.room(&key, hour).peak(n);
        }
        for ((project, hour), n) in per_project {
            self.project_peak(project, hour, n);
        }
    }

    fn into_batch(self, users: Vec<MonthlyUser>) -> UsageBatch {
        UsageBatch {
            rooms: self
                .rooms
                .into_iter()
                .map(|((key, hour), s)| RoomHour {
                    project_id: key.project_id.to_string(),
                    room: key.name.to_string(),
                    hour_start: hour,
                    messages_in: to_db(s.messages_in),
                    messages_out: to_db(s.messages_out),
                    bytes_in: to_db(s.bytes_in),
                    bytes_out: to_db(s.bytes_out),
                    connection_ms: to_db(s.connection_ms),
                    peak_connections: i64::from(s.peak),
                    active: s.active,
                    storage_bytes: s.storage_bytes.map(to_db),
                })
                .collect(),
            projects: self
                .projects
                .into_iter()
                .map(|((project, hour), peak)| ProjectHour {
                    project_id: project.to_string(),
                    hour_start: hour,
                    peak_connections: i64::from(peak),
                })
                .collect(),
            users,
        }
    }
}

fn bump<K: std::hash::Hash + Eq + Clone>(counts: &mut HashMap<K, u32>, key: &K) -> u32 {
    let count = counts.entry(key.clone()).or_insert(0);
    *count += 1;
    *count
}

fn drop_one<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

fn raise<K: std::hash::Hash + Eq>(peaks: &mut HashMap<K, u32>, key: K, n: u32) {
    let peak = peaks.entry(key).or_insert(0);
    *peak = (*peak).max(n);
}

/// A registered connection: its counters, and its end reported to the meter when
/// dropped (with the session).
pub(crate) struct Metered {
    meter: Option<Arc<Meter>>,
    id: u64,
    counters: Arc<ConnMeter>,
}

impl Metered {
    pub(crate) fn counters(&self) -> &ConnMeter {
        &self.counters
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(meter) = &self.meter {
            meter.end(self.id);
        }
    }
}

/// A loaded room's storage reading; dropped when the room unloads.
pub(crate) struct RoomStorage {
    gauge: Arc<StorageGauge>,
}

impl RoomStorage {
    /// The room's stored size now.
    pub(crate) fn set(&self, bytes: u64) {
        self.gauge.bytes.store(bytes, Ordering::Relaxed);
    }
}

impl Drop for RoomStorage {
    fn drop(&mut self) {
        self.gauge.unloaded.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
