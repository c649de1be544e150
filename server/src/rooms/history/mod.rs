//! Version history, the engine's side: the room's versions, the document as it was at
//! a time or version, what changed between two and who changed it, restoring an
//! earlier version as a new update, naming versions, forking a room as it was.
//!
//! Reads come from the store (what is there is durable); a restore is computed by the
//! room's actor against its live document ([`revert`]) and goes through the same checks
//! and group commit as any update, so connected clients converge to it live. Every call
//! takes the project's retention: a time older than the window is refused
//! ([`RoomError::OutsideHistory`]) whether or not the pruning has caught up with it.

mod diff;
pub(crate) mod revert;
mod versions;

pub use diff::{Change, ChangeKind, Diff};
pub use versions::{Version, VersionKind, VersionPage};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use yrs::{Doc, ReadTxn, StateVector, Transact};

use super::admin::Need;
use super::msg::AdminMsg;
use super::{doc, json, RoomError, RoomKey, Rooms};
use crate::store::history::VersionName;
use crate::store::{Attribution, RoomId, Seq, StoreError, StoredDoc, Via};

/// A point in a room's history, as a caller names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A time, unix milliseconds: the document with every update written by then.
    Time(i64),
    /// A version from the listing (`v<first>-<last>`): the document right after its
    /// last update.
    Version(Seq),
    /// A checkpoint from the listing (`c<upto>`).
    Checkpoint(Seq),
}

impl At {
    /// Parses a version id (`v12-40`, `c40`); times are parsed by the caller.
    pub fn parse_version(id: &str) -> Option<At> {
        if let Some(rest) = id.strip_prefix('v') {
            let last = rest.rsplit('-').next()?;
            return last.parse().ok().map(At::Version);
        }
        id.strip_prefix('c')?.parse().ok().map(At::Checkpoint)
    }
}

/// Who wrote something, as history shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Author {
    /// The token's user id, if any.
    pub user_id: Option<String>,
    /// The API key (REST writes; for socket writes, the key that minted the token).
    pub key_id: Option<String>,
}

impl From<&Attribution> for Author {
    fn from(a: &Attribution) -> Self {
        Self {
            user_id: a.user_id.clone(),
            key_id: a.key_id.clone(),
        }
    }
}

/// The document as it was.
pub struct PastDocument {
    /// The time it shows, unix milliseconds.
    pub at_ms: i64,
    doc: Doc,
}

impl PastDocument {
    /// Every root as JSON, like the live document's view.
    pub fn to_json(&self) -> Value {
        json::doc_to_json(&self.doc)
    }

    /// The whole document as one v1 update.
    pub fn encode(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The time restored, unix milliseconds.
    pub from_ms: i64,
    /// The size of the update that did it (0: the document already was that).
    pub update_bytes: usize,
}

fn unavailable(error: StoreError) -> RoomError {
    tracing::warn!(%error, "reading the room's history failed");
    RoomError::Unavailable
}

fn window_start(rooms: &Rooms, retention: Option<Duration>) -> Option<i64> {
    let window = i64::try_from(retention?.as_millis()).unwrap_or(i64::MAX);
    Some(rooms.config().clock.now_ms().saturating_sub(window))
}

fn outside(what: &str) -> RoomError {
    RoomError::OutsideHistory(format!(
        "{what} is older than this room's history keeps (the plan's retention)"
    ))
}

impl Rooms {
    async fn room_id(&self, key: &RoomKey) -> Result<Option<RoomId>, RoomError> {
        self.engine()
            .store
            .find_room(&key.project_id, &key.name)
            .await
            .map_err(unavailable)
    }

    /// `at` as a time inside the window starting at `start`.
    async fn resolve(&self, room_id: RoomId, at: At, start: Option<i64>) -> Result<i64, RoomError> {
        let store = &self.engine().store;
        let at_ms = match at {
            At::Time(ms) => ms,
            At::Version(seq) => store
                .row_time(room_id, seq)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| {
                    RoomError::OutsideHistory(format!("no version v…-{seq} in this room's history"))
                })?,
            At::Checkpoint(upto) => store
                .checkpoints(room_id)
                .await
                .map_err(unavailable)?
                .into_iter()
                .find(|c| c.upto_seq == upto)
                .map(|c| c.max_at)
                .ok_or_else(|| {
                    RoomError::OutsideHistory(format!(
                        "no checkpoint c{upto} in this room's history"
                    ))
                })?,
        };
        if start.is_some_and(|start| at_ms < start) {
            return Err(outside("that time"));
        }
        Ok(at_ms)
    }

    async fn read_at(&self, room_id: RoomId, at_ms: i64) -> Result<PastDocument, RoomError> {
        let stored = self
            .engine()
            .store
            .read_at(room_id, at_ms)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| outside("that time"))?;
        let doc = tokio::task::spawn_blocking(move || doc::build(&stored))
            .await
            .map_err(|_| RoomError::Unavailable)?;
        Ok(PastDocument { at_ms, doc })
    }

    /// The room's document as it was at `at`. `None` when the room does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %key.project_id, room = %key.name, ?at))]
    pub async fn document_at(
        &self,
        key: &RoomKey,
        at: At,
        retention: Option<Duration>,
    ) -> Result<Option<PastDocument>, RoomError> {
        let Some(room_id) = self.room_id(key).await? else {
            return Ok(None);
        };
        let at_ms = self
            .resolve(room_id, at, window_start(self, retention))
            .await?;
        self.read_at(room_id, at_ms).await.map(Some)
    }

    /// The room's versions, newest first: bursts of updates less than `version_gap`
    /// apart, and the checkpoint history starts from once retention pruned what came
    /// before. `before` pages (a version id's first update, exclusive, or a time).
    /// `None` when the room does not exist.
    pub async fn versions(
        &self,
        key: &RoomKey,
        before: Option<At>,
        limit: usize,
        retention: Option<Duration>,
    ) -> Result<Option<VersionPage>, RoomError> {
        let Some(room_id) = self.room_id(key).await? else {
            return Ok(None);
        };
        let gap = i64::try_from(self.config().version_gap.as_millis()).unwrap_or(i64::MAX);
        versions::list(
            &self.engine().store,
            room_id,
            before,
            limit,
            gap,
            window_start(self, retention),
        )
        .await
        .map(Some)
        .map_err(unavailable)
    }

    /// What changed between `from` and `to`: per root, the map keys added, removed or
    /// changed, the text range and array slice that differ, each with who wrote the
    /// updates that changed it. `None` when the room does not exist.
    pub async fn diff(
        &self,
        key: &RoomKey,
        from: At,
        to: At,
        retention: Option<Duration>,
    ) -> Result<Option<Diff>, RoomError> {
        let Some(room_id) = self.room_id(key).await? else {
            return Ok(None);
        };
        let start = window_start(self, retention);
        let from_ms = self.resolve(room_id, from, start).await?;
        let to_ms = self.resolve(room_id, to, start).await?;
        let (from_ms, to_ms) = (from_ms.min(to_ms), from_ms.max(to_ms));
        let store = self.engine().store.clone();
        let rows = store
            .rows_between(room_id, from_ms, to_ms, diff::MAX_REPLAYED + 1)
            .await
            .map_err(unavailable)?;
        let before = self
            .engine()
            .store
            .read_at(room_id, from_ms)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| outside("that time"))?;
        let after = store
            .read_at(room_id, to_ms)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| outside("that time"))?;
        tokio::task::spawn_blocking(move || diff::diff(from_ms, to_ms, &before, &after, &rows))
            .await
            .map(Some)
            .map_err(|_| RoomError::Unavailable)
    }

    /// Makes the live document equal to what it was at `at`, as a new update written by
    /// `author` (its `via` becomes "restore") through the normal durable path: every
    /// connected client converges to it without reconnecting, and it is a version of its
    /// own, which a later restore can undo. `None` when the room does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %key.project_id, room = %key.name, ?at))]
    pub async fn restore(
        &self,
        key: &RoomKey,
        at: At,
        retention: Option<Duration>,
        author: Attribution,
        max_document_bytes: Option<u64>,
    ) -> Result<Option<Restored>, RoomError> {
        let Some(past) = self.document_at(key, at, retention).await? else {
            return Ok(None);
        };
        let old = past.encode();
        let author = Arc::new(Attribution {
            via: Via::Restore,
            ..author
        });
        let update_bytes = self
            .ask(key, Need::Existing, |reply| AdminMsg::Restore {
                old: old.clone(),
                max_document_bytes,
                author: author.clone(),
                reply,
            })
            .await?;
        Ok(update_bytes.map(|update_bytes| Restored {
            from_ms: past.at_ms,
            update_bytes,
        }))
    }

    /// Creates the room `to` (of the same project) holding the document as `from` was at
    /// `at`. Refused with [`RoomError::RoomExists`] when `to` exists. `None` when `from`
    /// does not exist.
    pub async fn fork(
        &self,
        from: &RoomKey,
        at: At,
        to: &RoomKey,
        retention: Option<Duration>,
        author: Attribution,
        max_document_bytes: Option<u64>,
    ) -> Result<Option<i64>, RoomError> {
        let Some(past) = self.document_at(from, at, retention).await? else {
            return Ok(None);
        };
        if self.exists(to).await? {
            return Err(RoomError::RoomExists(format!(
                "the room {:?} exists; fork into a new name",
                &*to.name
            )));
        }
        let author = Attribution {
            via: Via::Fork,
            ..author
        };
        self.apply_update_as(to, Bytes::from(past.encode()), max_document_bytes, author)
            .await?;
        Ok(Some(past.at_ms))
    }

    /// Names the point `at` of the room's history. Returns the stored name; `None` when
    /// the room does not exist.
    pub async fn name_version(
        &self,
        key: &RoomKey,
        at: At,
        name: &str,
        created_by: &str,
        retention: Option<Duration>,
    ) -> Result<Option<VersionName>, RoomError> {
        let Some(room_id) = self.room_id(key).await? else {
            return Ok(None);
        };
        let at_ms = self
            .resolve(room_id, at, window_start(self, retention))
            .await?;
        let named = VersionName {
            at_ms,
            name: name.to_owned(),
            created_at: self.config().clock.now_ms(),
            created_by: created_by.to_owned(),
        };
        self.engine()
            .store
            .name_version(room_id, &named)
            .await
            .map_err(unavailable)?;
        Ok(Some(named))
    }

    /// The engine's clock, unix milliseconds (what history times are measured by).
    pub fn now_ms(&self) -> i64 {
        self.config().clock.now_ms()
    }
}

/// A document rebuilt from what the store read.
fn build(stored: &StoredDoc) -> Doc {
    doc::build(stored)
}

/// The JSON view of a document.
fn view(doc: &Doc) -> Value {
    json::doc_to_json(doc)
}

/// Applies a stored update (already validated when it was written) to `doc`.
fn apply(doc: &Doc, data: &[u8]) {
    if let Ok(update) = doc::decode_update(data) {
        let _ = doc::apply(doc, update);
    }
}
