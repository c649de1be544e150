//! The storage suite: one set of story tests, written against the traits
//! (`DocStore`, `EventLog`, `ControlStore`, `Export`, `UsageStore`), run against every backend — SQLite in a
//! temporary directory, Postgres in a database of its own per test (see [`pg`]). A
//! behaviour one backend gets wrong fails there by name
//! (`store::suite::postgres::member_story`).

use std::path::PathBuf;

use super::export::Table;
use super::Stores;

mod billing;
mod control;
mod copy;
mod docs;
mod events;
mod history;
mod history_bench;
mod invitations;
mod migrations;
pub(crate) mod pg;
mod usage;
mod webhooks;

/// A store under test and where it lives (removed when dropped).
pub(crate) struct TestStore {
    pub stores: Stores,
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(pg::TestDb),
}

impl TestStore {
    /// A fresh SQLite store in a temporary directory.
    pub async fn sqlite() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::open(None, dir.path()).await.unwrap();
        Some(Self {
            stores,
            place: Place::Sqlite(dir),
        })
    }

    /// A fresh Postgres store in a new database, or `None` (test skipped) when no
    /// Postgres answers outside CI.
    pub async fn postgres() -> Option<Self> {
        let db = pg::TestDb::create().await?;
        let stores = Stores::open(Some(&db.url), &PathBuf::new()).await.unwrap();
        Some(Self {
            stores,
            place: Place::Postgres(db),
        })
    }

    /// The database's URL when on Postgres (for a test that needs its own connection).
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.place {
            Place::Postgres(db) => Some(&db.url),
            Place::Sqlite(_) => None,
        }
    }

    pub fn docs(&self) -> &dyn super::DocStore {
        &*self.stores.docs
    }

    pub fn control(&self) -> &dyn super::control::ControlStore {
        &*self.stores.control
    }

    pub fn usage(&self) -> &dyn super::usage::UsageStore {
        &*self.stores.usage
    }

    /// Rows in `table`.
    pub async fn count(&self, table: Table) -> i64 {
        let mut tx = self.stores.export.export().await.unwrap();
        tx.count(table).await.unwrap()
    }

    /// Closes the store and opens it again on the same data: a restart.
    pub async fn reopen(self) -> Self {
        self.stores.close().await;
        let stores = match &self.place {
            Place::Sqlite(dir) => Stores::open(None, dir.path()).await,
            Place::Postgres(db) => Stores::open(Some(&db.url), &PathBuf::new()).await,
        };
        Self {
            stores: stores.unwrap(),
            place: self.place,
        }
    }

    /// Every row of `table` as the raw bytes of all its columns (text as UTF-8, blobs as
    /// they are on SQLite, as Postgres's text form of the row there): what someone with
    /// a copy of the database file would see.
    pub async fn raw_rows(&self, table: Table) -> Vec<Vec<u8>> {
        match &self.place {
            Place::Sqlite(dir) => {
                use sqlx::{Connection, Row};
                let url = format!("sqlite://{}", dir.path().join("tandem.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let rows = sqlx::query(&format!("SELECT * FROM {}", table.name()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|row| {
                        let mut all = Vec::new();
                        for index in 0..row.len() {
                            // Every SQLite value reads as bytes (text as UTF-8, numbers
                            // as their text).
                            let value: Option<Vec<u8>> = row.try_get_unchecked(index).unwrap();
                            all.extend(value.unwrap_or_default());
                            all.push(0);
                        }
                        all
                    })
                    .collect()
            }
            Place::Postgres(db) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM {} t", table.name()))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                rows.into_iter().map(String::into_bytes).collect()
            }
        }
    }
}

/// Runs every story of the suite against the backend `$open` returns (`None` skips).
macro_rules! stories {
    ($open:path) => {
        stories!(@each $open;
            docs::append_load_and_compact_story,
            docs::a_large_batch_gets_seqs_in_order,
            docs::room_listing_story,
            docs::concurrent_first_loads_find_one_room,
            docs::racing_compactions_story,
            docs::a_row_committed_late_survives_compaction,
            docs::room_version_story,
            docs::read_only_setting_story,
            history::history_story,
            history::history_keeps_a_late_row,
            docs::read_unseen_story,
            control::account_story,
            control::session_story,
            control::member_story,
            control::project_story,
            control::key_story,
            control::api_keys_table_never_holds_the_plaintext,
            control::signing_key_story,
            control::audit_story,
            events::event_log_story,
            invitations::invitation_story,
            invitations::security_log_and_outbox_story,
            copy::copy_story,
            copy::copy_refuses_a_destination_with_data,
            copy::copy_refuses_a_destination_with_only_usage,
            copy::verify_catches_a_difference,
            usage::usage_story,
            webhooks::webhook_story,
            billing::billing_story,
        );
    };
    (@each $open:path; $($module:ident :: $story:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $story() {
                if let Some(store) = $open().await {
                    super::$module::$story(store).await;
                }
            }
        )*
    };
}

mod sqlite {
    stories!(super::TestStore::sqlite);
}

mod postgres {
    stories!(super::TestStore::postgres);
}
