//! Bounded lib0 primitives: variable-length unsigned integers and length-prefixed byte
//! strings, as Yjs writes them.
//!
//! Every read checks the remaining input before it trusts a length, so a hostile prefix
//! that claims gigabytes is rejected without allocating anything.

use crate::DecodeError;

/// The largest lib0 varuint we accept. JavaScript writes at most 53 bits (its safe
/// integers), which takes 8 bytes; we allow the full 64 bits (10 bytes) and no more.
const MAX_VARUINT_BYTES: usize = 10;

/// A cursor over a borrowed frame. Reads never copy and never allocate.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Reads one lib0 varuint (7 bits a byte, little-endian, high bit = more follows).
    pub fn read_var_u64(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARUINT_BYTES {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated);
            };
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            // The tenth byte may only carry the single remaining bit of a u64.
            if shift == 63 && bits > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    /// Reads a varuint that must fit in a `usize` length.
    pub fn read_len(&mut self) -> Result<usize, DecodeError> {
        let len = self.read_var_u64()?;
        usize::try_from(len).map_err(|_| DecodeError::LengthTooLarge {
            claimed: len,
            remaining: self.remaining(),
        })
    }

    /// Reads a length-prefixed byte string, borrowing it from the frame. The length is
    /// checked against what is left before anything else happens.
    pub fn read_var_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.read_var_u64()?;
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(DecodeError::LengthTooLarge {
                claimed: len,
                remaining,
            });
        }
        let len = len as usize;
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn read_var_str(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.read_var_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// Fails unless the whole input has been consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.remaining()))
        }
    }
}

/// Appends lib0 values to a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Appends a varuint.
    pub fn write_var_u64(&mut self, mut value: u64) -> &mut Self {
        while value >= 0x80 {
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
        self
    }

    /// Appends a length-prefixed byte string.
    pub fn write_var_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.write_var_u64(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends a length-prefixed UTF-8 string.
    pub fn write_var_str(&mut self, s: &str) -> &mut Self {
        self.write_var_bytes(s.as_bytes())
    }

    /// The bytes written so far.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// How many bytes `value` takes as a varuint.
pub fn var_u64_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_lib0() {
        // Values and bytes from lib0's own encoding tests.
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[127]),
            (128, &[128, 1]),
            (300, &[172, 2]),
            ((1u64 << 53) - 1, &[255, 255, 255, 255, 255, 255, 255, 15]),
        ];
        for (value, bytes) in cases {
            let mut w = Writer::default();
            w.write_var_u64(*value);
            assert_eq!(w.into_inner(), *bytes, "encoding {value}");
            let mut r = Reader::new(bytes);
            assert_eq!(r.read_var_u64().unwrap(), *value);
            assert!(r.is_empty());
            assert_eq!(var_u64_len(*value), bytes.len());
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        assert_eq!(
            Reader::new(&[0x80]).read_var_u64(),
            Err(DecodeError::Truncated)
        );
        assert_eq!(Reader::new(&[]).read_var_u64(), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&[0xff; 11]).read_var_u64(),
            Err(DecodeError::VarintOverflow)
        );
        // Ten bytes whose last one carries more than the 64th bit.
        let mut bytes = vec![0xff; 9];
        bytes.push(0x02);
        assert_eq!(
            Reader::new(&bytes).read_var_u64(),
            Err(DecodeError::VarintOverflow)
        );
        let mut max = Writer::default();
        max.write_var_u64(u64::MAX);
        assert_eq!(Reader::new(&max.into_inner()).read_var_u64(), Ok(u64::MAX));
    }

    #[test]
    fn a_length_claiming_four_gib_is_refused_before_allocating() {
        let mut w = Writer::default();
        w.write_var_u64(4 * 1024 * 1024 * 1024);
        let mut bytes = w.into_inner();
        bytes.extend_from_slice(b"tiny");
        let err = Reader::new(&bytes).read_var_bytes().unwrap_err();
        assert_eq!(
            err,
            DecodeError::LengthTooLarge {
                claimed: 4 * 1024 * 1024 * 1024,
                remaining: 4
            }
        );
    }

    proptest! {
        #[test]
        fn varuint_roundtrips(value in any::<u64>()) {
            let mut w = Writer::default();
            w.write_var_u64(value);
            let bytes = w.into_inner();
            prop_assert_eq!(bytes.len(), var_u64_len(value));
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.read_var_u64().unwrap(), value);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            while r.read_var_bytes().is_ok() {}
            let mut r = Reader::new(&bytes);
            while r.read_var_u64().is_ok() {}
        }
    }
}
