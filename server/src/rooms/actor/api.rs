//! The room's side of the control-plane API ([`crate::rooms::admin`]): reads of the
//! document (answered once what they show is durable), REST updates (the same checks
//! and group commit as a socket's), presence, events, closing and deleting.

use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::awareness::AwarenessTable;
use tandem_protocol::{close, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{vacate, Deferred, Flow, Refused, RoomActor};
use crate::rooms::msg::RoomMsg;
use crate::rooms::msg::{AdminMsg, PresenceEntry, Reply, RoomError, MISSING_DEPS};
use crate::rooms::{doc, json, CloseReason, ConnId, Engine, RoomKey};
use crate::store::Attribution;

impl RoomActor {
    pub(super) async fn on_admin(&mut self, msg: AdminMsg) -> Flow {
        match msg {
            AdminMsg::EncodeState { sv, reply } => {
                self.touch();
                let update = doc::diff(&self.doc, &sv);
                self.reply_when_durable(reply, update);
            }
            AdminMsg::ToJson { reply } => {
                self.touch();
                let json = json::doc_to_json(&self.doc);
                self.reply_when_durable(reply, json);
            }
            AdminMsg::ApplyUpdate {
                payload,
                max_document_bytes,
                author,
                reply,
            } => {
                let done: Done = Box::new(move |result| drop(reply.send(result)));
                return self
                    .apply_from_api(payload, max_document_bytes, author, done)
                    .await;
            }
            AdminMsg::Restore {
                old,
                max_document_bytes,
                author,
                reply,
            } => {
                self.touch();
                // The update that takes the live document back to `old`, computed
                // against the live document (so nothing applied before it is lost).
                let revert = match crate::rooms::history::revert::revert_to(&self.doc, &old) {
                    Ok(revert) => Bytes::from(revert),
                    Err(reason) => {
                        let _ = reply.send(Err(RoomError::InvalidUpdate(reason)));
                        return Flow::Continue;
                    }
                };
                let len = revert.len();
                let done: Done = Box::new(move |result| drop(reply.send(result.map(|()| len))));
                return self
                    .apply_from_api(revert, max_document_bytes, author, done)
                    .await;
            }
            AdminMsg::Presence { reply } => {
                let _ = reply.send(Ok(self.presence()));
            }
            AdminMsg::Broadcast { frame, reply } => {
                let sent = self.conns.len();
                if self.link.is_some() {
                    self.send_when_durable(Deferred::Publish {
                        kind: crate::rooms::cluster::Kind::Event,
                        frame: frame.clone(),
                    });
                }
                self.send_when_durable(Deferred::Broadcast {
                    except: None,
                    frame,
                });
                let _ = reply.send(Ok(sent));
            }
            AdminMsg::Close {
                filter,
                reason,
                reply,
            } => {
                let matching: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(id, c)| filter.matches(**id, &c.identity))
                    .map(|(id, _)| *id)
                    .collect();
                for id in &matching {
                    self.remove_conn(*id, Some(reason.clone()));
                }
                let _ = reply.send(Ok(matching.len()));
            }
            AdminMsg::SetReadOnly { read_only, reply } => {
                if self.read_only != read_only {
                    tracing::debug!(read_only, "room setting changed");
                    self.read_only = read_only;
                    // Told again if it writes after the next change.
                    for c in self.conns.values_mut() {
                        c.told_read_only = false;
                    }
                }
                let _ = reply.send(Ok(()));
            }
            AdminMsg::Watch { reply } => {
                let _ = reply.send(Ok(self.changes.subscribe()));
            }
            AdminMsg::SetLimits { limits, reply } => {
                // The plan changed: the document cap and the room's connection cap
                // apply from the next update or join on.
                self.limits = Some(limits);
                let _ = reply.send(Ok(()));
            }
            AdminMsg::Delete { reply } => {
                let deleted = self.delete().await;
                // Only now that the store has erased the room does the slot open; whoever
                // queued meanwhile asks the registry again and starts a new, empty room.
                vacate(&self.engine, &self.key, self.generation, &mut self.inbox);
                let _ = reply.send(deleted);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// A request keeps an otherwise idle room loaded a while longer.
    fn touch(&mut self) {
        if self.conns.is_empty() {
            self.idle_since = Instant::now();
        }
    }

    /// Answers with `value` once every update applied so far is durable (it may show
    /// them).
    fn reply_when_durable<T: Send + 'static>(&mut self, reply: Reply<T>, value: T) {
        self.send_when_durable(reply_with(reply, value));
    }

    async fn apply_from_api(
        &mut self,
        payload: Bytes,
        max_document_bytes: Option<u64>,
        author: Arc<Attribution>,
        reply: Done,
    ) -> Flow {
        self.touch();
        if let Some(max) = max_document_bytes {
            let after = self.stored_bytes().saturating_add(payload.len() as u64);
            if after > max {
                reply(Err(RoomError::DocumentTooLarge(format!(
                    "document size limit: {max} bytes (this update would make it {after})"
                ))));
                return Flow::Continue;
            }
        }
        let update = match doc::decode_update(&payload) {
            Ok(update) => update,
            Err(error) => {
                let reason = error.trim_start_matches("invalid update: ").to_owned();
                reply(Err(RoomError::InvalidUpdate(reason)));
                return Flow::Continue;
            }
        };
        if update.is_empty() {
            self.send_when_durable(Deferred::Reply(reply));
            return Flow::Continue;
        }
        match self.check_and_apply(update, &payload) {
            Ok(_) => {
                let frame = Bytes::from(Message::Update(&payload).encode());
                let publish = self.link.is_some().then(|| Deferred::Publish {
                    kind: crate::rooms::cluster::Kind::Update,
                    frame: frame.clone(),
                });
                let relay = Deferred::Broadcast {
                    except: None,
                    frame,
                };
                // The relay goes first: when the caller hears back, every connection
                // (of this node) has it queued.
                let then = std::iter::once(relay)
                    .chain(publish)
                    .chain([Deferred::Reply(reply)]);
                self.persist(payload, author, then).await;
                Flow::Continue
            }
            // No client to ask for the missing part: the caller has to send it.
            Err(Refused::Dependencies(_)) => {
                reply(Err(RoomError::InvalidUpdate(MISSING_DEPS.to_owned())));
                Flow::Continue
            }
            Err(Refused::Invalid(reason)) => {
                reply(Err(RoomError::InvalidUpdate(reason)));
                Flow::Continue
            }
            Err(Refused::Panicked) => {
                reply(Err(RoomError::InvalidUpdate(
                    "yrs could not apply it".to_owned(),
                )));
                self.rebuild().await
            }
        }
    }

    fn presence(&self) -> Vec<PresenceEntry> {
        let node = self.engine.cluster.as_ref().map(|c| c.node_id());
        let mut entries: Vec<PresenceEntry> = self
            .conns
            .iter()
            .map(|(id, c)| {
                let mut states: Vec<(u64, serde_json::Value)> = c
                    .awareness_ids
                    .iter()
                    .filter_map(|client_id| {
                        let state = self.awareness.state(*client_id)?;
                        // Validated as JSON when it arrived.
                        Some((*client_id, serde_json::from_str(state).ok()?))
                    })
                    .collect();
                states.sort_by_key(|(client_id, _)| *client_id);
                PresenceEntry {
                    connection_id: *id,
                    user_id: c.identity.user_id.clone(),
                    user_info: c.identity.user_info.clone(),
                    states,
                    key_id: c.identity.key_id.clone(),
                    rights: c.info.rights,
                    connected_at: c.info.since_ms,
                    node,
                }
            })
            .collect();
        entries.sort_by_key(|e| e.connection_id);
        // The other nodes' connections, from the states they sent (checked when they
        // arrived): one entry per awareness client id.
        let mut remote: Vec<PresenceEntry> = self
            .awareness_owner
            .iter()
            .filter_map(|(client_id, owner)| match owner {
                super::Owner::Node(node) => Some((*client_id, *node)),
                super::Owner::Local(_) => None,
            })
            .filter_map(|(client_id, node)| {
                let state: serde_json::Value =
                    serde_json::from_str(self.awareness.state(client_id)?).ok()?;
                let mut user = state.get("user").cloned();
                let user_id = user
                    .as_mut()
                    .and_then(|u| u.as_object_mut())
                    .and_then(|u| u.remove("id"))
                    .and_then(|id| id.as_str().map(str::to_owned));
                let user_info = user.filter(|u| u.as_object().is_some_and(|o| !o.is_empty()));
                Some(PresenceEntry {
                    connection_id: 0,
                    user_id,
                    user_info,
                    states: vec![(client_id, state)],
                    key_id: None,
                    rights: Default::default(),
                    connected_at: 0,
                    node: Some(node),
                })
            })
            .collect();
        remote.sort_by_key(|e| (e.node, e.states.first().map(|(id, _)| *id)));
        entries.extend(remote);
        entries
    }

    /// Erases the room while still holding its registry slot: waits for the appends in
    /// flight (their rows must be there to be erased, and their senders get their
    /// answers), erases, and closes every connection with 4404. If the store fails, the
    /// room is not deleted and the connections are closed with 1013 instead (they
    /// reconnect to the same document).
    async fn delete(&mut self) -> Result<bool, RoomError> {
        let mut failed = false;
        while let Some(inflight) = self.inflight.pop_front() {
            match inflight.ack.await {
                Ok(Ok(_)) if !failed => {
                    self.persisted += 1;
                    self.release();
                }
                _ => {
                    failed = true;
                    self.fail_deferred(&RoomError::Unavailable);
                }
            }
        }
        if let Some(compaction) = self.compaction.take() {
            let _ = compaction.await;
        }
        let result = match self.engine.store.delete_room(self.room_id).await {
            Ok(()) => {
                // Nothing stored any more (what metering reports from now on).
                (self.snapshot_bytes, self.log_bytes, self.remote_bytes) = (0, 0, 0);
                self.publish(crate::rooms::cluster::Kind::Deleted, &[]);
                self.report_changes();
                self.engine
                    .emit(&self.key, crate::rooms::events::RoomEvent::Deleted);
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(%error, "deleting the room failed");
                Err(RoomError::Unavailable)
            }
        };
        let reason = match result {
            Ok(_) => CloseReason::new(close::ROOM_DELETED, "room deleted"),
            Err(_) => super::storage_unavailable(),
        };
        for (_, c) in self.conns.drain() {
            c.outbox.close(reason.clone());
        }
        self.awareness = AwarenessTable::new();
        self.awareness_owner.clear();
        self.publish_connections();
        tracing::debug!(deleted = result.is_ok(), "room deleted");
        result
    }
}

/// Called once with the outcome of a write (after it is durable, or with why not).
type Done = Box<dyn FnOnce(Result<(), RoomError>) + Send>;

fn reply_with<T: Send + 'static>(reply: Reply<T>, value: T) -> Deferred {
    Deferred::Reply(Box::new(move |result: Result<(), RoomError>| {
        let _ = reply.send(result.map(|()| value));
    }))
}

/// Deletes a room that is not loaded, holding its registry slot (this task is
/// registered as its actor) so that no connection loads the old document meanwhile.
pub(super) async fn delete_unloaded(
    engine: &Arc<Engine>,
    key: &RoomKey,
    generation: u64,
    mut inbox: mpsc::Receiver<RoomMsg>,
    reply: Reply<bool>,
) {
    let store = &engine.store;
    let result = match store.find_room(&key.project_id, &key.name).await {
        Ok(None) => Ok(false),
        Ok(Some(room_id)) => store.delete_room(room_id).await.map(|()| true),
        Err(error) => Err(error),
    };
    if let Ok(true) = &result {
        engine.emit(key, crate::rooms::events::RoomEvent::Deleted);
    }
    if let (Ok(true), Some(cluster)) = (&result, &engine.cluster) {
        // Loaded on other nodes perhaps: they close its connections.
        cluster.publish_room(key, crate::rooms::cluster::Kind::Deleted, &[]);
    }
    let result = result.map_err(|error| {
        tracing::warn!(%error, "deleting the room failed");
        RoomError::Unavailable
    });
    vacate(engine, key, generation, &mut inbox);
    let _ = reply.send(result);
}
