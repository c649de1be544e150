//! Bounds on JSON that peers send for others to parse: awareness states and custom
//! events are relayed as text, and every receiver parses them (`JSON.parse` in stock
//! clients, then recursive code such as y-protocols' `equalityDeep`). A state nested a
//! few thousand levels deep is a few kilobytes and throws `Maximum call stack size
//! exceeded` in every browser that receives it, so nesting and size are checked before
//! anything is stored or relayed.
//!
//! The nesting is measured by a linear scan that never recurses (so it is safe on any
//! input, however deep); only text within the bound is then handed to serde_json to
//! check that it is one complete JSON document.

use crate::DecodeError;

/// The deepest nesting of arrays and objects accepted (a scalar is depth 0, `[]` and
/// `{}` are depth 1). Real presence states are a handful deep.
pub const MAX_DEPTH: usize = 32;

/// Limits on one JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Largest text, in bytes.
    pub max_bytes: usize,
}

impl JsonLimits {
    /// [`MAX_DEPTH`] and `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_depth: MAX_DEPTH,
            max_bytes,
        }
    }
}

/// The nesting depth of `text` as far as a JSON reader would get: brackets inside
/// strings do not count, and the scan stops (with the depth reached so far) once it
/// passes `stop_above`. Linear, no recursion, no allocation.
pub fn depth(text: &str, stop_above: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest > stop_above {
                        return deepest;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Checks that `text` is one complete JSON document within `limits`.
pub fn check(text: &str, limits: JsonLimits) -> Result<(), DecodeError> {
    if text.len() > limits.max_bytes {
        return Err(DecodeError::JsonTooLarge {
            len: text.len(),
            max: limits.max_bytes,
        });
    }
    if depth(text, limits.max_depth) > limits.max_depth {
        return Err(DecodeError::JsonTooDeep {
            max: limits.max_depth,
        });
    }
    // Within the depth bound, serde_json's recursion is bounded too.
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|_| DecodeError::NotJson)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const L: JsonLimits = JsonLimits {
        max_depth: MAX_DEPTH,
        max_bytes: 16 * 1024,
    };

    #[test]
    fn measures_nesting_outside_strings() {
        assert_eq!(depth("1", 99), 0);
        assert_eq!(depth(r#"{"a":[1,{"b":[]}]}"#, 99), 4);
        assert_eq!(depth(r#"["[[[[", "\"[[["]"#, 99), 1);
        assert_eq!(depth(r#"[[],[],[[]]]"#, 99), 3);
        // Stops early on hostile input.
        assert_eq!(depth(&"[".repeat(1_000_000), 32), 33);
    }

    #[test]
    fn refuses_deep_large_and_malformed_text() {
        assert_eq!(check(r#"{"user":{"name":"A"},"cursor":[1,2]}"#, L), Ok(()));
        assert_eq!(check("null", L), Ok(()));
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert_eq!(check(&ok, L), Ok(()));
        for deep in [
            format!("{}{}", "[".repeat(33), "]".repeat(33)),
            "{\"a\":".repeat(1000) + &"}".repeat(1000),
            "[{\"a\":".repeat(500) + &"}]".repeat(500),
            "[".repeat(1_000_000),
        ] {
            assert_eq!(
                check(&deep, JsonLimits::new(usize::MAX)),
                Err(DecodeError::JsonTooDeep { max: 32 })
            );
        }
        let big = format!("\"{}\"", "x".repeat(16 * 1024));
        assert!(matches!(
            check(&big, L),
            Err(DecodeError::JsonTooLarge { .. })
        ));
        for bad in ["", "{", "[1,]", "{} {}", "nul", "{\"a\" 1}", "]"] {
            assert_eq!(check(bad, L), Err(DecodeError::NotJson), "{bad}");
        }
    }

    /// Nested arrays and objects, `depth` levels, mixed by `shape`'s bits.
    fn nested(depth: usize, shape: u64) -> String {
        let mut open = String::new();
        let mut close = String::new();
        for i in 0..depth {
            if shape >> (i % 64) & 1 == 1 {
                open.push_str("{\"k\":");
                close.insert(0, '}');
            } else {
                open.push('[');
                close.insert(0, ']');
            }
        }
        format!("{open}0{close}")
    }

    proptest! {
        #[test]
        fn nesting_is_refused_exactly_past_the_bound(depth in 0usize..200, shape in any::<u64>()) {
            let text = nested(depth, shape);
            let result = check(&text, JsonLimits::new(usize::MAX));
            if depth <= MAX_DEPTH {
                prop_assert_eq!(result, Ok(()));
            } else {
                prop_assert_eq!(result, Err(DecodeError::JsonTooDeep { max: MAX_DEPTH }));
            }
        }

        #[test]
        fn whatever_passes_parses_within_the_bound(text in "[\\[\\]{}\":,a-c0-9 \\\\]{0,200}") {
            if check(&text, L).is_ok() {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                prop_assert!(value_depth(&value) <= MAX_DEPTH);
            }
        }
    }

    fn value_depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
            serde_json::Value::Object(m) => 1 + m.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}
