//! Tandem's wire protocol, shared by the server and both SDKs: a bounded codec for the
//! y-websocket envelope ([`message`]), Yjs awareness ([`awareness`]), the lib0 primitives
//! under them ([`lib0`]), the WebSocket close codes ([`close`]), the custom event
//! envelope ([`event`]), the JSON of the session extension ([`session`]), bounds on the JSON peers relay to each other ([`json`]) and the
//! sans-IO client session both SDKs drive ([`client`]).
//!
//! Nothing here does I/O or reads a clock: callers pass frames and `now` in.

pub mod awareness;
pub mod client;
pub mod close;
pub mod event;
pub mod json;
pub mod lib0;
pub mod message;
pub mod session;

pub use message::Message;

/// Why a frame could not be decoded. Every variant is the peer's fault: the connection
/// that sent it is closed with [`close::MALFORMED`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ended inside a value.
    #[error("message truncated")]
    Truncated,
    /// A varuint ran past 64 bits.
    #[error("variable-length integer overflows 64 bits")]
    VarintOverflow,
    /// A length prefix claims more bytes than the frame holds.
    #[error("length prefix claims {claimed} bytes but only {remaining} remain")]
    LengthTooLarge {
        /// What the prefix claimed.
        claimed: u64,
        /// What was actually left.
        remaining: usize,
    },
    /// Bytes left over after a complete message.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A top-level message type this protocol does not define.
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    /// A sync sub-type other than step 1, step 2 or update.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// An auth sub-type other than permission denied.
    #[error("unknown auth message type {0}")]
    UnknownAuthType(u64),
    /// A Tandem session sub-type other than hello, refresh, refreshed or saved.
    #[error("unknown session message type {0}")]
    UnknownSessionType(u64),
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// Text that should be JSON (an awareness state, an event) is not one complete
    /// JSON document.
    #[error("not valid JSON")]
    NotJson,
    /// JSON nested deeper than [`json::MAX_DEPTH`] arrays and objects.
    #[error("JSON nested more than {max} levels deep")]
    JsonTooDeep {
        /// The bound.
        max: usize,
    },
    /// JSON text larger than allowed.
    #[error("JSON of {len} bytes is larger than the {max}-byte limit")]
    JsonTooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// An awareness client id or clock past what JavaScript clients can read
    /// ([`awareness::MAX_SAFE`]).
    #[error("awareness {what} {value} is out of range (at most {max})")]
    OutOfRange {
        /// `client id` or `clock`.
        what: &'static str,
        /// The value sent.
        value: u64,
        /// The bound.
        max: u64,
    },
}
