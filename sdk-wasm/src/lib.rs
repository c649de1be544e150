//! Tandem's browser SDK (wasm-bindgen): the protocol crate's sans-IO
//! [`ClientSession`](tandem_protocol::client::ClientSession) driven by the platform's
//! `WebSocket`, `setTimeout` and `queueMicrotask`, with the room's yrs document living
//! in Rust. The npm package (`@tandem/client`, assembled by `scripts/build-wasm.sh` from
//! `sdk-wasm/npm/`) wraps these low-level exports in the app-facing API
//! (`createClient`, `enterRoom`, React hooks); apps never call them directly.
//!
//! - [`room`]: the transport loop ([`RoomCore`]) — the same behaviour as the Rust SDK's
//!   tokio driver, but event-driven on one thread.
//! - [`storage`]: maps, lists and texts of the room's document, as JSON across the
//!   boundary.
//! - [`error`]: errors thrown to JavaScript as `TandemError` (an `Error` subclass with a
//!   `code`).
//! - [`platform`]: the JS globals used (timers, microtasks, clock) and the room registry
//!   that change notifications go through.

pub mod error;
pub mod platform;
pub mod room;
pub mod storage;

use tandem_protocol::close::{retry_for, Retry};
use wasm_bindgen::prelude::wasm_bindgen;

pub use room::RoomCore;

/// What to do after the server closed a connection with `code`: `"backoff"`,
/// `"refresh-token"`, `"retry-after"` or `"never"`.
///
/// ```js
/// ws.onclose = (e) => { if (closeAction(e.code) === 'never') showError(e.reason) }
/// ```
#[wasm_bindgen(js_name = closeAction)]
pub fn close_action(code: u16) -> String {
    match retry_for(code) {
        Retry::Backoff => "backoff",
        Retry::RefreshToken => "refresh-token",
        Retry::After => "retry-after",
        Retry::Never => "never",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_reaction() {
        assert_eq!(close_action(4401), "refresh-token");
        assert_eq!(close_action(4413), "never");
        assert_eq!(close_action(4429), "retry-after");
        assert_eq!(close_action(1013), "backoff");
    }
}
