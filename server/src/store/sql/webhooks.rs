//! [`WebhookStore`], once for both backends (migration `0005_webhooks.sql`).

use async_trait::async_trait;
use sqlx::Row;

use super::rows::{all, one};
use super::{DbRow, Store};
use crate::ids::{DeliveryId, EventId, ProjectId, TenantId, WebhookId};
use crate::store::rows::{conflict, stored};
use crate::store::webhooks::{
    AttemptOutcome, ClaimedDelivery, DeliveryRow, DeliveryStatus, EventRow, NewEvent, WebhookPatch,
    WebhookRow, WebhookStore,
};
use crate::store::StoreResult;

const EVENT_COLUMNS: &str = "id, project_id, seq, type, room, data, created_at";
const WEBHOOK_COLUMNS: &str = "id, project_id, url, description, event_types, secret, \
                               previous_secret, previous_expires_at, disabled_at, \
                               disabled_reason, last_success_at, created_at, updated_at";
const DELIVERY_COLUMNS: &str =
    "d.id, d.webhook_id, d.event_id, d.event_seq, e.type AS event_type, \
                                d.status, d.attempts, d.next_attempt_at, d.last_status, \
                                d.last_error, d.last_attempt_at, d.created_at, d.delivered_at";

fn event_row(row: &DbRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        id: EventId::from_db(row.try_get("id")?),
        project_id: ProjectId::from_db(row.try_get("project_id")?),
        seq: row.try_get("seq")?,
        event_type: row.try_get("type")?,
        room: row.try_get("room")?,
        data: row.try_get("data")?,
        created_at: row.try_get("created_at")?,
    })
}

fn webhook_row(row: &DbRow) -> Result<WebhookRow, sqlx::Error> {
    let types: String = row.try_get("event_types")?;
    Ok(WebhookRow {
        id: WebhookId::from_db(row.try_get("id")?),
        project_id: ProjectId::from_db(row.try_get("project_id")?),
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: serde_json::from_str(&types).map_err(|e| sqlx::Error::ColumnDecode {
            index: "event_types".to_owned(),
            source: Box::new(e),
        })?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_expires_at: row.try_get("previous_expires_at")?,
        disabled_at: row.try_get("disabled_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
        last_success_at: row.try_get("last_success_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn delivery_row(row: &DbRow) -> Result<DeliveryRow, sqlx::Error> {
    Ok(DeliveryRow {
        id: DeliveryId::from_db(row.try_get("id")?),
        webhook_id: WebhookId::from_db(row.try_get("webhook_id")?),
        event_id: EventId::from_db(row.try_get("event_id")?),
        event_seq: row.try_get("event_seq")?,
        event_type: row.try_get("event_type")?,
        status: stored("status", row.try_get("status")?, DeliveryStatus::parse)?,
        attempts: row.try_get::<i64, _>("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get::<Option<i64>, _>("last_status")?,
        last_error: row.try_get("last_error")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

fn types_json(types: &[String]) -> String {
    serde_json::Value::from(types.to_vec()).to_string()
}

#[async_trait]
impl WebhookStore for Store {
    async fn record_events(
        &self,
        project_id: &ProjectId,
        events: &[NewEvent],
    ) -> StoreResult<Vec<EventRow>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        // The first statement writes, so SQLite takes its write lock now (not on a late
        // upgrade), and on Postgres the counter row stays locked until commit: the
        // project's events commit in seq order.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO event_counters (project_id, last_seq)
             SELECT id, 0 FROM projects WHERE id = $1
             ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project_id.as_str())
        .execute(&mut *tx)
        .await?;
        let Some(last) = sqlx::query(
            "UPDATE event_counters SET last_seq = last_seq + $1 WHERE project_id = $2
             RETURNING last_seq",
        )
        .bind(count)
        .bind(project_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            // The project is gone (or never existed, e.g. anonymous rooms).
            tx.rollback().await?;
            return Ok(Vec::new());
        };
        let last: i64 = last.try_get("last_seq")?;
        let endpoints = all(
            &sqlx::query(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                 WHERE project_id = $1 AND disabled_at IS NULL"
            ))
            .bind(project_id.as_str())
            .fetch_all(&mut *tx)
            .await?,
            webhook_row,
        )?;
        let mut recorded = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let seq = last - count + 1 + i64::try_from(i).unwrap_or_default();
            sqlx::query(
                "INSERT INTO events (id, project_id, seq, type, room, data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event.id.as_str())
            .bind(project_id.as_str())
            .bind(seq)
            .bind(&event.event_type)
            .bind(&event.room)
            .bind(&event.data)
            .bind(event.created_at)
            .execute(&mut *tx)
            .await?;
            for endpoint in endpoints.iter().filter(|w| w.wants(&event.event_type)) {
                let id = DeliveryId::generate()
                    .map_err(|e| sqlx::Error::Protocol(format!("delivery id: {e}")))?;
                sqlx::query(
                    "INSERT INTO webhook_deliveries
                        (id, webhook_id, event_id, event_seq, order_key, status, attempts,
                         next_attempt_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
                )
                .bind(id.as_str())
                .bind(endpoint.id.as_str())
                .bind(event.id.as_str())
                .bind(seq)
                .bind(&event.room)
                .bind(event.created_at)
                .execute(&mut *tx)
                .await?;
            }
            recorded.push(EventRow {
                id: event.id.clone(),
                project_id: project_id.clone(),
                seq,
                event_type: event.event_type.clone(),
                room: event.room.clone(),
                data: event.data.clone(),
                created_at: event.created_at,
            });
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn list_events(
        &self,
        project_id: &ProjectId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3"
        ))
        .bind(project_id.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(&rows, event_row)
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn create_webhook(&self, webhook: &WebhookRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, project_id, url, description, event_types, secret,
                                   created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(webhook.id.as_str())
        .bind(webhook.project_id.as_str())
        .bind(&webhook.url)
        .bind(&webhook.description)
        .bind(types_json(&webhook.event_types))
        .bind(&webhook.secret)
        .bind(webhook.created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict("webhook already exists"))?;
        Ok(())
    }

    async fn list_webhooks(&self, project_id: &ProjectId) -> StoreResult<Vec<WebhookRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE project_id = $1
             ORDER BY created_at, id"
        ))
        .bind(project_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        all(&rows, webhook_row)
    }

    async fn webhook(
        &self,
        project_id: &ProjectId,
        id: &WebhookId,
    ) -> StoreResult<Option<WebhookRow>> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, webhook_row)
    }

    async fn update_webhook(
        &self,
        project_id: &ProjectId,
        id: &WebhookId,
        patch: &WebhookPatch,
        at: i64,
    ) -> StoreResult<Option<WebhookRow>> {
        // NULL parameters keep the column; `enabled` maps to three states of disabled_at.
        let enable: Option<i64> = patch.enabled.map(i64::from);
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET
                url = COALESCE($3, url),
                description = COALESCE($4, description),
                event_types = COALESCE($5, event_types),
                disabled_at = CASE WHEN $6 = 1 THEN NULL
                                   WHEN $6 = 0 THEN COALESCE(disabled_at, $7)
                                   ELSE disabled_at END,
                disabled_reason = CASE WHEN $6 = 1 THEN NULL
                                       WHEN $6 = 0 THEN COALESCE(disabled_reason, 'disabled by the tenant')
                                       ELSE disabled_reason END,
                updated_at = $7
             WHERE project_id = $1 AND id = $2
             RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(project_id.as_str())
        .bind(id.as_str())
        .bind(&patch.url)
        .bind(&patch.description)
        .bind(patch.event_types.as_deref().map(types_json))
        .bind(enable)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        one(row, webhook_row)
    }

    async fn roll_webhook_secret(
        &self,
        project_id: &ProjectId,
        id: &WebhookId,
        secret: &[u8],
        previous_expires_at: i64,
        at: i64,
    ) -> StoreResult<Option<WebhookRow>> {
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET previous_secret = secret, previous_expires_at = $4,
                                 secret = $3, updated_at = $5
             WHERE project_id = $1 AND id = $2
             RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(project_id.as_str())
        .bind(id.as_str())
        .bind(secret)
        .bind(previous_expires_at)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        one(row, webhook_row)
    }

    async fn delete_webhook(&self, project_id: &ProjectId, id: &WebhookId) -> StoreResult<bool> {
        Ok(
            sqlx::query("DELETE FROM webhooks WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    async fn disable_webhook(
        &self,
        id: &WebhookId,
        reason: &str,
        at: i64,
    ) -> StoreResult<Option<WebhookRow>> {
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET disabled_at = $2, disabled_reason = $3, updated_at = $2
             WHERE id = $1 AND disabled_at IS NULL
             RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(id.as_str())
        .bind(at)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        one(row, webhook_row)
    }

    async fn list_deliveries(
        &self,
        project_id: &ProjectId,
        webhook_id: &WebhookId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             JOIN webhooks w ON w.id = d.webhook_id
             JOIN events e ON e.id = d.event_id
             WHERE w.project_id = $1 AND d.webhook_id = $2 AND d.event_seq < $3
             ORDER BY d.event_seq DESC LIMIT $4"
        ))
        .bind(project_id.as_str())
        .bind(webhook_id.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(&rows, delivery_row)
    }

    async fn retry_delivery(
        &self,
        project_id: &ProjectId,
        webhook_id: &WebhookId,
        id: &DeliveryId,
        now: i64,
    ) -> StoreResult<Option<DeliveryRow>> {
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4
             WHERE id = $3 AND webhook_id = $2
               AND webhook_id IN (SELECT id FROM webhooks WHERE project_id = $1)",
        )
        .bind(project_id.as_str())
        .bind(webhook_id.as_str())
        .bind(id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             JOIN events e ON e.id = d.event_id WHERE d.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, delivery_row)
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        // The outer WHERE repeats the lease test: on Postgres a concurrent claim of the
        // same row makes this UPDATE wait for its lock and then re-check the condition
        // against the committed row, which is leased by then, so it is skipped.
        let claimed = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $2
             WHERE id IN (
                 SELECT d.id FROM webhook_deliveries d
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                   AND (d.lease_until IS NULL OR d.lease_until <= $1)
                   AND w.disabled_at IS NULL
                   AND (d.order_key IS NULL OR NOT EXISTS (
                       SELECT 1 FROM webhook_deliveries o
                       WHERE o.webhook_id = d.webhook_id AND o.order_key = d.order_key
                         AND o.status = 'pending' AND o.event_seq < d.event_seq))
                 ORDER BY d.next_attempt_at, d.event_seq
                 LIMIT $3)
               AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $1)
             RETURNING id",
        )
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(claimed.len());
        for row in claimed {
            let id: String = row.try_get("id")?;
            let Some(joined) = sqlx::query(&format!(
                "SELECT {DELIVERY_COLUMNS}, e.project_id AS e_project_id, e.seq AS e_seq,
                        e.room AS e_room, e.data AS e_data, e.created_at AS e_created_at
                 FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.id = $1"
            ))
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?
            else {
                continue;
            };
            let delivery = delivery_row(&joined)?;
            let event = EventRow {
                id: delivery.event_id.clone(),
                project_id: ProjectId::from_db(joined.try_get("e_project_id")?),
                seq: joined.try_get("e_seq")?,
                event_type: delivery.event_type.clone(),
                room: joined.try_get("e_room")?,
                data: joined.try_get("e_data")?,
                created_at: joined.try_get("e_created_at")?,
            };
            let Some(webhook) = one(
                sqlx::query(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
                ))
                .bind(delivery.webhook_id.as_str())
                .fetch_optional(&self.pool)
                .await?,
                webhook_row,
            )?
            else {
                continue;
            };
            out.push(ClaimedDelivery {
                delivery,
                event,
                webhook,
            });
        }
        Ok(out)
    }

    async fn finish_attempt(
        &self,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        at: i64,
    ) -> StoreResult<()> {
        let (status, http, error, next, delivered_at) = match outcome {
            AttemptOutcome::Delivered { status } => {
                ("delivered", Some(*status), None, at, Some(at))
            }
            AttemptOutcome::Retry {
                status,
                error,
                next_attempt_at,
            } => (
                "pending",
                *status,
                Some(error.as_str()),
                *next_attempt_at,
                None,
            ),
            AttemptOutcome::Failed { status, error } => {
                ("failed", *status, Some(error.as_str()), at, None)
            }
        };
        let mut tx = self.pool.begin().await?;
        let webhook = sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1,
                    next_attempt_at = $3, lease_until = NULL, last_status = $4,
                    last_error = $5, last_attempt_at = $6, delivered_at = $7
             WHERE id = $1
             RETURNING webhook_id",
        )
        .bind(id.as_str())
        .bind(status)
        .bind(next)
        .bind(http)
        .bind(error)
        .bind(at)
        .bind(delivered_at)
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some(webhook), Some(_)) = (webhook, delivered_at) {
            let webhook: String = webhook.try_get("webhook_id")?;
            sqlx::query("UPDATE webhooks SET last_success_at = $2 WHERE id = $1")
                .bind(webhook)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn next_due(&self) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS due FROM webhook_deliveries WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("due")?)
    }

    async fn project_tenant(&self, project_id: &ProjectId) -> StoreResult<Option<TenantId>> {
        let row = sqlx::query("SELECT tenant_id FROM projects WHERE id = $1")
            .bind(project_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("tenant_id"))
            .transpose()?
            .map(TenantId::from_db))
    }
}
