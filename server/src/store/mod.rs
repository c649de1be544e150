//! Durable storage. One trait per concern ([`DocStore`] for room documents,
//! [`control::ControlStore`] for the control plane, [`usage::UsageStore`] for metering, [`billing::BillingStore`] for Stripe billing,
//! [`export::Export`] for copying a whole installation), two backends implementing all of
//! them ([`sqlite`], embedded, the default; [`postgres`], for many nodes on one database)
//! with one query set (`store/sql/`, compiled once per backend; what differs between
//! their dialects is [`dialect::Dialect`]), the migrations that shape each ([`migrate`])
//! and the choice between them ([`Stores::open`]). All SQL lives under this folder; the
//! rest of the server sees rows and ids.

pub mod billing;
pub mod control;
pub mod copy;
pub(crate) mod dialect;
pub mod events;
pub mod export;
pub mod history;
pub mod invitations;
pub mod migrate;
mod open;
pub mod postgres;
pub(crate) mod rows;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod suite;
pub mod usage;
pub mod webhooks;

pub use open::{Backend, DatabaseUrl, Stores};

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

/// A room's row id in the store.
pub type RoomId = i64;

/// Position of an update in the store's log; increases with every append.
pub type Seq = i64;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the operation; retrying may help.
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// A uniqueness rule refused the write (the email is taken, the name exists…).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A migration already applied differs from the one in this binary.
    #[error("migration {version} ({name}) was changed after it was applied")]
    MigrationChanged {
        /// The migration's number.
        version: i64,
        /// Its file name.
        name: &'static str,
    },
    /// The database was migrated by a newer Tandem.
    #[error("database schema version {found} is newer than this binary knows ({known})")]
    SchemaTooNew {
        /// The newest version applied in the database.
        found: i64,
        /// The newest version this binary has.
        known: i64,
    },
    /// The database URL names no backend this binary has.
    #[error("database URL: {0}")]
    InvalidUrl(String),
    /// Opening the data directory failed.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything needed to rebuild a room's document, read in one consistent transaction.
#[derive(Debug, Clone, Default)]
pub struct StoredDoc {
    /// The room's id (created on first load).
    pub room_id: RoomId,
    /// The compacted snapshot and its `upto_seq` (its version: the highest seq it
    /// folded, or a previous snapshot's if higher).
    pub snapshot: Option<(Seq, Bytes)>,
    /// The log rows still stored (none of them is in the snapshot: a compaction deletes
    /// exactly the rows it folded), in seq order. Some may have seqs below the
    /// snapshot's `upto_seq`: on Postgres concurrent commits become visible out of seq
    /// order, and a compaction leaves a row it did not read.
    pub updates: Vec<(Seq, Bytes)>,
    /// The room's read-only setting (read by `load`; `false` from other reads).
    pub read_only: bool,
    /// Whether this load created the room's row (the room is new).
    pub created: bool,
}

impl StoredDoc {
    /// Bytes in the log tail (what compaction would fold away).
    pub fn log_bytes(&self) -> usize {
        self.updates.iter().map(|(_, b)| b.len()).sum()
    }
}

/// One update to append to a room's log.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// The room.
    pub room_id: RoomId,
    /// A v1 Yjs update, already validated and applied in memory.
    pub data: Bytes,
    /// Who wrote it (shared by every update of one connection).
    pub author: Arc<Attribution>,
    /// When the group commit wrote it, unix milliseconds (the engine's clock).
    pub written_at: i64,
}

/// Who wrote an update and through what: stored with every log row, so version history
/// can say who changed what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// The token's user id (`sub`), if the writer had one.
    pub user_id: Option<String>,
    /// The API key: the one a REST call used, or the one that minted the token.
    pub key_id: Option<String>,
    /// The WebSocket connection (the engine's id, unique per node run).
    pub conn_id: Option<i64>,
    /// The path the update came through.
    pub via: Via,
}

/// How an update reached the room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    /// A WebSocket connection.
    #[default]
    Socket,
    /// `POST /v1/rooms/{room}/document/update`.
    Rest,
    /// A restore of an earlier version (`POST /v1/rooms/{room}/restore`).
    Restore,
    /// The first update of a room forked from another.
    Fork,
}

impl Via {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Socket => "socket",
            Via::Rest => "rest",
            Via::Restore => "restore",
            Via::Fork => "fork",
        }
    }

    /// The stored name back (unknown names read as a socket write).
    pub fn parse(name: &str) -> Self {
        match name {
            "rest" => Via::Rest,
            "restore" => Via::Restore,
            "fork" => Via::Fork,
            _ => Via::Socket,
        }
    }
}

/// A cheap fingerprint of a room's stored document ([`DocStore::room_version`]), read
/// in one query. Nodes compare it with the one they saw last to tell whether the room
/// changed in the database meanwhile (another node appended or compacted): an append
/// adds a log row (`log_rows` grows), a compaction replaces the snapshot
/// (`snapshot_upto` strictly grows) and deletes rows. Equal versions mean an unchanged
/// document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomVersion {
    /// The snapshot's `upto_seq`, `None` when the room has no snapshot.
    pub snapshot_upto: Option<Seq>,
    /// How many log rows the room has.
    pub log_rows: i64,
    /// The highest seq in the log, `None` when it is empty.
    pub log_max: Option<Seq>,
    /// The sum of the log's seqs (0 when empty): changes whenever the set of rows does,
    /// even when their count and maximum do not.
    pub log_seq_sum: i64,
}

/// What a catch-up reads of a room's log ([`DocStore::read_unseen`]), from one snapshot
/// of the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogTail {
    /// The snapshot's `upto_seq` and size in bytes, `None` when the room has none.
    pub snapshot: Option<(Seq, usize)>,
    /// Every log row still stored: its seq and size in bytes, in seq order.
    pub rows: Vec<(Seq, usize)>,
    /// The data of the rows whose seq the reader had not seen, in seq order.
    pub updates: Vec<(Seq, Bytes)>,
}

/// A room as listed by [`DocStore::list_rooms`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRow {
    /// The room's id.
    pub id: RoomId,
    /// The room name (unique in its project).
    pub name: String,
    /// When the room was first loaded, unix milliseconds.
    pub created_at: i64,
    /// Only admin connections (and the REST API) may change the document.
    pub read_only: bool,
}

/// Room documents: a snapshot plus an append-only update log per room, and the
/// history compaction keeps ([`history::HistoryStore`]).
#[async_trait]
pub trait DocStore: events::EventLog + history::HistoryStore + Send + Sync + 'static {
    /// Loads a room (creating its row if new): the snapshot and every log row still
    /// stored, in one read.
    async fn load(&self, project_id: &str, room: &str) -> StoreResult<StoredDoc>;

    /// Appends updates, possibly for many rooms, in one transaction with one sync to
    /// disk (group commit). Returns each update's seq, in order. All or nothing.
    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<Seq>>;

    /// Reads what a compaction up to `upto` folds: the snapshot and the log rows
    /// `<= upto`, in one read.
    async fn read_upto(&self, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc>;

    /// Replaces the snapshot with `data` (the old snapshot merged with the log rows
    /// `folded`) and deletes exactly the rows `folded`, in one transaction. Rows it does
    /// not name stay, even below `upto`: on Postgres a row can commit after the
    /// compaction's read with a smaller seq than rows it read.
    ///
    /// `upto` becomes the snapshot's `upto_seq`, its version: `max(expected_prev, max
    /// folded)`, and it must exceed `expected_prev` so that every replacement changes the
    /// version. `expected_prev` is the snapshot's `upto_seq` when it was read (`None` =
    /// no snapshot); if another compaction replaced it meanwhile nothing is written and
    /// `false` is returned.
    async fn replace_snapshot(
        &self,
        room_id: RoomId,
        expected_prev: Option<Seq>,
        upto: Seq,
        folded: &[Seq],
        data: &[u8],
    ) -> StoreResult<bool>;

    /// What a node that holds the log rows `seen` (and the snapshot it loaded or last
    /// read) lacks, from one snapshot of the database: the snapshot's `upto_seq`, the
    /// seqs of every stored log row, and the data of those not in `seen`. Rows are
    /// compared by seq, not by position, so a row that committed late with a seq below
    /// rows already seen is read too. It reads the data of the rows from the lowest
    /// unseen seq on (those seen among them are dropped here), so it costs what changed
    /// since, not the document. Rows a compaction folded are gone from the log: the
    /// caller compares the snapshot's `upto_seq` with the one it holds and reads the
    /// whole document when it changed.
    async fn read_unseen(
        &self,
        room_id: RoomId,
        seen: &std::collections::BTreeSet<Seq>,
    ) -> StoreResult<LogTail>;

    /// The room's [`RoomVersion`] in one query, `None` when the room does not exist
    /// (never created, or deleted).
    async fn room_version(&self, room_id: RoomId) -> StoreResult<Option<RoomVersion>>;

    /// The room's id if it exists (never creates it).
    async fn find_room(&self, project_id: &str, room: &str) -> StoreResult<Option<RoomId>>;

    /// Sets the room's read-only setting; `false` if the room does not exist.
    async fn set_read_only(
        &self,
        project_id: &str,
        room: &str,
        read_only: bool,
    ) -> StoreResult<bool>;

    /// The room's read-only setting, `None` if the room does not exist.
    async fn read_only(&self, project_id: &str, room: &str) -> StoreResult<Option<bool>>;

    /// The project's rooms ordered by name, those with a name after `after` (a cursor)
    /// and starting with `prefix` when given, at most `limit`.
    async fn list_rooms(
        &self,
        project_id: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RoomRow>>;

    /// Erases a room: its row, snapshot and log, in one transaction.
    async fn delete_room(&self, room_id: RoomId) -> StoreResult<()>;

    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Closes connections after everything written is durable.
    async fn close(&self);
}

/// A shared handle to the configured store.
pub type SharedDocStore = Arc<dyn DocStore>;

/// Milliseconds since the Unix epoch, for `created_at`-style columns.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
