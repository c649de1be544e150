//! One query set for both backends, and [`Dialect`]: everything in which their SQL
//! really differs, in one place.
//!
//! The queries are written once, in `store/sql/` (see its module docs: compiled once
//! per backend, as `store::sqlite::sql` and `store::postgres::sql`), with `$n`
//! placeholders.
//!
//! Where one text cannot serve both, the shared code asks the backend through
//! [`Dialect`]: a constant for a statement whose text differs, a method for a step whose
//! shape differs (the hot append path, array binds vs multi-row `VALUES`, identity
//! sequences). Each backend implements it in its `dialect.rs`.

use std::future::Future;

use bytes::Bytes;

use super::export::UsageRows;
use super::usage::UsageBatch;
use super::{Append, RoomId, Seq, StoreResult};

/// The connection type of a backend's database.
pub(crate) type Conn<D> = <<D as Dialect>::Db as sqlx::Database>::Connection;

/// What the shared query set needs from a backend beyond portable SQL.
pub(crate) trait Dialect {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// The statement that begins a transaction reading one consistent snapshot of the
    /// database throughout (a room load, an export); `None` is the driver's plain
    /// `BEGIN`. SQLite: `None` (a deferred transaction's first read fixes its WAL
    /// snapshot); Postgres: REPEATABLE READ, READ ONLY.
    const BEGIN_SNAPSHOT: Option<&'static str>;

    /// The statement that begins an import's write transaction, which must keep other
    /// writers out from its emptiness check on; `None` is the plain `BEGIN`. SQLite:
    /// `BEGIN IMMEDIATE` (the write lock at once, not on the first insert after the
    /// check has read); Postgres: `None` (the copy's destination is not in use).
    const BEGIN_IMPORT: Option<&'static str>;

    /// The group commit (the hot path): appends `batch` in one transaction with one sync
    /// to disk and returns each update's seq in batch order (see
    /// [`DocStore::append`](super::DocStore::append)). SQLite: power-of-two multi-row
    /// `INSERT … RETURNING` chunks on its own connection; Postgres: one `UNNEST`
    /// statement.
    fn append_log(&self, batch: &[Append]) -> impl Future<Output = StoreResult<Vec<Seq>>> + Send;

    /// Deletes exactly the log rows `seqs` of `room_id` (a compaction's folded rows).
    /// SQLite: `IN (…)` chunks; Postgres: `= ANY($2)`.
    fn delete_log_rows(
        conn: &mut Conn<Self>,
        room_id: RoomId,
        seqs: &[Seq],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Copies the log rows `seqs` of `room_id` into `room_history` with `checkpoint`
    /// (inside a compaction's transaction, before they are deleted). SQLite: `IN (…)`
    /// chunks; Postgres: `= ANY($3)`.
    fn archive_log_rows(
        conn: &mut Conn<Self>,
        room_id: RoomId,
        seqs: &[Seq],
        checkpoint: Seq,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Adds a usage flush's rows to the hourly, project and monthly-user tables (inside
    /// the flush's transaction, after its id was recorded). SQLite: multi-row `VALUES`
    /// chunks; Postgres: one `UNNEST` statement per table. The upserts' arithmetic is
    /// the same (`max`/`GREATEST`, `max` of 0/1 vs `OR`).
    fn upsert_usage(
        conn: &mut Conn<Self>,
        batch: &UsageBatch,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Inserts a copy's usage rows as they are. SQLite: a statement per row; Postgres:
    /// one `UNNEST` statement per table.
    fn import_usage(
        conn: &mut Conn<Self>,
        rows: &UsageRows,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Inserts a copied room's log rows with their seqs. SQLite: a statement per row;
    /// Postgres: one `UNNEST` statement.
    fn import_log(
        conn: &mut Conn<Self>,
        room_id: RoomId,
        updates: &[(Seq, Bytes)],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// At the end of an import: moves the id counters past every imported id, and the
    /// log's past every snapshot's `upto_seq` too. SQLite: `sqlite_sequence`; Postgres:
    /// `setval` of each identity sequence.
    fn advance_sequences(conn: &mut Conn<Self>) -> impl Future<Output = StoreResult<()>> + Send;

    /// Closes connections after everything written is durable.
    fn close_store(&self) -> impl Future<Output = ()> + Send;
}
