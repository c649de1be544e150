//! What changed between two points of a room's history, and who changed it. Both
//! documents are rendered as the JSON view; per root, a map's keys are compared one by
//! one, a text's or an array's content as one changed range (the common prefix and
//! suffix stay), anything else as a whole. Who: the updates written between the two
//! points are replayed on the earlier document one by one, and each change is
//! attributed to the writers of the updates that changed that key (or that root); past
//! [`MAX_REPLAYED`] updates the replay is skipped and every change lists all writers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{apply, build, view, Author};
use crate::store::history::HistoryRow;
use crate::store::StoredDoc;

/// Most updates replayed to attribute changes.
pub(super) const MAX_REPLAYED: u32 = 2_000;

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A map key that was not there.
    Added,
    /// A map key that is gone.
    Removed,
    /// A map key (or a whole root) whose value differs.
    Changed,
    /// A range of a text.
    Text,
    /// A slice of an array.
    Array,
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The root type.
    pub root: String,
    /// The map key, for map changes.
    pub key: Option<String>,
    /// What kind.
    pub kind: ChangeKind,
    /// Where a text range or array slice starts (UTF-16 code units for text, as Yjs
    /// counts).
    pub index: Option<usize>,
    /// The value before (for text: the removed text; for arrays: the removed items).
    pub before: Value,
    /// The value after (for text: the inserted text; for arrays: the inserted items).
    pub after: Value,
    /// Who wrote the updates that made it.
    pub authors: Vec<Author>,
}

/// What changed between two times.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// The earlier time, unix milliseconds.
    pub from_ms: i64,
    /// The later time.
    pub to_ms: i64,
    /// The changes, by root and key.
    pub changes: Vec<Change>,
    /// Everyone who wrote an update in between, with how many.
    pub authors: Vec<(Author, u64)>,
    /// Whether each change's authors are exact (`false`: too many updates in between to
    /// replay; every change lists every writer).
    pub attributed: bool,
}

/// Which part of the document an attribution is about: a root, or a key of a map root.
type Spot = (String, Option<String>);

pub(super) fn diff(
    from_ms: i64,
    to_ms: i64,
    before: &StoredDoc,
    after: &StoredDoc,
    rows: &[(HistoryRow, bytes::Bytes)],
) -> Diff {
    let old = view(&build(before));
    let new = view(&build(after));
    let attributed = rows.len() <= MAX_REPLAYED as usize;
    let mut counts: BTreeMap<Author, u64> = BTreeMap::new();
    for (row, _) in rows {
        *counts.entry(Author::from(&row.author)).or_default() += 1;
    }
    let everyone: Vec<Author> = counts.keys().cloned().collect();
    let mut by_spot: BTreeMap<Spot, BTreeSet<Author>> = BTreeMap::new();
    if attributed && !rows.is_empty() {
        let doc = build(before);
        let mut last = old.clone();
        for (row, data) in rows {
            apply(&doc, data);
            let now = view(&doc);
            for spot in changed_spots(&last, &now) {
                by_spot
                    .entry(spot)
                    .or_default()
                    .insert(Author::from(&row.author));
            }
            last = now;
        }
    }
    let authors_of = |root: &str, key: Option<&str>| -> Vec<Author> {
        if !attributed {
            return everyone.clone();
        }
        let mut found: BTreeSet<Author> = BTreeSet::new();
        for ((r, k), who) in &by_spot {
            if r == root && (key.is_none() || k.as_deref() == key) {
                found.extend(who.iter().cloned());
            }
        }
        found.into_iter().collect()
    };
    let mut changes = Vec::new();
    let empty = serde_json::Map::new();
    let old_roots = old.as_object().unwrap_or(&empty);
    let new_roots = new.as_object().unwrap_or(&empty);
    let names: BTreeSet<&String> = old_roots.keys().chain(new_roots.keys()).collect();
    for root in names {
        let a = old_roots.get(root).unwrap_or(&Value::Null);
        let b = new_roots.get(root).unwrap_or(&Value::Null);
        if a == b {
            continue;
        }
        let objects = matches!(
            (a, b),
            (
                Value::Object(_) | Value::Null,
                Value::Object(_) | Value::Null
            )
        );
        match (a, b) {
            _ if objects => {
                let (x, y) = (
                    a.as_object().unwrap_or(&empty),
                    b.as_object().unwrap_or(&empty),
                );
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let (before, after) = (x.get(key), y.get(key));
                    if before == after {
                        continue;
                    }
                    let kind = match (before, after) {
                        (None, _) => ChangeKind::Added,
                        (_, None) => ChangeKind::Removed,
                        _ => ChangeKind::Changed,
                    };
                    changes.push(Change {
                        root: root.clone(),
                        key: Some(key.clone()),
                        kind,
                        index: None,
                        before: before.cloned().unwrap_or(Value::Null),
                        after: after.cloned().unwrap_or(Value::Null),
                        authors: authors_of(root, Some(key)),
                    });
                }
            }
            (Value::String(_) | Value::Null, Value::String(_) | Value::Null) => {
                let (x, y) = (a.as_str().unwrap_or(""), b.as_str().unwrap_or(""));
                let (index, removed, inserted) = text_range(x, y);
                changes.push(Change {
                    root: root.clone(),
                    key: None,
                    kind: ChangeKind::Text,
                    index: Some(index),
                    before: Value::String(removed),
                    after: Value::String(inserted),
                    authors: authors_of(root, None),
                });
            }
            (Value::Array(x), Value::Array(y)) => {
                let prefix = x.iter().zip(y).take_while(|(p, q)| p == q).count();
                let rest = (x.len() - prefix).min(y.len() - prefix);
                let suffix = x
                    .iter()
                    .rev()
                    .zip(y.iter().rev())
                    .take(rest)
                    .take_while(|(p, q)| p == q)
                    .count();
                changes.push(Change {
                    root: root.clone(),
                    key: None,
                    kind: ChangeKind::Array,
                    index: Some(prefix),
                    before: Value::Array(x[prefix..x.len() - suffix].to_vec()),
                    after: Value::Array(y[prefix..y.len() - suffix].to_vec()),
                    authors: authors_of(root, None),
                });
            }
            _ => changes.push(Change {
                root: root.clone(),
                key: None,
                kind: ChangeKind::Changed,
                index: None,
                before: a.clone(),
                after: b.clone(),
                authors: authors_of(root, None),
            }),
        }
    }
    Diff {
        from_ms,
        to_ms,
        changes,
        authors: counts.into_iter().collect(),
        attributed,
    }
}

/// The roots (and, for objects, the keys) whose value differs between two views.
fn changed_spots(old: &Value, new: &Value) -> Vec<Spot> {
    let empty = serde_json::Map::new();
    let (x, y) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut spots = Vec::new();
    let roots: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    for root in roots {
        let (a, b) = (x.get(root), y.get(root));
        if a == b {
            continue;
        }
        match (a.and_then(Value::as_object), b.and_then(Value::as_object)) {
            (p, q) if p.is_some() || q.is_some() => {
                let (p, q) = (p.unwrap_or(&empty), q.unwrap_or(&empty));
                let keys: BTreeSet<&String> = p.keys().chain(q.keys()).collect();
                for key in keys {
                    if p.get(key) != q.get(key) {
                        spots.push((root.clone(), Some(key.clone())));
                    }
                }
            }
            _ => spots.push((root.clone(), None)),
        }
    }
    spots
}

/// The one range in which `old` and `new` differ: (start in UTF-16 code units, removed
/// text, inserted text).
fn text_range(old: &str, new: &str) -> (usize, String, String) {
    let a: Vec<char> = old.chars().collect();
    let b: Vec<char> = new.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(p, q)| p == q).count();
    let rest = (a.len() - prefix).min(b.len() - prefix);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(rest)
        .take_while(|(p, q)| p == q)
        .count();
    let index = a[..prefix].iter().map(|c| c.len_utf16()).sum();
    let removed = a[prefix..a.len() - suffix].iter().collect();
    let inserted = b[prefix..b.len() - suffix].iter().collect();
    (index, removed, inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_between_texts() {
        assert_eq!(
            text_range("hello world", "hello brave world"),
            (6, String::new(), "brave ".to_owned())
        );
        assert_eq!(text_range("abc", "ac"), (1, "b".to_owned(), String::new()));
        assert_eq!(
            text_range("😀x", "😀y"),
            (2, "x".to_owned(), "y".to_owned())
        );
        assert_eq!(text_range("aaa", "aa"), (2, "a".to_owned(), String::new()));
    }

    #[test]
    fn spots_are_keys_of_maps_and_whole_roots_otherwise() {
        let old = serde_json::json!({"m": {"a": 1, "b": 2}, "t": "x"});
        let new = serde_json::json!({"m": {"a": 1, "b": 3, "c": 4}, "t": "y"});
        assert_eq!(
            changed_spots(&old, &new),
            vec![
                ("m".to_owned(), Some("b".to_owned())),
                ("m".to_owned(), Some("c".to_owned())),
                ("t".to_owned(), None),
            ]
        );
    }
}
