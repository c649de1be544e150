//! What the inspector (dashboard and REST) does to a room beyond the admin API: list the
//! project's open connections, close one connection, switch the room's read-only
//! setting (stored, applied by every node that has the room loaded), and watch a room
//! for changes (the live feed's push).
//!
//! The read-only setting lives in the store (`rooms.read_only`): a room reads it when it
//! loads, the node that changes it tells its loaded room directly, and other nodes are
//! told over the cluster's control channel to read it again. Because they re-read the
//! stored value rather than trusting the message, repeated or reordered messages end in
//! the same state.

use tandem_protocol::close;
use tokio::sync::watch;

use super::admin::Need;
use super::cluster::{ControlEvent, WireFilter};
use super::msg::AdminMsg;
use super::{CloseFilter, CloseReason, ConnId, PresenceEntry, RoomError, RoomKey, Rooms};

/// What a connection closed from the inspector is told.
pub const CLOSED_BY_ADMIN: &str = "closed by an administrator of this project";

/// Where [`Rooms::close_connection`] closed the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It was on this node and is closed.
    Here,
    /// It is on another node, which was asked to close it.
    Elsewhere,
    /// No such connection in this room on this node.
    NotFound,
}

impl Rooms {
    /// This node's id in the cluster, `None` when not clustered.
    pub fn node_id(&self) -> Option<u64> {
        self.cluster().map(super::cluster::Cluster::node_id)
    }

    /// Every connection of the project on this node, with its room's name, by room.
    pub async fn project_presence(
        &self,
        project_id: &str,
    ) -> Result<Vec<(String, PresenceEntry)>, RoomError> {
        let mut out = Vec::new();
        for key in self.engine().registry.keys_in_project(project_id) {
            for entry in self.presence(&key).await? {
                out.push((key.name.to_string(), entry));
            }
        }
        Ok(out)
    }

    /// Closes one connection with 4403 ([`CLOSED_BY_ADMIN`]): it is told to stop, not to
    /// reconnect. `node` names the cluster node it is on (from the listing); `None` or
    /// this node's id means this node.
    pub async fn close_connection(
        &self,
        key: &RoomKey,
        node: Option<u64>,
        conn: ConnId,
    ) -> Result<Closed, RoomError> {
        let reason = CloseReason::new(close::FORBIDDEN, CLOSED_BY_ADMIN);
        if let (Some(cluster), Some(node)) = (self.cluster(), node) {
            if node != cluster.node_id() {
                cluster.publish_control(&ControlEvent::Close {
                    project_id: key.project_id.to_string(),
                    filter: WireFilter::Connection { node, conn },
                    code: reason.code,
                    reason: reason.reason,
                });
                return Ok(Closed::Elsewhere);
            }
        }
        let closed = self
            .ask(key, Need::Loaded, |reply| AdminMsg::Close {
                filter: CloseFilter::Connection(conn),
                reason: reason.clone(),
                reply,
            })
            .await?;
        Ok(match closed {
            Some(n) if n > 0 => Closed::Here,
            _ => Closed::NotFound,
        })
    }

    /// The room's read-only setting, `None` if the room does not exist.
    pub async fn read_only(&self, key: &RoomKey) -> Result<Option<bool>, RoomError> {
        self.engine()
            .store
            .read_only(&key.project_id, &key.name)
            .await
            .map_err(unavailable)
    }

    /// Makes the room read-only for every connection without `room:admin` (their
    /// updates are refused, not applied; reading and presence go on), or writable again.
    /// Stored first, then applied by this node's room and, in a cluster, by every other
    /// node's. `false` if the room does not exist.
    pub async fn set_read_only(&self, key: &RoomKey, read_only: bool) -> Result<bool, RoomError> {
        let found = self
            .engine()
            .store
            .set_read_only(&key.project_id, &key.name, read_only)
            .await
            .map_err(unavailable)?;
        if !found {
            return Ok(false);
        }
        self.ask(key, Need::Loaded, |reply| AdminMsg::SetReadOnly {
            read_only,
            reply,
        })
        .await?;
        if let Some(cluster) = self.cluster() {
            // Durable, like closes: a node that misses the Redis message reads it from
            // the event log.
            cluster
                .publish_durable(&ControlEvent::RoomSettingsChanged {
                    project_id: key.project_id.to_string(),
                    room: key.name.to_string(),
                })
                .await;
        }
        Ok(true)
    }

    /// Another node changed the room's settings: if it is loaded here, it reads them
    /// from the store again.
    pub(crate) async fn reload_settings(&self, key: &RoomKey) {
        if self.engine().registry.get(key).is_none() {
            return; // it reads them when it loads
        }
        match self.read_only(key).await {
            Ok(Some(read_only)) => {
                let _ = self
                    .ask(key, Need::Loaded, |reply| AdminMsg::SetReadOnly {
                        read_only,
                        reply,
                    })
                    .await;
            }
            // Deleted meanwhile: the deletion reaches the room on its own.
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "reading a room's settings failed"),
        }
    }

    /// A receiver that changes whenever the room's document, connections, presence or
    /// settings change, loading the room if it exists (`None` if it does not). While a
    /// receiver is held the room stays loaded; when the room stops anyway (deleted, or
    /// the server shuts down) the receiver's `changed()` fails, and the caller asks again.
    pub async fn watch(&self, key: &RoomKey) -> Result<Option<watch::Receiver<u64>>, RoomError> {
        self.ask(key, Need::Existing, |reply| AdminMsg::Watch { reply })
            .await
    }
}

fn unavailable(error: crate::store::StoreError) -> RoomError {
    tracing::warn!(%error, "a room setting could not be read or written");
    RoomError::Unavailable
}
