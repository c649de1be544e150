//! Schema migrations: numbered SQL files embedded in the binary, applied in order, each
//! in its own transaction, recorded with a checksum so that an edited migration is
//! caught instead of silently diverging. Migrations are never edited once landed: a
//! change is a new file.

use sqlx::{Row, SqlitePool};

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
];

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
    let applied = sqlx::query("SELECT version, checksum FROM tandem_migrations ORDER BY version")
        .fetch_all(pool)
        .await?;
    let known = migrations.last().map_or(0, |m| m.version);
    for row in &applied {
        let version: i64 = row.try_get("version")?;
        let sum: String = row.try_get("checksum")?;
        match migrations.iter().find(|m| m.version == version) {
            Some(m) if checksum(m.sql) != sum => {
                return Err(StoreError::MigrationChanged {
                    version,
                    name: m.name,
                })
            }
            Some(_) => {}
            None => {
                return Err(StoreError::SchemaTooNew {
                    found: version,
                    known,
                })
            }
        }
    }
    for m in migrations {
        if applied
            .iter()
            .any(|r| r.try_get::<i64, _>("version").ok() == Some(m.version))
        {
            continue;
        }
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
