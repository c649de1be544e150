//! The JavaScript globals the transport uses — present in browsers, workers and Node 20
//! alike, so nothing here needs `window` — and the registry through which change
//! notifications reach a room.
//!
//! The session's change notifier and the document observers run inside a yrs commit,
//! with the document locked, and must be `Send + Sync`: they only call [`schedule`],
//! which queues one microtask per room; the microtask runs the room's loop
//! ([`crate::room`]) once the app's call has returned.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Weak;

use js_sys::Function;
use wasm_bindgen::prelude::{wasm_bindgen, Closure};
use wasm_bindgen::JsValue;

use crate::room::{self, DriverCell};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(handle: &JsValue);
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(task: &JsValue);
}

thread_local! {
    static ROOMS: RefCell<HashMap<u32, Weak<DriverCell>>> = RefCell::new(HashMap::new());
    static QUEUED: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
    static NEXT_ID: RefCell<u32> = const { RefCell::new(1) };
}

/// Registers a room's loop; the id is what notifiers capture.
pub(crate) fn register(driver: Weak<DriverCell>) -> u32 {
    let id = NEXT_ID.with(|n| {
        let mut n = n.borrow_mut();
        let id = *n;
        *n = n.wrapping_add(1).max(1);
        id
    });
    ROOMS.with(|rooms| rooms.borrow_mut().insert(id, driver));
    id
}

pub(crate) fn unregister(id: u32) {
    ROOMS.with(|rooms| rooms.borrow_mut().remove(&id));
}

/// Runs room `id`'s loop in a microtask (once, however often it is asked before then).
pub(crate) fn schedule(id: u32) {
    let first = QUEUED.with(|q| q.borrow_mut().insert(id));
    if first {
        queue_microtask(&Closure::once_into_js(move || run(id)));
    }
}

fn run(id: u32) {
    QUEUED.with(|q| q.borrow_mut().remove(&id));
    let driver = ROOMS.with(|rooms| rooms.borrow().get(&id).and_then(Weak::upgrade));
    if let Some(driver) = driver {
        room::pump(&driver);
    }
}

/// Milliseconds on the wall clock (`Date.now()`).
pub(crate) fn wall_ms() -> f64 {
    js_sys::Date::now()
}
