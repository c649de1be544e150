//! What a room tells the app: its [`Status`], and the [`RoomEvent`]s delivered by
//! [`Room::events`](crate::Room::events).

use serde_json::Value;
use tandem_protocol::client::{self, Other};
use tandem_protocol::event::ServerEvent;

use crate::error::Error;

/// A room connection's status.
///
/// ```
/// use tandem_sdk::Status;
///
/// assert!(Status::Synced.is_connected());
/// assert!(!Status::Reconnecting { attempt: 1 }.is_connected());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Status {
    /// Not started yet.
    Initial,
    /// The first connection is being opened.
    Connecting,
    /// The socket is open and the document is being synchronised.
    Connected,
    /// The server's state has been received: the document is up to date and changes flow
    /// both ways.
    Synced,
    /// The connection was lost; the room is waiting to reconnect or reconnecting. Local
    /// edits keep working and are sent once connected again.
    Reconnecting {
        /// Consecutive attempts since the last successful sync, starting at 1.
        attempt: u32,
    },
    /// Stopped: the app left (`error` is `None`) or a fatal error happened (nothing is
    /// retried).
    Disconnected {
        /// Why, if it was not the app's choice.
        error: Option<Error>,
    },
}

impl Status {
    /// Whether a socket is open (connected or synced).
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected | Self::Synced)
    }

    /// Whether the room has stopped for good ([`Status::Disconnected`]).
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Self::Disconnected { .. })
    }
}

impl From<client::Status> for Status {
    fn from(status: client::Status) -> Self {
        match status {
            client::Status::Initial => Self::Initial,
            client::Status::Connecting => Self::Connecting,
            client::Status::Connected => Self::Connected,
            client::Status::Synced => Self::Synced,
            client::Status::Reconnecting { attempt } => Self::Reconnecting { attempt },
            client::Status::Disconnected { error } => Self::Disconnected {
                error: error.map(Error::from),
            },
        }
    }
}

/// A custom event broadcast by another client ([`Room::broadcast`](crate::Room::broadcast))
/// or by your backend (`POST /v1/rooms/{room}/events`).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomEvent {
    /// The event, exactly as it was broadcast.
    pub event: Value,
    /// The sending connection, or `None` when your backend sent it through the REST API.
    pub connection_id: Option<u64>,
    /// The sender's user id (its token's subject), when it has one. Set by the server,
    /// so it can be trusted.
    pub user_id: Option<String>,
}

impl From<ServerEvent> for CustomEvent {
    fn from(event: ServerEvent) -> Self {
        Self {
            event: event.event,
            connection_id: event.connection_id,
            user_id: event.user_id,
        }
    }
}

/// Something that happened in a room. Subscribe with
/// [`Room::events`](crate::Room::events).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RoomEvent {
    /// The connection status changed.
    Status(Status),
    /// Other clients came, went or changed their presence: the full new list, as
    /// [`Room::others`](crate::Room::others) returns it.
    Others(Vec<Other>),
    /// Changes from other clients were applied to the document (your own changes do not
    /// produce this event; observe the document or a shared type for those too).
    DocumentChanged,
    /// A custom event arrived.
    Custom(CustomEvent),
    /// Something went wrong. Fatal errors ([`Error::is_fatal`]) come with
    /// [`Status::Disconnected`]; the others are for information (the room carries on).
    Error(Error),
    /// This subscriber fell behind and `missed` events were dropped for it. Current
    /// state is always available from the room ([`Room::status`](crate::Room::status),
    /// [`Room::others`](crate::Room::others), the document).
    Lagged {
        /// How many events were skipped.
        missed: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_protocol::client::SessionError;

    #[test]
    fn statuses_map_with_their_errors() {
        let stopped = Status::from(client::Status::Disconnected {
            error: Some(SessionError::Forbidden {
                reason: "no".into(),
            }),
        });
        assert!(matches!(
            stopped,
            Status::Disconnected {
                error: Some(Error::Forbidden { .. })
            }
        ));
        assert!(stopped.is_disconnected());
        assert!(matches!(
            Status::from(client::Status::Reconnecting { attempt: 2 }),
            Status::Reconnecting { attempt: 2 }
        ));
        assert!(Status::from(client::Status::Connected).is_connected());
    }

    #[test]
    fn custom_events_keep_the_sender() {
        let event = CustomEvent::from(ServerEvent {
            event: serde_json::json!({"wave": true}),
            connection_id: Some(7),
            user_id: Some("usr_1".into()),
        });
        assert_eq!(event.connection_id, Some(7));
        assert_eq!(event.user_id.as_deref(), Some("usr_1"));
        assert_eq!(event.event["wave"], true);
    }
}
