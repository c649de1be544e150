//! Schema migrations: numbered SQL files embedded in the binary, applied in order, each
//! in its own transaction, recorded with a checksum so that an edited migration is
//! caught instead of silently diverging. Migrations are never edited once landed: a
//! change is a new file.
//!
//! Each backend has its own files (`migrations/sqlite`, `migrations/postgres`) with the
//! same numbers and the same schema in its own dialect, and the same bookkeeping table,
//! `tandem_migrations`. On Postgres several nodes may start at once against one database:
//! the runner holds an advisory lock for the whole run, so one node migrates and the others
//! wait, then find nothing left to do.

use sqlx::{PgConnection, PgPool, Row, SqlitePool};

use super::{unix_ms, StoreError, StoreResult};

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in increasing order.
    pub version: i64,
    /// The file name, for messages.
    pub name: &'static str,
    /// The SQL (may hold several statements).
    pub sql: &'static str,
}

/// The SQLite migrations, in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_rooms.sql",
        sql: include_str!("../../migrations/sqlite/0001_rooms.sql"),
    },
    Migration {
        version: 2,
        name: "0002_control.sql",
        sql: include_str!("../../migrations/sqlite/0002_control.sql"),
    },
    Migration {
        version: 3,
        name: "0003_usage.sql",
        sql: include_str!("../../migrations/sqlite/0003_usage.sql"),
    },
    Migration {
        version: 4,
        name: "0004_invitations.sql",
        sql: include_str!("../../migrations/sqlite/0004_invitations.sql"),
    },
    Migration {
        version: 5,
        name: "0005_webhooks.sql",
        sql: include_str!("../../migrations/sqlite/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        name: "0006_billing.sql",
        sql: include_str!("../../migrations/sqlite/0006_billing.sql"),
    },
    Migration {
        version: 7,
        name: "0007_history.sql",
        sql: include_str!("../../migrations/sqlite/0007_history.sql"),
    },
    Migration {
        version: 8,
        name: "0008_security.sql",
        sql: include_str!("../../migrations/sqlite/0008_security.sql"),
    },
    Migration {
        version: 9,
        name: "0009_inspector_sessions.sql",
        sql: include_str!("../../migrations/sqlite/0009_inspector_sessions.sql"),
    },
];

/// The Postgres migrations, in order (same numbers as [`SQLITE`]).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_rooms.sql",
        sql: include_str!("../../migrations/postgres/0001_rooms.sql"),
    },
    Migration {
        version: 2,
        name: "0002_control.sql",
        sql: include_str!("../../migrations/postgres/0002_control.sql"),
    },
    Migration {
        version: 3,
        name: "0003_usage.sql",
        sql: include_str!("../../migrations/postgres/0003_usage.sql"),
    },
    Migration {
        version: 4,
        name: "0004_invitations.sql",
        sql: include_str!("../../migrations/postgres/0004_invitations.sql"),
    },
    Migration {
        version: 5,
        name: "0005_webhooks.sql",
        sql: include_str!("../../migrations/postgres/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        name: "0006_billing.sql",
        sql: include_str!("../../migrations/postgres/0006_billing.sql"),
    },
    Migration {
        version: 7,
        name: "0007_history.sql",
        sql: include_str!("../../migrations/postgres/0007_history.sql"),
    },
    Migration {
        version: 8,
        name: "0008_security.sql",
        sql: include_str!("../../migrations/postgres/0008_security.sql"),
    },
    Migration {
        version: 9,
        name: "0009_inspector_sessions.sql",
        sql: include_str!("../../migrations/postgres/0009_inspector_sessions.sql"),
    },
];

/// The advisory lock key (`pg_advisory_lock`) that serialises migration runs on one
/// Postgres database: "tandem" in ASCII, then 1.
const POSTGRES_LOCK_KEY: i64 = 0x7461_6e64_656d_0001;

/// FNV-1a, 64 bits: stable across Rust releases (unlike `std`'s hasher), enough to
/// notice an edited file.
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Which of `migrations` still need applying, given the `(version, checksum)` rows already
/// recorded. Fails if an applied one was edited or the database is newer than this binary.
fn pending<'m>(
    applied: &[(i64, String)],
    migrations: &'m [Migration],
) -> StoreResult<Vec<&'m Migration>> {
    let known = migrations.last().map_or(0, |m| m.version);
    for (version, sum) in applied {
        match migrations.iter().find(|m| m.version == *version) {
            Some(m) if checksum(m.sql) != *sum => {
                return Err(StoreError::MigrationChanged {
                    version: *version,
                    name: m.name,
                })
            }
            Some(_) => {}
            None => {
                return Err(StoreError::SchemaTooNew {
                    found: *version,
                    known,
                })
            }
        }
    }
    Ok(migrations
        .iter()
        .filter(|m| !applied.iter().any(|(version, _)| *version == m.version))
        .collect())
}

fn applied_rows<R: Row>(rows: &[R]) -> Result<Vec<(i64, String)>, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    rows.iter()
        .map(|row| Ok((row.try_get("version")?, row.try_get("checksum")?)))
        .collect()
}

/// Applies every migration not yet applied. Fails if an applied one was edited or the
/// database is newer than this binary.
pub async fn run_sqlite(pool: &SqlitePool, migrations: &[Migration]) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS tandem_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    let rows = sqlx::query("SELECT version, checksum FROM tandem_migrations ORDER BY version")
        .fetch_all(pool)
        .await?;
    let pending: Vec<Migration> = pending(&applied_rows(&rows)?, migrations)?
        .into_iter()
        .copied()
        .collect();
    for m in pending {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO tandem_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(checksum(m.sql))
        .bind(unix_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

/// [`run_sqlite`] for Postgres, under a session advisory lock held for the whole run
/// (on one connection), so that nodes starting together do not race: the first migrates,
/// the others wait and then find every migration applied.
pub async fn run_postgres(pool: &PgPool, migrations: &[Migration]) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(POSTGRES_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let result = migrate_postgres(&mut conn, migrations).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(POSTGRES_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    if let Err(error) = unlocked {
        // The session may still hold the lock: never hand it back to the pool. Dropping
        // the detached connection closes it, which releases every lock it held.
        tracing::warn!(%error, "releasing the migration lock failed; closing its connection");
        drop(conn.detach());
    }
    result
}

async fn migrate_postgres(conn: &mut PgConnection, migrations: &[Migration]) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS tandem_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query("SELECT version, checksum FROM tandem_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await?;
    let pending: Vec<Migration> = pending(&applied_rows(&rows)?, migrations)?
        .into_iter()
        .copied()
        .collect();
    for m in pending {
        // DDL is transactional on Postgres: a failed migration leaves nothing behind.
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // A bare string (no arguments) goes through Postgres's simple query protocol,
        // which runs several statements (`raw_sql` would too, but its future is not
        // `Send` here: rustc's "Executor is not general enough").
        sqlx::Executor::execute(&mut *tx, m.sql).await?;
        sqlx::query(
            "INSERT INTO tandem_migrations (version, name, checksum, applied_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(checksum(m.sql))
        .bind(unix_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_stable() {
        // Pinned: a different value means the function changed and every installed
        // database would refuse to start.
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_eq!(checksum("a"), "af63dc4c8601ec8c");
    }
}
