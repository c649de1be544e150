//! The client session's typed errors: what the server or the connection did to a room
//! ([`SessionError`], surfaced as events) and what a call on the session refused
//! ([`CallError`]).

use crate::close;

/// Something went wrong with a room's connection. Fatal errors stop the session (status
/// [`Status::Disconnected`](super::Status::Disconnected), no more reconnects); the others
/// are reported and the session carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The server refused a message as malformed (close 4400). Fatal: resending the same
    /// document would be refused again.
    #[error("the server refused a message as malformed: {reason}")]
    Malformed {
        /// The close reason.
        reason: String,
    },
    /// The token was refused (close 4401) again right after a fresh one was fetched, too
    /// many times in a row. Fatal: the token provider cannot produce an acceptable token.
    #[error("the server refused {attempts} tokens in a row: {reason}")]
    Unauthorized {
        /// How many consecutive connections were refused.
        attempts: u32,
        /// The last close reason.
        reason: String,
    },
    /// The token does not allow this room (close 4403). Fatal.
    #[error("not allowed in this room: {reason}")]
    Forbidden {
        /// The close reason.
        reason: String,
    },
    /// The room was deleted (close 4404). Fatal.
    #[error("the room was deleted: {reason}")]
    RoomDeleted {
        /// The close reason.
        reason: String,
    },
    /// A message or the document is too large (close 4413). Fatal.
    #[error("message or document too large: {reason}")]
    TooLarge {
        /// The close reason.
        reason: String,
    },
    /// A rate or plan limit was reached (close 4429). Not fatal: the session reconnects
    /// after `retry_after_ms`.
    #[error("rate or plan limit reached, retrying in {retry_after_ms} ms: {reason}")]
    RateLimited {
        /// The close reason.
        reason: String,
        /// How long the session waits before reconnecting.
        retry_after_ms: u64,
    },
    /// The server will not apply this client's document changes (y-protocols auth
    /// message, "permission denied"). Not fatal: the connection stays open for reading
    /// and presence; local edits stay in the local document and are not sent on this
    /// connection.
    #[error("read-only: {reason}")]
    ReadOnly {
        /// The server's reason.
        reason: String,
    },
    /// The server refused a fresh token sent in band. Not fatal: the connection keeps
    /// its old token until that expires (then 4401 and the reconnect policy).
    #[error("the server refused the fresh token (as {code} would): {reason}")]
    RefreshRefused {
        /// The close code a connect with that token would have got.
        code: u16,
        /// The server's reason.
        reason: String,
    },
    /// The server sent something this client could not decode or apply. Not fatal: the
    /// frame is skipped (and, for document data, the session asks for a resync).
    #[error("unreadable message from the server: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
}

impl SessionError {
    /// Whether the session stopped because of this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::RateLimited { .. }
                | Self::ReadOnly { .. }
                | Self::Protocol { .. }
                | Self::RefreshRefused { .. }
        )
    }

    /// A stable machine-readable code, for the SDKs' error types (e.g. a JS `Error`'s
    /// `code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::RoomDeleted { .. } => "room_deleted",
            Self::TooLarge { .. } => "too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::ReadOnly { .. } => "read_only",
            Self::Protocol { .. } => "protocol",
            Self::RefreshRefused { .. } => "refresh_refused",
        }
    }

    /// The fatal error for a close code that must not be retried, if it is one.
    pub(crate) fn from_close(code: u16, reason: &str) -> Option<Self> {
        let reason = reason.to_owned();
        Some(match code {
            close::MALFORMED => Self::Malformed { reason },
            close::FORBIDDEN => Self::Forbidden { reason },
            close::ROOM_DELETED => Self::RoomDeleted { reason },
            close::TOO_LARGE => Self::TooLarge { reason },
            _ => return None,
        })
    }
}

/// A call on the session that could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// There is no open connection to send on (custom events are not queued).
    #[error("not connected")]
    NotConnected,
    /// Presence must be a JSON object (the server adds a `user` member to it).
    #[error("presence must be a JSON object")]
    PresenceNotAnObject,
    /// The document is inside a transaction on this thread, so the session could not
    /// attach its update observer. Create the session outside any transaction.
    #[error("the document is in a transaction")]
    DocumentBusy,
}
