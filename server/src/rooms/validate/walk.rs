//! The walk over a v1 update, mirroring yrs 0.28.1's decoder: the structs of each
//! client, each block and its content, `Any` values (depth-bounded) and the delete set.

use super::reader::R;
use super::Invalid;

impl R<'_, '_> {
    // ---- blocks (yrs update.rs `Update::decode`, `decode_block`) ----
    pub(super) fn update(&mut self) -> Result<(), Invalid> {
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
    pub(super) fn block(&mut self) -> Result<(u32, bool), Invalid> {
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
    pub(super) fn content(&mut self, content_ref: u8, at: usize) -> Result<u32, Invalid> {
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
    pub(super) fn any(&mut self, depth: u32) -> Result<(), Invalid> {
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
    pub(super) fn ds(&mut self) -> Result<(), Invalid> {
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
