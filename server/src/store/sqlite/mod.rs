//! The embedded SQLite backend: one file under the data directory, WAL journal with
//! `synchronous = FULL`, so a committed transaction is on disk when `commit` returns.
//!
//! Appends (the group-commit writer's path) use a connection of their own that never
//! checkpoints: SQLite's automatic checkpoint runs inside the commit that crosses the
//! threshold and syncs the database file too, which was the slowest commit in a hundred.
//! A background task checkpoints instead, shortly after appends.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, SqlitePool};
use tokio::sync::{Mutex, Notify};

use super::{
    migrate, unix_ms, Append, DocStore, RoomId, RoomRow, RoomVersion, Seq, StoreResult, StoredDoc,
};

mod control;
mod export;
mod usage;

mod rows {
    crate::store::rows::row_decoders!(sqlx::sqlite::SqliteRow);
}

/// How long the checkpointer lets appends accumulate in the WAL before copying them
/// into the database file (one database sync per round, off the commit path).
const CHECKPOINT_DELAY: Duration = Duration::from_millis(250);

/// Room documents in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The append connection: only the group-commit writer uses it, so the lock is
    /// uncontended; it saves the pool's per-acquire liveness ping and release task.
    /// `None` once closed.
    writer: Arc<Mutex<Option<SqliteConnection>>>,
    /// Wakes the checkpointer after appends.
    appended: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if missing) `tandem.db` in `data_dir` and migrates it.
    pub async fn open_dir(data_dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir)?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("tandem.db"))
            .create_if_missing(true);
        Self::open(options).await
    }

    /// Opens a `sqlite://` URL (creating the file if missing) and migrates it.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        Self::open(SqliteConnectOptions::from_str(url)?.create_if_missing(true)).await
    }

    /// Opens a `sqlite://` URL whose file must exist, and migrates it.
    pub async fn open_existing_url(url: &str) -> StoreResult<Self> {
        Self::open(SqliteConnectOptions::from_str(url)?.create_if_missing(false)).await
    }

    async fn open(options: SqliteConnectOptions) -> StoreResult<Self> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced on every commit. This is what makes "appended"
            // mean "on disk" in the durability contract; group commit pays it once for
            // many updates.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        migrate::run_sqlite(&pool, migrate::SQLITE).await?;
        let writer = options.pragma("wal_autocheckpoint", "0").connect().await?;
        let appended = Arc::new(Notify::new());
        tokio::spawn(checkpoint_after_appends(pool.clone(), appended.clone()));
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(Some(writer))),
            appended,
        })
    }

    async fn room_id(&self, project_id: &str, room: &str) -> StoreResult<RoomId> {
        let select = "SELECT id FROM rooms WHERE project_id = ? AND name = ?";
        if let Some(row) = sqlx::query(select)
            .bind(project_id)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(row.try_get("id")?);
        }
        sqlx::query(
            "INSERT INTO rooms (project_id, name, created_at) VALUES (?, ?, ?)
             ON CONFLICT (project_id, name) DO NOTHING",
        )
        .bind(project_id)
        .bind(room)
        .bind(unix_ms())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(select)
            .bind(project_id)
            .bind(room)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// Reads the snapshot and the log rows `<= upto`, in one transaction. Every log row
    /// still stored is outside the snapshot (compaction deletes exactly what it folded),
    /// so none is filtered by the snapshot's `upto_seq`.
    async fn read(&self, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
        let mut tx = self.pool.begin().await?;
        let snapshot = sqlx::query("SELECT upto_seq, data FROM room_snapshots WHERE room_id = ?")
            .bind(room_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| -> StoreResult<(Seq, Bytes)> {
                Ok((
                    row.try_get("upto_seq")?,
                    Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
                ))
            })
            .transpose()?;
        let rows = sqlx::query(
            "SELECT seq, data FROM room_updates WHERE room_id = ? AND seq <= ? ORDER BY seq",
        )
        .bind(room_id)
        .bind(upto)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let updates = rows
            .into_iter()
            .map(|row| {
                Ok((
                    row.try_get("seq")?,
                    Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(StoredDoc {
            room_id,
            snapshot,
            updates,
        })
    }
}

/// Most rows in one INSERT (a power of two; SQLite allows 32766 bound values).
const MAX_INSERT_ROWS: usize = 256;

/// `DELETE ... WHERE room_id = ? AND seq IN (?, ...)` for `rows` seqs (a power of two up
/// to [`MAX_INSERT_ROWS`]), built once per size like [`insert_sql`], so only a few
/// distinct statements reach the statement cache.
fn delete_sql(rows: usize) -> &'static str {
    const SIZES: usize = MAX_INSERT_ROWS.ilog2() as usize + 1;
    static SQL: std::sync::OnceLock<[String; SIZES]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        std::array::from_fn(|i| {
            let seqs = vec!["?"; 1 << i].join(", ");
            format!("DELETE FROM room_updates WHERE room_id = ? AND seq IN ({seqs})")
        })
    });
    &all[rows.ilog2() as usize]
}

/// `INSERT ... VALUES (?, ?), ... RETURNING seq` for `rows` rows (a power of two up to
/// [`MAX_INSERT_ROWS`]), built once per size.
fn insert_sql(rows: usize) -> &'static str {
    const SIZES: usize = MAX_INSERT_ROWS.ilog2() as usize + 1;
    static SQL: std::sync::OnceLock<[String; SIZES]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        std::array::from_fn(|i| {
            let values = vec!["(?, ?)"; 1 << i].join(", ");
            format!("INSERT INTO room_updates (room_id, data) VALUES {values} RETURNING seq")
        })
    });
    &all[rows.ilog2() as usize]
}

#[async_trait]
impl DocStore for SqliteStore {
    async fn load(&self, project_id: &str, room: &str) -> StoreResult<StoredDoc> {
        let room_id = self.room_id(project_id, room).await?;
        self.read(room_id, Seq::MAX).await
    }

    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<Seq>> {
        let mut writer = self.writer.lock().await;
        let writer = writer.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        let mut tx = writer.begin().await?;
        let mut seqs = Vec::with_capacity(batch.len());
        // Many rows per INSERT: every statement is a round trip to sqlx's SQLite worker
        // thread, and one per update made this the busiest thread under load. Chunks
        // are powers of two so that only a few distinct statements get prepared and
        // cached.
        let mut rest = batch;
        while !rest.is_empty() {
            let rows = 1 << rest.len().min(MAX_INSERT_ROWS).ilog2();
            let (chunk, tail) = rest.split_at(rows);
            rest = tail;
            let mut query = sqlx::query(insert_sql(rows));
            for item in chunk {
                query = query.bind(item.room_id).bind(item.data.as_ref());
            }
            let mut chunk_seqs = query
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<Seq, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING yields rows in no guaranteed order, but AUTOINCREMENT gives the
            // rows of one statement increasing seqs in VALUES order.
            chunk_seqs.sort_unstable();
            seqs.extend(chunk_seqs);
        }
        tx.commit().await?;
        self.appended.notify_one();
        Ok(seqs)
    }

    async fn read_upto(&self, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
        self.read(room_id, upto).await
    }

    async fn replace_snapshot(
        &self,
        room_id: RoomId,
        expected_prev: Option<Seq>,
        upto: Seq,
        folded: &[Seq],
        data: &[u8],
    ) -> StoreResult<bool> {
        // The first statement writes, so the transaction takes SQLite's write lock at
        // once (waiting on busy_timeout) instead of failing on a late upgrade.
        let mut tx = self.pool.begin().await?;
        let written = match expected_prev {
            Some(prev) => sqlx::query(
                "UPDATE room_snapshots SET upto_seq = ?, data = ?, updated_at = ?
                 WHERE room_id = ? AND upto_seq = ?",
            )
            .bind(upto)
            .bind(data)
            .bind(unix_ms())
            .bind(room_id)
            .bind(prev),
            None => sqlx::query(
                "INSERT INTO room_snapshots (room_id, upto_seq, data, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (room_id) DO NOTHING",
            )
            .bind(room_id)
            .bind(upto)
            .bind(data)
            .bind(unix_ms()),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Exactly the rows folded, not `seq <= upto` (see the trait), in power-of-two
        // chunks.
        let mut rest = folded;
        while !rest.is_empty() {
            let rows = 1 << rest.len().min(MAX_INSERT_ROWS).ilog2();
            let (chunk, tail) = rest.split_at(rows);
            rest = tail;
            let mut query = sqlx::query(delete_sql(rows)).bind(room_id);
            for seq in chunk {
                query = query.bind(seq);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn room_version(&self, room_id: RoomId) -> StoreResult<Option<RoomVersion>> {
        // No row when the room does not exist. SUM of integers fails on overflow in
        // SQLite: the seqs of one room's log (bounded by compaction) add up to far less
        // than 2^63.
        let row = sqlx::query(
            "SELECT s.upto_seq, COUNT(u.seq) AS log_rows, MAX(u.seq) AS log_max,
                    COALESCE(SUM(u.seq), 0) AS log_seq_sum
             FROM rooms r
             LEFT JOIN room_snapshots s ON s.room_id = r.id
             LEFT JOIN room_updates u ON u.room_id = r.id
             WHERE r.id = ?
             GROUP BY r.id, s.upto_seq",
        )
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(RoomVersion {
                snapshot_upto: row.try_get("upto_seq")?,
                log_rows: row.try_get("log_rows")?,
                log_max: row.try_get("log_max")?,
                log_seq_sum: row.try_get("log_seq_sum")?,
            })
        })
        .transpose()
    }

    async fn find_room(&self, project_id: &str, room: &str) -> StoreResult<Option<RoomId>> {
        let row = sqlx::query("SELECT id FROM rooms WHERE project_id = ? AND name = ?")
            .bind(project_id)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    async fn list_rooms(
        &self,
        project_id: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RoomRow>> {
        // A prefix match as a range on the (project_id, name) index: names `>= prefix`
        // that start with it. `substr` keeps it exact for any characters (no LIKE
        // wildcards to escape).
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM rooms
             WHERE project_id = ?1
               AND (?2 IS NULL OR (name >= ?2 AND substr(name, 1, length(?2)) = ?2))
               AND (?3 IS NULL OR name > ?3)
             ORDER BY name LIMIT ?4",
        )
        .bind(project_id)
        .bind(prefix)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RoomRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn delete_room(&self, room_id: RoomId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM room_updates WHERE room_id = ?",
            "DELETE FROM room_snapshots WHERE room_id = ?",
            "DELETE FROM rooms WHERE id = ?",
        ] {
            sqlx::query(sql).bind(room_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
        self.appended.notify_one(); // the checkpointer sees the closed pool and stops
        if let Some(writer) = self.writer.lock().await.take() {
            if let Err(error) = writer.close().await {
                tracing::debug!(%error, "closing the append connection failed");
            }
        }
    }
}

/// Checkpoints the WAL a little after appends, so commits never do (see the module
/// docs). PASSIVE: it copies what it can without waiting for readers or the writer;
/// whatever it could not copy stays in the WAL, which is just as durable.
async fn checkpoint_after_appends(pool: SqlitePool, appended: Arc<Notify>) {
    loop {
        appended.notified().await;
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(%error, "WAL checkpoint failed; will retry after the next append");
        }
    }
}
