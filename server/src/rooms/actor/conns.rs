//! The room's connections: joining (the per-room cap, the first frames), sending to
//! one or all without ever waiting (a full queue closes that connection), and leaving.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::{close, Message};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Conn, RoomActor};
use crate::rooms::doc;
use crate::rooms::events::RoomEvent;
use crate::rooms::identity::Identity;
use crate::rooms::msg::{ConnInfo, RoomLimits};
use crate::rooms::outbox::OutboxTx;
use crate::rooms::{CloseReason, ConnId};

impl RoomActor {
    /// A new connection: refused past the room's cap, else sent our sync step 1 and the
    /// live presence, and added.
    pub(super) fn on_join(
        &mut self,
        conn: ConnId,
        outbox: OutboxTx,
        identity: Arc<Identity>,
        info: ConnInfo,
        limits: Option<RoomLimits>,
        reply: oneshot::Sender<Result<(), CloseReason>>,
    ) {
        if let Some(limits) = limits {
            self.limits = Some(limits);
            let cap = usize::try_from(limits.connections_per_room).unwrap_or(usize::MAX);
            if self.conns.len() >= cap {
                self.engine.emit(
                    &self.key,
                    RoomEvent::LimitReached {
                        limit: "room_connections",
                    },
                );
                let _ = reply.send(Err(crate::rooms::limits::rate_limited(
                    &format!("connection limit: {cap} per room reached"),
                    std::time::Duration::from_secs(30),
                )));
                return;
            }
        }
        let state_vector = doc::state_vector(&self.doc);
        let mut initial = vec![Bytes::from(Message::SyncStep1(&state_vector).encode())];
        if let Some(states) = self.awareness.encode_live() {
            initial.push(Bytes::from(Message::Awareness(&states).encode()));
        }
        // The queue is new and larger than two frames; a failure means the
        // connection is already gone.
        if initial.into_iter().all(|f| outbox.push(f)) {
            self.engine.emit(
                &self.key,
                RoomEvent::UserEntered {
                    connection_id: conn,
                    user_id: identity.user_id.clone(),
                },
            );
            let author = Arc::new(crate::store::Attribution {
                user_id: identity.user_id.clone(),
                key_id: identity.key_id.clone(),
                conn_id: i64::try_from(conn).ok(),
                via: crate::store::Via::Socket,
            });
            self.conns.insert(
                conn,
                Conn {
                    outbox,
                    awareness_ids: HashSet::new(),
                    identity,
                    info,
                    told_read_only: false,
                    author,
                },
            );
            self.publish_connections();
            let _ = reply.send(Ok(()));
        }
    }

    pub(super) fn publish_connections(&self) {
        self.connections.store(self.conns.len(), Ordering::Relaxed);
    }

    pub(super) fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let full = match self.conns.get(&conn) {
            Some(c) => !c.outbox.push(frame),
            None => false,
        };
        if full {
            self.count_slow();
            self.remove_conn(conn, Some(too_slow()));
        }
    }

    pub(super) fn broadcast(&mut self, except: Option<ConnId>, frame: &Bytes) {
        let mut slow = Vec::new();
        for (id, c) in &self.conns {
            if Some(*id) != except && !c.outbox.push(frame.clone()) {
                slow.push(*id);
            }
        }
        for id in slow {
            self.count_slow();
            self.remove_conn(id, Some(too_slow()));
        }
    }

    /// Removes a connection (closing it with `reason` if given) and its presence.
    pub(super) fn remove_conn(&mut self, conn: ConnId, reason: Option<CloseReason>) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(reason) = reason {
            tracing::debug!(conn, code = reason.code, reason = %reason.reason, "closing connection");
            c.outbox.close(reason);
        }
        self.publish_connections();
        self.engine.emit(
            &self.key,
            RoomEvent::UserLeft {
                connection_id: conn,
                user_id: c.identity.user_id.clone(),
            },
        );
        self.forget_awareness(&mut c.awareness_ids);
        if self.conns.is_empty() {
            self.idle_since = Instant::now();
        }
    }

    fn count_slow(&self) {
        self.engine
            .metrics
            .slow_consumers_closed
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn too_slow() -> CloseReason {
    CloseReason {
        code: close::TRY_AGAIN_LATER,
        reason: "connection too slow to keep up; reconnect to resync".to_owned(),
        flush: false,
    }
}
