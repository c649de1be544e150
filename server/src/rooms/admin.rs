//! The engine's API for the control plane (the REST admin routes): read a room's
//! document, apply an update, see presence, send events, delete a room, close
//! connections. Every call is scoped by a [`RoomKey`], whose project is part of the
//! room's identity, so one project can never reach another's rooms.
//!
//! Calls reach a room through the same registry and actor as connections, so they see
//! the same document under the same rules: updates pass both validation steps and are
//! acknowledged only once durable, and what is read out is never ahead of the disk.
//! Reads never create a room (an unloaded room that exists in the store is loaded);
//! writes create it like a connection would.
//!
//! A request that meets a room at the moment it unloads is dropped unanswered by that
//! actor; the caller then simply asks the registry again, like a joining connection.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tandem_protocol::event::ServerEvent;
use tandem_protocol::json::{self, JsonLimits};
use tandem_protocol::Message;
use tokio::sync::oneshot;
use yrs::StateVector;

use super::limits::Limits;
use super::msg::{AdminMsg, Open, Reply, RoomLimits, RoomMsg};
pub use super::msg::{CloseFilter, PresenceEntry, RoomError, MISSING_DEPS};
use super::registry::RoomHandle;
use super::{doc, validate};
use super::{CloseReason, RoomKey, Rooms};
use crate::store::{Attribution, Via};

/// How many times a request is re-sent after meeting a room as it unloaded.
const ATTEMPTS: usize = 8;
/// How long a presence listing waits for the other nodes' states of a room it just
/// loaded.
pub const PRESENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// How a request may find its room.
#[derive(Clone, Copy)]
pub(crate) enum Need {
    /// Only a loaded room: an unloaded one answers as empty.
    Loaded,
    /// A room that exists: loaded, or in the store (then loaded).
    Existing,
    /// Any room: created if it does not exist.
    Create,
}

impl Rooms {
    /// Live connections in the room (0 when it is not loaded).
    pub async fn connection_count(&self, key: &RoomKey) -> usize {
        self.connection_counts(&key.project_id, &[&*key.name])
            .await
            .pop()
            .unwrap_or(0)
    }

    /// Live connections in each of the project's rooms `names`, in order (0 for a room
    /// not loaded): one registry look-up for a whole page of a room listing. In a
    /// cluster, with the other live nodes' connections added (one Redis round trip; if
    /// Redis does not answer, this node's alone).
    pub async fn connection_counts<S: AsRef<str>>(
        &self,
        project_id: &str,
        names: &[S],
    ) -> Vec<usize> {
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        let local = self.engine().registry.connection_counts(project_id, &names);
        let Some(cluster) = &self.engine().cluster else {
            return local;
        };
        let project: Arc<str> = project_id.into();
        let keys: Vec<RoomKey> = names
            .iter()
            .map(|name| RoomKey {
                project_id: project.clone(),
                name: (*name).into(),
            })
            .collect();
        match cluster.room_connections_elsewhere(&keys).await {
            Some(others) => local
                .into_iter()
                .zip(others)
                .map(|(here, there)| here + there as usize)
                .collect(),
            None => local,
        }
    }

    /// Whether the room exists (loaded, or in the store). Never creates it.
    pub async fn exists(&self, key: &RoomKey) -> Result<bool, RoomError> {
        if self.engine().registry.get(key).is_some() {
            return Ok(true);
        }
        self.find_in_store(key).await
    }

    /// The document as one v1 update, or with a v1 `state_vector` only what it lacks
    /// (the answer to a sync step 1). `None` when the room does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %key.project_id, room = %key.name))]
    pub async fn encode_state(
        &self,
        key: &RoomKey,
        state_vector: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, RoomError> {
        let sv = match state_vector {
            None => StateVector::default(),
            Some(bytes) => {
                // yrs trusts the counts in a state vector too: checked first.
                validate::validate_state_vector_v1(bytes)
                    .map_err(|e| RoomError::InvalidStateVector(e.to_string()))?;
                doc::decode_state_vector(bytes).map_err(|e| {
                    let reason = e.trim_start_matches("invalid state vector: ");
                    RoomError::InvalidStateVector(reason.to_owned())
                })?
            }
        };
        self.ask(key, Need::Existing, |reply| AdminMsg::EncodeState {
            sv: sv.clone(),
            reply,
        })
        .await
    }

    /// Every root type of the document as JSON, `{"<root>": value}`. Yjs updates do not
    /// record a root's type, so it is inferred from the content: map entries make an
    /// object, text a string, XML elements their XML as a string, anything else an
    /// array; a root with nothing live is `null`. Nested shared types render the same
    /// way. `None` when the room does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %key.project_id, room = %key.name))]
    pub async fn to_json(&self, key: &RoomKey) -> Result<Option<Value>, RoomError> {
        self.ask(key, Need::Existing, |reply| AdminMsg::ToJson { reply })
            .await
    }

    /// Applies a v1 update, creating the room if needed. The update goes through the
    /// same checks as one from a socket (stateless, then against the document); it is
    /// refused whole, leaving the document as it was, or applied. Returns once it is
    /// durable, by which time it has been relayed to every connection. An update that
    /// changes nothing is accepted.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %key.project_id, room = %key.name, bytes = update.len()))]
    pub async fn apply_update(&self, key: &RoomKey, update: Bytes) -> Result<(), RoomError> {
        self.apply_update_limited(key, update, None).await
    }

    /// [`Self::apply_update`], refused with [`RoomError::DocumentTooLarge`] when it would
    /// take the stored document past `max_document_bytes` (the project's plan).
    pub async fn apply_update_limited(
        &self,
        key: &RoomKey,
        update: Bytes,
        max_document_bytes: Option<u64>,
    ) -> Result<(), RoomError> {
        let author = Attribution {
            via: Via::Rest,
            ..Attribution::default()
        };
        self.apply_update_as(key, update, max_document_bytes, author)
            .await
    }

    /// [`Self::apply_update_limited`], stored as written by `author` (version history).
    pub async fn apply_update_as(
        &self,
        key: &RoomKey,
        update: Bytes,
        max_document_bytes: Option<u64>,
        author: Attribution,
    ) -> Result<(), RoomError> {
        let author = Arc::new(author);
        let limit = self.config().max_message_bytes;
        if update.len() > limit {
            let reason = format!("larger than the {limit}-byte message limit");
            return Err(RoomError::InvalidUpdate(reason));
        }
        // yrs 0.28.1 trusts counts and clocks in an update: checked before it sees it.
        validate::validate_update_v1(&update, &validate::Limits::default())
            .map_err(|e| RoomError::InvalidUpdate(e.to_string()))?;
        let applied = self
            .ask(key, Need::Create, |reply| AdminMsg::ApplyUpdate {
                payload: update.clone(),
                max_document_bytes,
                author: author.clone(),
                reply,
            })
            .await?;
        applied.ok_or(RoomError::Unavailable)
    }

    /// Every live connection's presence, by connection id. Empty when the room is not
    /// loaded (then nobody is connected). In a cluster the other nodes' connections are
    /// listed too (from the states they sent, see [`PresenceEntry::node`]); when the room
    /// is not loaded here but other nodes count connections in it, it is loaded (which
    /// asks them for their presence) and asked until their states arrive, for at most
    /// [`PRESENCE_WAIT`].
    pub async fn presence(&self, key: &RoomKey) -> Result<Vec<PresenceEntry>, RoomError> {
        let entries = self
            .ask(key, Need::Loaded, |reply| AdminMsg::Presence { reply })
            .await?;
        if let Some(entries) = entries {
            return Ok(entries);
        }
        let Some(cluster) = &self.engine().cluster else {
            return Ok(Vec::new());
        };
        let elsewhere = cluster
            .room_connections_elsewhere(std::slice::from_ref(key))
            .await
            .and_then(|n| n.first().copied())
            .unwrap_or(0);
        if elsewhere == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + PRESENCE_WAIT;
        loop {
            let entries = self
                .ask(key, Need::Existing, |reply| AdminMsg::Presence { reply })
                .await?
                .unwrap_or_default();
            if !entries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(entries);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Sends a custom event to every connection of the room, as
    /// `{"event": event, "connectionId": null, "userId": null}`, after every update
    /// already applied is durable. Returns how many connections it went to (0 when the
    /// room is not loaded; it is not loaded for this). In a cluster the event goes to the
    /// room's connections on every node (published on the room's channel even when the
    /// room is not loaded here), and the count includes the other live nodes'
    /// connections. Events are not stored. One nested more than 32 levels or larger
    /// than `max_event_bytes` as JSON is refused with [`RoomError::InvalidEvent`].
    pub async fn broadcast_event(&self, key: &RoomKey, event: Value) -> Result<usize, RoomError> {
        // The same bounds as a client's event: every connection parses it.
        let text = event.to_string();
        json::check(&text, JsonLimits::new(self.config().max_event_bytes))
            .map_err(|e| RoomError::InvalidEvent(e.to_string()))?;
        let envelope = ServerEvent {
            event,
            connection_id: None,
            user_id: None,
        };
        let frame = Bytes::from(Message::Event(&envelope.to_json()).encode());
        let sent = self
            .ask(key, Need::Loaded, |reply| AdminMsg::Broadcast {
                frame: frame.clone(),
                reply,
            })
            .await?;
        let Some(cluster) = &self.engine().cluster else {
            return Ok(sent.unwrap_or(0));
        };
        if sent.is_none() {
            // Not loaded here (the actor publishes when it is): the other nodes' clients.
            cluster.publish_room(key, crate::rooms::cluster::Kind::Event, &frame);
        }
        let elsewhere = cluster
            .room_connections_elsewhere(std::slice::from_ref(key))
            .await
            .and_then(|n| n.first().copied())
            .unwrap_or(0);
        Ok(sent.unwrap_or(0) + elsewhere as usize)
    }

    /// Deletes the room: closes every connection with 4404 ("room deleted"), lets the
    /// updates already handed to the store land, erases the room from the store and
    /// unloads it. Returns `false` if it did not exist. In a cluster every other node
    /// that has it loaded does the same (told over Redis and through the durable event
    /// log).
    ///
    /// The room's registry slot is held until the store has erased it, so a connection
    /// arriving meanwhile waits and then starts a new, empty room; it never sees the old
    /// document.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %key.project_id, room = %key.name))]
    pub async fn delete(&self, key: &RoomKey) -> Result<bool, RoomError> {
        for _ in 0..ATTEMPTS {
            if self.is_shutting_down() {
                return Err(RoomError::ShuttingDown);
            }
            // Not loaded: a short-lived actor takes the slot just to erase the room.
            let mut deleter = None;
            let handle = self.room(key, || {
                let (reply, answer) = oneshot::channel();
                deleter = Some(answer);
                Open::Delete(reply)
            });
            let answer = match deleter {
                Some(answer) => answer,
                None => {
                    let (reply, answer) = oneshot::channel();
                    let msg = RoomMsg::Admin(AdminMsg::Delete { reply });
                    if handle.tx.send(msg).await.is_err() {
                        continue;
                    }
                    answer
                }
            };
            match answer.await {
                Ok(result) => {
                    if let (Ok(true), Some(cluster)) = (&result, &self.engine().cluster) {
                        // The room channel's "deleted" is lost if Redis is down; this
                        // reaches every node that has the room loaded from the database.
                        cluster
                            .publish_durable(&crate::rooms::cluster::ControlEvent::RoomDeleted {
                                project_id: key.project_id.to_string(),
                                room: key.name.to_string(),
                            })
                            .await;
                    }
                    return result;
                }
                Err(_) => continue,
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Closes the matching connections in every loaded room of the project with
    /// `reason`, on this node and (in a cluster) on every other. Returns how many were
    /// closed on this node.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %project_id, ?filter, code = reason.code))]
    pub async fn close_where(
        &self,
        project_id: &str,
        filter: CloseFilter,
        reason: CloseReason,
    ) -> usize {
        if let (Some(cluster), Some(wire)) = (&self.engine().cluster, filter.to_wire()) {
            // Durable: a node that misses the Redis message reads it from the database.
            cluster
                .publish_durable(&crate::rooms::cluster::ControlEvent::Close {
                    project_id: project_id.to_owned(),
                    filter: wire,
                    code: reason.code,
                    reason: reason.reason.clone(),
                })
                .await;
        }
        self.close_where_local(project_id, filter, reason).await
    }

    /// Applies a plan change to the project's live connections (message and byte
    /// rates) and loaded rooms (document and room connection caps) at once, on this node
    /// and (in a cluster) on every other. New connections get the new limits from their
    /// grant anyway.
    pub async fn set_project_limits(&self, project_id: &str, limits: Limits) {
        self.set_project_limits_local(project_id, limits);
        if let Some(cluster) = &self.engine().cluster {
            // Durable, like closes: a node that misses the Redis message reads it from
            // the event log.
            cluster
                .publish_durable(&crate::rooms::cluster::ControlEvent::Limits {
                    project_id: project_id.to_owned(),
                    limits,
                })
                .await;
        }
    }

    /// [`Self::set_project_limits`] on this node only.
    pub(crate) fn set_project_limits_local(&self, project_id: &str, limits: Limits) {
        self.engine().live_limits.set(project_id, limits);
        let room_limits = RoomLimits::from(&limits);
        for handle in self.engine().registry.in_project(project_id) {
            let (reply, _answer) = oneshot::channel();
            let msg = RoomMsg::Admin(AdminMsg::SetLimits {
                limits: room_limits,
                reply,
            });
            // A full inbox: the room's next join brings the new limits anyway.
            let _ = handle.tx.try_send(msg);
        }
    }

    /// [`Self::close_where`] on this node only (what a node does when another asks).
    pub(crate) async fn close_where_local(
        &self,
        project_id: &str,
        filter: CloseFilter,
        reason: CloseReason,
    ) -> usize {
        let rooms = self.engine().registry.in_project(project_id);
        let closing = rooms.into_iter().map(|handle| {
            let (reply, answer) = oneshot::channel();
            let msg = AdminMsg::Close {
                filter: filter.clone(),
                reason: reason.clone(),
                reply,
            };
            async move {
                if handle.tx.send(RoomMsg::Admin(msg)).await.is_err() {
                    return 0;
                }
                // A room that unloaded meanwhile had no connections left to close.
                answer.await.ok().and_then(Result::ok).unwrap_or(0)
            }
        });
        futures_util::future::join_all(closing)
            .await
            .into_iter()
            .sum()
    }

    /// Sends a request to the room's actor and waits for the answer; `Ok(None)` when
    /// the room is not there for `need`.
    pub(crate) async fn ask<T>(
        &self,
        key: &RoomKey,
        need: Need,
        make: impl Fn(Reply<T>) -> AdminMsg,
    ) -> Result<Option<T>, RoomError> {
        for _ in 0..ATTEMPTS {
            if self.is_shutting_down() {
                return Err(RoomError::ShuttingDown);
            }
            let loaded = self.engine().registry.get(key);
            let handle = match (loaded, need) {
                (Some(handle), _) => handle,
                (None, Need::Loaded) => return Ok(None),
                (None, Need::Existing) => {
                    // Checked here too so that a missing room costs no actor; the actor
                    // checks again while it holds the room's slot (a delete may have
                    // run in between).
                    if !self.find_in_store(key).await? {
                        return Ok(None);
                    }
                    self.room(key, || Open::Existing)
                }
                (None, Need::Create) => self.room(key, || Open::Create),
            };
            let (reply, answer) = oneshot::channel();
            if handle.tx.send(RoomMsg::Admin(make(reply))).await.is_err() {
                continue;
            }
            match answer.await {
                Ok(result) => return result.map(Some),
                // The room unloaded (or, when not creating, found itself gone) without
                // serving us: ask the registry again.
                Err(_) => continue,
            }
        }
        if self.is_shutting_down() {
            return Err(RoomError::ShuttingDown);
        }
        Err(RoomError::Unavailable)
    }

    async fn find_in_store(&self, key: &RoomKey) -> Result<bool, RoomError> {
        match self
            .engine()
            .store
            .find_room(&key.project_id, &key.name)
            .await
        {
            Ok(found) => Ok(found.is_some()),
            Err(error) => {
                tracing::warn!(%error, "looking a room up in the store failed");
                Err(RoomError::Unavailable)
            }
        }
    }

    /// The room's actor, started with `open()` if none runs.
    pub(crate) fn room(&self, key: &RoomKey, open: impl FnOnce() -> Open) -> RoomHandle {
        let engine = self.engine();
        engine.registry.get_or_spawn(key, |generation| {
            let (tx, rx) = tokio::sync::mpsc::channel(engine.config.room_inbox.max(1));
            let connections = Arc::default();
            super::actor::RoomActor::spawn(
                engine.clone(),
                key.clone(),
                generation,
                rx,
                tx.downgrade(),
                Arc::clone(&connections),
                open(),
            );
            RoomHandle {
                tx,
                generation,
                connections,
            }
        })
    }
}
