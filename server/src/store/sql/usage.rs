//! [`UsageStore`], once for both backends (migration `0003_usage.sql`); compiled once per
//! backend (see `store/sql/mod.rs`). A flush is one transaction whose first
//! statement records the flush id: on SQLite it takes the write lock at once, on Postgres
//! a concurrent attempt with the same id waits for this one's row lock, then finds it and
//! does nothing; either way a duplicate id ends the transaction before anything else is
//! written. The rows themselves go in through [`Dialect::upsert_usage`] (multi-row
//! `VALUES` on SQLite, `UNNEST` on Postgres).

use async_trait::async_trait;

use super::rows::{all, month_users, project_hour, room_hour};
use super::Store;
use crate::store::dialect::Dialect;
use crate::store::usage::{
    MonthUsers, ProjectHour, RoomHour, UsageBatch, UsageStore, FLUSH_ID_RETENTION_MS,
};
use crate::store::StoreResult;

#[async_trait]
impl UsageStore for Store {
    async fn apply_usage(
        &self,
        flush_id: &str,
        batch: &UsageBatch,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let new = sqlx::query(
            "INSERT INTO usage_flushes (flush_id, applied_at) VALUES ($1, $2)
             ON CONFLICT (flush_id) DO NOTHING",
        )
        .bind(flush_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !new {
            tx.rollback().await?;
            return Ok(false);
        }
        Store::upsert_usage(&mut *tx, batch).await?;
        sqlx::query("DELETE FROM usage_flushes WHERE applied_at < $1")
            .bind(now_ms.saturating_sub(FLUSH_ID_RETENTION_MS))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn room_hours(&self, project_id: &str, from: i64, to: i64) -> StoreResult<Vec<RoomHour>> {
        let rows = sqlx::query(
            "SELECT project_id, room, hour_start, messages_in, messages_out, bytes_in,
                    bytes_out, connection_ms, peak_connections, active, storage_bytes
             FROM usage_hourly
             WHERE project_id = $1 AND hour_start >= $2 AND hour_start < $3
             ORDER BY hour_start, room",
        )
        .bind(project_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, room_hour)
    }

    async fn project_hours(
        &self,
        project_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<ProjectHour>> {
        let rows = sqlx::query(
            "SELECT project_id, hour_start, peak_connections FROM usage_project_hourly
             WHERE project_id = $1 AND hour_start >= $2 AND hour_start < $3
             ORDER BY hour_start",
        )
        .bind(project_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, project_hour)
    }

    async fn monthly_users(
        &self,
        project_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<MonthUsers>> {
        let rows = sqlx::query(
            "SELECT month_start, COUNT(*) AS users FROM usage_users
             WHERE project_id = $1 AND month_start >= $2 AND month_start < $3
             GROUP BY month_start ORDER BY month_start",
        )
        .bind(project_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, month_users)
    }
}
