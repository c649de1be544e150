//! [`BillingStore`], once for both backends (migration `0006_billing.sql`). Every
//! multi-statement write starts with its conditional write (the event id insert, the
//! `metered_through` move), so on SQLite the transaction holds the write lock before it
//! reads, and on Postgres a concurrent one waits on the row and then finds nothing to do.

use async_trait::async_trait;
use sqlx::Row;

use super::rows::{all, one};
use super::{Db, DbRow, Store};
use crate::ids::{ProjectId, TenantId};
use crate::store::billing::{
    meter_identifier, BillingAccountRow, BillingChange, BillingStore, MeterRow, MeterStats,
    ProjectHourTotals, Quantity,
};
use crate::store::StoreResult;

const ACCOUNT_COLUMNS: &str = "tenant_id, customer_id, subscription_id, subscription_status, \
     price_id, current_period_end, cancel_at_period_end, payment_failed_at, grace_until, \
     metered_through, state_event_at, created_at, updated_at";

const METER_COLUMNS: &str = "identifier, tenant_id, customer_id, event_name, project_id, \
     hour_start, value, created_at, attempts, next_attempt_at, last_error, sent_at";

fn account_row(row: &DbRow) -> Result<BillingAccountRow, sqlx::Error> {
    Ok(BillingAccountRow {
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        customer_id: row.try_get("customer_id")?,
        subscription_id: row.try_get("subscription_id")?,
        subscription_status: row.try_get("subscription_status")?,
        price_id: row.try_get("price_id")?,
        current_period_end: row.try_get("current_period_end")?,
        cancel_at_period_end: row.try_get("cancel_at_period_end")?,
        payment_failed_at: row.try_get("payment_failed_at")?,
        grace_until: row.try_get("grace_until")?,
        metered_through: row.try_get("metered_through")?,
        state_event_at: row.try_get("state_event_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn meter_row(row: &DbRow) -> Result<MeterRow, sqlx::Error> {
    Ok(MeterRow {
        identifier: row.try_get("identifier")?,
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        customer_id: row.try_get("customer_id")?,
        event_name: row.try_get("event_name")?,
        project_id: row.try_get("project_id")?,
        hour_start: row.try_get("hour_start")?,
        value: row.try_get("value")?,
        created_at: row.try_get("created_at")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        sent_at: row.try_get("sent_at")?,
    })
}

/// Writes a change inside `tx`: the account row (inserted or replaced), the plan, the
/// audit rows.
async fn write_change(
    tx: &mut sqlx::Transaction<'_, Db>,
    change: &BillingChange,
) -> StoreResult<()> {
    if let Some(a) = &change.account {
        sqlx::query(&format!(
            "INSERT INTO billing_accounts ({ACCOUNT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (tenant_id) DO UPDATE SET
               customer_id = excluded.customer_id,
               subscription_id = excluded.subscription_id,
               subscription_status = excluded.subscription_status,
               price_id = excluded.price_id,
               current_period_end = excluded.current_period_end,
               cancel_at_period_end = excluded.cancel_at_period_end,
               payment_failed_at = excluded.payment_failed_at,
               grace_until = excluded.grace_until,
               metered_through = excluded.metered_through,
               state_event_at = excluded.state_event_at,
               updated_at = excluded.updated_at"
        ))
        .bind(a.tenant_id.as_str())
        .bind(&a.customer_id)
        .bind(a.subscription_id.as_deref())
        .bind(a.subscription_status.as_deref())
        .bind(a.price_id.as_deref())
        .bind(a.current_period_end)
        .bind(a.cancel_at_period_end)
        .bind(a.payment_failed_at)
        .bind(a.grace_until)
        .bind(a.metered_through)
        .bind(a.state_event_at)
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(plan) = &change.plan {
        let tenant = change
            .account
            .as_ref()
            .map(|a| a.tenant_id.clone())
            .or_else(|| change.audit.first().map(|a| a.tenant_id.clone()));
        if let Some(tenant) = tenant {
            sqlx::query("UPDATE tenants SET plan = $1 WHERE id = $2")
                .bind(plan)
                .bind(tenant.as_str())
                .execute(&mut **tx)
                .await?;
        }
    }
    for event in &change.audit {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, project_id, actor, action, target, ip, details, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.tenant_id.as_str())
        .bind(event.project_id.as_ref().map(ProjectId::as_str))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.target.as_deref())
        .bind(event.ip.as_deref())
        .bind(&event.details)
        .bind(event.at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl BillingStore for Store {
    async fn billing_account(
        &self,
        tenant_id: &TenantId,
    ) -> StoreResult<Option<BillingAccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE tenant_id = $1"
        ))
        .bind(tenant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, account_row)
    }

    async fn billing_account_by_customer(
        &self,
        customer_id: &str,
    ) -> StoreResult<Option<BillingAccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE customer_id = $1"
        ))
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await?;
        one(row, account_row)
    }

    async fn remember_customer(
        &self,
        account: &BillingAccountRow,
    ) -> StoreResult<BillingAccountRow> {
        sqlx::query(
            "INSERT INTO billing_accounts (tenant_id, customer_id, created_at, updated_at)
             VALUES ($1, $2, $3, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(account.tenant_id.as_str())
        .bind(&account.customer_id)
        .bind(account.created_at)
        .execute(&self.pool)
        .await?;
        self.billing_account(&account.tenant_id)
            .await?
            .ok_or_else(|| crate::store::StoreError::Conflict("billing account vanished".into()))
    }

    async fn apply_stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        tenant_id: Option<&TenantId>,
        received_at: i64,
        change: &BillingChange,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "INSERT INTO stripe_events (event_id, event_type, tenant_id, received_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(event_type)
        .bind(tenant_id.map(TenantId::as_str))
        .bind(received_at)
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        write_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn apply_grace_expiry(
        &self,
        tenant_id: &TenantId,
        grace_until: i64,
        change: &BillingChange,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE billing_accounts SET grace_until = NULL
             WHERE tenant_id = $1 AND grace_until = $2",
        )
        .bind(tenant_id.as_str())
        .bind(grace_until)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        write_change(&mut tx, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn accounts_past_grace(&self, now: i64) -> StoreResult<Vec<BillingAccountRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts
             WHERE grace_until IS NOT NULL AND grace_until <= $1 ORDER BY tenant_id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, account_row)
    }

    async fn accounts_to_meter(&self, before: i64) -> StoreResult<Vec<BillingAccountRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts
             WHERE metered_through IS NOT NULL AND metered_through < $1 ORDER BY tenant_id"
        ))
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, account_row)
    }

    async fn queue_meter_hours(
        &self,
        tenant_id: &TenantId,
        from: i64,
        to: i64,
        meters: &[(Quantity, String)],
        now: i64,
    ) -> StoreResult<Option<usize>> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE billing_accounts SET metered_through = $1
             WHERE tenant_id = $2 AND metered_through = $3",
        )
        .bind(to)
        .bind(tenant_id.as_str())
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let customer: String =
            sqlx::query("SELECT customer_id FROM billing_accounts WHERE tenant_id = $1")
                .bind(tenant_id.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("customer_id")?;
        let rooms = sqlx::query(
            "SELECT u.project_id, u.hour_start,
                    CAST(SUM(u.messages_in) AS BIGINT) AS messages_in,
                    CAST(SUM(u.messages_out) AS BIGINT) AS messages_out,
                    CAST(SUM(u.bytes_in) AS BIGINT) AS bytes_in,
                    CAST(SUM(u.bytes_out) AS BIGINT) AS bytes_out,
                    CAST(SUM(u.connection_ms) AS BIGINT) AS connection_ms
             FROM usage_hourly u JOIN projects p ON p.id = u.project_id
             WHERE p.tenant_id = $1 AND u.hour_start >= $2 AND u.hour_start < $3
             GROUP BY u.project_id, u.hour_start",
        )
        .bind(tenant_id.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        let mut hours: std::collections::BTreeMap<(String, i64), ProjectHourTotals> =
            Default::default();
        for row in &rooms {
            let project_id: String = row.try_get("project_id")?;
            let hour_start: i64 = row.try_get("hour_start")?;
            hours.insert(
                (project_id.clone(), hour_start),
                ProjectHourTotals {
                    project_id,
                    hour_start,
                    messages_in: row.try_get("messages_in")?,
                    messages_out: row.try_get("messages_out")?,
                    bytes_in: row.try_get("bytes_in")?,
                    bytes_out: row.try_get("bytes_out")?,
                    connection_ms: row.try_get("connection_ms")?,
                    peak_connections: 0,
                },
            );
        }
        let peaks = sqlx::query(
            "SELECT u.project_id, u.hour_start, u.peak_connections
             FROM usage_project_hourly u JOIN projects p ON p.id = u.project_id
             WHERE p.tenant_id = $1 AND u.hour_start >= $2 AND u.hour_start < $3",
        )
        .bind(tenant_id.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        for row in &peaks {
            let project_id: String = row.try_get("project_id")?;
            let hour_start: i64 = row.try_get("hour_start")?;
            let entry = hours
                .entry((project_id.clone(), hour_start))
                .or_insert_with(|| ProjectHourTotals {
                    project_id,
                    hour_start,
                    ..Default::default()
                });
            entry.peak_connections = row.try_get("peak_connections")?;
        }
        let mut queued = 0;
        for hour in hours.values() {
            for (quantity, event_name) in meters {
                let value = quantity.value(hour);
                if value <= 0 {
                    continue;
                }
                let done = sqlx::query(&format!(
                    "INSERT INTO meter_outbox ({METER_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8, NULL, NULL)
                     ON CONFLICT (identifier) DO NOTHING"
                ))
                .bind(meter_identifier(
                    &hour.project_id,
                    hour.hour_start,
                    *quantity,
                ))
                .bind(tenant_id.as_str())
                .bind(&customer)
                .bind(event_name)
                .bind(&hour.project_id)
                .bind(hour.hour_start)
                .bind(value)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                queued += usize::try_from(done.rows_affected()).unwrap_or(0);
            }
        }
        tx.commit().await?;
        Ok(Some(queued))
    }

    async fn due_meter_events(&self, now: i64, limit: u32) -> StoreResult<Vec<MeterRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {METER_COLUMNS} FROM meter_outbox
             WHERE sent_at IS NULL AND next_attempt_at <= $1
             ORDER BY next_attempt_at, identifier LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(&rows, meter_row)
    }

    async fn claim_meter_event(
        &self,
        identifier: &str,
        seen: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE meter_outbox SET next_attempt_at = $1
             WHERE identifier = $2 AND next_attempt_at = $3 AND sent_at IS NULL",
        )
        .bind(lease_until)
        .bind(identifier)
        .bind(seen)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn meter_event_sent(&self, identifier: &str, at: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE meter_outbox SET sent_at = $1, attempts = attempts + 1, last_error = NULL
             WHERE identifier = $2",
        )
        .bind(at)
        .bind(identifier)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn meter_event_failed(
        &self,
        identifier: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE meter_outbox
             SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2
             WHERE identifier = $3 AND sent_at IS NULL",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(identifier)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn meter_stats(&self, tenant_id: Option<&TenantId>) -> StoreResult<MeterStats> {
        // `$1 IS NULL` with an untyped NULL needs a type on Postgres: compare as text.
        let row = sqlx::query(
            "SELECT
               CAST(COALESCE(SUM(CASE WHEN sent_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending,
               CAST(COALESCE(SUM(CASE WHEN sent_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS failing,
               CAST(COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS sent,
               CAST(COALESCE(SUM(CASE WHEN sent_at IS NULL THEN value ELSE 0 END), 0) AS BIGINT) AS pending_value,
               MIN(CASE WHEN sent_at IS NULL AND attempts > 0 THEN next_attempt_at END) AS next_attempt_at
             FROM meter_outbox WHERE (CAST($1 AS TEXT) = '' OR tenant_id = $1)",
        )
        .bind(tenant_id.map_or("", TenantId::as_str))
        .fetch_one(&self.pool)
        .await?;
        let last_error: Option<String> = sqlx::query(
            "SELECT last_error FROM meter_outbox
             WHERE sent_at IS NULL AND last_error IS NOT NULL
               AND (CAST($1 AS TEXT) = '' OR tenant_id = $1)
             ORDER BY next_attempt_at DESC LIMIT 1",
        )
        .bind(tenant_id.map_or("", TenantId::as_str))
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get("last_error"))
        .transpose()?;
        Ok(MeterStats {
            pending: row.try_get("pending")?,
            failing: row.try_get("failing")?,
            sent: row.try_get("sent")?,
            pending_value: row.try_get("pending_value")?,
            last_error,
            next_attempt_at: row.try_get("next_attempt_at")?,
        })
    }

    async fn meter_rows(&self, tenant_id: &TenantId, limit: u32) -> StoreResult<Vec<MeterRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {METER_COLUMNS} FROM meter_outbox WHERE tenant_id = $1
             ORDER BY hour_start DESC, identifier LIMIT $2"
        ))
        .bind(tenant_id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(&rows, meter_row)
    }
}
