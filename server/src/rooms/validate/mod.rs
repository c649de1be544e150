//! Zero-allocation pre-validator for untrusted lib0/Yjs **v1** updates and state vectors,
//! written to mirror yrs 0.28.1's decoder (`Update::decode`, `IdSet::decode`,
//! `StateVector::decode`, `Any::decode`, `ItemContent::decode`) byte for byte.
//!
//! Why: yrs 0.28.1 calls `try_reserve(n)` with attacker-controlled counts before checking that
//! the input holds `n` items. For `HashMap`s this eagerly allocates *and memsets* the control
//! bytes (~1.1-2.3 bytes per declared entry), so 5 bytes can pin ~1 GiB RSS, and nested
//! `Any::Map`s multiply it (the kernel only refuses allocations larger than RAM+swap; a cgroup
//! limit does not make the allocation fail, it OOM-kills the process). `Any` decoding is also
//! unboundedly recursive (stack overflow = abort at ~7k levels on a 2 MiB tokio stack).
//!
//! This validator walks the whole message; its only allocation is a set of the client ids seen
//! (bounded by the real input: >= 3 bytes per client). Every declared count is only
//! accepted if the corresponding elements are actually present, so after `Ok(..)` every
//! capacity yrs reserves is backed by real bytes. It additionally bounds `Any` nesting depth,
//! rejects non-canonical / out-of-range varints (yrs silently wraps them), u32 clock overflow
//! (wraps in release, panics with overflow-checks), trailing bytes and, optionally, sub-documents.
//!
//! It depends only on `std`; the rooms engine runs it in the session (stateless) and in
//! the room actor right before `apply_update` (stateful, against the document).

mod reader;
#[cfg(test)]
mod tests;
mod walk;

use std::fmt;

use reader::R;

/// Tunables. `Default` is a conservative setting for a y-websocket server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Max nesting of `Any` arrays/maps (yrs recursion). 64 is far below any stack limit.
    pub max_any_depth: u32,
    /// Max number of struct blocks (items + GC + skip) in one update.
    pub max_structs: u64,
    /// Max number of delete-set ranges in one update.
    pub max_delete_ranges: u64,
    /// Max number of sub-document items (content ref 9). Each costs ~1-2 KiB of RAM in yrs
    /// for ~5 input bytes, and re-encodes ~6x larger. 0 = reject sub-documents.
    pub max_subdocs: u64,
    /// Largest clock value (block start, block end, origins, delete ranges) accepted.
    /// yrs computes `local_clock as i32 - id.clock as i32` (update.rs:344): an item with clock
    /// above `i32::MAX` is integrated at the wrong place and later panics (block_store.rs:62,
    /// store.rs:234) or loops forever. Keep this at `i32::MAX` or lower.
    pub max_clock: u32,
    /// Reject the legacy `ContentJSON` (ref 2). yrs 0.28.1 reads `len + 1` strings for it,
    /// which is not what Yjs writes, so it is effectively unusable anyway.
    pub allow_content_json: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_any_depth: 64,
            max_structs: 1 << 20,
            max_delete_ranges: 1 << 20,
            max_subdocs: 0,
            max_clock: i32::MAX as u32,
            allow_content_json: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Input ended before the declared structure was complete (also covers counts larger
    /// than the remaining input).
    Truncated {
        at: usize,
    },
    /// Varint is longer than canonical or its value does not fit the target type.
    BadVarInt {
        at: usize,
    },
    /// Unknown tag / info / type ref, or a field value yrs would reject.
    Unexpected {
        at: usize,
    },
    BadUtf8 {
        at: usize,
    },
    TooDeep {
        at: usize,
    },
    ClockOverflow {
        at: usize,
    },
    LimitExceeded {
        at: usize,
        what: &'static str,
    },
    TrailingBytes {
        at: usize,
    },
    /// (stateful check) a non-skip block starts after the document's current clock for its
    /// client: yrs would integrate it out of order behind a Skip, which can later corrupt memory.
    Gap {
        at: usize,
    },
    /// (stateful check) origin / right origin / parent id / delete range refers to a clock that
    /// neither the document nor this update contains (would become a pending update), or an item
    /// refers to itself or to a later clock of its own client.
    MissingDependency {
        at: usize,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid v1 payload: {:?}", self)
    }
}
impl std::error::Error for Invalid {}

/// Counters gathered while validating (useful for metrics / further policy).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub clients: u64,
    pub structs: u64,
    pub items: u64,
    pub subdocs: u64,
    pub delete_ranges: u64,
    pub max_any_depth: u32,
}

/// Validate a v1-encoded update (`Update::decode_v1` input). `Ok` means yrs 0.28.1 will decode
/// it without count-driven over-allocation, deep recursion or u32 clock wrap-around.
pub fn validate_update_v1(buf: &[u8], limits: &Limits) -> Result<Stats, Invalid> {
    let mut r = R::new(buf, limits);
    r.update()?;
    r.ds()?;
    if r.pos != buf.len() {
        return Err(Invalid::TrailingBytes { at: r.pos });
    }
    Ok(r.stats)
}

/// Like [validate_update_v1], and additionally checks the update against the document it will
/// be applied to (`doc_clock(client)` = that client's clock in the document's state vector):
/// rejects gaps (blocks that would be integrated out of order) and references to ids that are
/// neither in the document nor in the update (would go to yrs' pending queue). Call it and
/// `apply_update` under the same `transact_mut()` so the state cannot change in between.
/// On `Gap`/`MissingDependency` a server should not apply the update and instead send the client
/// its state vector (sync step 1) so that it replies with a complete diff.
// Production splits this in two (session: stateless; actor: `check_against_doc`).
#[cfg(test)]
pub fn validate_update_v1_for_doc(
    buf: &[u8],
    limits: &Limits,
    doc_clock: &dyn Fn(u64) -> u32,
) -> Result<Stats, Invalid> {
    let stats = validate_update_v1(buf, limits)?;
    check_against_doc(buf, limits, doc_clock)?;
    Ok(stats)
}

/// Only the document-dependent half of [validate_update_v1_for_doc], for bytes that already
/// passed [validate_update_v1] (the room actor: the connection task validated them, and
/// running the stateless pass again would parse every update a third time on the room's
/// single thread). The reader still bounds-checks everything, so calling it on unchecked
/// bytes is safe, just less thorough.
pub fn check_against_doc(
    buf: &[u8],
    limits: &Limits,
    doc_clock: &dyn Fn(u64) -> u32,
) -> Result<(), Invalid> {
    // pass 1: gaps + per-client clock after the update; pass 2: references + delete set
    let mut r1 = R::new(buf, limits);
    r1.state = Some(doc_clock);
    r1.pass = 1;
    r1.update()?;
    let mut r2 = R::new(buf, limits);
    r2.state = Some(doc_clock);
    r2.pass = 2;
    r2.frontiers = r1.frontiers;
    r2.update()?;
    r2.ds()?;
    Ok(())
}

/// Validate a v1-encoded state vector (`StateVector::decode_v1` input, e.g. sync step 1).
pub fn validate_state_vector_v1(buf: &[u8]) -> Result<u64, Invalid> {
    let limits = Limits::default();
    let mut r = R::new(buf, &limits);
    let len = r.count(2)?; // each entry: client varint + clock varint >= 2 bytes
    for _ in 0..len {
        r.u64()?;
        r.u32()?;
    }
    if r.pos != buf.len() {
        return Err(Invalid::TrailingBytes { at: r.pos });
    }
    Ok(len)
}
