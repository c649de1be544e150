//! The map from room key to its actor. Getting or starting a room is one atomic step
//! under the lock, so two connections opening the same room at once find one actor.
//! An idle actor removes itself only while its inbox is empty; a connection that raced
//! it sees its join refused and simply asks again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::msg::RoomMsg;
use super::RoomKey;

/// How to reach a running room actor.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) tx: mpsc::Sender<RoomMsg>,
    /// Distinguishes this actor from a later one for the same room.
    pub(crate) generation: u64,
    /// The room's live connections, kept current by the actor, so counting them (a
    /// room listing) neither waits for the actor nor loads anything.
    pub(crate) connections: Arc<AtomicUsize>,
}

impl RoomHandle {
    fn is_live(&self) -> bool {
        !self.tx.is_closed()
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    rooms: Mutex<HashMap<RoomKey, RoomHandle>>,
    next_generation: std::sync::atomic::AtomicU64,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomKey, RoomHandle>> {
        // A panic while holding this lock cannot leave the map half-updated (every
        // critical section is a single insert/remove), so poisoning is safe to ignore.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room's actor, started by `spawn(generation)` if none runs.
    pub(crate) fn get_or_spawn(
        &self,
        key: &RoomKey,
        spawn: impl FnOnce(u64) -> RoomHandle,
    ) -> RoomHandle {
        let mut rooms = self.lock();
        if let Some(handle) = rooms.get(key) {
            if handle.is_live() {
                return handle.clone();
            }
        }
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handle = spawn(generation);
        rooms.insert(key.clone(), handle.clone());
        handle
    }

    /// Removes the actor `generation` of `key` if `still_idle()` holds under the lock.
    pub(crate) fn remove_if(
        &self,
        key: &RoomKey,
        generation: u64,
        still_idle: impl FnOnce() -> bool,
    ) -> bool {
        let mut rooms = self.lock();
        match rooms.get(key) {
            Some(handle) if handle.generation == generation => {
                if still_idle() {
                    rooms.remove(key);
                    true
                } else {
                    false
                }
            }
            // Already replaced or removed: nothing to guard.
            _ => true,
        }
    }

    /// The room's actor if one runs (never starts one).
    pub(crate) fn get(&self, key: &RoomKey) -> Option<RoomHandle> {
        self.lock().get(key).filter(|h| h.is_live()).cloned()
    }

    /// Every running actor of the project's rooms.
    pub(crate) fn in_project(&self, project_id: &str) -> Vec<RoomHandle> {
        self.lock()
            .iter()
            .filter(|(key, handle)| &*key.project_id == project_id && handle.is_live())
            .map(|(_, handle)| handle.clone())
            .collect()
    }

    /// The keys of the project's loaded rooms, by name.
    pub(crate) fn keys_in_project(&self, project_id: &str) -> Vec<RoomKey> {
        let mut keys: Vec<RoomKey> = self
            .lock()
            .iter()
            .filter(|(key, handle)| &*key.project_id == project_id && handle.is_live())
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Live connections in each of the project's rooms `names` (0 when not loaded).
    pub(crate) fn connection_counts(&self, project_id: &str, names: &[&str]) -> Vec<usize> {
        let project_id: Arc<str> = project_id.into();
        let keys: Vec<RoomKey> = names
            .iter()
            .map(|name| RoomKey {
                project_id: project_id.clone(),
                name: (*name).into(),
            })
            .collect();
        let rooms = self.lock();
        keys.iter()
            .map(|key| {
                rooms
                    .get(key)
                    .filter(|h| h.is_live())
                    .map_or(0, |h| h.connections.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// Live connections in every loaded room.
    pub(crate) fn total_connections(&self) -> usize {
        self.lock()
            .values()
            .map(|h| h.connections.load(Ordering::Relaxed))
            .sum()
    }

    /// How many rooms are loaded.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
