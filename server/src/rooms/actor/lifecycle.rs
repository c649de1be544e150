//! How a room ends: unloading after idling, failing when the store is gone, shutting
//! down, and refusing or dropping what was queued for an actor that never ran.

use tandem_protocol::close;
use tokio::sync::mpsc;

use super::{compaction, Flow, RoomActor};
use crate::rooms::msg::{RoomError, RoomMsg};
use crate::rooms::{CloseReason, Engine, RoomKey};

impl RoomActor {
    pub(super) async fn on_tick(&mut self) -> Flow {
        self.expire_awareness();
        self.maybe_catch_up();
        self.report_changes();
        // A watched room (an open inspector) stays: its watcher would only load it
        // again.
        let idle = self.conns.is_empty()
            && self.changes.receiver_count() == 0
            && self.inflight.is_empty()
            && self.compaction.is_none()
            && self.catchup.is_none()
            && self.idle_since.elapsed() >= self.engine.config.room_idle_timeout;
        if !idle {
            return Flow::Continue;
        }
        let inbox = &self.inbox;
        if !self
            .engine
            .registry
            .remove_if(&self.key, self.generation, || inbox.is_empty())
        {
            return Flow::Continue;
        }
        // No longer reachable: drop anything that raced in (its sender asks the
        // registry again and loads a new actor), fold the log, stop.
        self.inbox.close();
        while self.inbox.try_recv().is_ok() {}
        if self.log_updates > 0 {
            let retention = self.retention();
            let result =
                compaction::compact(&self.engine, self.room_id, self.last_seq, retention).await;
            if let Err(error) = result {
                tracing::warn!(%error, "compaction before unload failed; the log stays");
            }
        }
        tracing::debug!("room unloaded after idling");
        Flow::Stop
    }

    /// Closes every connection with `reason` and leaves the registry.
    pub(super) fn fail(&mut self, reason: CloseReason) {
        let inbox = &self.inbox;
        let _ = self
            .engine
            .registry
            .remove_if(&self.key, self.generation, || {
                let _ = inbox;
                true
            });
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            self.remove_conn(id, Some(reason.clone()));
        }
        self.fail_deferred(&RoomError::Unavailable);
        self.inbox.close();
    }

    /// Shutdown: stop taking input, let in-flight appends land and their frames go out,
    /// then close every connection with `code`.
    pub(super) async fn stop(&mut self, code: u16, reason: &str) {
        self.inbox.close();
        while let Some(inflight) = self.inflight.front_mut() {
            let ack = (&mut inflight.ack).await.unwrap_or(Err(()));
            if let Flow::Stop = self.on_ack(ack) {
                return;
            }
        }
        if let Some(compaction) = self.compaction.take() {
            let _ = compaction.await;
        }
        for (conn, c) in self.conns.drain() {
            c.outbox.close(CloseReason::new(code, reason));
            self.engine.emit(
                &self.key,
                crate::rooms::events::RoomEvent::UserLeft {
                    connection_id: conn,
                    user_id: c.identity.user_id.clone(),
                },
            );
        }
        self.publish_connections();
    }
}

/// A room that could not load: refuse everyone queued and leave the registry.
pub(super) fn refuse_all(
    engine: &Engine,
    key: &RoomKey,
    generation: u64,
    mut inbox: mpsc::Receiver<RoomMsg>,
    reason: CloseReason,
) {
    let _ = engine.registry.remove_if(key, generation, || true);
    inbox.close();
    while let Ok(msg) = inbox.try_recv() {
        match msg {
            RoomMsg::Join { reply, .. } => drop(reply.send(Err(reason.clone()))),
            RoomMsg::Admin(msg) => msg.refuse(RoomError::Unavailable),
            _ => {}
        }
    }
}

/// Leaves the registry and drops whatever was queued, unanswered: each sender asks the
/// registry again (and finds the room gone, or starts a new actor).
pub(super) fn vacate(
    engine: &Engine,
    key: &RoomKey,
    generation: u64,
    inbox: &mut mpsc::Receiver<RoomMsg>,
) {
    let _ = engine.registry.remove_if(key, generation, || true);
    inbox.close();
    while inbox.try_recv().is_ok() {}
}

pub(super) fn storage_unavailable() -> CloseReason {
    CloseReason::new(
        close::TRY_AGAIN_LATER,
        "storage unavailable, try again later",
    )
}
