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
use crate::store::Attribution;

/// What a connection asks of its room.
pub(crate) enum RoomMsg {
    /// A new connection; the reply says whether it is in.
    Join {
        conn: ConnId,
        outbox: OutboxTx,
        /// Who the connection is, from its grant.
        identity: Arc<Identity>,
        /// What its grant allows, and when it connected (for the inspector).
        info: ConnInfo,
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
        /// For a connection that asked for acknowledgements: this is the `n`-th update
        /// it sent; once durable it is told [`Message::Saved`](tandem_protocol::Message::Saved).
        saved: Option<u64>,
    },
    /// An acknowledgement owed for an update that needed no storing (empty): sent once
    /// everything applied before it is durable.
    Saved { conn: ConnId, upto: u64 },
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
    /// How long version history is kept (`None`: for ever).
    pub(crate) history_retention: Option<std::time::Duration>,
}

impl From<&crate::rooms::limits::Limits> for RoomLimits {
    fn from(limits: &crate::rooms::limits::Limits) -> Self {
        Self {
            connections_per_room: limits.connections_per_room,
            max_document_bytes: limits.max_document_bytes,
            history_retention: limits.history_retention(),
        }
    }
}

/// What a connection's grant allows (shown by the inspector; `admin` also lets it
/// write in a read-only room).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights {
    /// Its updates are applied (`room:write`).
    pub write: bool,
    /// Its presence is published (`room:presence:write`, or implied by write).
    pub presence: bool,
    /// `room:admin`: it may write even when the room is read-only.
    pub admin: bool,
}

impl Rights {
    /// The token scopes these rights come from, as tokens spell them.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut scopes = vec!["room:read"];
        if self.write {
            scopes.push("room:write");
        }
        if self.presence {
            scopes.push("room:presence:write");
        }
        if self.admin {
            scopes.push("room:admin");
        }
        scopes
    }
}

/// What the inspector shows of a connection besides its identity.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnInfo {
    pub(crate) rights: Rights,
    /// When it connected, unix milliseconds.
    pub(crate) since_ms: i64,
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
    /// The time asked for is older than the room's history keeps (retention), or the
    /// version named is not (or no longer) stored.
    #[error("{0}")]
    OutsideHistory(String),
    /// The room a fork would create already exists.
    #[error("{0}")]
    RoomExists(String),
}

/// Why an update that builds on changes the room lacks is refused (a gap in a client's
/// clock, or a reference to an item the room does not have).
pub const MISSING_DEPS: &str = "it depends on changes the room does not have; \
     send an update that includes them (e.g. your document's full state)";

/// One live connection's presence in a room.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceEntry {
    /// The connection (the `connectionId` its events carry); 0 for one on another node.
    pub connection_id: ConnId,
    /// The user its grant names, if any.
    pub user_id: Option<String>,
    /// The user info its grant carries, if any (also in each state's `user` field).
    pub user_info: Option<Value>,
    /// Its awareness states as `(Yjs client id, state as the other clients see it)`,
    /// by client id (usually one per connection).
    pub states: Vec<(u64, Value)>,
    /// The API key that minted its token, if any.
    pub key_id: Option<String>,
    /// What its token allows in this room.
    pub rights: Rights,
    /// When it connected, unix milliseconds (0 for one on another node: not sent).
    pub connected_at: i64,
    /// The cluster node it is connected to (`None` on a server without `--redis-url`).
    /// An entry with `connection_id` 0 is one of the states another node sent: one
    /// awareness client id, its user id and info from the state's `user` field (which
    /// that node stamped from the token), no key, rights or time.
    pub node: Option<u64>,
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
    /// One connection of this node, by id (the inspector's "close"; never published:
    /// connection ids are per node).
    Connection(ConnId),
}

impl CloseFilter {
    /// The filter as other nodes are told it; `None` for one connection, which only its
    /// own node can name (see `Rooms::close_connection`).
    pub(crate) fn to_wire(&self) -> Option<crate::rooms::cluster::WireFilter> {
        use crate::rooms::cluster::WireFilter;
        Some(match self {
            CloseFilter::All => WireFilter::All,
            CloseFilter::Key(key) => WireFilter::Key(key.clone()),
            CloseFilter::User(user) => WireFilter::User(user.clone()),
            CloseFilter::Connection(_) => return None,
        })
    }

    /// What a node does with a wire filter from another: `None` for a connection of
    /// another node (`node` is this node's id).
    pub(crate) fn from_wire(filter: crate::rooms::cluster::WireFilter, node: u64) -> Option<Self> {
        use crate::rooms::cluster::WireFilter;
        Some(match filter {
            WireFilter::All => Self::All,
            WireFilter::Key(key) => Self::Key(key),
            WireFilter::User(user) => Self::User(user),
            WireFilter::Connection { node: at, conn } if at == node => Self::Connection(conn),
            WireFilter::Connection { .. } => return None,
        })
    }

    pub(crate) fn matches(&self, conn: ConnId, identity: &Identity) -> bool {
        match self {
            CloseFilter::All => true,
            CloseFilter::Key(key) => identity.key_id.as_deref() == Some(key.as_str()),
            CloseFilter::User(user) => identity.user_id.as_deref() == Some(user.as_str()),
            CloseFilter::Connection(id) => *id == conn,
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
        author: Arc<Attribution>,
        reply: Reply<()>,
    },
    /// Make the document equal to `old` (a full v1 state of an earlier version) with a
    /// new update; answers with that update's size once it is durable.
    Restore {
        old: Vec<u8>,
        max_document_bytes: Option<u64>,
        author: Arc<Attribution>,
        reply: Reply<usize>,
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
    /// The room's read-only setting changed (the store holds the new value).
    SetReadOnly {
        read_only: bool,
        reply: Reply<()>,
    },
    /// A receiver that changes whenever the document, the connections or the presence
    /// change (the inspector's live feed); it keeps the room loaded while held.
    Watch {
        reply: Reply<tokio::sync::watch::Receiver<u64>>,
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
            AdminMsg::Restore { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::Presence { reply } => drop(reply.send(Err(error))),
            AdminMsg::Broadcast { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::Delete { reply } => drop(reply.send(Err(error))),
            AdminMsg::Close { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::SetReadOnly { reply, .. } => drop(reply.send(Err(error))),
            AdminMsg::Watch { reply } => drop(reply.send(Err(error))),
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
