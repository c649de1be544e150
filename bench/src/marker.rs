//! The timestamp marker each bench update carries inside a string value:
//! `@T` + 16 hex digits (nanoseconds since the run's shared start `Instant`) + 8 hex
//! digits (writer index) + 8 hex digits (writer sequence number) + `@`.
//!
//! Receivers scan the raw update bytes for it, so latency is measured the same way
//! whatever the server does with the update (relay it verbatim, re-encode it like the
//! Node server does, or merge several into one) as long as the string content survives.

pub const LEN: usize = 2 + 16 + 8 + 8 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub sent_ns: u64,
    pub writer: u32,
    pub seq: u32,
}

impl Marker {
    pub fn write(&self, out: &mut String) {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "@T{:016x}{:08x}{:08x}@",
            self.sent_ns, self.writer, self.seq
        );
    }
}

fn hex(bytes: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &b in bytes {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

fn parse(m: &[u8]) -> Option<Marker> {
    if m.len() != LEN || m[0] != b'@' || m[1] != b'T' || m[LEN - 1] != b'@' {
        return None;
    }
    Some(Marker {
        sent_ns: hex(&m[2..18])?,
        writer: hex(&m[18..26])? as u32,
        seq: hex(&m[26..34])? as u32,
    })
}

/// Calls `f` for every well-formed marker in `bytes`.
pub fn scan(bytes: &[u8], mut f: impl FnMut(Marker)) {
    let mut i = 0;
    while i + LEN <= bytes.len() {
        if bytes[i] == b'@' && bytes[i + 1] == b'T' {
            if let Some(m) = parse(&bytes[i..i + LEN]) {
                f(m);
                i += LEN;
                continue;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_scan() {
        let a = Marker {
            sent_ns: 0x0123_4567_89ab_cdef,
            writer: 7,
            seq: 0xffff_fffe,
        };
        let b = Marker {
            sent_ns: 1,
            writer: 0,
            seq: 0,
        };
        let mut s = String::from("x@T@");
        a.write(&mut s);
        s.push_str("@@Tzz");
        b.write(&mut s);
        s.push_str("pad");
        assert_eq!(s.len(), 4 + LEN + 5 + LEN + 3);
        let mut found = Vec::new();
        scan(s.as_bytes(), |m| found.push(m));
        assert_eq!(found, vec![a, b]);
        // Truncated marker at the end is ignored.
        let mut found = Vec::new();
        scan(&s.as_bytes()[..4 + LEN - 1], |m| found.push(m));
        assert!(found.is_empty());
    }
}
