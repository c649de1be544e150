//! [`UsageStore`] on Postgres (migration `0003_usage.sql`). A flush is one transaction:
//! the flush id first (a concurrent attempt with the same id waits for this one's row
//! lock, then finds it and does nothing), then one `UNNEST` statement per table, so a
//! flush costs a handful of round trips however many rooms it covers.

use async_trait::async_trait;

use super::rows::{all, month_users, project_hour, room_hour};
use super::PostgresStore;
use crate::store::usage::{
    MonthUsers, ProjectHour, RoomHour, UsageBatch, UsageStore, FLUSH_ID_RETENTION_MS,
};
use crate::store::StoreResult;

const ROOM_UPSERT: &str = "
    INSERT INTO usage_hourly AS u (project_id, room, hour_start, messages_in, messages_out,
        bytes_in, bytes_out, connection_ms, peak_connections, active, storage_bytes)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[],
        $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BOOLEAN[], $11::BIGINT[])
    ON CONFLICT (project_id, hour_start, room) DO UPDATE SET
        messages_in = u.messages_in + EXCLUDED.messages_in,
        messages_out = u.messages_out + EXCLUDED.messages_out,
        bytes_in = u.bytes_in + EXCLUDED.bytes_in,
        bytes_out = u.bytes_out + EXCLUDED.bytes_out,
        connection_ms = u.connection_ms + EXCLUDED.connection_ms,
        peak_connections = GREATEST(u.peak_connections, EXCLUDED.peak_connections),
        active = u.active OR EXCLUDED.active,
        storage_bytes = COALESCE(EXCLUDED.storage_bytes, u.storage_bytes)";

const PROJECT_UPSERT: &str = "
    INSERT INTO usage_project_hourly AS p (project_id, hour_start, peak_connections)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[])
    ON CONFLICT (project_id, hour_start) DO UPDATE SET
        peak_connections = GREATEST(p.peak_connections, EXCLUDED.peak_connections)";

const USERS_INSERT: &str = "
    INSERT INTO usage_users (project_id, month_start, user_id)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[])
    ON CONFLICT DO NOTHING";

#[async_trait]
impl UsageStore for PostgresStore {
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
        if !batch.rooms.is_empty() {
            let r = &batch.rooms;
            let col = |f: fn(&RoomHour) -> i64| r.iter().map(f).collect::<Vec<i64>>();
            sqlx::query(ROOM_UPSERT)
                .bind(r.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
                .bind(r.iter().map(|x| x.room.as_str()).collect::<Vec<_>>())
                .bind(col(|x| x.hour_start))
                .bind(col(|x| x.messages_in))
                .bind(col(|x| x.messages_out))
                .bind(col(|x| x.bytes_in))
                .bind(col(|x| x.bytes_out))
                .bind(col(|x| x.connection_ms))
                .bind(col(|x| x.peak_connections))
                .bind(r.iter().map(|x| x.active).collect::<Vec<bool>>())
                .bind(
                    r.iter()
                        .map(|x| x.storage_bytes)
                        .collect::<Vec<Option<i64>>>(),
                )
                .execute(&mut *tx)
                .await?;
        }
        if !batch.projects.is_empty() {
            let p = &batch.projects;
            sqlx::query(PROJECT_UPSERT)
                .bind(p.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
                .bind(p.iter().map(|x| x.hour_start).collect::<Vec<i64>>())
                .bind(p.iter().map(|x| x.peak_connections).collect::<Vec<i64>>())
                .execute(&mut *tx)
                .await?;
        }
        if !batch.users.is_empty() {
            let u = &batch.users;
            sqlx::query(USERS_INSERT)
                .bind(u.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
                .bind(u.iter().map(|x| x.month_start).collect::<Vec<i64>>())
                .bind(u.iter().map(|x| x.user_id.as_str()).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
        }
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
