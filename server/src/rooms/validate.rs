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

use std::fmt;

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

type Frontiers = std::collections::HashMap<u64, u64>;

struct R<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    stats: Stats,
    /// stateful mode: current clock of each client in the document
    state: Option<&'l dyn Fn(u64) -> u32>,
    /// pass 1 fills, pass 2 reads: per-client clock after applying this update
    frontiers: Frontiers,
    pass: u8,
    cur: (u64, u64),
}

impl<'a, 'l> R<'a, 'l> {
    fn new(buf: &'a [u8], limits: &'l Limits) -> Self {
        R {
            buf,
            pos: 0,
            limits,
            stats: Stats::default(),
            state: None,
            frontiers: Frontiers::new(),
            pass: 0,
            cur: (0, 0),
        }
    }

    fn doc_clock(&self, client: u64) -> u64 {
        self.state.map(|f| f(client) as u64).unwrap_or(0)
    }

    fn frontier(&self, client: u64) -> u64 {
        match self.frontiers.get(&client) {
            Some(&f) => f,
            None => self.doc_clock(client),
        }
    }

    /// pass 2: check a referenced id
    fn check_ref(&self, (client, clock): (u64, u64), at: usize) -> Result<(), Invalid> {
        if self.pass == 2 {
            let (cc, ck) = self.cur;
            if clock >= self.frontier(client) || (client == cc && clock >= ck) {
                return Err(Invalid::MissingDependency { at });
            }
        }
        Ok(())
    }
}

impl<'a, 'l> R<'a, 'l> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, Invalid> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(Invalid::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if n > self.remaining() {
            return Err(Invalid::Truncated { at: self.pos });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Canonical unsigned LEB128 limited to `max` (at most 10 bytes).
    fn uvar(&mut self, max: u64) -> Result<u64, Invalid> {
        let start = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            let low = (b & 0x7f) as u64;
            if shift == 63 && low > 1 {
                return Err(Invalid::BadVarInt { at: start });
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                // reject redundant trailing zero groups (yrs would accept them, but canonical
                // encoders never emit them and they let 1 value hide in up to 11 bytes)
                if low == 0 && shift > 0 {
                    return Err(Invalid::BadVarInt { at: start });
                }
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(Invalid::BadVarInt { at: start });
            }
        }
        if v > max {
            return Err(Invalid::BadVarInt { at: start });
        }
        Ok(v)
    }

    fn u32(&mut self) -> Result<u32, Invalid> {
        Ok(self.uvar(u32::MAX as u64)? as u32)
    }

    /// Client id. yrs `ClientID::new` keeps only 53 bits (block.rs:93, debug_assert in debug
    /// builds): larger ids alias smaller ones (`5` and `2^53 + 5` become the same client).
    fn u64(&mut self) -> Result<u64, Invalid> {
        self.uvar((1 << 53) - 1)
    }

    /// lib0 signed varint as read by yrs `read_var_i64`; limited to 9 bytes (|v| < 2^62) so
    /// that yrs' `<< len` and `-num` can never overflow (they panic with overflow-checks).
    fn ivar(&mut self) -> Result<(), Invalid> {
        let start = self.pos;
        let mut b = self.u8()?;
        let mut n = 1;
        while b & 0x80 != 0 {
            if n == 9 {
                return Err(Invalid::BadVarInt { at: start });
            }
            b = self.u8()?;
            n += 1;
        }
        Ok(())
    }

    /// A count whose elements each occupy at least `min_elem` bytes: reject early if the rest
    /// of the input cannot possibly hold them (the full walk below re-checks anyway).
    fn count(&mut self, min_elem: usize) -> Result<u64, Invalid> {
        let at = self.pos;
        let n = self.u32()? as u64;
        if n.saturating_mul(min_elem as u64) > self.remaining() as u64 {
            return Err(Invalid::Truncated { at });
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<&'a str, Invalid> {
        let len = self.u32()? as usize;
        let at = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| Invalid::BadUtf8 { at })
    }

    fn buf_(&mut self) -> Result<(), Invalid> {
        let len = self.u32()? as usize;
        self.take(len).map(|_| ())
    }

    /// A clock value: canonical u32 and <= limits.max_clock.
    fn clock(&mut self) -> Result<u32, Invalid> {
        let at = self.pos;
        let c = self.u32()?;
        if c > self.limits.max_clock {
            return Err(Invalid::ClockOverflow { at });
        }
        Ok(c)
    }

    fn id(&mut self) -> Result<(u64, u64), Invalid> {
        let client = self.u64()?;
        let clock = self.clock()?;
        Ok((client, clock as u64))
    }

    // ---- blocks (yrs update.rs `Update::decode`, `decode_block`) ----
    fn update(&mut self) -> Result<(), Invalid> {
        let clients = self.count(3)?; // blocks_len + client + clock
        self.stats.clients = clients;
        // A client may appear only once: yrs appends a second segment to the same VecDeque,
        // leaving a clock gap that hits `unreachable!()` in update.rs:155 (Update::find_index).
        let mut seen = std::collections::HashSet::new();
        for _ in 0..clients {
            let blocks = self.count(2)?; // every block is >= 2 bytes
            let cat = self.pos;
            let client = self.u64()?;
            if !seen.insert(client) {
                return Err(Invalid::Unexpected { at: cat });
            }
            let mut clock = self.clock()? as u64;
            let mut frontier = self.doc_clock(client);
            for _ in 0..blocks {
                let at = self.pos;
                self.stats.structs += 1;
                if self.stats.structs > self.limits.max_structs {
                    return Err(Invalid::LimitExceeded {
                        at,
                        what: "structs",
                    });
                }
                self.cur = (client, clock);
                let (len, skip) = self.block()?;
                if self.pass == 1 && !skip && len > 0 {
                    if clock > frontier {
                        return Err(Invalid::Gap { at });
                    }
                    frontier = frontier.max(clock + len as u64);
                }
                clock += len as u64;
                if clock > self.limits.max_clock as u64 {
                    return Err(Invalid::ClockOverflow { at });
                }
            }
            if self.pass == 1 {
                self.frontiers.insert(client, frontier);
            }
        }
        Ok(())
    }

    /// Returns the block length in clock units (0 for items yrs drops as empty) and whether it
    /// is a Skip.
    fn block(&mut self) -> Result<(u32, bool), Invalid> {
        let at = self.pos;
        let info = self.u8()?;
        match info {
            0 | 10 => {
                // GC / Skip: whole info byte must match in yrs
                let len = self.u32()?;
                if len == 0 {
                    return Err(Invalid::Unexpected { at });
                }
                return Ok((len, info == 10));
            }
            _ => {}
        }
        // yrs only looks at `info & 0x0f` for the content ref; Yjs uses 5 bits. Bit 0x10 is
        // never set by Yjs, reject it so both parsers agree.
        if info & 0x10 != 0 {
            return Err(Invalid::Unexpected { at });
        }
        self.stats.items += 1;
        let has_origin = info & 0x80 != 0;
        let has_right = info & 0x40 != 0;
        if has_origin {
            let a = self.pos;
            let id = self.id()?;
            self.check_ref(id, a)?;
        }
        if has_right {
            let a = self.pos;
            let id = self.id()?;
            self.check_ref(id, a)?;
        }
        if !has_origin && !has_right {
            let pat = self.pos;
            match self.u32()? {
                1 => {
                    self.string()?;
                }
                0 => {
                    let a = self.pos;
                    let id = self.id()?;
                    self.check_ref(id, a)?;
                }
                _ => return Err(Invalid::Unexpected { at: pat }),
            }
            if info & 0x20 != 0 {
                self.string()?;
            }
        }
        Ok((self.content(info & 0x0f, at)?, false))
    }

    // ---- yrs block.rs `ItemContent::decode` ----
    fn content(&mut self, content_ref: u8, at: usize) -> Result<u32, Invalid> {
        Ok(match content_ref {
            1 => self.u32()?, // Deleted(len)
            2 => {
                if !self.limits.allow_content_json {
                    return Err(Invalid::LimitExceeded {
                        at,
                        what: "ContentJSON",
                    });
                }
                // yrs: `remaining = len as i32; while remaining >= 0 { read_string }`
                let len = self.count(1)?;
                if len > i32::MAX as u64 - 1 {
                    return Err(Invalid::Unexpected { at });
                }
                for _ in 0..=len {
                    self.string()?;
                }
                (len + 1) as u32
            }
            3 => {
                self.buf_()?;
                1
            }
            4 => {
                let s = self.string()?;
                s.encode_utf16().count() as u32 // <= byte length, cannot overflow u32
            }
            5 => {
                self.string()?; // JSON text, parsed by serde_json (recursion limit 128)
                1
            }
            6 => {
                self.string()?; // key
                self.string()?; // JSON value
                1
            }
            7 => {
                let tat = self.pos;
                match self.u8()? {
                    0 | 1 | 2 | 4 | 5 | 6 | 9 | 15 => {}
                    3 => {
                        self.string()?; // XmlElement tag
                    }
                    _ => return Err(Invalid::Unexpected { at: tat }), // 7 = weak (feature off)
                }
                1
            }
            8 => {
                let len = self.count(1)?;
                for _ in 0..len {
                    self.any(1)?;
                }
                len as u32
            }
            9 => {
                self.stats.subdocs += 1;
                if self.stats.subdocs > self.limits.max_subdocs {
                    return Err(Invalid::LimitExceeded {
                        at,
                        what: "subdocs",
                    });
                }
                self.string()?; // guid
                self.any(1)?; // options
                1
            }
            _ => return Err(Invalid::Unexpected { at }),
        })
    }

    // ---- yrs any.rs `Any::decode` ----
    fn any(&mut self, depth: u32) -> Result<(), Invalid> {
        let at = self.pos;
        if depth > self.limits.max_any_depth {
            return Err(Invalid::TooDeep { at });
        }
        if depth > self.stats.max_any_depth {
            self.stats.max_any_depth = depth;
        }
        match self.u8()? {
            127 | 126 | 121 | 120 => {}
            125 => self.ivar()?,
            124 => {
                self.take(4)?;
            }
            123 | 122 => {
                self.take(8)?;
            }
            119 => {
                self.string()?;
            }
            118 => {
                // yrs reads this length as u64/usize; canonical u32 is plenty
                let len = self.count(2)?; // key (>=1) + value (>=1)
                for _ in 0..len {
                    self.string()?;
                    self.any(depth + 1)?;
                }
            }
            117 => {
                let len = self.count(1)?;
                for _ in 0..len {
                    self.any(depth + 1)?;
                }
            }
            116 => self.buf_()?,
            _ => return Err(Invalid::Unexpected { at }),
        }
        Ok(())
    }

    // ---- yrs id_set.rs `IdSet::decode` / `Range::decode` ----
    fn ds(&mut self) -> Result<(), Invalid> {
        let clients = self.count(2)?; // client + range count
        for _ in 0..clients {
            let client = self.u64()?;
            let ranges = self.count(2)?;
            for _ in 0..ranges {
                let at = self.pos;
                self.stats.delete_ranges += 1;
                if self.stats.delete_ranges > self.limits.max_delete_ranges {
                    return Err(Invalid::LimitExceeded {
                        at,
                        what: "delete ranges",
                    });
                }
                let clock = self.clock()? as u64;
                let len = self.u32()? as u64;
                if len == 0 {
                    // never emitted by Yjs/yrs; yrs would park it in `pending_ds`
                    return Err(Invalid::Unexpected { at });
                }
                if clock + len > self.limits.max_clock as u64 {
                    return Err(Invalid::ClockOverflow { at });
                }
                if self.pass == 2 && clock + len > self.frontier(client) {
                    return Err(Invalid::MissingDependency { at });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use w::{string, var};

    fn lim() -> Limits {
        Limits::default()
    }

    fn any_update(any: &[u8]) -> Vec<u8> {
        let mut b = vec![1, 1, 1, 0, 8, 1];
        string(&mut b, "a");
        b.push(1);
        b.extend_from_slice(any);
        b.push(0);
        b
    }

    #[test]
    fn accepts_real_updates_and_matches_yrs() {
        use yrs::updates::decoder::Decode;
        for u in corpus::corpus() {
            let l = Limits {
                max_subdocs: 10,
                ..lim()
            };
            validate_update_v1(&u, &l).unwrap_or_else(|e| panic!("{e} for {}", w::hex(&u)));
            yrs::Update::decode_v1(&u).unwrap();
        }
    }

    #[test]
    fn accepts_real_state_vectors() {
        use yrs::updates::encoder::Encode;
        use yrs::{ReadTxn, Transact};
        let d = sample_doc();
        let sv = d.transact().state_vector().encode_v1();
        assert_eq!(validate_state_vector_v1(&sv), Ok(1));
        assert!(validate_state_vector_v1(&[0]).is_ok());
    }

    #[test]
    fn rejects_count_bombs() {
        // state vector / update clients count with no data
        for bytes in [
            &[0x80, 0x80, 0x80, 0xc0, 0x03][..],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
        ] {
            assert!(matches!(
                validate_state_vector_v1(bytes),
                Err(Invalid::Truncated { .. })
            ));
            assert!(matches!(
                validate_update_v1(bytes, &lim()),
                Err(Invalid::Truncated { .. })
            ));
        }
        // blocks count
        assert!(validate_update_v1(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0], &lim()).is_err());
        // Any map / array count
        assert!(matches!(
            validate_update_v1(&any_update(&[118, 0x80, 0x80, 0x80, 0x70, 0]), &lim()),
            Err(Invalid::Truncated { .. })
        ));
        assert!(matches!(
            validate_update_v1(&any_update(&[117, 0xff, 0xff, 0xff, 0xff, 0x0f]), &lim()),
            Err(Invalid::Truncated { .. })
        ));
        // delete set counts
        assert!(validate_update_v1(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f], &lim()).is_err());
        assert!(validate_update_v1(&[0, 1, 7, 0xff, 0xff, 0xff, 0xff, 0x0f], &lim()).is_err());
    }

    #[test]
    fn rejects_nested_map_bomb_even_when_each_count_fits() {
        // 8 nested maps each declaring 2 entries but holding 1: rejected by the full walk
        let mut a = vec![];
        for _ in 0..8 {
            a.extend_from_slice(&[118, 2, 0]);
        }
        a.push(126);
        assert!(validate_update_v1(&any_update(&a), &lim()).is_err());
    }

    #[test]
    fn depth_limit() {
        let nest = |d: usize| {
            let mut a = vec![];
            for _ in 0..d {
                a.extend_from_slice(&[117, 1]);
            }
            a.push(126);
            any_update(&a)
        };
        assert!(validate_update_v1(&nest(63), &lim()).is_ok());
        assert!(matches!(
            validate_update_v1(&nest(64), &lim()),
            Err(Invalid::TooDeep { .. })
        ));
        assert!(matches!(
            validate_update_v1(&nest(100_000), &lim()),
            Err(Invalid::TooDeep { .. })
        ));
    }

    #[test]
    fn rejects_clock_overflow_and_wrapping_varints() {
        // DS range clock 0xfffffff0 len 0x20
        assert!(matches!(
            validate_update_v1(&[0, 1, 7, 1, 0xf0, 0xff, 0xff, 0xff, 0x0f, 0x20], &lim()),
            Err(Invalid::ClockOverflow { .. })
        ));
        // DS len 2^53 (yrs wraps it to a u32)
        let mut b = vec![0, 1, 7, 1, 0];
        var(&mut b, 1 << 53);
        assert!(matches!(
            validate_update_v1(&b, &lim()),
            Err(Invalid::BadVarInt { .. })
        ));
        // item starting above i32::MAX (yrs update.rs:344 signed offset bug)
        let mut b = vec![1, 1, 5];
        var(&mut b, 1 << 31);
        b.extend_from_slice(&[4, 1]);
        string(&mut b, "t");
        string(&mut b, "a");
        b.push(0);
        assert!(matches!(
            validate_update_v1(&b, &lim()),
            Err(Invalid::ClockOverflow { .. })
        ));
        // item ending above i32::MAX
        let mut b = vec![1, 1, 5];
        var(&mut b, i32::MAX as u64 - 1);
        b.extend_from_slice(&[4, 1]);
        string(&mut b, "t");
        string(&mut b, "abcd");
        b.push(0);
        assert!(matches!(
            validate_update_v1(&b, &lim()),
            Err(Invalid::ClockOverflow { .. })
        ));
        // client id >= 2^53 aliases a smaller id in yrs
        let mut b = vec![2, 1, 5, 0, 0, 1, 1];
        var(&mut b, (1 << 53) + 5);
        b.extend_from_slice(&[0xe8, 0x07, 0, 1, 0]);
        assert!(matches!(
            validate_update_v1(&b, &lim()),
            Err(Invalid::BadVarInt { .. })
        ));
        // non-canonical varint (padding)
        assert!(matches!(
            validate_update_v1(&[0x80, 0x00, 0], &lim()),
            Err(Invalid::BadVarInt { .. })
        ));
    }

    #[test]
    fn subdocs_trailing_and_unknown() {
        let mut b = vec![1, 1, 5, 0, 9, 1];
        string(&mut b, "a");
        string(&mut b, "guid");
        b.push(126);
        b.push(0);
        assert!(matches!(
            validate_update_v1(&b, &lim()),
            Err(Invalid::LimitExceeded {
                what: "subdocs",
                ..
            })
        ));
        assert!(validate_update_v1(
            &b,
            &Limits {
                max_subdocs: 1,
                ..lim()
            }
        )
        .is_ok());
        assert!(matches!(
            validate_update_v1(&[0, 0, 0], &lim()),
            Err(Invalid::TrailingBytes { .. })
        ));
        assert!(validate_update_v1(&[0, 0], &lim()).is_ok());
        assert!(validate_update_v1(&any_update(&[115]), &lim()).is_err());
        // same client twice (update.rs:155 unreachable!)
        let dup = w::unhex("0201070000010107e807000100");
        assert!(matches!(
            validate_update_v1(&dup, &lim()),
            Err(Invalid::Unexpected { at: 7 })
        ));
    }

    fn sv_of(doc: &yrs::Doc) -> impl Fn(u64) -> u32 {
        use yrs::{ReadTxn, Transact};
        let sv = doc.transact().state_vector();
        move |c| sv.get(&yrs::block::ClientID::new(c))
    }

    #[test]
    fn stateful_accepts_real_update_stream() {
        use yrs::updates::decoder::Decode;
        use yrs::Transact;
        let doc = yrs::Doc::new();
        for u in corpus::corpus() {
            let l = Limits {
                max_subdocs: 10,
                ..lim()
            };
            validate_update_v1_for_doc(&u, &l, &sv_of(&doc))
                .unwrap_or_else(|e| panic!("{e} for {}", w::hex(&u)));
            doc.transact_mut()
                .apply_update(yrs::Update::decode_v1(&u).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn stateful_rejects_gap_and_missing_deps() {
        let doc = yrs::Doc::new();
        // SIGSEGV reproducer, step 1: GC for client 5 at clock 3 while the doc has clock 0
        let u1 = w::unhex("01010503000100");
        assert!(validate_update_v1(&u1, &lim()).is_ok());
        assert!(matches!(
            validate_update_v1_for_doc(&u1, &lim(), &sv_of(&doc)),
            Err(Invalid::Gap { .. })
        ));
        // item whose origin (9,0) is unknown
        let u = w::unhex("0101050082090000017800");
        assert!(matches!(
            validate_update_v1_for_doc(
                &u,
                &Limits {
                    allow_content_json: true,
                    ..lim()
                },
                &sv_of(&doc)
            ),
            Err(Invalid::MissingDependency { .. })
        ));
        // self reference
        let u = w::unhex("01010100880100017e00");
        assert!(matches!(
            validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc)),
            Err(Invalid::MissingDependency { .. })
        ));
        // delete range beyond known state
        let u = w::unhex("000101010103");
        assert!(matches!(
            validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc)),
            Err(Invalid::MissingDependency { .. })
        ));
        // contiguous own blocks + reference into the same update are fine
        let u = w::unhex("01020500080101610178880500017e00");
        assert!(
            validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc)).is_ok(),
            "{:?}",
            validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc))
        );
    }

    #[test]
    fn validated_inputs_never_over_allocate_in_yrs() {
        // every accepted update decodes in yrs with reservations bounded by its length
        use yrs::updates::decoder::Decode;
        let mut b = vec![];
        var(&mut b, 3);
        for c in 0..3u64 {
            var(&mut b, 1);
            var(&mut b, 100 + c);
            var(&mut b, 0);
            b.extend_from_slice(&[4, 1]);
            string(&mut b, "t");
            string(&mut b, "x");
        }
        b.push(0);
        validate_update_v1(&b, &lim()).unwrap();
        yrs::Update::decode_v1(&b).unwrap();
    }

    // Helpers from the audit harness: lib0 writers and a corpus of real updates.
    pub mod w {
        pub fn var(buf: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                buf.push((v as u8 & 0x7f) | 0x80);
                v >>= 7;
            }
            buf.push(v as u8);
        }
        pub fn string(buf: &mut Vec<u8>, s: &str) {
            var(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
        pub fn hex(b: &[u8]) -> String {
            b.iter().map(|x| format!("{:02x}", x)).collect()
        }
        pub fn unhex(s: &str) -> Vec<u8> {
            (0..s.len() / 2)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                .collect()
        }
    }

    mod corpus {
        //! Valid v1 updates produced by real yrs operations.
        use std::collections::HashMap;
        use std::sync::Arc;
        use yrs::types::text::TextPrelim;
        use yrs::types::xml::{XmlElementPrelim, XmlTextPrelim};
        use yrs::updates::decoder::Decode;
        use yrs::*;

        pub fn corpus() -> Vec<Vec<u8>> {
            let mut out = vec![];
            let d1 = Doc::with_client_id(1);
            let d2 = Doc::with_client_id(u32::MAX as u64 * 1000 + 7);
            let text = d1.get_or_insert_text("text");
            let arr = d1.get_or_insert_array("arr");
            let map = d1.get_or_insert_map("map");
            let xml = d1.get_or_insert_xml_fragment("xml");
            macro_rules! tx {
                ($d:expr, |$t:ident| $body:block) => {{
                    let mut $t = yrs::Transact::transact_mut(&$d);
                    $body;
                    out.push($t.encode_update_v1());
                }};
            }
            tx!(d1, |t| {
                text.insert(&mut t, 0, "hello wörld 🎉");
            });
            tx!(d1, |t| {
                text.remove_range(&mut t, 1, 3);
            });
            tx!(d1, |t| {
                let mut attrs = HashMap::new();
                attrs.insert(Arc::<str>::from("bold"), Any::Bool(true));
                text.format(&mut t, 0, 4, attrs);
            });
            tx!(d1, |t| {
                text.insert_embed(
                    &mut t,
                    2,
                    Any::from(vec![Any::from("img"), Any::Number(Number::Float(1.5))]),
                );
            });
            tx!(d1, |t| {
                arr.insert_range(
                    &mut t,
                    0,
                    vec![
                        Any::Null,
                        Any::Undefined,
                        Any::Bool(false),
                        Any::from(-42i64),
                        Any::Number(Number::Int(1 << 60)),
                        Any::from(0.25),
                        Any::from("s"),
                        Any::from(vec![1u8, 2, 3]),
                    ],
                );
            });
            tx!(d1, |t| {
                let nested: Any = Any::from(HashMap::from([(
                    "a".to_string(),
                    Any::from(vec![Any::from(HashMap::from([(
                        "b".to_string(),
                        Any::Null,
                    )]))]),
                )]));
                arr.push_back(&mut t, nested);
                arr.push_back(&mut t, ArrayPrelim::from(vec![1, 2, 3]));
                arr.push_back(&mut t, MapPrelim::from([("x", 1)]));
                arr.push_back(&mut t, TextPrelim::new("inner"));
            });
            tx!(d1, |t| {
                arr.remove_range(&mut t, 1, 2);
            });
            tx!(d1, |t| {
                map.insert(&mut t, "k", "v");
                map.insert(&mut t, "n", 5);
                map.insert(&mut t, "k", 6);
                map.remove(&mut t, "n");
            });
            tx!(d1, |t| {
                map.insert(&mut t, "sub", Doc::new());
            });
            tx!(d1, |t| {
                let el = xml.insert(&mut t, 0, XmlElementPrelim::empty("p"));
                el.insert_attribute(&mut t, "class", "c");
                el.insert(&mut t, 0, XmlTextPrelim::new("xt"));
            });
            // concurrent edits from a second client with a big client id
            {
                let u = Transact::transact(&d1).encode_state_as_update_v1(&StateVector::default());
                Transact::transact_mut(&d2)
                    .apply_update(Update::decode_v1(&u).unwrap())
                    .unwrap();
                let t2 = d2.get_or_insert_text("text");
                tx!(d2, |t| {
                    t2.insert(&mut t, 3, "XYZ");
                    t2.remove_range(&mut t, 0, 2);
                });
            }
            out.push(Transact::transact(&d1).encode_state_as_update_v1(&StateVector::default()));
            out.push(Transact::transact(&d2).encode_state_as_update_v1(&StateVector::default()));
            let sv1 = Transact::transact(&d1).state_vector();
            out.push(Transact::transact(&d2).encode_diff_v1(&sv1));
            out
        }
    }

    pub fn sample_doc() -> yrs::Doc {
        let doc = yrs::Doc::with_client_id(7);
        use yrs::{GetString, Text, Transact, WriteTxn};
        {
            let t = doc.get_or_insert_text("t");
            let mut txn = doc.transact_mut();
            t.insert(&mut txn, 0, "hello world");
            t.remove_range(&mut txn, 2, 3);
            let m = txn.get_or_insert_map("m");
            use yrs::Map;
            m.insert(&mut txn, "k", 1.5);
            m.insert(&mut txn, "k", "v");
            let _ = t.get_string(&txn);
        }
        doc
    }
}
