//! The room's shared state: root maps, lists (Yjs arrays) and texts of its yrs
//! document, read and written as JSON text across the boundary (the JS wrapper parses
//! and stringifies). Each write is one transaction, which the session sends (merged
//! with any others made in the same turn) from a microtask. Indexes are UTF-16 code
//! units, like Yjs; out-of-range indexes throw `TandemError` `out_of_range` instead of
//! letting yrs panic.
//!
//! Subscriptions ([`RoomCore::observe`]) watch one root type deeply; their observers
//! only set a flag and schedule the room's loop, which tells the app (`type`, id).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayRef, DeepObservable, Doc, GetString, Map, MapRef, Text, TextRef, Transact,
};

use crate::error::{invalid, js_error};
use crate::platform;
use crate::room::RoomCore;

/// Which kind of root type a subscription watches.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Map,
    List,
    Text,
}

impl Kind {
    fn parse(kind: &str) -> Result<Self, JsValue> {
        match kind {
            "map" => Ok(Self::Map),
            "list" => Ok(Self::List),
            "text" => Ok(Self::Text),
            _ => Err(invalid("kind must be map, list or text")),
        }
    }
}

/// A live subscription on one root type.
pub(crate) struct TypeSub {
    kind: Kind,
    name: String,
    pub(crate) dirty: Arc<AtomicBool>,
}

fn sub_key(room: u32, id: u32) -> String {
    format!("tandem-wasm-sub-{room}-{id}")
}

impl TypeSub {
    pub(crate) fn unobserve(&self, doc: &Doc, room: u32, id: u32) {
        let key = sub_key(room, id);
        match self.kind {
            Kind::Map => doc
                .get_or_insert_map(self.name.as_str())
                .unobserve_deep(key),
            Kind::List => doc
                .get_or_insert_array(self.name.as_str())
                .unobserve_deep(key),
            Kind::Text => doc
                .get_or_insert_text(self.name.as_str())
                .unobserve_deep(key),
        };
    }
}

fn parse(json: &str) -> Result<Any, JsValue> {
    serde_json::from_str(json).map_err(|_| invalid("values must be JSON"))
}

fn stringify(value: &Any) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn out_of_range(index: u32, len: u32) -> JsValue {
    js_error(
        "out_of_range",
        &format!("index {index} is out of range (length {len})"),
    )
}

#[wasm_bindgen]
impl RoomCore {
    fn map(&self, name: &str) -> MapRef {
        self.doc.get_or_insert_map(name)
    }

    fn list(&self, name: &str) -> ArrayRef {
        self.doc.get_or_insert_array(name)
    }

    fn text(&self, name: &str) -> TextRef {
        self.doc.get_or_insert_text(name)
    }

    /// The value under `key` in map `name`, as JSON, or `undefined`.
    #[wasm_bindgen(js_name = mapGet)]
    pub fn map_get(&self, name: &str, key: &str) -> Option<String> {
        let map = self.map(name);
        let txn = self.doc.transact();
        map.get(&txn, key).map(|v| stringify(&v.to_json(&txn)))
    }

    /// Sets `key` in map `name` to a JSON value.
    #[wasm_bindgen(js_name = mapSet)]
    pub fn map_set(&self, name: &str, key: &str, json: &str) -> Result<(), JsValue> {
        let value = parse(json)?;
        let map = self.map(name);
        map.insert(&mut self.doc.transact_mut(), key, value);
        Ok(())
    }

    /// Removes `key` from map `name`.
    #[wasm_bindgen(js_name = mapDelete)]
    pub fn map_delete(&self, name: &str, key: &str) {
        let map = self.map(name);
        map.remove(&mut self.doc.transact_mut(), key);
    }

    /// Map `name` as a JSON object.
    #[wasm_bindgen(js_name = mapToJson)]
    pub fn map_to_json(&self, name: &str) -> String {
        let map = self.map(name);
        let txn = self.doc.transact();
        stringify(&map.to_json(&txn))
    }

    /// List `name`'s length.
    #[wasm_bindgen(js_name = listLength)]
    pub fn list_length(&self, name: &str) -> u32 {
        let list = self.list(name);
        let len = list.len(&self.doc.transact());
        len
    }

    /// The item at `index` of list `name`, as JSON, or `undefined`.
    #[wasm_bindgen(js_name = listGet)]
    pub fn list_get(&self, name: &str, index: u32) -> Option<String> {
        let list = self.list(name);
        let txn = self.doc.transact();
        list.get(&txn, index).map(|v| stringify(&v.to_json(&txn)))
    }

    /// Inserts JSON values (a JSON array of items) at `index` of list `name`.
    #[wasm_bindgen(js_name = listInsert)]
    pub fn list_insert(&self, name: &str, index: u32, items: &str) -> Result<(), JsValue> {
        let Any::Array(items) = parse(items)? else {
            return Err(invalid("items must be a JSON array"));
        };
        let list = self.list(name);
        let mut txn = self.doc.transact_mut();
        let len = list.len(&txn);
        if index > len {
            return Err(out_of_range(index, len));
        }
        list.insert_range(&mut txn, index, items.iter().cloned());
        Ok(())
    }

    /// Appends JSON values (a JSON array of items) to list `name`.
    #[wasm_bindgen(js_name = listPush)]
    pub fn list_push(&self, name: &str, items: &str) -> Result<(), JsValue> {
        let Any::Array(items) = parse(items)? else {
            return Err(invalid("items must be a JSON array"));
        };
        let list = self.list(name);
        let mut txn = self.doc.transact_mut();
        let len = list.len(&txn);
        list.insert_range(&mut txn, len, items.iter().cloned());
        Ok(())
    }

    /// Removes `count` items from `index` of list `name`.
    #[wasm_bindgen(js_name = listDelete)]
    pub fn list_delete(&self, name: &str, index: u32, count: u32) -> Result<(), JsValue> {
        let list = self.list(name);
        let mut txn = self.doc.transact_mut();
        let len = list.len(&txn);
        if index.checked_add(count).is_none_or(|end| end > len) {
            return Err(out_of_range(index.saturating_add(count), len));
        }
        list.remove_range(&mut txn, index, count);
        Ok(())
    }

    /// List `name` as a JSON array.
    #[wasm_bindgen(js_name = listToJson)]
    pub fn list_to_json(&self, name: &str) -> String {
        let list = self.list(name);
        let txn = self.doc.transact();
        stringify(&list.to_json(&txn))
    }

    /// Text `name`'s content.
    #[wasm_bindgen(js_name = textToString)]
    pub fn text_to_string(&self, name: &str) -> String {
        let text = self.text(name);
        let txn = self.doc.transact();
        text.get_string(&txn)
    }

    /// Text `name`'s length in UTF-16 code units.
    #[wasm_bindgen(js_name = textLength)]
    pub fn text_length(&self, name: &str) -> u32 {
        let text = self.text(name);
        let len = text.len(&self.doc.transact());
        len
    }

    /// Inserts `chunk` at `index` of text `name`.
    #[wasm_bindgen(js_name = textInsert)]
    pub fn text_insert(&self, name: &str, index: u32, chunk: &str) -> Result<(), JsValue> {
        let text = self.text(name);
        let mut txn = self.doc.transact_mut();
        let len = text.len(&txn);
        if index > len {
            return Err(out_of_range(index, len));
        }
        text.insert(&mut txn, index, chunk);
        Ok(())
    }

    /// Removes `count` code units from `index` of text `name`.
    #[wasm_bindgen(js_name = textDelete)]
    pub fn text_delete(&self, name: &str, index: u32, count: u32) -> Result<(), JsValue> {
        let text = self.text(name);
        let mut txn = self.doc.transact_mut();
        let len = text.len(&txn);
        if index.checked_add(count).is_none_or(|end| end > len) {
            return Err(out_of_range(index.saturating_add(count), len));
        }
        text.remove_range(&mut txn, index, count);
        Ok(())
    }

    /// Watches root type `name` of `kind` (`map`, `list`, `text`), deeply; returns the
    /// subscription id that `type` notifications carry.
    pub fn observe(&self, kind: &str, name: &str) -> Result<u32, JsValue> {
        let kind = Kind::parse(kind)?;
        let mut d = self.driver.borrow_mut();
        let id = d.next_sub;
        d.next_sub += 1;
        let dirty = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dirty);
        let room = self.id;
        let on_change = move |_: &yrs::TransactionMut, _: &yrs::types::Events| {
            flag.store(true, Ordering::Relaxed);
            platform::schedule(room);
        };
        let key = sub_key(room, id);
        match kind {
            Kind::Map => self.map(name).observe_deep(key, on_change),
            Kind::List => self.list(name).observe_deep(key, on_change),
            Kind::Text => self.text(name).observe_deep(key, on_change),
        }
        d.subs.insert(
            id,
            crate::storage::TypeSub {
                kind,
                name: name.to_owned(),
                dirty,
            },
        );
        Ok(id)
    }

    /// Ends subscription `id`.
    pub fn unobserve(&self, id: u32) {
        let sub = self.driver.borrow_mut().subs.remove(&id);
        if let Some(sub) = sub {
            sub.unobserve(&self.doc, self.id, id);
        }
    }
}
