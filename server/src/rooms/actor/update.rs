//! Applying updates from the room's connections: the document-size cap, the check
//! against the document before yrs sees an update, and recovery when yrs panics anyway.

use bytes::Bytes;
use tandem_protocol::{close, Message};
use yrs::Update;

use super::lifecycle::storage_unavailable;
use super::{Deferred, Flow, Refused, RoomActor};
use crate::rooms::cluster::Kind;
use crate::rooms::doc::{self, ApplyError};
use crate::rooms::{validate, CloseReason, ConnId};

/// What a connection that writes in a read-only room is told (a y-protocols auth
/// message, which stock clients report and keep the connection).
pub(crate) const READ_ONLY_ROOM: &str =
    "read-only: this room is read-only for now; changes are not applied";

impl RoomActor {
    pub(super) async fn on_update(
        &mut self,
        conn: ConnId,
        update: Update,
        payload: Bytes,
        frame: Bytes,
        saved: Option<u64>,
    ) -> Flow {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Flow::Continue; // closed meanwhile (e.g. too slow): drop its input
        };
        if self.read_only && !c.info.rights.admin {
            // Refused before any check against the document: nothing is applied, and no
            // resync is asked for (it would only be refused again).
            if !std::mem::replace(&mut c.told_read_only, true) {
                let denied = Message::AuthDenied(READ_ONLY_ROOM).encode();
                self.send_to(conn, Bytes::from(denied));
            }
            return Flow::Continue;
        }
        let author = c.author.clone();
        if let Err(reason) = self.check_document_size(payload.len()) {
            self.remove_conn(conn, Some(reason));
            return Flow::Continue;
        }
        match self.check_and_apply(update, &payload) {
            Ok(_) => {}
            Err(Refused::Dependencies(sv)) => {
                // An honest client only builds on what it received from us; if it did
                // not, it gets our state vector and answers with a complete diff.
                use yrs::updates::encoder::Encode;
                let sv = sv.encode_v1();
                self.send_to(conn, Bytes::from(Message::SyncStep1(&sv).encode()));
                return Flow::Continue;
            }
            Err(Refused::Invalid(reason)) => {
                let reason = format!("invalid update: {reason}");
                self.remove_conn(conn, Some(CloseReason::new(close::MALFORMED, reason)));
                return Flow::Continue;
            }
            Err(Refused::Panicked) => {
                self.remove_conn(
                    conn,
                    Some(CloseReason::new(
                        close::MALFORMED,
                        "update could not be applied",
                    )),
                );
                return self.rebuild().await;
            }
        }
        // The session always hands over an update message (a step 2 re-framed).
        let publish = self.link.is_some().then(|| Deferred::Publish {
            kind: Kind::Update,
            frame: frame.clone(),
        });
        let relay = Deferred::Broadcast {
            except: Some(conn),
            frame,
        };
        // Borrowed, not cloned: this runs once per update (the tally copies a writer
        // only the first time it sees one).
        let writer = self
            .conns
            .get(&conn)
            .and_then(|c| c.identity.user_id.as_deref());
        self.tally.wrote(writer);
        let saved = saved.map(|upto| Deferred::Saved { conn, upto });
        self.persist(
            payload,
            author,
            std::iter::once(relay).chain(publish).chain(saved),
        )
        .await;
        Flow::Continue
    }

    /// What the store holds (or will once in-flight appends land) for this room:
    /// snapshot + log. This is the "document size" plans cap and metering bills.
    pub(super) fn stored_bytes(&self) -> u64 {
        (self.snapshot_bytes + self.log_bytes + self.inflight_bytes + self.remote_bytes) as u64
    }

    /// Refuses an update of `len` bytes that would take the stored document past the
    /// plan's cap (4413); nothing of it is applied.
    pub(super) fn check_document_size(&self, len: usize) -> Result<(), CloseReason> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        let after = self.stored_bytes().saturating_add(len as u64);
        if after > limits.max_document_bytes {
            self.engine.emit(
                &self.key,
                crate::rooms::events::RoomEvent::LimitReached {
                    limit: "document_bytes",
                },
            );
            return Err(CloseReason::new(
                close::TOO_LARGE,
                format!(
                    "document size limit: {} bytes (this update would make it {after})",
                    limits.max_document_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checks an update (already through the stateless validation) against the document
    /// and applies it.
    ///
    /// yrs 0.28.1 integrates a block that starts past the document's clock for its
    /// client out of order, and parks one whose dependencies are missing; crafted
    /// sequences of either corrupt its memory (a SIGSEGV no catch_unwind can stop,
    /// found by fuzzing). So such an update is not applied.
    pub(super) fn check_and_apply(
        &mut self,
        update: Update,
        payload: &[u8],
    ) -> Result<bool, Refused> {
        let sv = doc::state_vector_of(&self.doc);
        let checked =
            validate::check_against_doc(payload, &validate::Limits::default(), &|client| {
                sv.get(&yrs::block::ClientID::new(client))
            });
        match checked {
            Ok(()) => {}
            Err(validate::Invalid::Gap { .. } | validate::Invalid::MissingDependency { .. }) => {
                return Err(Refused::Dependencies(sv));
            }
            Err(error) => return Err(Refused::Invalid(error.to_string())),
        }
        match doc::apply(&self.doc, update) {
            Ok(changed) => Ok(changed),
            Err(ApplyError::Invalid(reason)) => Err(Refused::Invalid(reason)),
            Err(ApplyError::Panicked) => Err(Refused::Panicked),
        }
    }

    /// After yrs panicked mid-update the document may be damaged: wait until everything
    /// applied before it is durable, then reload from the store. The hostile update was
    /// never stored, and connections only ever received stored state, so they stay.
    pub(super) async fn rebuild(&mut self) -> Flow {
        while let Some(inflight) = self.inflight.front_mut() {
            let ack = (&mut inflight.ack).await.unwrap_or(Err(()));
            if let Flow::Stop = self.on_ack(ack) {
                return Flow::Stop;
            }
        }
        match self
            .engine
            .store
            .load(&self.key.project_id, &self.key.name)
            .await
        {
            Ok(stored) => {
                self.doc = doc::build(&stored);
                self.seen = stored.updates.iter().map(|(seq, _)| *seq).collect();
                self.known_snapshot = stored.snapshot.as_ref().map(|(seq, _)| *seq);
                self.last_seq = stored.updates.last().map_or(self.last_seq, |(s, _)| *s);
                tracing::warn!("document rebuilt from the store after a rejected update");
                Flow::Continue
            }
            Err(error) => {
                tracing::error!(%error, "reloading the room failed");
                self.fail(storage_unavailable());
                Flow::Stop
            }
        }
    }
}
