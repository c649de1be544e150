//! Room patterns: which rooms a permission covers.

use serde::{Deserialize, Serialize};

use super::MAX_ROOM_PATTERN_BYTES;

/// Which rooms a permission covers: an exact name, or a prefix followed by `*` (`doc-*`
/// covers `doc-1` and `doc-`; `*` alone covers every room of the project). A `*`
/// anywhere but at the end is invalid, so patterns never need backtracking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RoomPattern(String);

impl RoomPattern {
    /// Validates a pattern: 1 to [`MAX_ROOM_PATTERN_BYTES`] bytes, no control characters,
    /// `*` only as the last character.
    pub fn new(pattern: impl Into<String>) -> Result<Self, PatternError> {
        let pattern = pattern.into();
        if pattern.is_empty() || pattern.len() > MAX_ROOM_PATTERN_BYTES {
            return Err(PatternError::Length);
        }
        if pattern.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter);
        }
        // One trailing `*` is the wildcard; any other `*` (including a second trailing
        // one) is refused.
        if pattern.strip_suffix('*').unwrap_or(&pattern).contains('*') {
            return Err(PatternError::InnerWildcard);
        }
        Ok(Self(pattern))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `room` is covered.
    pub fn matches(&self, room: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => room == self.0,
        }
    }
}

impl<'de> Deserialize<'de> for RoomPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        RoomPattern::new(raw).map_err(serde::de::Error::custom)
    }
}

/// Why a room pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty or too long.
    #[error("room patterns are 1 to {MAX_ROOM_PATTERN_BYTES} bytes")]
    Length,
    /// A control character.
    #[error("room patterns must not contain control characters")]
    ControlCharacter,
    /// A `*` that is not the last character.
    #[error("`*` is only allowed at the end of a room pattern")]
    InnerWildcard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_patterns_match_exactly_or_by_prefix() {
        let exact = RoomPattern::new("doc-1").unwrap();
        assert!(exact.matches("doc-1"));
        assert!(!exact.matches("doc-10"));
        assert!(!exact.matches("doc-"));
        assert!(!exact.matches("Doc-1"));

        let prefix = RoomPattern::new("doc-*").unwrap();
        assert!(prefix.matches("doc-1"));
        assert!(prefix.matches("doc-"));
        assert!(prefix.matches("doc-a/b*c"));
        assert!(!prefix.matches("doc"));
        assert!(!prefix.matches("other-doc-1"));

        let all = RoomPattern::new("*").unwrap();
        for room in ["a", "doc-1", "é", "*"] {
            assert!(all.matches(room));
        }
    }

    #[test]
    fn invalid_room_patterns_are_refused() {
        assert_eq!(RoomPattern::new(""), Err(PatternError::Length));
        assert_eq!(
            RoomPattern::new("x".repeat(MAX_ROOM_PATTERN_BYTES + 1)),
            Err(PatternError::Length)
        );
        assert!(RoomPattern::new(format!("{}*", "x".repeat(256))).is_ok());
        assert_eq!(
            RoomPattern::new("a\nb"),
            Err(PatternError::ControlCharacter)
        );
        assert!(RoomPattern::new("é").is_ok());
        for bad in ["a*b", "*a", "**", "a**", "*-*", "é*é"] {
            assert_eq!(
                RoomPattern::new(bad),
                Err(PatternError::InnerWildcard),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<RoomPattern>("\"a*b\"").is_err());
        assert_eq!(
            serde_json::from_str::<RoomPattern>("\"a*\"").unwrap(),
            RoomPattern::new("a*").unwrap()
        );
    }
}
