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

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqlitePool};
use tokio::sync::{Mutex, Notify};

use super::{migrate, StoreResult};

mod dialect;

// The shared query set (`store/sql/`), compiled here for this backend; its files name
// the backend `Store`, `Db` and `DbRow`.
type Store = SqliteStore;
type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;

#[allow(clippy::duplicate_mod)] // compiled once per backend, on purpose
#[path = "../sql/mod.rs"]
mod sql;

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
