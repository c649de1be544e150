//! A read-only JSON view of a room's document, for the REST API: every root type by
//! name, `{"<root>": value}`.
//!
//! Yjs updates do not say what type a root is (a client decides that by calling
//! `getText`/`getMap`/…), and the room only ever applies updates, so in the room's
//! document every root is an undefined type. Its kind is inferred from its content:
//!
//! - live map entries: an object (a `Y.Map`);
//! - sequence items that are all text (strings, plus the embeds and formatting a rich
//!   text may hold): a string (a `Y.Text`, without its formatting);
//! - sequence items that are all XML elements or XML text: the XML as a string (a
//!   `Y.XmlFragment`, as y-prosemirror and tiptap store documents);
//! - other sequence items: an array (a `Y.Array`);
//! - nothing live at all: `null`. Deleted content no longer says what it was, so an
//!   emptied text, map or array cannot be told apart.
//!
//! Nested shared types carry their type, and render as the same kinds. Binary values
//! become arrays of byte values. Nesting is bounded (see [`MAX_DEPTH`]): a document can
//! nest shared types arbitrarily deep, and rendering, serializing and dropping JSON all
//! recurse. Deeper values render as `null` (and a warning is logged): only a hostile
//! document nests that deep, and a truncated view of it is more use than none.

use serde_json::{Map, Number, Value};
use yrs::branch::BranchPtr;
use yrs::types::text::Diff;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, Map as _, MapRef, Out, ReadTxn, Text, TextRef, Transact,
    XmlFragmentRef,
};

/// Deepest nesting rendered, counting the object of roots as the first level and shared
/// types and the values inside them alike: at most 127 nested objects and arrays, which
/// is what serde_json (and so most Rust clients) will parse back.
pub(crate) const MAX_DEPTH: usize = 127;

/// Every root type of `doc` as JSON.
pub(crate) fn doc_to_json(doc: &Doc) -> Value {
    let txn = doc.transact();
    let mut walk = Walk {
        txn: &txn,
        truncated: false,
    };
    let mut roots = Map::new();
    for (name, root) in txn.root_refs() {
        roots.insert(name.to_owned(), walk.out(root, 2));
    }
    if walk.truncated {
        tracing::warn!(MAX_DEPTH, "document nests deeper than the JSON view shows");
    }
    Value::Object(roots)
}

struct Walk<'t, T> {
    txn: &'t T,
    /// Whether something past [`MAX_DEPTH`] was left out.
    truncated: bool,
}

impl<T: ReadTxn> Walk<'_, T> {
    /// Whether `depth` is too deep to render (noting that something was left out).
    fn too_deep(&mut self, depth: usize) -> bool {
        self.truncated |= depth > MAX_DEPTH;
        depth > MAX_DEPTH
    }

    fn out(&mut self, value: Out, depth: usize) -> Value {
        if self.too_deep(depth) {
            return Value::Null;
        }
        let txn = self.txn;
        match value {
            Out::Any(any) => self.any(&any, depth),
            Out::YText(text) => Value::String(text.get_string(txn)),
            Out::YArray(array) => self.array(&array, depth),
            Out::YMap(map) => self.map(&map, depth),
            Out::YXmlElement(xml) => Value::String(xml.get_string(txn)),
            Out::YXmlFragment(xml) => Value::String(xml.get_string(txn)),
            Out::YXmlText(xml) => Value::String(xml.get_string(txn)),
            // Sub-documents are refused by update validation; render what yrs would.
            Out::YDoc(doc) => serde_json::json!({ "guid": doc.guid().to_string() }),
            Out::UndefinedRef(branch) => self.inferred(branch, depth),
        }
    }

    /// A type whose kind was never declared (a root): inferred from its content.
    fn inferred(&mut self, branch: BranchPtr, depth: usize) -> Value {
        let txn = self.txn;
        let map = MapRef::from(branch);
        if map.len(txn) > 0 {
            return self.map(&map, depth);
        }
        // Live sequence length, in Yjs clock units (UTF-16 code units for text).
        let len = branch.len() as usize;
        if len == 0 {
            return Value::Null;
        }
        let text = TextRef::from(branch);
        let string = text.get_string(txn);
        if !string.is_empty() {
            // Text when strings and embeds account for the whole sequence (array
            // elements are never string content, so a sequence mixing both is an array).
            let embeds = text
                .diff(txn, |_| ())
                .iter()
                .filter(|d: &&Diff<()>| !matches!(d.insert, Out::Any(Any::String(_))))
                .count();
            if string.encode_utf16().count() + embeds == len {
                return Value::String(string);
            }
        }
        let array = ArrayRef::from(branch);
        let xml = array
            .iter(txn)
            .all(|item| matches!(item, Out::YXmlElement(_) | Out::YXmlText(_)));
        if xml {
            return Value::String(XmlFragmentRef::from(branch).get_string(txn));
        }
        self.array(&array, depth)
    }

    fn array(&mut self, array: &ArrayRef, depth: usize) -> Value {
        let items: Vec<Out> = array.iter(self.txn).collect();
        Value::Array(
            items
                .into_iter()
                .map(|item| self.out(item, depth + 1))
                .collect(),
        )
    }

    fn map(&mut self, map: &MapRef, depth: usize) -> Value {
        let entries: Vec<(String, Out)> = map
            .iter(self.txn)
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        let mut object = Map::new();
        for (key, value) in entries {
            object.insert(key, self.out(value, depth + 1));
        }
        Value::Object(object)
    }

    fn any(&mut self, any: &Any, depth: usize) -> Value {
        if self.too_deep(depth) {
            return Value::Null;
        }
        match any {
            Any::Null | Any::Undefined => Value::Null,
            Any::Bool(b) => Value::Bool(*b),
            Any::Number(yrs::Number::Int(i)) => Value::Number((*i).into()),
            // JSON has no NaN or infinities (JSON.stringify writes null too).
            Any::Number(yrs::Number::Float(f)) => {
                Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            Any::String(s) => Value::String(s.to_string()),
            Any::Buffer(bytes) => Value::Array(bytes.iter().map(|b| Value::from(*b)).collect()),
            Any::Array(items) => {
                Value::Array(items.iter().map(|item| self.any(item, depth + 1)).collect())
            }
            Any::Map(fields) => {
                let mut object = Map::new();
                for (key, value) in fields.iter() {
                    object.insert(key.clone(), self.any(value, depth + 1));
                }
                Value::Object(object)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use yrs::updates::decoder::Decode;
    use yrs::{ArrayPrelim, MapPrelim, StateVector, TextPrelim, Update, WriteTxn, XmlFragment};

    /// What the room holds: a fresh document that only ever applied `source`'s updates,
    /// so none of its roots has a declared type.
    fn as_the_room_sees_it(source: &Doc) -> Doc {
        let update = source
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        doc
    }

    #[test]
    fn roots_are_inferred_and_nested_types_rendered() {
        let source = Doc::new();
        {
            let mut txn = source.transact_mut();
            let map = txn.get_or_insert_map("meta");
            map.insert(&mut txn, "title", "Hello");
            map.insert(&mut txn, "version", 3);
            map.insert(&mut txn, "ratio", 0.5);
            map.insert(&mut txn, "bytes", vec![1u8, 2]);
            let tags = map.insert(&mut txn, "tags", ArrayPrelim::from(["a", "b"]));
            tags.push_back(&mut txn, true);
            let nested = map.insert(&mut txn, "nested", MapPrelim::default());
            nested.insert(&mut txn, "note", TextPrelim::new("inner"));

            let text = txn.get_or_insert_text("body");
            text.insert(&mut txn, 0, "héllo 👋 world");
            text.format(&mut txn, 0, 5, [("bold".into(), true.into())].into());

            let list = txn.get_or_insert_array("items");
            list.push_back(&mut txn, 1);
            list.push_back(&mut txn, "two");
            list.push_back(&mut txn, MapPrelim::from([("three", 3)]));

            let emptied = txn.get_or_insert_text("emptied");
            emptied.insert(&mut txn, 0, "gone");
            emptied.remove_range(&mut txn, 0, 4);
        }
        let json = doc_to_json(&as_the_room_sees_it(&source));
        assert_eq!(
            json,
            json!({
                "meta": {
                    "title": "Hello",
                    "version": 3,
                    "ratio": 0.5,
                    "bytes": [1, 2],
                    "tags": ["a", "b", true],
                    "nested": {"note": "inner"},
                },
                "body": "héllo 👋 world",
                "items": [1, "two", {"three": 3}],
                "emptied": null,
            })
        );
    }

    #[test]
    fn an_xml_fragment_renders_as_its_xml() {
        let source = Doc::new();
        {
            let mut txn = source.transact_mut();
            let fragment = txn.get_or_insert_xml_fragment("prosemirror");
            let paragraph = fragment.insert(&mut txn, 0, yrs::XmlElementPrelim::empty("paragraph"));
            paragraph.insert(&mut txn, 0, yrs::XmlTextPrelim::new("hi"));
        }
        let json = doc_to_json(&as_the_room_sees_it(&source));
        assert_eq!(json, json!({"prosemirror": "<paragraph>hi</paragraph>"}));
    }

    #[test]
    fn nesting_past_the_limit_is_cut_off() {
        let source = Doc::new();
        {
            let mut txn = source.transact_mut();
            let mut map = txn.get_or_insert_map("deep");
            for _ in 0..MAX_DEPTH + 10 {
                map = map.insert(&mut txn, "m", MapPrelim::default());
            }
        }
        let json = doc_to_json(&as_the_room_sees_it(&source));
        let (mut value, mut level) = (&json["deep"], 2);
        while let Some(inner) = value.get("m") {
            value = inner;
            level += 1;
        }
        assert_eq!(level, MAX_DEPTH + 1, "the level past the limit is null");
        assert_eq!(*value, Value::Null);
        // What is left is still readable by a JSON parser with the usual depth limit.
        let text = json.to_string();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
