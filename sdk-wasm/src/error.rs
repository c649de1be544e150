//! Errors as JavaScript sees them: instances of the package's `TandemError` class (an
//! `Error` subclass with a stable `code`), registered once by the JS wrapper through
//! [`set_error_class`]. Before that (or if the class cannot be constructed) a plain
//! `Error` with `name = "TandemError"` and the same `code` is used.

use std::cell::RefCell;

use js_sys::{Array, Function, Reflect};
use tandem_protocol::client::{CallError, SessionError};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

thread_local! {
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Registers the constructor used for every error this module throws or emits:
/// `new ErrorClass(message, code)`.
#[wasm_bindgen(js_name = setErrorClass)]
pub fn set_error_class(class: Function) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(class));
}

/// A `TandemError` with `code` and `message`.
pub fn js_error(code: &str, message: &str) -> JsValue {
    let class = ERROR_CLASS.with(|c| c.borrow().clone());
    if let Some(class) = class {
        let args = Array::of2(&message.into(), &code.into());
        if let Ok(error) = Reflect::construct(&class, &args) {
            return error;
        }
    }
    let error = js_sys::Error::new(message);
    error.set_name("TandemError");
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// The error for something the server or the connection did to a room.
pub fn session_error(error: &SessionError) -> JsValue {
    js_error(error.code(), &error.to_string())
}

/// The error for a call the session refused.
pub fn call_error(error: CallError) -> JsValue {
    let code = match error {
        CallError::NotConnected => "not_connected",
        CallError::PresenceNotAnObject => "invalid_presence",
        CallError::DocumentBusy => "document_busy",
    };
    js_error(code, &error.to_string())
}

/// The error for an argument the JS wrapper should not have passed.
pub fn invalid(message: &str) -> JsValue {
    js_error("invalid_argument", message)
}
