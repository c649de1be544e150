//! The map from room key to its actor. Getting or starting a room is one atomic step
//! under the lock, so two connections opening the same room at once find one actor.
//! An idle actor removes itself only while its inbox is empty; a connection that raced
//! it sees its join refused and simply asks again.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::actor::RoomMsg;
use super::RoomKey;

/// How to reach a running room actor.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) tx: mpsc::Sender<RoomMsg>,
    /// Distinguishes this actor from a later one for the same room.
    pub(crate) generation: u64,
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
            if !handle.tx.is_closed() {
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

    /// How many rooms are loaded.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
