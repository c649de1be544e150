//! What a session asks its transport to do ([`Output`]) and what it tells the app
//! ([`Event`], [`Status`]).

use crate::event::ServerEvent;

use super::error::SessionError;
use super::presence::Other;

/// One thing the transport must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a WebSocket to the room now, then report it with
    /// [`on_open`](super::ClientSession::on_open), or its failure with
    /// [`on_close`](super::ClientSession::on_close) (use 1006 when there was no close
    /// frame). With `refresh_token`, the token used last was refused or has expired:
    /// drop it and ask the token provider for a new one first.
    ///
    /// Delays are the session's business: it emits this only when the time has come
    /// (from an input or from [`tick`](super::ClientSession::tick) at
    /// [`next_deadline`](super::ClientSession::next_deadline)).
    Connect {
        /// Whether a fresh token is needed.
        refresh_token: bool,
    },
    /// Send this binary frame on the open socket.
    Send(Vec<u8>),
    /// Close the socket (or abandon the connection attempt) with this code and reason.
    /// The session already considers it closed: report nothing more about that socket.
    Close {
        /// The WebSocket close code (1000).
        code: u16,
        /// A short reason for logs.
        reason: String,
    },
    /// Deliver this event to the app.
    Event(Event),
    /// The connection's token expires soon: ask the token provider for a fresh one and
    /// hand it to [`on_fresh_token`](super::ClientSession::on_fresh_token) (or report
    /// [`on_fresh_token_failed`](super::ClientSession::on_fresh_token_failed)). Only
    /// on connections opened with the session extension (`?tandem=1`).
    RefreshToken,
}

/// Something the app may want to react to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The connection status changed.
    StatusChanged(Status),
    /// Other clients' presence changed: the full new list (as
    /// [`others`](super::ClientSession::others) returns it).
    OthersChanged(Vec<Other>),
    /// Changes from other clients were applied to the document.
    DocumentChanged,
    /// Another client (or the server) broadcast a custom event.
    Custom(ServerEvent),
    /// An error. Fatal ones ([`SessionError::is_fatal`]) come with
    /// [`Status::Disconnected`]; the others are informational.
    Error(SessionError),
}

/// A room connection's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Created; [`connect`](super::ClientSession::connect) was not called yet.
    Initial,
    /// The first connection is being opened.
    Connecting,
    /// The socket is open and the document is being synchronised.
    Connected,
    /// The server's state has been received: the document is up to date and local
    /// changes flow both ways.
    Synced,
    /// The connection was lost; the session is waiting to reconnect or reconnecting.
    /// Local edits keep working and are sent after reconnecting.
    Reconnecting {
        /// Consecutive attempts since the last successful sync, starting at 1.
        attempt: u32,
    },
    /// Stopped: the app left (`error` is `None`) or a fatal error happened. Nothing is
    /// retried until [`connect`](super::ClientSession::connect) is called again.
    Disconnected {
        /// Why, if it was not the app's choice.
        error: Option<SessionError>,
    },
}

impl Status {
    /// Whether a socket is open (connected or synced).
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected | Self::Synced)
    }
}
