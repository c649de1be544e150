//! The Postgres backend, for installations that outgrow one machine: every node points at
//! one database (`--database-url postgres://…`). Same schema and semantics as the SQLite
//! backend (the shared suite in `store/suite` runs against both), in Postgres's dialect
//! (`migrations/postgres`).
//!
//! Durability: a commit returns once its WAL record is flushed, with Postgres's default
//! `synchronous_commit = on`; opening the store warns if the server is set otherwise,
//! because "appended" must mean "on disk" for the durability contract.
//!
//! sqlx is built without TLS: connect over loopback, a Unix socket or a private network
//! (or a TLS-terminating proxy such as pgbouncer or a sidecar).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::{migrate, StoreResult};

mod dialect;

// The shared query set (`store/sql/`), compiled here for this backend; its files name
// the backend `Store`, `Db` and `DbRow`.
type Store = PostgresStore;
type Db = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;

#[allow(clippy::duplicate_mod)] // compiled once per backend, on purpose
#[path = "../sql/mod.rs"]
mod sql;

/// Connections per node. Enough for the group-commit writer, compactions and REST
/// reads to overlap; small enough that tens of nodes fit Postgres's default
/// `max_connections = 100` (put a pooler in front beyond that).
const MAX_CONNECTIONS: u32 = 8;

/// Room documents and the control plane in Postgres.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and migrates the database (under an advisory
    /// lock, so nodes starting together do not race).
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("tandem");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        migrate::run_postgres(&pool, migrate::POSTGRES).await?;
        let sync: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&pool)
            .await?;
        // `local`, `remote_write`, `remote_apply` and `on` all flush the local WAL first.
        if sync == "off" {
            tracing::warn!(
                synchronous_commit = %sync,
                "Postgres may acknowledge commits before they are on disk: updates a client \
                 has received can be lost in a crash; set synchronous_commit = on"
            );
        }
        Ok(Self { pool })
    }
}
