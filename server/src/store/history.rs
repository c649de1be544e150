//! Version history: what compaction keeps instead of deleting. Every log row carries
//! its [`Attribution`] and time; a compaction moves the rows it folds into
//! `room_history` and keeps the snapshot it wrote as a checkpoint (`room_checkpoints`);
//! retention prunes both ([`HistoryStore::prune_history`]). The document as it was at a
//! time is the newest checkpoint written before it plus the rows after that checkpoint
//! up to the time ([`HistoryStore::read_at`]), so a read costs one checkpoint and at most
//! about one compaction's worth of rows, however long the history.

use async_trait::async_trait;

use super::{Attribution, RoomId, Seq, StoreResult, StoredDoc};

/// One stored update as history lists it (its bytes are not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// Its seq.
    pub seq: Seq,
    /// When it was written, unix milliseconds.
    pub written_at: i64,
    /// Who wrote it.
    pub author: Attribution,
    /// Its size in bytes.
    pub bytes: i64,
}

/// A checkpoint as listed (its bytes are not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// The snapshot's `upto_seq`.
    pub upto_seq: Seq,
    /// Every row it holds was written at or before this, unix milliseconds.
    pub max_at: i64,
    /// The rows it folded were pruned: nothing earlier can be rebuilt.
    pub base: bool,
    /// Its size in bytes.
    pub bytes: i64,
}

/// A name given to a point in a room's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionName {
    /// The point in time it names, unix milliseconds.
    pub at_ms: i64,
    /// The name.
    pub name: String,
    /// When it was given, unix milliseconds.
    pub created_at: i64,
    /// Who gave it (an API key id).
    pub created_by: String,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Folded log rows.
    pub rows: u64,
    /// Checkpoints.
    pub checkpoints: u64,
}

/// A room's version history (migration `0007_history.sql`).
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// The room's document as it was at `at_ms`: the newest checkpoint whose rows were
    /// all written by then, and every other row written by then, read in one snapshot
    /// of the database. `None` when that time is before what retention kept (the room's
    /// base checkpoint).
    async fn read_at(&self, room_id: RoomId, at_ms: i64) -> StoreResult<Option<StoredDoc>>;

    /// Stored updates (folded and live) with a seq below `before` (all when `None`),
    /// newest first, at most `limit`, without their bytes.
    async fn history_rows(
        &self,
        room_id: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> StoreResult<Vec<HistoryRow>>;

    /// Stored updates written after `after_ms` and at or before `upto_ms`, oldest first,
    /// at most `limit`, with their bytes (what a diff attributes).
    async fn rows_between(
        &self,
        room_id: RoomId,
        after_ms: i64,
        upto_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<(HistoryRow, bytes::Bytes)>>;

    /// When the update `seq` of the room was written, if it is still stored.
    async fn row_time(&self, room_id: RoomId, seq: Seq) -> StoreResult<Option<i64>>;

    /// The room's checkpoints, oldest first.
    async fn checkpoints(&self, room_id: RoomId) -> StoreResult<Vec<CheckpointRow>>;

    /// Deletes what no time at or after `cutoff_ms` needs: the newest checkpoint whose
    /// rows were all written before the cutoff becomes the base, the rows it folded and
    /// every older checkpoint are deleted, and so are names of times before the cutoff.
    /// Rows written before the cutoff but folded into a later checkpoint stay (times
    /// after the cutoff are rebuilt from them). One transaction.
    async fn prune_history(&self, room_id: RoomId, cutoff_ms: i64) -> StoreResult<Pruned>;

    /// Bytes the room's history holds beyond its live document: folded rows and
    /// checkpoints.
    async fn history_bytes(&self, room_id: RoomId) -> StoreResult<i64>;

    /// Names the point `at_ms` (a second name for the same point is kept too; the same
    /// name twice is one row).
    async fn name_version(&self, room_id: RoomId, name: &VersionName) -> StoreResult<()>;

    /// The room's version names, oldest first.
    async fn version_names(&self, room_id: RoomId) -> StoreResult<Vec<VersionName>>;
}
