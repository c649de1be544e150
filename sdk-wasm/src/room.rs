//! The browser transport around the sans-IO session: the same loop as the Rust SDK's
//! tokio driver (`sdk-rust/src/transport`), made event-driven on JavaScript's single
//! thread. Every input (socket opened, frame, close, timer, app call, microtask after a
//! local change) updates the session and then runs [`pump`]: it drains `poll_output()`
//! (`Connect` → ask the token provider when there is no token or a fresh one is needed,
//! then open a `WebSocket`; `Send` → send a binary frame; `Close` → close and forget the
//! socket; `Event` → hand to the app), arms one `setTimeout` for `next_deadline()`, and
//! only then — with no borrow held — calls the app's listener, so a listener may call
//! back into the room.
//!
//! Failures to open (including a token provider that throws or rejects) and sockets
//! lost without a close frame are reported to the session as 1006 and to the app as a
//! non-fatal `connection` / `token` error; the token is kept when only the socket
//! failed, so a flaky network does not hammer the provider. Each connection attempt has
//! a generation number: late callbacks of an abandoned attempt or socket are ignored.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use js_sys::{Function, Promise, Uint8Array};
use serde_json::Value;
use tandem_protocol::client::{ClientSession, Event, Output, SessionConfig, Status};
use wasm_bindgen::prelude::{wasm_bindgen, Closure};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, WebSocket};
use yrs::{Doc, OffsetKind, Options};

use crate::error::{call_error, invalid, js_error, session_error};
use crate::platform::{self, clear_timeout, set_timeout};
use crate::storage::TypeSub;

/// Close code reported to the session when a socket failed without a close frame.
const ABNORMAL: u16 = 1006;

pub(crate) type DriverCell = RefCell<Driver>;

/// One open (or opening) WebSocket and the handlers that must outlive it.
struct Socket {
    ws: WebSocket,
    generation: u64,
    open: bool,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Socket {
    /// Unhooks the handlers (so the closures can be dropped) and closes the socket.
    fn shut(self, code: u16, reason: &str) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

/// The room's loop state (the session and everything around it).
pub(crate) struct Driver {
    id: u32,
    me: Weak<DriverCell>,
    session: ClientSession,
    /// `ws://host[/prefix]/v1/connect/` — the room name and token are appended.
    connect_url: String,
    room: String,
    get_token: Option<Function>,
    /// The token in hand; dropped when the session asks for a fresh one.
    token: Option<String>,
    socket: Option<Socket>,
    /// Bumped on every connection attempt and every socket dropped.
    generation: u64,
    /// The deadline the armed timer fires at, and its handle.
    timer: Option<(u64, JsValue)>,
    timer_fn: Option<Closure<dyn FnMut()>>,
    listener: Function,
    epoch_ms: f64,
    pub(crate) subs: HashMap<u32, TypeSub>,
    pub(crate) next_sub: u32,
    storage_dirty: Arc<AtomicBool>,
    storage_key: String,
    left: bool,
}

type Dispatch = Vec<(&'static str, JsValue)>;

impl Driver {
    fn now(&self) -> u64 {
        // `Date.now()` can step backwards; the session only needs a clock that does
        // not jump far, and saturating at the epoch keeps it non-negative.
        let elapsed = platform::wall_ms() - self.epoch_ms;
        if elapsed > 0.0 {
            elapsed as u64
        } else {
            0
        }
    }

    /// Carries out everything the session has queued; returns what the app must hear.
    fn drain(&mut self, out: &mut Dispatch) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Connect { refresh_token } => self.open(refresh_token),
                Output::Send(frame) => self.send(&frame),
                Output::Close { code, reason } => self.drop_socket(code, &reason),
                // This (no longer shipped) transport does not opt in to the session
                // extension, so the session never asks.
                Output::RefreshToken => {}
                Output::Event(event) => Self::on_event(event, out),
            }
        }
        for (id, sub) in &self.subs {
            if sub.dirty.swap(false, Ordering::Relaxed) {
                out.push(("type", JsValue::from(*id)));
            }
        }
        if self.storage_dirty.swap(false, Ordering::Relaxed) {
            out.push(("storage", JsValue::UNDEFINED));
        }
    }

    fn on_event(event: Event, out: &mut Dispatch) {
        match event {
            Event::StatusChanged(status) => out.push(("status", status_name(&status).into())),
            Event::OthersChanged(others) => out.push(("others", others_json(&others).into())),
            Event::DocumentChanged => {}
            Event::Custom(event) => out.push(("event", event.to_json().into())),
            Event::Error(error) => out.push(("error", session_error(&error))),
        }
    }

    fn open(&mut self, refresh_token: bool) {
        if refresh_token {
            self.token = None;
        }
        self.drop_socket(1000, "reconnecting");
        self.generation += 1;
        let generation = self.generation;
        let token = self.token.clone();
        let provider = self.get_token.clone();
        let room = self.room.clone();
        let me = self.me.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let token = match (token, provider) {
                (Some(token), _) => Ok(Some(token)),
                (None, Some(provider)) => ask_provider(&provider, &room).await.map(Some),
                (None, None) => Ok(None),
            };
            let Some(cell) = me.upgrade() else { return };
            let mut out = Vec::new();
            {
                let mut driver = cell.borrow_mut();
                if driver.generation != generation || driver.left {
                    return; // abandoned while the provider was busy
                }
                let now = driver.now();
                match token {
                    Ok(token) => {
                        driver.token.clone_from(&token);
                        if let Err(detail) = driver.start_socket(generation, token.as_deref()) {
                            out.push(("error", js_error("connection", &detail)));
                            driver.session.on_close(now, ABNORMAL, &detail);
                        }
                    }
                    Err(error) => {
                        out.push(("error", error));
                        driver
                            .session
                            .on_close(now, ABNORMAL, "the token provider failed");
                    }
                }
            }
            dispatch(&cell, out);
            pump(&cell);
        });
    }

    fn start_socket(&mut self, generation: u64, token: Option<&str>) -> Result<(), String> {
        let mut url = format!(
            "{}{}",
            self.connect_url,
            String::from(js_sys::encode_uri_component(&self.room))
        );
        if let Some(token) = token {
            url.push_str("?token=");
            url.push_str(&String::from(js_sys::encode_uri_component(token)));
        }
        let ws = WebSocket::new(&url).map_err(|e| describe(&e))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let handler = |f: fn(&mut Driver, u64, JsValue, &mut Dispatch)| {
            let me = self.me.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let Some(cell) = me.upgrade() else { return };
                let mut out = Vec::new();
                {
                    let Ok(mut driver) = cell.try_borrow_mut() else {
                        return;
                    };
                    let current = driver.socket.as_ref().map(|s| s.generation);
                    if current != Some(generation) {
                        return;
                    }
                    let now = driver.now();
                    f(&mut driver, now, event, &mut out);
                }
                dispatch(&cell, out);
                pump(&cell);
            })
        };
        let on_open = handler(|d, now, _, _| {
            if let Some(socket) = d.socket.as_mut() {
                socket.open = true;
            }
            d.session.on_open(now);
        });
        let on_message = handler(|d, now, event, _| {
            // Events from the `ws` polyfill are not `MessageEvent` instances: read the
            // field structurally.
            let data = js_sys::Reflect::get(&event, &"data".into()).unwrap_or_default();
            if let Some(buffer) = data.dyn_ref::<js_sys::ArrayBuffer>() {
                d.session.on_frame(now, &Uint8Array::new(buffer).to_vec());
            }
        });
        let on_close = handler(|d, now, event, out| {
            let event: &web_sys::CloseEvent = event.unchecked_ref();
            let (code, reason) = (event.code(), event.reason());
            d.forget_socket();
            if code == ABNORMAL {
                out.push(("error", js_error("connection", "connection lost")));
            }
            d.session.on_close(now, code, &reason);
        });
        let on_error = handler(|d, now, _, out| {
            let was_open = d.socket.as_ref().is_some_and(|s| s.open);
            d.drop_socket(1000, "error");
            let detail = if was_open {
                "connection lost"
            } else {
                "could not connect"
            };
            out.push(("error", js_error("connection", detail)));
            d.session.on_close(now, ABNORMAL, detail);
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        self.socket = Some(Socket {
            ws,
            generation,
            open: false,
            _handlers: vec![on_open, on_message, on_close, on_error],
        });
        Ok(())
    }

    fn send(&mut self, frame: &[u8]) {
        let Some(socket) = self.socket.as_ref().filter(|s| s.open) else {
            return;
        };
        // A JS-owned copy: a view on wasm memory could change under a socket that
        // queues the buffer instead of copying it (Node's `ws` does).
        let copy = Uint8Array::from(frame);
        if socket.ws.send_with_array_buffer_view(&copy).is_err() {
            self.drop_socket(1000, "send failed");
            let now = self.now();
            self.session.on_close(now, ABNORMAL, "send failed");
        }
    }

    /// Closes the socket (or abandons the attempt) and reports nothing more about it.
    fn drop_socket(&mut self, code: u16, reason: &str) {
        self.generation += 1;
        if let Some(socket) = self.socket.take() {
            socket.shut(code, reason);
        }
    }

    /// The socket closed by itself: unhook it without closing it again.
    fn forget_socket(&mut self) {
        self.generation += 1;
        if let Some(socket) = self.socket.take() {
            socket.ws.set_onopen(None);
            socket.ws.set_onmessage(None);
            socket.ws.set_onclose(None);
            socket.ws.set_onerror(None);
        }
    }

    /// Arms the timer for `next_deadline()`. A later deadline keeps the armed timer
    /// (ticking early is harmless and it re-arms), so a busy connection does not
    /// reset a timeout on every frame.
    fn arm_timer(&mut self) {
        let Some(at) = self.session.next_deadline().filter(|_| !self.left) else {
            return;
        };
        if let Some((armed, _)) = &self.timer {
            if *armed <= at {
                return;
            }
        }
        if let Some((_, handle)) = self.timer.take() {
            clear_timeout(&handle);
        }
        let Some(timer_fn) = &self.timer_fn else {
            return;
        };
        let delay = at.saturating_sub(self.now()) as f64;
        let handle = set_timeout(timer_fn.as_ref().unchecked_ref(), delay);
        self.timer = Some((at, handle));
    }

    fn stop_timer(&mut self) {
        if let Some((_, handle)) = self.timer.take() {
            clear_timeout(&handle);
        }
    }
}

/// Runs the loop once: drain outputs, arm the timer, then tell the app.
pub(crate) fn pump(cell: &Rc<DriverCell>) {
    let mut out = Vec::new();
    {
        let Ok(mut driver) = cell.try_borrow_mut() else {
            // Re-entered from inside the loop: the running pass drains everything.
            return;
        };
        driver.drain(&mut out);
        driver.arm_timer();
    }
    dispatch(cell, out);
}

fn dispatch(cell: &Rc<DriverCell>, out: Dispatch) {
    if out.is_empty() {
        return;
    }
    let listener = cell.borrow().listener.clone();
    for (kind, payload) in out {
        // A throwing listener must not stop the others (nor the room).
        let _ = listener.call2(&JsValue::NULL, &kind.into(), &payload);
    }
}

async fn ask_provider(provider: &Function, room: &str) -> Result<String, JsValue> {
    let fail = |detail: String| js_error("token", &format!("getToken failed: {detail}"));
    let result = provider
        .call1(&JsValue::NULL, &room.into())
        .map_err(|e| fail(describe(&e)))?;
    let value = JsFuture::from(Promise::resolve(&result))
        .await
        .map_err(|e| fail(describe(&e)))?;
    value
        .as_string()
        .ok_or_else(|| fail("it must resolve to a string".to_owned()))
}

fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Initial => "initial",
        Status::Connecting => "connecting",
        Status::Connected => "connected",
        Status::Synced => "synced",
        Status::Reconnecting { .. } => "reconnecting",
        Status::Disconnected { .. } => "disconnected",
    }
}

fn others_json(others: &[tandem_protocol::client::Other]) -> String {
    let list: Vec<Value> = others
        .iter()
        .map(|o| {
            serde_json::json!({
                "clientId": o.client_id,
                "presence": o.presence,
                "user": o.user,
            })
        })
        .collect();
    Value::Array(list).to_string()
}

/// Turns `http(s)://host[/prefix]` or `ws(s)://host[/prefix]` into the connect URL prefix.
fn connect_url(base: &str) -> Result<String, JsValue> {
    let base = base.trim().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let (scheme, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        ("wss://", &base[base.len() - rest.len()..])
    } else if let Some(rest) = lower.strip_prefix("http://") {
        ("ws://", &base[base.len() - rest.len()..])
    } else if let Some(rest) = lower.strip_prefix("wss://") {
        ("wss://", &base[base.len() - rest.len()..])
    } else if let Some(rest) = lower.strip_prefix("ws://") {
        ("ws://", &base[base.len() - rest.len()..])
    } else {
        return Err(invalid(
            "baseUrl must start with http://, https://, ws:// or wss://",
        ));
    };
    let rest = rest.strip_suffix("/v1/connect").unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid("baseUrl has no host"));
    }
    Ok(format!("{scheme}{rest}/v1/connect/"))
}

/// One room: its session, socket, timers and document. The npm package's `Room` wraps
/// it; apps use that instead.
#[wasm_bindgen]
pub struct RoomCore {
    pub(crate) driver: Rc<DriverCell>,
    pub(crate) doc: Doc,
    pub(crate) id: u32,
}

impl Drop for RoomCore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[wasm_bindgen]
impl RoomCore {
    /// Enters `room` on the server at `base_url` and starts connecting. `get_token`
    /// (optional) is `(room) => string | Promise<string>`; `listener` is called as
    /// `(kind, payload)` with kind `status` (a name), `others` (JSON), `event` (JSON
    /// envelope), `error` (a `TandemError`), `storage` or `type` (a subscription id).
    #[wasm_bindgen(constructor)]
    pub fn new(
        base_url: &str,
        room: &str,
        get_token: Option<Function>,
        initial_presence: Option<String>,
        listener: Function,
    ) -> Result<RoomCore, JsValue> {
        if room.is_empty() || room.len() > 256 || room.chars().any(char::is_control) {
            return Err(invalid(
                "room names are 1 to 256 bytes without control characters",
            ));
        }
        let connect_url = connect_url(base_url)?;
        let doc = Doc::with_options(Options {
            // JavaScript (and Yjs) index strings in UTF-16 code units.
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        let config = SessionConfig {
            jitter_seed: (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64,
            ..SessionConfig::default()
        };
        let mut session = ClientSession::new(doc.clone(), config).map_err(call_error)?;
        let epoch_ms = platform::wall_ms();
        if let Some(json) = initial_presence {
            let presence: Value =
                serde_json::from_str(&json).map_err(|_| invalid("presence must be JSON"))?;
            session.set_presence(0, presence).map_err(call_error)?;
        }
        let storage_dirty = Arc::new(AtomicBool::new(false));
        let driver = Rc::new_cyclic(|me: &Weak<DriverCell>| {
            RefCell::new(Driver {
                id: 0,
                me: me.clone(),
                session,
                connect_url,
                room: room.to_owned(),
                get_token,
                token: None,
                socket: None,
                generation: 0,
                timer: None,
                timer_fn: None,
                listener,
                epoch_ms,
                subs: HashMap::new(),
                next_sub: 1,
                storage_dirty: Arc::clone(&storage_dirty),
                storage_key: String::new(),
                left: false,
            })
        });
        let id = platform::register(Rc::downgrade(&driver));
        let storage_key = format!("tandem-wasm-storage-{id}");
        {
            let weak = Rc::downgrade(&driver);
            let mut d = driver.borrow_mut();
            d.id = id;
            d.timer_fn = Some(Closure::new(move || {
                let Some(cell) = weak.upgrade() else { return };
                if let Ok(mut driver) = cell.try_borrow_mut() {
                    driver.timer = None;
                    let now = driver.now();
                    driver.session.tick(now);
                }
                pump(&cell);
            }));
            d.session
                .set_change_notifier(Some(Arc::new(move || platform::schedule(id))));
            let dirty = Arc::clone(&storage_dirty);
            // Any committed change, local or remote, is a `storage` event (delivered in
            // a microtask, never inside the commit).
            doc.observe_update_v1(storage_key.as_str(), move |_, _| {
                dirty.store(true, Ordering::Relaxed);
                platform::schedule(id);
            })
            .map_err(|_| invalid("the document is busy"))?;
            d.storage_key = storage_key;
            let now = d.now();
            d.session.connect(now);
        }
        pump(&driver);
        Ok(RoomCore { driver, doc, id })
    }

    /// The status: `initial`, `connecting`, `connected`, `synced`, `reconnecting` or
    /// `disconnected`.
    pub fn status(&self) -> String {
        status_name(self.driver.borrow().session.status()).to_owned()
    }

    /// This client's Yjs client id (also its presence id).
    #[wasm_bindgen(js_name = clientId)]
    pub fn client_id(&self) -> f64 {
        self.driver.borrow().session.client_id() as f64
    }

    /// The others as JSON: `[{clientId, presence, user}]`.
    pub fn others(&self) -> String {
        others_json(&self.driver.borrow().session.others())
    }

    /// The local presence as JSON (`null` while hidden).
    pub fn presence(&self) -> String {
        match self.driver.borrow().session.presence() {
            Some(map) => Value::Object(map.clone()).to_string(),
            None => "null".to_owned(),
        }
    }

    /// Merges a JSON object into the local presence.
    #[wasm_bindgen(js_name = updatePresence)]
    pub fn update_presence(&self, patch: &str) -> Result<(), JsValue> {
        let patch: Value =
            serde_json::from_str(patch).map_err(|_| invalid("presence must be JSON"))?;
        {
            let mut d = self.driver.borrow_mut();
            let now = d.now();
            d.session.update_presence(now, patch).map_err(call_error)?;
        }
        pump(&self.driver);
        Ok(())
    }

    /// Sends a custom event (JSON) to the room's other connections. Throws
    /// `not_connected` while offline (events are not queued).
    #[wasm_bindgen(js_name = broadcastEvent)]
    pub fn broadcast_event(&self, event: &str) -> Result<(), JsValue> {
        let event: Value =
            serde_json::from_str(event).map_err(|_| invalid("event must be JSON"))?;
        self.driver
            .borrow_mut()
            .session
            .broadcast(&event)
            .map_err(call_error)?;
        pump(&self.driver);
        Ok(())
    }

    /// Connects now: skips the reconnect wait, or starts again after a fatal error.
    pub fn reconnect(&self) {
        {
            let mut d = self.driver.borrow_mut();
            let now = d.now();
            d.session.connect(now);
        }
        pump(&self.driver);
    }

    /// Leaves the room: pending changes are sent, presence withdrawn, socket closed.
    pub fn leave(&self) {
        self.shutdown();
    }
}

impl RoomCore {
    fn shutdown(&self) {
        let out = {
            let Ok(mut d) = self.driver.try_borrow_mut() else {
                return;
            };
            if d.left {
                return;
            }
            let now = d.now();
            d.session.leave(now);
            let mut out = Vec::new();
            d.drain(&mut out);
            d.left = true;
            d.stop_timer();
            d.session.set_change_notifier(None);
            let _ = self.doc.unobserve_update_v1(d.storage_key.as_str());
            for (id, sub) in std::mem::take(&mut d.subs) {
                sub.unobserve(&self.doc, self.id, id);
            }
            if let Some(socket) = d.socket.take() {
                socket.shut(1000, "leaving the room");
            }
            out
        };
        platform::unregister(self.id);
        dispatch(&self.driver, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_urls_from_http_and_ws_bases() {
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "ws://127.0.0.1:8080",
            "WS://127.0.0.1:8080/v1/connect",
        ] {
            assert_eq!(
                connect_url(base).ok().as_deref(),
                Some("ws://127.0.0.1:8080/v1/connect/"),
                "{base}"
            );
        }
        assert_eq!(
            connect_url("https://t.example/api").ok().as_deref(),
            Some("wss://t.example/api/v1/connect/")
        );
    }
}
