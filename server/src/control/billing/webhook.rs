//! The Stripe webhook: verify the signature over the raw body, read the event, work out
//! what it changes (a pure function of the event and the stored state, [`decide`]), and
//! apply that with the event id in one transaction, so a replayed delivery changes
//! nothing. A plan change then reaches live connections through the plan hook.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tandem_billing::event::{self, Event, EventData, Subscription};
use tandem_billing::signature;

use super::{Billing, BillingConfig};
use crate::control::plans::DEFAULT_PLAN;
use crate::ids::TenantId;
use crate::store::billing::{BillingAccountRow, BillingChange};
use crate::store::control::AuditRow;
use crate::store::usage::hour_start;

/// Why a delivery was refused (a 400: Stripe retries it, and nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing, wrong or too old.
    #[error("{0}")]
    Signature(#[from] signature::SignatureError),
    /// The body is not an event.
    #[error("{0}")]
    Body(#[from] event::EventError),
    /// The store failed; Stripe will deliver again.
    #[error("storage unavailable")]
    Unavailable,
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now.
    Applied,
    /// Applied before (a replay); nothing changed.
    Duplicate,
}

/// Subscription statuses that keep the plan paid for (past due: until the grace
/// period after the failed payment ends).
fn paying(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due")
}

fn audit(
    tenant: &TenantId,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
    at: i64,
) -> AuditRow {
    AuditRow {
        id: 0,
        tenant_id: tenant.clone(),
        project_id: None,
        actor: "stripe".to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        ip: None,
        details: details.to_string(),
        at,
    }
}

/// The change `event` makes to a tenant on `plan` with `account`, at `now` (ms).
/// `None`: the event is about no tenant we know, or is older than the state it would
/// overwrite; it is still recorded as seen.
pub fn decide(
    config: &BillingConfig,
    event: &Event,
    account: &BillingAccountRow,
    plan: &str,
    now: i64,
) -> Option<BillingChange> {
    let tenant = &account.tenant_id;
    let mut next = account.clone();
    next.updated_at = now;
    let mut audits = Vec::new();
    let mut new_plan = None;
    let mut set_plan = |to: &str, why: &str, audits: &mut Vec<AuditRow>| {
        if to != plan {
            audits.push(audit(
                tenant,
                "billing.plan_changed",
                Some(&event.id),
                serde_json::json!({ "from": plan, "to": to, "reason": why }),
                now,
            ));
            new_plan = Some(to.to_owned());
        }
    };
    match &event.data {
        EventData::CheckoutCompleted(done) => {
            if event.created < account.state_event_at {
                return None;
            }
            next.subscription_id = done.subscription_id.clone().or(next.subscription_id);
            if next.subscription_status.is_none() {
                next.subscription_status = Some("active".into());
            }
            // Metering starts with the subscription's own event, which has its start.
            next.state_event_at = event.created;
            audits.push(audit(
                tenant,
                "billing.checkout_completed",
                Some(&event.id),
                serde_json::json!({ "subscription": done.subscription_id, "plan": done.plan }),
                now,
            ));
            if let Some(bought) = done
                .plan
                .as_deref()
                .filter(|p| config.prices.contains_key(*p))
            {
                set_plan(bought, "checkout completed", &mut audits);
            }
        }
        EventData::Subscription(sub) => {
            if event.created < account.state_event_at {
                return None;
            }
            apply_subscription(config, event, sub, &mut next, &mut audits, now);
            let to = if paying(&sub.status) {
                sub.price_ids
                    .iter()
                    .find_map(|p| config.plan_of_price(p))
                    .unwrap_or(plan)
                    .to_owned()
            } else {
                DEFAULT_PLAN.to_owned()
            };
            set_plan(&to, &format!("subscription {}", sub.status), &mut audits);
        }
        EventData::PaymentFailed(invoice) => {
            if next.grace_until.is_none() {
                let grace = i64::try_from(config.grace_period.as_millis()).unwrap_or(i64::MAX);
                next.payment_failed_at = Some(now);
                next.grace_until = Some(now.saturating_add(grace));
            }
            audits.push(audit(
                tenant,
                "billing.payment_failed",
                Some(&invoice.id),
                serde_json::json!({
                    "event": event.id,
                    "subscription": invoice.subscription_id,
                    "grace_until": next.grace_until,
                }),
                now,
            ));
        }
        EventData::Other => return None,
    }
    Some(BillingChange {
        account: Some(next),
        plan: new_plan,
        audit: audits,
    })
}

fn apply_subscription(
    config: &BillingConfig,
    event: &Event,
    sub: &Subscription,
    next: &mut BillingAccountRow,
    audits: &mut Vec<AuditRow>,
    now: i64,
) {
    let _ = config;
    let tenant = next.tenant_id.clone();
    next.subscription_id = Some(sub.id.clone());
    next.subscription_status = Some(sub.status.clone());
    next.price_id = sub.price_ids.first().cloned();
    next.current_period_end = sub.current_period_end.map(|s| s.saturating_mul(1000));
    next.cancel_at_period_end = sub.cancel_at_period_end;
    next.state_event_at = event.created;
    if paying(&sub.status) {
        if next.metered_through.is_none() {
            let start = sub.start.map_or(now, |s| s.saturating_mul(1000));
            next.metered_through = Some(hour_start(start.min(now)));
        }
    } else {
        // Cancelled or unpaid for good: stop metering.
        next.metered_through = None;
    }
    if sub.status == "active" && next.grace_until.is_some() {
        next.payment_failed_at = None;
        next.grace_until = None;
        audits.push(audit(
            &tenant,
            "billing.payment_recovered",
            Some(&sub.id),
            serde_json::json!({ "event": event.id }),
            now,
        ));
    }
    audits.push(audit(
        &tenant,
        "billing.subscription_updated",
        Some(&sub.id),
        serde_json::json!({
            "event": event.id,
            "type": event.kind,
            "status": sub.status,
            "price": next.price_id,
            "current_period_end": next.current_period_end,
            "cancel_at_period_end": sub.cancel_at_period_end,
        }),
        now,
    ));
}

impl Billing {
    /// Handles one delivery: `body` as received, `signature` the `Stripe-Signature`
    /// header.
    pub async fn handle_webhook(
        &self,
        body: &[u8],
        signature_header: Option<&str>,
    ) -> Result<Outcome, WebhookError> {
        let result = self.handle(body, signature_header).await;
        let metrics = &self.inner.metrics;
        match &result {
            Ok(Outcome::Applied) => metrics.webhook_applied.fetch_add(1, Ordering::Relaxed),
            Ok(Outcome::Duplicate) => metrics.webhook_duplicates.fetch_add(1, Ordering::Relaxed),
            Err(WebhookError::Unavailable) => 0,
            Err(_) => metrics.webhook_rejected.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    async fn handle(
        &self,
        body: &[u8],
        signature_header: Option<&str>,
    ) -> Result<Outcome, WebhookError> {
        let config = &self.inner.config;
        let now = self.inner.control.now_ms();
        let secrets: Vec<&[u8]> = config
            .webhook_secrets
            .iter()
            .map(|s| s.expose().as_bytes())
            .collect();
        signature::verify(
            body,
            signature_header.ok_or(signature::SignatureError::Malformed)?,
            &secrets,
            now.div_euclid(1000),
            signature::TOLERANCE_SECS,
        )?;
        let event = event::parse(body)?;
        let _one_at_a_time = self.inner.apply.lock().await;
        let store = &self.inner.store;
        let unavailable = |error: crate::store::StoreError| {
            tracing::warn!(%error, "applying a Stripe event failed");
            WebhookError::Unavailable
        };
        let account = match customer_of(&event) {
            Some(customer) => store
                .billing_account_by_customer(customer)
                .await
                .map_err(unavailable)?,
            None => None,
        };
        let decided = match &account {
            Some(account) => {
                let plan = self
                    .inner
                    .control
                    .store()
                    .tenant(&account.tenant_id)
                    .await
                    .map_err(unavailable)?
                    .map_or_else(|| DEFAULT_PLAN.to_owned(), |t| t.plan);
                decide(config, &event, account, &plan, now)
            }
            None => {
                if !matches!(event.data, EventData::Other) {
                    tracing::warn!(event = %event.id, kind = %event.kind, "a Stripe event for a customer this server does not know");
                }
                None
            }
        };
        let change = decided.clone().unwrap_or_default();
        let tenant = account.as_ref().map(|a| &a.tenant_id);
        let applied = store
            .apply_stripe_event(&event.id, &event.kind, tenant, now, &change)
            .await
            .map_err(unavailable)?;
        if !applied {
            return Ok(Outcome::Duplicate);
        }
        if let (Some(tenant), Some(plan)) = (tenant, &change.plan) {
            tracing::info!(tenant = %tenant, plan, event = %event.id, "plan changed by Stripe");
            self.plan_changed(tenant, plan).await;
        }
        Ok(Outcome::Applied)
    }

    /// Drops tenants whose grace period ended to the free plan. Returns how many.
    pub async fn expire_grace(&self) -> usize {
        let now = self.inner.control.now_ms();
        let store = &self.inner.store;
        let accounts = match store.accounts_past_grace(now).await {
            Ok(accounts) => accounts,
            Err(error) => {
                tracing::warn!(%error, "reading billing grace periods failed");
                return 0;
            }
        };
        let mut done = 0;
        for account in accounts {
            let Some(grace_until) = account.grace_until else {
                continue;
            };
            let plan = match self.inner.control.store().tenant(&account.tenant_id).await {
                Ok(Some(t)) => t.plan,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "reading a tenant failed");
                    continue;
                }
            };
            let mut next = account.clone();
            next.grace_until = None;
            next.metered_through = None;
            next.updated_at = now;
            let mut audit_rows = vec![AuditRow {
                actor: "system".into(),
                ..audit(
                    &account.tenant_id,
                    "billing.downgraded",
                    account.subscription_id.as_deref(),
                    serde_json::json!({
                        "from": plan,
                        "to": DEFAULT_PLAN,
                        "reason": "the payment grace period ended",
                        "payment_failed_at": account.payment_failed_at,
                    }),
                    now,
                )
            }];
            let change_plan = (plan != DEFAULT_PLAN).then(|| DEFAULT_PLAN.to_owned());
            if change_plan.is_none() {
                audit_rows.clear();
            }
            let change = BillingChange {
                account: Some(next),
                plan: change_plan.clone(),
                audit: audit_rows,
            };
            match store
                .apply_grace_expiry(&account.tenant_id, grace_until, &change)
                .await
            {
                Ok(true) => {
                    done += 1;
                    if change_plan.is_some() {
                        tracing::info!(tenant = %account.tenant_id, "grace period ended: downgraded to {DEFAULT_PLAN}");
                        self.plan_changed(&account.tenant_id, DEFAULT_PLAN).await;
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "downgrading after the grace period failed"),
            }
        }
        done
    }
}

fn customer_of(event: &Event) -> Option<&str> {
    match &event.data {
        EventData::CheckoutCompleted(done) => done.customer_id.as_deref(),
        EventData::Subscription(sub) => Some(&sub.customer_id),
        EventData::PaymentFailed(invoice) => Some(&invoice.customer_id),
        EventData::Other => None,
    }
}

/// The grace period's default: a week to fix the card.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
