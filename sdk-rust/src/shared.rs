//! Shared-state helpers for apps that do not want raw yrs: handles on a root map
//! ([`SharedMap`]), list ([`SharedList`], a Y.Array) and text ([`SharedText`]) that read
//! and write JSON values, and observe changes. Each call is one yrs transaction, so each
//! is sent to the others as one change. Values are stored as plain JSON-like Yjs values,
//! which stock Yjs clients read as ordinary objects, arrays, strings and numbers.
//!
//! Every handle exposes its yrs type ([`SharedMap::raw`]…) for what the helpers do not
//! cover (nested shared types, formatting, undo).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, Map, MapRef, Observable, OffsetKind, Origin, Out,
    ReadTxn, Text, TextRef, Transact, TransactionMut,
};

use crate::error::{Error, Result};

/// A change seen by an observer ([`SharedMap::observe`] and friends).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The whole value after the change, as JSON (an object, an array or a string).
    pub value: Value,
    /// Whether the change came from another client (applied by the room), rather than
    /// from this process.
    pub remote: bool,
}

/// Keeps an observer registered; dropping it unregisters the observer.
#[must_use = "the observer is removed when the subscription is dropped"]
pub struct Subscription {
    unobserve: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(unobserve) = self.unobserve.take() {
            unobserve();
        }
    }
}

/// Registers `callback` on a shared type, reporting the whole value after each change.
fn observe<T, E>(
    shared: &T,
    remote_origin: &Origin,
    snapshot: impl Fn(&T, &TransactionMut) -> Value + Send + Sync + 'static,
    callback: impl Fn(&Change) + Send + Sync + 'static,
) -> Subscription
where
    T: Observable<Event = E> + Clone + Send + Sync + 'static,
    yrs::types::Event: AsRef<E>,
{
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let key = Origin::from(format!(
        "tandem-sdk-observer-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let target = shared.clone();
    let remote_origin = remote_origin.clone();
    shared.observe(key.clone(), move |txn, _event| {
        let change = Change {
            value: snapshot(&target, txn),
            remote: txn.origin() == Some(&remote_origin),
        };
        callback(&change);
    });
    let shared = shared.clone();
    Subscription {
        unobserve: Some(Box::new(move || {
            shared.unobserve(key);
        })),
    }
}

fn to_any(value: Value) -> Result<Any> {
    serde_json::from_value(value).map_err(|e| Error::InvalidValue(e.to_string()))
}

fn out_to_json<T: ReadTxn>(out: &Out, txn: &T) -> Value {
    any_to_json(&out.to_json(txn))
}

fn any_to_json(any: &Any) -> Value {
    serde_json::to_value(any).unwrap_or(Value::Null)
}

/// A root map of JSON values ([`Room::map`](crate::Room::map)): last writer wins per key.
///
/// ```no_run
/// use serde_json::json;
///
/// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
/// let board = room.map("board");
/// board.set("title", "Sprint 12")?;
/// board.set("limits", json!({"doing": 3}))?;
/// assert_eq!(board.get("limits"), Some(json!({"doing": 3})));
/// board.delete("title");
/// println!("{}", board.to_json());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedMap {
    doc: Doc,
    map: MapRef,
    remote_origin: Origin,
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedMap").field(&self.to_json()).finish()
    }
}

impl SharedMap {
    pub(crate) fn new(doc: &Doc, name: &str, remote_origin: Origin) -> Self {
        Self {
            map: doc.get_or_insert_map(name),
            doc: doc.clone(),
            remote_origin,
        }
    }

    /// The yrs map behind this handle.
    pub fn raw(&self) -> &MapRef {
        &self.map
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<Value> {
        let txn = self.doc.transact();
        self.map.get(&txn, key).map(|out| out_to_json(&out, &txn))
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl Into<Value>) -> Result<()> {
        let any = to_any(value.into())?;
        let mut txn = self.doc.transact_mut();
        self.map.insert(&mut txn, key, any);
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&self, key: &str) -> bool {
        let mut txn = self.doc.transact_mut();
        self.map.remove(&mut txn, key).is_some()
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(&self.doc.transact(), key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let txn = self.doc.transact();
        let mut keys: Vec<String> = self.map.keys(&txn).map(str::to_owned).collect();
        keys.sort_unstable();
        keys
    }

    /// How many keys are set.
    pub fn len(&self) -> u32 {
        self.map.len(&self.doc.transact())
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole map as a JSON object.
    pub fn to_json(&self) -> Value {
        any_to_json(&self.map.to_json(&self.doc.transact()))
    }

    /// Calls `callback` after every change to the map, local or remote, with the whole
    /// map as JSON. It runs inside the transaction that made the change: it must not
    /// block or touch the document (send the value to a channel instead).
    ///
    /// ```no_run
    /// # fn demo(room: &tandem_sdk::Room) {
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let _subscription = room.map("settings").observe(move |change| {
    ///     let _ = tx.send(change.value.clone());
    /// });
    /// # }
    /// ```
    pub fn observe(&self, callback: impl Fn(&Change) + Send + Sync + 'static) -> Subscription {
        observe(
            &self.map,
            &self.remote_origin,
            |map: &MapRef, txn| any_to_json(&map.to_json(txn)),
            callback,
        )
    }
}

/// A root list of JSON values (a Y.Array, [`Room::list`](crate::Room::list)): concurrent
/// inserts are all kept, in a order every client agrees on.
///
/// ```no_run
/// use serde_json::json;
///
/// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
/// let queue = room.list("queue");
/// queue.push(json!("b"))?;
/// queue.insert(0, json!("a"))?;
/// assert_eq!(queue.to_json(), json!(["a", "b"]));
/// queue.delete(0)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedList {
    doc: Doc,
    array: ArrayRef,
    remote_origin: Origin,
}

impl std::fmt::Debug for SharedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedList").field(&self.to_json()).finish()
    }
}

impl SharedList {
    pub(crate) fn new(doc: &Doc, name: &str, remote_origin: Origin) -> Self {
        Self {
            array: doc.get_or_insert_array(name),
            doc: doc.clone(),
            remote_origin,
        }
    }

    /// The yrs array behind this handle.
    pub fn raw(&self) -> &ArrayRef {
        &self.array
    }

    /// How many items the list holds.
    pub fn len(&self) -> u32 {
        self.array.len(&self.doc.transact())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`, if any.
    pub fn get(&self, index: u32) -> Option<Value> {
        let txn = self.doc.transact();
        self.array
            .get(&txn, index)
            .map(|out| out_to_json(&out, &txn))
    }

    /// Appends `value`.
    pub fn push(&self, value: impl Into<Value>) -> Result<()> {
        let any = to_any(value.into())?;
        let mut txn = self.doc.transact_mut();
        self.array.push_back(&mut txn, any);
        Ok(())
    }

    /// Inserts `value` before the item at `index` (`index == len` appends).
    pub fn insert(&self, index: u32, value: impl Into<Value>) -> Result<()> {
        let any = to_any(value.into())?;
        let mut txn = self.doc.transact_mut();
        let len = self.array.len(&txn);
        if index > len {
            return Err(Error::OutOfRange { index, len });
        }
        self.array.insert(&mut txn, index, any);
        Ok(())
    }

    /// Removes the item at `index`.
    pub fn delete(&self, index: u32) -> Result<()> {
        self.delete_range(index, 1)
    }

    /// Removes `count` items starting at `index`.
    pub fn delete_range(&self, index: u32, count: u32) -> Result<()> {
        let mut txn = self.doc.transact_mut();
        let len = self.array.len(&txn);
        match index.checked_add(count) {
            Some(end) if end <= len => {}
            _ => return Err(Error::OutOfRange { index, len }),
        }
        if count > 0 {
            self.array.remove_range(&mut txn, index, count);
        }
        Ok(())
    }

    /// The whole list as a JSON array.
    pub fn to_json(&self) -> Value {
        any_to_json(&self.array.to_json(&self.doc.transact()))
    }

    /// Calls `callback` after every change to the list, local or remote, with the whole
    /// list as JSON. It runs inside the transaction that made the change: it must not
    /// block or touch the document.
    pub fn observe(&self, callback: impl Fn(&Change) + Send + Sync + 'static) -> Subscription {
        observe(
            &self.array,
            &self.remote_origin,
            |array: &ArrayRef, txn| any_to_json(&array.to_json(txn)),
            callback,
        )
    }
}

/// A root text (Y.Text, [`Room::text`](crate::Room::text)) edited by character: indices
/// and lengths count Unicode scalar values (`char`s), whatever offset kind the document
/// uses.
///
/// ```no_run
/// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
/// let title = room.text("title");
/// title.push("Héllo")?;
/// title.insert(5, " world")?;
/// title.delete(0, 1)?;
/// assert_eq!(title.to_string(), "éllo world");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedText {
    doc: Doc,
    text: TextRef,
    remote_origin: Origin,
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedText")
            .field(&self.to_string())
            .finish()
    }
}

impl std::fmt::Display for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text.get_string(&self.doc.transact()))
    }
}

impl SharedText {
    pub(crate) fn new(doc: &Doc, name: &str, remote_origin: Origin) -> Self {
        Self {
            text: doc.get_or_insert_text(name),
            doc: doc.clone(),
            remote_origin,
        }
    }

    /// The yrs text behind this handle.
    pub fn raw(&self) -> &TextRef {
        &self.text
    }

    /// The length in characters.
    pub fn len(&self) -> u32 {
        let chars = self.text.get_string(&self.doc.transact()).chars().count();
        u32::try_from(chars).unwrap_or(u32::MAX)
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.text.len(&self.doc.transact()) == 0
    }

    /// Inserts `chunk` before the character at `index` (`index == len` appends).
    pub fn insert(&self, index: u32, chunk: &str) -> Result<()> {
        let kind = self.doc.offset_kind();
        let mut txn = self.doc.transact_mut();
        let current = self.text.get_string(&txn);
        let offset = offset_of(&current, index, kind)?;
        self.text.insert(&mut txn, offset, chunk);
        Ok(())
    }

    /// Appends `chunk`.
    pub fn push(&self, chunk: &str) -> Result<()> {
        let mut txn = self.doc.transact_mut();
        self.text.push(&mut txn, chunk);
        Ok(())
    }

    /// Removes `count` characters starting at `index`.
    pub fn delete(&self, index: u32, count: u32) -> Result<()> {
        let kind = self.doc.offset_kind();
        let mut txn = self.doc.transact_mut();
        let current = self.text.get_string(&txn);
        let end = index.checked_add(count).ok_or(Error::OutOfRange {
            index,
            len: char_len(&current),
        })?;
        let start_offset = offset_of(&current, index, kind)?;
        let end_offset = offset_of(&current, end, kind)?;
        if end_offset > start_offset {
            self.text
                .remove_range(&mut txn, start_offset, end_offset - start_offset);
        }
        Ok(())
    }

    /// The text as a JSON string.
    pub fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }

    /// Calls `callback` after every change to the text, local or remote, with the whole
    /// text as a JSON string. It runs inside the transaction that made the change: it must
    /// not block or touch the document.
    pub fn observe(&self, callback: impl Fn(&Change) + Send + Sync + 'static) -> Subscription {
        observe(
            &self.text,
            &self.remote_origin,
            |text: &TextRef, txn| Value::String(text.get_string(txn)),
            callback,
        )
    }
}

fn char_len(s: &str) -> u32 {
    u32::try_from(s.chars().count()).unwrap_or(u32::MAX)
}

/// The document offset (in the document's offset unit) of character `index` of `s`.
fn offset_of(s: &str, index: u32, kind: OffsetKind) -> Result<u32> {
    let out_of_range = || Error::OutOfRange {
        index,
        len: char_len(s),
    };
    let chars = usize::try_from(index).map_err(|_| out_of_range())?;
    let mut offset = 0usize;
    let mut seen = 0usize;
    for c in s.chars() {
        if seen == chars {
            break;
        }
        offset += match kind {
            OffsetKind::Bytes => c.len_utf8(),
            OffsetKind::Utf16 => c.len_utf16(),
        };
        seen += 1;
    }
    if seen < chars {
        return Err(out_of_range());
    }
    u32::try_from(offset).map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use yrs::updates::decoder::Decode;
    use yrs::Update;

    use super::*;

    fn origin() -> Origin {
        Origin::from("remote")
    }

    #[test]
    fn maps_hold_json_values() {
        let doc = Doc::new();
        let map = SharedMap::new(&doc, "m", origin());
        assert!(map.is_empty());
        map.set("n", 3).unwrap();
        map.set("s", "x").unwrap();
        map.set("o", json!({"a": [1, true, null]})).unwrap();
        assert_eq!(map.get("n"), Some(json!(3)));
        assert_eq!(map.get("s"), Some(json!("x")));
        assert_eq!(map.get("o"), Some(json!({"a": [1, true, null]})));
        assert_eq!(map.keys(), ["n", "o", "s"]);
        assert!(map.delete("s"));
        assert!(!map.delete("s"));
        assert!(!map.contains_key("s"));
        assert_eq!(map.len(), 2);
        assert_eq!(map.to_json()["n"], json!(3));
        map.set("f", 0.5).unwrap();
        assert_eq!(map.get("f"), Some(json!(0.5)));
    }

    #[test]
    fn lists_check_their_bounds_instead_of_panicking() {
        let doc = Doc::new();
        let list = SharedList::new(&doc, "l", origin());
        list.push("b").unwrap();
        list.insert(0, "a").unwrap();
        list.insert(2, "c").unwrap();
        assert_eq!(list.to_json(), json!(["a", "b", "c"]));
        assert!(matches!(
            list.insert(9, "x"),
            Err(Error::OutOfRange { index: 9, len: 3 })
        ));
        assert!(matches!(
            list.delete_range(2, 2),
            Err(Error::OutOfRange { .. })
        ));
        assert!(matches!(
            list.delete_range(1, u32::MAX),
            Err(Error::OutOfRange { .. })
        ));
        list.delete(1).unwrap();
        assert_eq!(list.get(1), Some(json!("c")));
        assert_eq!(list.get(5), None);
        list.delete_range(0, 0).unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn text_indices_are_characters_whatever_the_offset_kind() {
        for kind in [OffsetKind::Bytes, OffsetKind::Utf16] {
            let doc = Doc::with_options(yrs::Options {
                offset_kind: kind,
                ..yrs::Options::default()
            });
            let text = SharedText::new(&doc, "t", origin());
            text.push("hé🎉").unwrap();
            text.insert(3, "!").unwrap();
            text.insert(1, "·").unwrap();
            assert_eq!(text.to_string(), "h·é🎉!");
            assert_eq!(text.len(), 5);
            text.delete(2, 2).unwrap();
            assert_eq!(text.to_string(), "h·!");
            assert!(matches!(
                text.insert(4, "x"),
                Err(Error::OutOfRange { index: 4, len: 3 })
            ));
            assert!(matches!(text.delete(2, 2), Err(Error::OutOfRange { .. })));
            assert_eq!(text.to_json(), json!("h·!"));
        }
    }

    #[test]
    fn observers_see_local_and_remote_changes_until_dropped() {
        let doc = Doc::new();
        let list = SharedList::new(&doc, "l", origin());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let subscription = list.observe(move |change| {
            sink.lock().unwrap().push(change.clone());
        });
        list.push(1).unwrap();

        // A change from elsewhere, applied under the room's origin.
        let other = Doc::new();
        let other_list = other.get_or_insert_array("l");
        let update = {
            let mut txn = other.transact_mut();
            other_list.push_back(&mut txn, 2);
            txn.encode_update_v1()
        };
        doc.transact_mut_with(origin())
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();

        drop(subscription);
        list.push(3).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(!seen[0].remote);
        assert_eq!(seen[0].value, json!([1]));
        assert!(seen[1].remote);
        assert_eq!(seen[1].value.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn text_and_map_observers_report_whole_values() {
        let doc = Doc::new();
        let text = SharedText::new(&doc, "t", origin());
        let map = SharedMap::new(&doc, "m", origin());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (Arc::clone(&seen), Arc::clone(&seen));
        let _t = text.observe(move |c| a.lock().unwrap().push(c.value.clone()));
        let _m = map.observe(move |c| b.lock().unwrap().push(c.value.clone()));
        text.push("hi").unwrap();
        map.set("k", "v").unwrap();
        assert_eq!(*seen.lock().unwrap(), [json!("hi"), json!({"k": "v"})]);
    }
}
