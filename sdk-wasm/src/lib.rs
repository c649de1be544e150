//! Tandem's browser SDK (wasm-bindgen).
//!
//! Only the first piece exists so far (the full client is tracked by the "WASM SDK on
//! npm" issue): the protocol's close-code policy, exported to JavaScript so a browser
//! app handling a `CloseEvent` from Tandem reacts the way the server intends. CI builds
//! this crate for `wasm32-unknown-unknown`.

use tandem_protocol::close::{retry_for, Retry};
use wasm_bindgen::prelude::wasm_bindgen;

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
