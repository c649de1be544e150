//! [`EventLog`], once for both backends (migration `0008_security.sql`); compiled once
//! per backend (see `store/sql/mod.rs`).

use async_trait::async_trait;
use sqlx::Row;

use super::Store;
use crate::store::events::{EventLog, EventRow};
use crate::store::StoreResult;

#[async_trait]
impl EventLog for Store {
    async fn append_event(&self, event: &str, at: i64) -> StoreResult<i64> {
        let row =
            sqlx::query("INSERT INTO control_events (event, at) VALUES ($1, $2) RETURNING id")
                .bind(event)
                .bind(at)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("id")?)
    }

    async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT id, event, at FROM control_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(EventRow {
                    id: row.try_get("id")?,
                    event: row.try_get("event")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    async fn last_event_id(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS last FROM control_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("last")?)
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM control_events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
