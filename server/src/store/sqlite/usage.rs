//! [`UsageStore`] on SQLite (migration `0003_usage.sql`). A flush is one transaction whose
//! first statement records the flush id: it takes SQLite's write lock at once, and a
//! duplicate id ends the transaction before anything else is written.

use super::rows::{all, month_users, project_hour, room_hour};
use super::SqliteStore;
use crate::store::usage::{
    MonthUsers, ProjectHour, RoomHour, UsageBatch, UsageStore, FLUSH_ID_RETENTION_MS,
};
use crate::store::StoreResult;
use async_trait::async_trait;

/// Most rows per statement. While a flush holds SQLite's write lock the group-commit
/// writer waits, so rows go many to a statement (each statement is a round trip to
/// sqlx's SQLite thread); chunk sizes are powers of two so only a few statements are
/// ever prepared.
const MAX_ROWS: usize = 64;

const ROOM_INSERT: &str = "INSERT INTO usage_hourly (project_id, room, hour_start,
    messages_in, messages_out, bytes_in, bytes_out, connection_ms, peak_connections,
    active, storage_bytes) VALUES ";
const ROOM_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const ROOM_CONFLICT: &str = "
    ON CONFLICT (project_id, hour_start, room) DO UPDATE SET
        messages_in = messages_in + excluded.messages_in,
        messages_out = messages_out + excluded.messages_out,
        bytes_in = bytes_in + excluded.bytes_in,
        bytes_out = bytes_out + excluded.bytes_out,
        connection_ms = connection_ms + excluded.connection_ms,
        peak_connections = max(peak_connections, excluded.peak_connections),
        active = max(active, excluded.active),
        storage_bytes = coalesce(excluded.storage_bytes, storage_bytes)";

const PROJECT_INSERT: &str =
    "INSERT INTO usage_project_hourly (project_id, hour_start, peak_connections) VALUES ";
const PROJECT_CONFLICT: &str = "
    ON CONFLICT (project_id, hour_start) DO UPDATE SET
        peak_connections = max(peak_connections, excluded.peak_connections)";

const USER_INSERT: &str = "INSERT INTO usage_users (project_id, month_start, user_id) VALUES ";
const USER_CONFLICT: &str = " ON CONFLICT DO NOTHING";

/// `rows` split into chunks of [`MAX_ROWS`], then halving sizes.
fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = 1 << rows.len().min(MAX_ROWS).ilog2();
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

fn statement(insert: &str, row: &str, rows: usize, conflict: &str) -> String {
    format!("{insert}{}{conflict}", vec![row; rows].join(", "))
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn apply_usage(
        &self,
        flush_id: &str,
        batch: &UsageBatch,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let new = sqlx::query(
            "INSERT INTO usage_flushes (flush_id, applied_at) VALUES (?, ?)
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
        for chunk in chunks(&batch.rooms) {
            let sql = statement(ROOM_INSERT, ROOM_ROW, chunk.len(), ROOM_CONFLICT);
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.project_id)
                    .bind(&r.room)
                    .bind(r.hour_start)
                    .bind(r.messages_in)
                    .bind(r.messages_out)
                    .bind(r.bytes_in)
                    .bind(r.bytes_out)
                    .bind(r.connection_ms)
                    .bind(r.peak_connections)
                    .bind(r.active)
                    .bind(r.storage_bytes);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in chunks(&batch.projects) {
            let sql = statement(PROJECT_INSERT, "(?, ?, ?)", chunk.len(), PROJECT_CONFLICT);
            let mut query = sqlx::query(&sql);
            for p in chunk {
                query = query
                    .bind(&p.project_id)
                    .bind(p.hour_start)
                    .bind(p.peak_connections);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in chunks(&batch.users) {
            let sql = statement(USER_INSERT, "(?, ?, ?)", chunk.len(), USER_CONFLICT);
            let mut query = sqlx::query(&sql);
            for u in chunk {
                query = query
                    .bind(&u.project_id)
                    .bind(u.month_start)
                    .bind(&u.user_id);
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM usage_flushes WHERE applied_at < ?")
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
             WHERE project_id = ? AND hour_start >= ? AND hour_start < ?
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
             WHERE project_id = ? AND hour_start >= ? AND hour_start < ?
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
             WHERE project_id = ? AND month_start >= ? AND month_start < ?
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
