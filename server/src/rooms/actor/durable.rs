//! The durability contract: an applied update is handed to the group-commit writer, and
//! whatever depends on it (its relay, a sync step 2 answer, a REST reply) waits in a
//! FIFO tagged with how many applied updates it needs on disk. Acknowledgements arrive
//! in order; each one releases what it made durable.
//!
//! A connection that opted in is told which of its updates are durable
//! ([`Message::Saved`]). The writer acknowledges a commit's appends together, so the
//! actor takes every acknowledgement already there at once ([`RoomActor::on_acks`]) and
//! sends each connection one frame with its highest count after that step, not one per
//! update.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::Message;

use super::{storage_unavailable, Deferred, Flow, Inflight, RoomActor};
use crate::rooms::msg::RoomError;
use crate::store::{Attribution, Seq};

impl RoomActor {
    /// Hands an applied update to the group-commit writer; `then` goes out once it is
    /// durable.
    pub(super) async fn persist(
        &mut self,
        payload: Bytes,
        author: Arc<Attribution>,
        then: impl IntoIterator<Item = Deferred>,
    ) {
        self.applied += 1;
        let bytes = payload.len();
        let ack = self
            .engine
            .persister
            .append(self.room_id, payload, author)
            .await;
        self.inflight.push_back(Inflight { ack, bytes });
        self.inflight_bytes += bytes;
        for deferred in then {
            self.deferred.push_back((self.applied, deferred));
        }
    }

    /// `ack` and every further acknowledgement that has already arrived (the rest of
    /// the same group commit).
    pub(super) fn on_acks(&mut self, ack: Result<Seq, ()>) -> Flow {
        let mut next = Some(ack);
        while let Some(ack) = next.take() {
            if let Flow::Stop = self.on_ack(ack) {
                return Flow::Stop;
            }
            next = self
                .inflight
                .front_mut()
                .and_then(|front| match front.ack.try_recv() {
                    Ok(ack) => Some(ack),
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(())),
                });
        }
        Flow::Continue
    }

    pub(super) fn on_ack(&mut self, ack: Result<Seq, ()>) -> Flow {
        let Some(done) = self.inflight.pop_front() else {
            return Flow::Continue;
        };
        self.inflight_bytes = self.inflight_bytes.saturating_sub(done.bytes);
        match ack {
            Ok(seq) => {
                self.persisted += 1;
                self.last_seq = self.last_seq.max(seq);
                self.tally.stored(seq);
                if self.link.is_some() {
                    self.seen.insert(seq);
                }
                self.log_updates += 1;
                self.log_bytes += done.bytes;
                self.release();
                self.maybe_compact();
                Flow::Continue
            }
            Err(()) => {
                // The store is unavailable past the timeout. The document now holds
                // updates that are not on disk: close everyone (they keep their edits and
                // resend them) and unload, so the next load starts from the disk.
                tracing::error!("store unavailable; closing the room's clients with 1013");
                self.fail(storage_unavailable());
                Flow::Stop
            }
        }
    }

    /// Sends every deferred frame whose updates are now durable.
    pub(super) fn release(&mut self) {
        while let Some((needed, _)) = self.deferred.front() {
            if *needed > self.persisted {
                break;
            }
            if let Some((_, deferred)) = self.deferred.pop_front() {
                self.deliver(deferred);
            }
        }
    }

    /// Sends now if nothing applied is still waiting for the disk, else after it.
    pub(super) fn send_when_durable(&mut self, deferred: Deferred) {
        if self.persisted == self.applied {
            self.deliver(deferred);
        } else {
            self.deferred.push_back((self.applied, deferred));
        }
    }

    fn deliver(&mut self, deferred: Deferred) {
        match deferred {
            Deferred::Broadcast { except, frame } => self.broadcast(except, &frame),
            Deferred::To { conn, frame } => self.send_to(conn, frame),
            Deferred::Reply(reply) => reply(Ok(())),
            Deferred::Publish { kind, frame } => self.publish(kind, &frame),
            Deferred::Saved { conn, upto } => {
                match self.saved.iter_mut().find(|(c, _)| *c == conn) {
                    Some((_, n)) => *n = (*n).max(upto),
                    None => self.saved.push((conn, upto)),
                }
            }
        }
    }

    /// Sends the saved acknowledgements released since the last call.
    pub(super) fn send_saved(&mut self) {
        for (conn, upto) in std::mem::take(&mut self.saved) {
            self.send_to(conn, Bytes::from(Message::Saved(upto).encode()));
        }
    }

    /// Answers every waiting request with `error` and drops the frames (the store
    /// failed: what they depend on may never be durable).
    pub(super) fn fail_deferred(&mut self, error: &RoomError) {
        for (_, deferred) in self.deferred.drain(..) {
            if let Deferred::Reply(reply) = deferred {
                reply(Err(error.clone()));
            }
        }
    }
}

/// The oldest append's acknowledgement (pending forever when none is in flight, for
/// `select!`).
pub(super) async fn front_ack(inflight: &mut VecDeque<Inflight>) -> Result<Seq, ()> {
    match inflight.front_mut() {
        Some(front) => (&mut front.ack).await.unwrap_or(Err(())),
        None => std::future::pending().await,
    }
}
