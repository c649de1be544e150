//! The session's hold on the yrs document: it observes local changes (every committed
//! transaction that the session did not make itself) and applies the server's updates
//! under its own origin, so those are never echoed back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, Origin, ReadTxn, StateVector, Transact, Update};

use super::error::CallError;

/// Distinguishes the observers (and origins) of sessions sharing a process.
static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// The change notifier ([`ClientSession::set_change_notifier`](super::ClientSession::set_change_notifier)).
/// It runs inside the commit of the transaction that made the change, with the document
/// locked: it must not block, touch the document or call the session. Wake a task or
/// post a message, and call [`poll_output`](super::ClientSession::poll_output) from there.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// What the update observer shares with the session.
#[derive(Default)]
struct Shared {
    /// Whether local updates are collected (a connection is open and may carry them).
    /// While offline they are not: the resync on the next connection carries them.
    forwarding: bool,
    /// Local v1 updates not handed to the session yet.
    pending: Vec<Vec<u8>>,
    /// Whether a transaction under the session's origin changed the document.
    remote_changed: bool,
    /// The session is gone; the observer (if it could not be removed) does nothing.
    detached: bool,
    notify: Option<Notify>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // The observer never panics while holding the lock; if something else did, the data
    // (a queue of byte vectors and flags) is still consistent.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The session's view of its document.
pub(crate) struct DocLink {
    doc: Doc,
    shared: Arc<Mutex<Shared>>,
    key: String,
}

impl std::fmt::Debug for DocLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocLink").field("key", &self.key).finish()
    }
}

impl DocLink {
    /// Starts observing `doc`. Fails when a transaction is open on it.
    pub(crate) fn attach(doc: Doc) -> Result<Self, CallError> {
        let key = format!(
            "tandem-session-{}",
            NEXT_LINK.fetch_add(1, Ordering::Relaxed)
        );
        let shared = Arc::new(Mutex::new(Shared::default()));
        let observer_shared = Arc::clone(&shared);
        let own_origin = Origin::from(key.as_str());
        doc.observe_update_v1(key.as_str(), move |txn, event| {
            let remote = txn.origin() == Some(&own_origin);
            let notify = {
                let mut shared = lock(&observer_shared);
                if shared.detached {
                    return;
                }
                if remote {
                    shared.remote_changed = true;
                    None
                } else if shared.forwarding {
                    shared.pending.push(event.update.clone());
                    shared.notify.clone()
                } else {
                    None
                }
            };
            // Outside the lock: the callback may well poke the transport, which may
            // drain the queue.
            if let Some(notify) = notify {
                notify();
            }
        })
        .map_err(|_| CallError::DocumentBusy)?;
        Ok(Self { doc, shared, key })
    }

    pub(crate) fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The origin of the transactions that apply the server's updates.
    pub(crate) fn origin(&self) -> Origin {
        Origin::from(self.key.as_str())
    }

    pub(crate) fn set_notify(&self, notify: Option<Notify>) {
        lock(&self.shared).notify = notify;
    }

    /// Starts or stops collecting local updates; either way the queue starts empty
    /// (the document holds those changes and the next sync carries them).
    pub(crate) fn set_forwarding(&self, forwarding: bool) {
        let mut shared = lock(&self.shared);
        shared.forwarding = forwarding;
        shared.pending.clear();
    }

    /// Takes the local updates collected so far.
    pub(crate) fn take_pending(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.shared).pending)
    }

    /// The document's encoded state vector, for sync step 1.
    pub(crate) fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// What a peer with state vector `sv` lacks, for sync step 2.
    pub(crate) fn diff(&self, sv: &[u8]) -> Result<Vec<u8>, String> {
        let sv = StateVector::decode_v1(sv).map_err(|e| format!("bad state vector: {e}"))?;
        Ok(self.doc.transact().encode_diff_v1(&sv))
    }

    /// Applies a server update under the session's origin. Returns whether the document
    /// changed (an update whose dependencies are missing is parked by yrs and changes
    /// nothing yet).
    pub(crate) fn apply_remote(&self, update: &[u8]) -> Result<bool, String> {
        let update = Update::decode_v1(update).map_err(|e| format!("bad update: {e}"))?;
        lock(&self.shared).remote_changed = false;
        {
            let mut txn = self.doc.transact_mut_with(self.origin());
            txn.apply_update(update)
                .map_err(|e| format!("update could not be applied: {e}"))?;
        }
        Ok(std::mem::take(&mut lock(&self.shared).remote_changed))
    }
}

impl Drop for DocLink {
    fn drop(&mut self) {
        lock(&self.shared).detached = true;
        // Fails only inside a transaction; the detached flag makes the leftover observer
        // inert, and it goes with the document.
        let _ = self.doc.unobserve_update_v1(self.key.as_str());
    }
}
