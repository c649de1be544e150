//! Webhooks to tenants: endpoints per project (`POST /v1/webhooks`…), each with a
//! Standard Webhooks signing secret ([`signing`]) shown once and rollable with an
//! overlap; the durable outbox they are delivered from ([`deliver`], with the retry
//! schedule in [`backoff`]); and the SSRF guard on their URLs ([`ssrf`]). The events
//! themselves come from [`super::events`].

pub mod backoff;
pub mod deliver;
pub mod signing;
pub mod ssrf;

use std::time::Duration;

use super::error::{ControlError, ControlResult};
use super::plane::{AuditEvent, RequestMeta};
use super::ControlPlane;
use crate::ids::{DeliveryId, ProjectId, TenantId, WebhookId};
use crate::store::webhooks::{DeliveryRow, WebhookPatch, WebhookRow};

/// Operator settings (`tandem serve --webhook-…`, `--event-retention`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// One `document.updated` per room per this long.
    pub debounce: Duration,
    /// Private and loopback targets, plain http.
    pub policy: ssrf::TargetPolicy,
    /// Retry schedule.
    pub backoff: backoff::Backoff,
    /// Per attempt, connect to last byte.
    pub timeout: Duration,
    /// Events (and their deliveries) are kept this long.
    pub retention: Duration,
    /// The longest overlap a secret roll may keep the old secret signing.
    pub max_roll_overlap: Duration,
    /// `document.updated` carries the document's JSON view when it is at most this
    /// many bytes (and the stored document too); 0: never.
    pub document_json_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(2),
            policy: ssrf::TargetPolicy::default(),
            backoff: backoff::Backoff::default(),
            timeout: Duration::from_secs(15),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_roll_overlap: Duration::from_secs(7 * 24 * 3600),
            document_json_bytes: 0,
        }
    }
}

/// Most endpoints per project.
pub const MAX_WEBHOOKS: usize = 20;

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
}

/// An endpoint just created or rolled, with its secret in clear (shown once).
#[derive(Debug)]
pub struct WithSecret {
    pub webhook: WebhookRow,
    pub secret: String,
}

/// The result of `POST /v1/webhooks/{id}/test`.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
}

fn check_types(types: &[String]) -> ControlResult<()> {
    if types.is_empty() || types.len() > 50 {
        return Err(ControlError::Invalid(
            "events must list 1 to 50 event types (or \"*\")".into(),
        ));
    }
    if let Some(bad) = types.iter().find(|t| !super::events::valid_pattern(t)) {
        return Err(ControlError::Invalid(format!(
            "unknown event type {bad:?}; known: {}, a prefix like \"member.*\", or \"*\"",
            super::events::EVENT_TYPES.join(", ")
        )));
    }
    Ok(())
}

fn check_description(description: &str) -> ControlResult<()> {
    if description.len() > 500 {
        return Err(ControlError::Invalid(
            "description is longer than 500 bytes".into(),
        ));
    }
    Ok(())
}

impl ControlPlane {
    fn webhook_config(&self) -> &WebhookConfig {
        &self.inner.config.webhooks
    }

    fn check_target(&self, url: &str) -> ControlResult<()> {
        ssrf::check_url(url, self.webhook_config().policy)
            .map(|_| ())
            .map_err(ControlError::Invalid)
    }

    /// Seals a new signing key under the KEK when there is one.
    fn seal_secret(
        &self,
        id: &WebhookId,
        key: &[u8; signing::KEY_BYTES],
    ) -> ControlResult<Vec<u8>> {
        Ok(match &self.inner.config.kek {
            Some(kek) => kek.seal(id.as_str(), key)?,
            None => key.to_vec(),
        })
    }

    /// A stored signing key in clear.
    pub(crate) fn open_secret(&self, id: &WebhookId, stored: &[u8]) -> ControlResult<Vec<u8>> {
        if !super::kek::is_sealed(stored) {
            return Ok(stored.to_vec());
        }
        let config = &self.inner.config;
        let opened = match (&config.kek, &config.old_kek) {
            (Some(kek), old) => kek.open(id.as_str(), stored).or_else(|e| match old {
                Some(old) => old.open(id.as_str(), stored),
                None => Err(e),
            }),
            (None, _) => {
                return Err(ControlError::Internal(
                    "a webhook secret is sealed but no KEK is configured".into(),
                ))
            }
        };
        opened
            .map(|k| k.to_vec())
            .map_err(|e| ControlError::Internal(format!("opening a webhook secret: {e}")))
    }

    /// The keys that sign a delivery now: the current one, and the previous one until
    /// its overlap ends.
    pub(crate) fn signing_keys(
        &self,
        webhook: &WebhookRow,
        now_ms: i64,
    ) -> ControlResult<Vec<Vec<u8>>> {
        let mut keys = vec![self.open_secret(&webhook.id, &webhook.secret)?];
        if let (Some(previous), Some(until)) =
            (&webhook.previous_secret, webhook.previous_expires_at)
        {
            if until > now_ms {
                keys.push(self.open_secret(&webhook.id, previous)?);
            }
        }
        Ok(keys)
    }

    fn new_key() -> ControlResult<[u8; signing::KEY_BYTES]> {
        let mut key = [0u8; signing::KEY_BYTES];
        super::fill_random(&mut key)?;
        Ok(key)
    }

    /// Creates an endpoint; its secret is in the answer only.
    pub async fn create_webhook(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        new: NewWebhook,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<WithSecret> {
        self.check_target(&new.url)?;
        check_types(&new.event_types)?;
        check_description(&new.description)?;
        let store = &self.inner.store;
        if store.list_webhooks(project).await?.len() >= MAX_WEBHOOKS {
            return Err(ControlError::Invalid(format!(
                "a project has at most {MAX_WEBHOOKS} webhooks"
            )));
        }
        let id = WebhookId::generate()?;
        let key = Self::new_key()?;
        let now = self.now_ms();
        let row = WebhookRow {
            id: id.clone(),
            project_id: project.clone(),
            url: new.url,
            description: new.description,
            event_types: new.event_types,
            secret: self.seal_secret(&id, &key)?,
            previous_secret: None,
            previous_expires_at: None,
            disabled_at: None,
            disabled_reason: None,
            last_success_at: None,
            created_at: now,
            updated_at: now,
        };
        store.create_webhook(&row).await?;
        self.audit(AuditEvent {
            tenant_id: tenant,
            project_id: Some(project),
            actor,
            action: "webhook.created",
            target: Some(id.as_str()),
            meta,
            details: serde_json::json!({ "url": row.url, "events": row.event_types }),
        })
        .await;
        Ok(WithSecret {
            webhook: row,
            secret: signing::format_secret(&key),
        })
    }

    /// The project's endpoints.
    pub async fn list_webhooks(&self, project: &ProjectId) -> ControlResult<Vec<WebhookRow>> {
        Ok(self.inner.store.list_webhooks(project).await?)
    }

    /// One endpoint (404 if not this project's).
    pub async fn webhook(&self, project: &ProjectId, id: &WebhookId) -> ControlResult<WebhookRow> {
        self.inner
            .store
            .webhook(project, id)
            .await?
            .ok_or(ControlError::NotFound)
    }

    /// Changes an endpoint's URL, types, description or enabled state.
    pub async fn update_webhook(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        id: &WebhookId,
        patch: WebhookPatch,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<WebhookRow> {
        if let Some(url) = &patch.url {
            self.check_target(url)?;
        }
        if let Some(types) = &patch.event_types {
            check_types(types)?;
        }
        if let Some(description) = &patch.description {
            check_description(description)?;
        }
        let row = self
            .inner
            .store
            .update_webhook(project, id, &patch, self.now_ms())
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id: tenant,
            project_id: Some(project),
            actor,
            action: "webhook.updated",
            target: Some(id.as_str()),
            meta,
            details: serde_json::json!({
                "url": patch.url,
                "events": patch.event_types,
                "enabled": patch.enabled,
            }),
        })
        .await;
        Ok(row)
    }

    /// Deletes an endpoint and its deliveries.
    pub async fn delete_webhook(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        id: &WebhookId,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<()> {
        if !self.inner.store.delete_webhook(project, id).await? {
            return Err(ControlError::NotFound);
        }
        self.audit(AuditEvent {
            tenant_id: tenant,
            project_id: Some(project),
            actor,
            action: "webhook.deleted",
            target: Some(id.as_str()),
            meta,
            details: serde_json::json!({}),
        })
        .await;
        Ok(())
    }

    /// Rolls the signing secret: a new one now; the old one keeps signing (a second
    /// signature in each delivery) for `overlap`.
    pub async fn roll_webhook_secret(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        id: &WebhookId,
        overlap: Duration,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<WithSecret> {
        let max = self.webhook_config().max_roll_overlap;
        if overlap > max {
            return Err(ControlError::Invalid(format!(
                "the overlap is at most {} seconds",
                max.as_secs()
            )));
        }
        let key = Self::new_key()?;
        let now = self.now_ms();
        let until = now.saturating_add(i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX));
        let row = self
            .inner
            .store
            .roll_webhook_secret(project, id, &self.seal_secret(id, &key)?, until, now)
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id: tenant,
            project_id: Some(project),
            actor,
            action: "webhook.secret_rolled",
            target: Some(id.as_str()),
            meta,
            details: serde_json::json!({ "overlapSeconds": overlap.as_secs() }),
        })
        .await;
        Ok(WithSecret {
            webhook: row,
            secret: signing::format_secret(&key),
        })
    }

    /// An endpoint's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        project: &ProjectId,
        id: &WebhookId,
        before: Option<i64>,
        limit: u32,
    ) -> ControlResult<Vec<DeliveryRow>> {
        self.webhook(project, id).await?;
        Ok(self
            .inner
            .store
            .list_deliveries(project, id, before, limit.clamp(1, 200))
            .await?)
    }

    /// Makes a delivery due again now.
    pub async fn retry_delivery(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        id: &WebhookId,
        delivery: &DeliveryId,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<DeliveryRow> {
        let row = self
            .inner
            .store
            .retry_delivery(project, id, delivery, self.now_ms())
            .await?
            .ok_or(ControlError::NotFound)?;
        self.events().wake_deliveries();
        self.audit(AuditEvent {
            tenant_id: tenant,
            project_id: Some(project),
            actor,
            action: "webhook.delivery_retried",
            target: Some(delivery.as_str()),
            meta,
            details: serde_json::json!({ "webhookId": id }),
        })
        .await;
        Ok(row)
    }

    /// Sends a signed `webhook.test` event to the endpoint now (not stored, not retried)
    /// and says how it went.
    pub async fn test_webhook(
        &self,
        project: &ProjectId,
        id: &WebhookId,
    ) -> ControlResult<TestResult> {
        let webhook = self.webhook(project, id).await?;
        let now = self.now_ms();
        let event_id = crate::ids::EventId::generate()?;
        let body = serde_json::json!({
            "id": event_id,
            "type": "webhook.test",
            "timestamp": deliver::rfc3339(now),
            "projectId": project,
            "seq": 0,
            "data": { "webhookId": id },
        })
        .to_string();
        let keys = self.signing_keys(&webhook, now)?;
        let attempt = self
            .delivery_client()
            .send(
                &webhook.url,
                event_id.as_str(),
                now / 1000,
                body.as_bytes(),
                &keys,
            )
            .await;
        Ok(match attempt {
            deliver::Attempt::Answered { status, .. } => TestResult {
                delivered: (200..300).contains(&status),
                status: Some(status),
                error: None,
            },
            deliver::Attempt::Failed(error) => TestResult {
                delivered: false,
                status: None,
                error: Some(error),
            },
        })
    }
}
