//! The SDK's one error type: what the server did to a room (mapped from the session's
//! [`SessionError`]), what a call refused, what the REST API answered to the
//! [admin client](crate::admin) ([`ApiError`], from the server's problem document), and
//! what went wrong on this side (URL, certificates, TLS, token provider, network).

use std::sync::Arc;
use std::time::Duration;

use tandem_protocol::client::{CallError, SessionError};

use crate::admin::Problem;

/// The error a token provider returns: any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the SDK.
///
/// Errors reach the app in two ways: as the `Err` of a call (`Client::builder(…).build()`,
/// [`Room::broadcast`](crate::Room::broadcast), [`SharedList::insert`](crate::SharedList::insert)…),
/// and as [`RoomEvent::Error`](crate::RoomEvent::Error) from a room's connection. The
/// connection's errors are either *fatal* ([`is_fatal`](Self::is_fatal): the room stopped
/// and is not retried, its status is [`Status::Disconnected`](crate::Status::Disconnected))
/// or informational (the room keeps reconnecting by itself).
///
/// ```
/// use tandem_sdk::Error;
///
/// let refused = Error::Forbidden { reason: "not allowed in this room".into() };
/// assert!(refused.is_fatal());
/// assert_eq!(refused.code(), "forbidden");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused a message as malformed (close 4400). Fatal.
    #[error("the server refused a message as malformed: {reason}")]
    Malformed {
        /// The server's close reason.
        reason: String,
    },
    /// The server refused the token again and again, each time right after the token
    /// provider produced a fresh one (close 4401, `attempts` times in a row). Fatal: the
    /// provider cannot produce a token the server accepts.
    #[error("the server refused {attempts} tokens in a row: {reason}")]
    Unauthorized {
        /// How many connections in a row were refused.
        attempts: u32,
        /// The last close reason.
        reason: String,
    },
    /// The token does not allow this room (close 4403). Fatal: asking again with the
    /// same rights cannot help.
    #[error("not allowed in this room: {reason}")]
    Forbidden {
        /// The server's close reason.
        reason: String,
    },
    /// The room was deleted (close 4404). Fatal.
    #[error("the room was deleted: {reason}")]
    RoomDeleted {
        /// The server's close reason.
        reason: String,
    },
    /// A message or the document is too large for the server's limits (close 4413).
    /// Fatal.
    #[error("message or document too large: {reason}")]
    TooLarge {
        /// The server's close reason.
        reason: String,
    },
    /// A rate or plan limit was reached (close 4429). Not fatal: the room reconnects by
    /// itself after `retry_after`.
    #[error("rate or plan limit reached, retrying in {retry_after:?}: {reason}")]
    RateLimited {
        /// The server's close reason.
        reason: String,
        /// How long the room waits before reconnecting.
        retry_after: Duration,
    },
    /// The server will not apply this client's document changes (the token is
    /// read-only). Not fatal: the room stays connected for reading and presence; local
    /// edits stay in the local document.
    #[error("read-only: {reason}")]
    ReadOnly {
        /// The server's reason.
        reason: String,
    },
    /// The server sent something this client could not decode or apply. Not fatal: the
    /// frame is skipped (and the document resynchronised if it carried changes).
    #[error("unreadable message from the server: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The server refused a fresh token sent in band (the connection keeps its old one
    /// until it expires, then reconnects with a fresh token). Not fatal.
    #[error("the server refused the fresh token (as {code} would): {reason}")]
    RefreshRefused {
        /// The close code a connect with that token would have got.
        code: u16,
        /// The server's reason.
        reason: String,
    },
    /// The token provider failed. Not fatal: the room retries (with backoff), calling
    /// the provider again.
    #[error("the token provider failed: {0}")]
    TokenProvider(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// A connection attempt failed or an open connection was lost (network error,
    /// server down, HTTP error before the upgrade). Not fatal: the room reconnects with
    /// backoff; local edits are kept and sent once connected. For the admin client: no
    /// answer arrived (refused, reset, timed out).
    #[error("connection failed: {detail}")]
    Connection {
        /// What happened.
        detail: String,
    },
    /// The TLS handshake failed: most often the server's certificate is not signed by a
    /// root this client trusts (add a private CA with `add_root_certificate`), or is not
    /// valid for the host name. Not fatal for a room: it retries with backoff, since the
    /// server's certificate may be fixed, and reports this error on every attempt.
    #[error("TLS failed: {detail}")]
    Tls {
        /// What was wrong, and what to do about it.
        detail: String,
    },
    /// The REST API refused a call of the [admin client](crate::admin): the status and
    /// the server's problem document (`code`, `detail`, `Retry-After`).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// A REST answer was not what the API documents (not JSON, missing fields).
    #[error("unexpected answer from the server: {detail}")]
    InvalidResponse {
        /// What was wrong, with the call.
        detail: String,
    },
    /// A builder or call was given something it cannot use (an admin client without
    /// any credential, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A root certificate given to a builder cannot be used.
    #[error("invalid certificate: {reason}")]
    InvalidCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// The base URL given to [`Client::builder`](crate::Client::builder) cannot be used.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The room name cannot be used: rooms are 1 to 256 bytes without control
    /// characters.
    #[error("invalid room name {0:?}: rooms are 1 to 256 bytes without control characters")]
    InvalidRoom(String),
    /// Presence must be a JSON object (the server adds a `user` member to it).
    #[error("presence must be a JSON object")]
    PresenceNotAnObject,
    /// There is no open connection to send on: custom events are not queued while
    /// disconnected.
    #[error("not connected")]
    NotConnected,
    /// The room was left (or its task ended), so the call cannot be carried out.
    #[error("the room was left")]
    Left,
    /// The document is inside a transaction on this thread; enter the room (or create
    /// the handle) outside any transaction.
    #[error("the document is in a transaction")]
    DocumentBusy,
    /// An index past the end of a list or text.
    #[error("index {index} is out of range (length {len})")]
    OutOfRange {
        /// The index asked for.
        index: u32,
        /// The length at the time.
        len: u32,
    },
    /// A JSON value that cannot be stored in the document.
    #[error("value cannot be stored in the document: {0}")]
    InvalidValue(String),
}

impl Error {
    /// Whether the room stopped because of this error (nothing is retried until the app
    /// enters the room again).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Malformed { .. }
                | Self::Unauthorized { .. }
                | Self::Forbidden { .. }
                | Self::RoomDeleted { .. }
                | Self::TooLarge { .. }
        )
    }

    /// A stable machine-readable code (`"forbidden"`, `"rate_limited"`…), the same as the
    /// WASM SDK's `Error.code`. For [`Error::Api`] it is the server's problem code
    /// (`"not_found"`, `"unauthenticated"`, `"rate_limited"`…), as in `@tandem/node`.
    pub fn code(&self) -> &str {
        match self {
            Self::Api(api) => &api.code,
            Self::Tls { .. } => "tls",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::InvalidCertificate { .. } => "invalid_certificate",
            Self::InvalidArgument(_) => "invalid_argument",
            Self::Malformed { .. } => "malformed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::RoomDeleted { .. } => "room_deleted",
            Self::TooLarge { .. } => "too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::ReadOnly { .. } => "read_only",
            Self::Protocol { .. } => "protocol",
            Self::RefreshRefused { .. } => "refresh_refused",
            Self::TokenProvider(_) => "token_provider",
            Self::Connection { .. } => "connection",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::InvalidRoom(_) => "invalid_room",
            Self::PresenceNotAnObject => "presence_not_an_object",
            Self::NotConnected => "not_connected",
            Self::Left => "left",
            Self::DocumentBusy => "document_busy",
            Self::OutOfRange { .. } => "out_of_range",
            Self::InvalidValue(_) => "invalid_value",
        }
    }

    /// The HTTP status of a refused REST call ([`Error::Api`]), else `None`.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.status),
            _ => None,
        }
    }

    /// How long the server asked to wait: a REST call's `Retry-After` (429, 503) or a
    /// room's rate limit (close 4429).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(api) => api.retry_after,
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn token_provider(error: BoxError) -> Self {
        Self::TokenProvider(Arc::from(error))
    }
}

/// A REST call the server refused: its status and problem document
/// (`application/problem+json`, RFC 9457), like `@tandem/node`'s `TandemError`.
///
/// ```
/// # fn demo(error: tandem_sdk::Error) {
/// match error {
///     tandem_sdk::Error::Api(api) if api.status == 404 => println!("no such room"),
///     tandem_sdk::Error::Api(api) if api.code == "rate_limited" => {
///         println!("wait {:?}", api.retry_after)
///     }
///     other => println!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{operation}: {code} ({status}): {detail}")]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// A stable machine-readable code (`not_found`, `unauthenticated`, `rate_limited`,
    /// `invalid_request`…), or `http_<status>` when the answer had no problem document
    /// (a proxy's error page, say).
    pub code: String,
    /// What went wrong this time, for humans.
    pub detail: String,
    /// How long to wait before retrying, from `Retry-After` (429 and 503).
    pub retry_after: Option<Duration>,
    /// The request id the server gave the answer (`x-request-id`), for support.
    pub request_id: Option<String>,
    /// The whole problem document, when the server sent one.
    pub problem: Option<Problem>,
    /// The call, e.g. `GET /v1/rooms/doc-1`.
    pub operation: String,
}

impl From<SessionError> for Error {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Malformed { reason } => Self::Malformed { reason },
            SessionError::Unauthorized { attempts, reason } => {
                Self::Unauthorized { attempts, reason }
            }
            SessionError::Forbidden { reason } => Self::Forbidden { reason },
            SessionError::RoomDeleted { reason } => Self::RoomDeleted { reason },
            SessionError::TooLarge { reason } => Self::TooLarge { reason },
            SessionError::RateLimited {
                reason,
                retry_after_ms,
            } => Self::RateLimited {
                reason,
                retry_after: Duration::from_millis(retry_after_ms),
            },
            SessionError::ReadOnly { reason } => Self::ReadOnly { reason },
            SessionError::Protocol { detail } => Self::Protocol { detail },
            SessionError::RefreshRefused { code, reason } => Self::RefreshRefused { code, reason },
        }
    }
}

impl From<CallError> for Error {
    fn from(error: CallError) -> Self {
        match error {
            CallError::NotConnected => Self::NotConnected,
            CallError::PresenceNotAnObject => Self::PresenceNotAnObject,
            CallError::DocumentBusy => Self::DocumentBusy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_session_error() -> Vec<SessionError> {
        let reason = "why".to_owned();
        vec![
            SessionError::Malformed {
                reason: reason.clone(),
            },
            SessionError::Unauthorized {
                attempts: 3,
                reason: reason.clone(),
            },
            SessionError::Forbidden {
                reason: reason.clone(),
            },
            SessionError::RoomDeleted {
                reason: reason.clone(),
            },
            SessionError::TooLarge {
                reason: reason.clone(),
            },
            SessionError::RateLimited {
                reason: reason.clone(),
                retry_after_ms: 2_500,
            },
            SessionError::ReadOnly {
                reason: reason.clone(),
            },
            SessionError::Protocol { detail: reason },
        ]
    }

    #[test]
    fn session_errors_keep_their_code_and_fatality() {
        for session in every_session_error() {
            let error = Error::from(session.clone());
            assert_eq!(error.code(), session.code(), "{session:?}");
            assert_eq!(error.is_fatal(), session.is_fatal(), "{session:?}");
        }
    }

    #[test]
    fn close_codes_become_typed_errors() {
        let forbidden = Error::from(SessionError::Forbidden {
            reason: "no".into(),
        });
        assert!(matches!(forbidden, Error::Forbidden { ref reason } if reason == "no"));
        let limited = Error::from(SessionError::RateLimited {
            reason: "slow down".into(),
            retry_after_ms: 2_500,
        });
        assert!(matches!(
            limited,
            Error::RateLimited { retry_after, .. } if retry_after == Duration::from_millis(2_500)
        ));
        assert!(!limited.is_fatal());
    }

    #[test]
    fn local_failures_are_not_fatal() {
        let provider = Error::token_provider("backend down".into());
        assert!(!provider.is_fatal());
        assert_eq!(provider.code(), "token_provider");
        assert!(provider.to_string().contains("backend down"));
        assert!(!Error::Connection {
            detail: "refused".into()
        }
        .is_fatal());
        assert_eq!(Error::from(CallError::NotConnected).code(), "not_connected");
        assert_eq!(
            Error::from(CallError::PresenceNotAnObject).code(),
            "presence_not_an_object"
        );
    }
}
