//! The byte reader under the validator: bounds-checked primitives (canonical varints,
//! counts backed by real bytes, strings, clocks, ids) and, in the stateful mode, what
//! the document already holds for each client.

use super::{Invalid, Limits, Stats};

pub(super) type Frontiers = std::collections::HashMap<u64, u64>;

pub(super) struct R<'a, 'l> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) limits: &'l Limits,
    pub(super) stats: Stats,
    /// stateful mode: current clock of each client in the document
    pub(super) state: Option<&'l dyn Fn(u64) -> u32>,
    /// pass 1 fills, pass 2 reads: per-client clock after applying this update
    pub(super) frontiers: Frontiers,
    pub(super) pass: u8,
    pub(super) cur: (u64, u64),
}

impl<'a, 'l> R<'a, 'l> {
    pub(super) fn new(buf: &'a [u8], limits: &'l Limits) -> Self {
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

    pub(super) fn doc_clock(&self, client: u64) -> u64 {
        self.state.map(|f| f(client) as u64).unwrap_or(0)
    }

    pub(super) fn frontier(&self, client: u64) -> u64 {
        match self.frontiers.get(&client) {
            Some(&f) => f,
            None => self.doc_clock(client),
        }
    }

    /// pass 2: check a referenced id
    pub(super) fn check_ref(&self, (client, clock): (u64, u64), at: usize) -> Result<(), Invalid> {
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
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn u8(&mut self) -> Result<u8, Invalid> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(Invalid::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if n > self.remaining() {
            return Err(Invalid::Truncated { at: self.pos });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Canonical unsigned LEB128 limited to `max` (at most 10 bytes).
    pub(super) fn uvar(&mut self, max: u64) -> Result<u64, Invalid> {
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

    pub(super) fn u32(&mut self) -> Result<u32, Invalid> {
        Ok(self.uvar(u32::MAX as u64)? as u32)
    }

    /// Client id. yrs `ClientID::new` keeps only 53 bits (block.rs:93, debug_assert in debug
    /// builds): larger ids alias smaller ones (`5` and `2^53 + 5` become the same client).
    pub(super) fn u64(&mut self) -> Result<u64, Invalid> {
        self.uvar((1 << 53) - 1)
    }

    /// lib0 signed varint as read by yrs `read_var_i64`; limited to 9 bytes (|v| < 2^62) so
    /// that yrs' `<< len` and `-num` can never overflow (they panic with overflow-checks).
    pub(super) fn ivar(&mut self) -> Result<(), Invalid> {
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
    pub(super) fn count(&mut self, min_elem: usize) -> Result<u64, Invalid> {
        let at = self.pos;
        let n = self.u32()? as u64;
        if n.saturating_mul(min_elem as u64) > self.remaining() as u64 {
            return Err(Invalid::Truncated { at });
        }
        Ok(n)
    }

    pub(super) fn string(&mut self) -> Result<&'a str, Invalid> {
        let len = self.u32()? as usize;
        let at = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| Invalid::BadUtf8 { at })
    }

    pub(super) fn buf_(&mut self) -> Result<(), Invalid> {
        let len = self.u32()? as usize;
        self.take(len).map(|_| ())
    }

    /// A clock value: canonical u32 and <= limits.max_clock.
    pub(super) fn clock(&mut self) -> Result<u32, Invalid> {
        let at = self.pos;
        let c = self.u32()?;
        if c > self.limits.max_clock {
            return Err(Invalid::ClockOverflow { at });
        }
        Ok(c)
    }

    pub(super) fn id(&mut self) -> Result<(u64, u64), Invalid> {
        let client = self.u64()?;
        let clock = self.clock()?;
        Ok((client, clock as u64))
    }
}
