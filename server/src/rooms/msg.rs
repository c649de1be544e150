//! What reaches a room's actor, and the vocabulary of its answers: connection messages
//! ([`RoomMsg`]), control-plane requests ([`AdminMsg`]) and what other nodes tell a room
//! ([`Remote`]). The bottom layer of the engine: it imports neither the actor, nor the
//! registry, nor the admin API, nor the cluster transport (only the cluster's wire
//! [`Kind`]), so each of those can depend on it without a cycle.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;
use yrs::{StateVector, Update};

use super::cluster::Kind;
use super::identity::{Identity, StateError};
use super::outbox::OutboxTx;
use super::{CloseReason, ConnId};

/// What a connection asks of its room.
pub(crate) enum RoomMsg {
    /// A new connection; the reply says whether it is in.
    Join {
        conn: ConnId,
        outbox: OutboxTx,
        /// Who the connection is, from its grant.
        identity: Arc<Identity>,
        /// The plan's room limits (`None`: unlimited).
        limits: Option<RoomLimits>,
        reply: oneshot::Sender<Result<(), CloseReason>>,
    },
    /// The connection ended.
    Leave { conn: ConnId },
    /// Sync step 1: the peer's state vector.
    SyncStep1 { conn: ConnId, sv: StateVector },
    /// A validated, decoded update (from step 2 or an update message).
    Update {
        conn: ConnId,
        update: Update,
        /// The v1 update bytes, stored as they came.
        payload: Bytes,
        /// The frame to relay (the original frame when it was an update message).
        frame: Bytes,
    },
    /// Decoded awareness entries with JSON-validated states.
    Awareness {
        conn: ConnId,
        entries: Vec<OwnedEntry>,
    },
    /// The peer asks for every awareness state.
    QueryAwareness { conn: ConnId },
    /// A custom event from the peer, already framed for the others.
    Event { conn: ConnId, frame: Bytes },
    /// A request from the control plane ([`super::admin`]).
    Admin(AdminMsg),
    /// From another node, through the cluster ([`super::cluster`]).
    Remote(Remote),
}

/// How a new actor comes to hold its room.
pub(crate) enum Open {
    /// Load the room, creating it if it does not exist (a connection, a REST write).
    Create,
    /// Load the room only if it exists; otherwise leave at once, dropping what was
    /// queued so that each sender asks the registry again.
    Existing,
    /// Erase the room from the store without loading it, answer, and leave: holding the
    /// registry slot meanwhile keeps connections from loading the old document.
    Delete(Reply<bool>),
}

/// The limits a room enforces, from the plan of the connections that join it (all of
/// one project, so one plan; the latest join's numbers win after a plan change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomLimits {
    pub(crate) connections_per_room: u32,
    pub(crate) max_document_bytes: u64,
}

impl From<&crate::rooms::limits::Limits> for RoomLimits {
    fn from(limits: &crate::rooms::limits::Limits) -> Self {
        Self {
            connections_per_room: limits.connections_per_room,
            max_document_bytes: limits.max_document_bytes,
        }
    }
}

/// An awareness entry owned by the message (the frame is gone by then).
pub(crate) struct OwnedEntry {
    pub(crate) client_id: u64,
    pub(crate) clock: u64,
    /// The state as the others would get it (the server's `user` attached), or why it
    /// may not be set: the room closes the sender only if the entry would take effect
    /// (an echo of someone else's state is dropped whatever it holds).
    pub(crate) state: Result<String, StateError>,
}

/// Why a call on a room failed. A room that does not exist is not an error: calls that
/// need one answer `None`, `false` or an empty list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The caller's update was refused whole; the document is unchanged. The text says
    /// why, for the caller: malformed or hostile bytes, larger than the message limit,
    /// refused by yrs, or building on changes the room does not have ([`MISSING_DEPS`]:
    /// over a socket the client would be asked to resync, a REST caller has to send an
    /// update that includes them).
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    /// The event is nested too deep or too large for clients to be sent it.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The state vector is malformed.
    #[error("invalid state vector: {0}")]
    InvalidStateVector(String),
    /// The store is down or did not persist in time; retrying later may work.
    #[error("storage unavailable, try again later")]
    Unavailable,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The update would take the stored document past the plan's size cap; nothing of
    /// it was applied.
    #[error("{0}")]
    DocumentTooLarge(String),
}

/// Why an update that builds on changes the room lacks is refused (a gap in a client's
/// clock, or a reference to an item the room does not have).
pub const MISSING_DEPS: &str = "it depends on changes the room does not have; \
     send an update that includes them (e.g. your document's full state)";

/// One live connection's presence in a room.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceEntry {
    /// The connection (the `connectionId` its events carry).
    pub connection_id: ConnId,
    /// The user its grant names, if any.
    pub user_id: Option<String>,
    /// The user info its grant carries, if any (also in each state's `user` field).
    pub user_info: Option<Value>,
    /// Its awareness states as `(Yjs client id, state as the other clients see it)`,
    /// by client id (usually one per connection).
    pub states: Vec<(u64, Value)>,
}

/// Which connections [`Rooms::close_where`] closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseFilter {
    /// Every connection (the project was deleted or suspended).
    All,
    /// Connections whose grant descends from this API key (the key was revoked).
    Key(String),
    /// Connections whose grant names this user.
    User(String),
}

impl From<CloseFilter> for crate::rooms::cluster::WireFilter {
    fn from(filter: CloseFilter) -> Self {
        match filter {
            CloseFilter::All => Self::All,
            CloseFilter::Key(key) => Self::Key(key),
            CloseFilter::User(user) => Self::User(user),
        }
    }
}

impl From<crate::rooms::cluster::WireFilter> for CloseFilter {
    fn from(filter: crate::rooms::cluster::WireFilter) -> Self {
        use crate::rooms::cluster::WireFilter;
        match filter {
            WireFilter::All => Self::All,
            WireFilter::Key(key) => Self::Key(key),
            WireFilter::User(user) => Self::User(user),
        }
    }
}

impl CloseFilter {
    pub(crate) fn matches(&self, identity: &Identity) -> bool {
        match self {
            CloseFilter::All => true,
            CloseFilter::Key(key) => identity.key_id.as_deref() == Some(key.as_str()),
            CloseFilter::User(user) => identity.user_id.as_deref() == Some(user.as_str()),
        }
    }
}

/// The answer channel of a request to a room.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, RoomError>>;

/// A request from this API to a room's actor.
pub(crate) enum AdminMsg {
    EncodeState {
        sv: StateVector,
        reply: Reply<Vec<u8>>,
    },
    ToJson {
        reply: Reply<Value>,
    },
    /// A v1 update that passed the stateless validation (the actor decodes it: REST
    /// updates are rare, so that CPU is not worth spreading).
    ApplyUpdate {
        payload: Bytes,
        max_document_bytes: Option<u64>,
        reply: Reply<()>,
    },
    Presence {
        reply: Reply<Vec<PresenceEntry>>,
    },
    /// An event frame to send to every connection.
    Broadcast {
        frame: Bytes,
        reply: Reply<usize>,
    },
    Delete {
        reply: Reply<bool>,
    },
    Close {
        filter: CloseFilter,
        reason: CloseReason,
        reply: Reply<usize>,
    },
    /// The project's plan changed: enforce these limits from now on.
    SetLimits {
        limits: RoomLimits,
        reply: Reply<()>,
    },
}

impl AdminMsg {
    /// Answers the request with `error` (a room that cannot serve it).
    pub(crate) fn refuse(self, error: RoomError) {
        match self {
            AdminMsg::EncodeState { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::ToJson { reply } => drop(reply.send(Err(error))),
            AdminMsg::ApplyUpdate { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::Presence { reply } => drop(reply.send(Err(error))),
            AdminMsg::Broadcast { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::Delete { reply } => drop(reply.send(Err(error))),
            AdminMsg::Close { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::SetLimits { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

/// Something another node (or the bus itself) tells a room.
pub(crate) enum Remote {
    /// A message from another node (`node`, its id).
    Frame { node: u64, kind: Kind, frame: Bytes },
    /// Compare with the database now (the bus reconnected).
    CatchUp,
}
