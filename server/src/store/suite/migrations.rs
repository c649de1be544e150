//! The migration runner on each backend: idempotent, edits and newer schemas refused,
//! and (Postgres) nodes starting together against one empty database.

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::pg::TestDb;
use crate::store::migrate::{self, Migration};
use crate::store::postgres::PostgresStore;
use crate::store::StoreError;

fn edited(first: &Migration) -> [Migration; 1] {
    [Migration {
        sql: "CREATE TABLE x (y INTEGER);",
        ..*first
    }]
}

#[tokio::test]
async fn sqlite_migrations_are_idempotent_and_edits_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("tandem.db"))
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    migrate::run_sqlite(&pool, migrate::SQLITE).await.unwrap();
    migrate::run_sqlite(&pool, migrate::SQLITE).await.unwrap();
    let err = migrate::run_sqlite(&pool, &edited(&migrate::SQLITE[0]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::MigrationChanged { version: 1, .. }
    ));
    let err = migrate::run_sqlite(&pool, &[]).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::SchemaTooNew { found: 1, known: 0 }
    ));
}

#[tokio::test]
async fn postgres_migrations_are_idempotent_and_edits_are_caught() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let pool = PgPoolOptions::new().connect(&db.url).await.unwrap();
    migrate::run_postgres(&pool, migrate::POSTGRES)
        .await
        .unwrap();
    migrate::run_postgres(&pool, migrate::POSTGRES)
        .await
        .unwrap();
    let err = migrate::run_postgres(&pool, &edited(&migrate::POSTGRES[0]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::MigrationChanged { version: 1, .. }
    ));
    let err = migrate::run_postgres(&pool, &[]).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::SchemaTooNew { found: 1, known: 0 }
    ));
    // A failed run released the advisory lock: the next one does not wait forever.
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        migrate::run_postgres(&pool, migrate::POSTGRES),
    );
    again.await.expect("the lock was released").unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_starting_together_migrate_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    // Each "node" has its own pool, connected before they all start migrating at once.
    const NODES: usize = 6;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(NODES));
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let pool = PgPoolOptions::new().connect(&db.url).await.unwrap();
        let start = start.clone();
        nodes.push(tokio::spawn(async move {
            start.wait().await;
            let migrated = migrate::run_postgres(&pool, migrate::POSTGRES).await;
            pool.close().await;
            migrated
        }));
    }
    for node in nodes {
        node.await.unwrap().expect("every node starts");
    }
    let store = PostgresStore::open_url(&db.url).await.unwrap();
    crate::store::DocStore::close(&store).await;
    let pool = PgPoolOptions::new().connect(&db.url).await.unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM tandem_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let known: Vec<i64> = migrate::POSTGRES.iter().map(|m| m.version).collect();
    assert_eq!(applied, known);
    pool.close().await;
}

#[test]
fn both_backends_have_the_same_migration_numbers() {
    let numbers = |all: &[Migration]| all.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
    assert_eq!(numbers(migrate::SQLITE), numbers(migrate::POSTGRES));
}
