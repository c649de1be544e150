//! Stripe billing (off unless configured, see [`config`]): owners upgrade through a
//! Checkout session in subscription mode and manage through the customer portal; the
//! Stripe webhook ([`webhook`]) changes the tenant's plan; the usage hours become
//! Stripe billing meter events sent from a durable outbox ([`meter`]). Stripe itself is
//! behind `tandem_billing::Stripe` (the real client, or a fake in tests). Nothing here
//! knows HTTP; the server applies a plan change to live connections through the hook
//! given to [`Billing::on_plan_change`].

pub mod config;
pub mod meter;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tandem_billing::{NewCheckout, NewCustomer, NewPortal, Session, Stripe};

use super::plane::{AuditEvent, ControlPlane, RequestMeta, TenantAccess};
use super::{ControlError, ControlResult};
use crate::ids::{ProjectId, TenantId};
use crate::rooms::limits::Limits;
use crate::store::billing::{BillingAccountRow, MeterRow, MeterStats, SharedBillingStore};
use crate::store::control::Role;

pub use config::{BillingConfig, Secret};

/// Told about every plan change: the tenant's projects and the new plan's limits.
pub type PlanHook = Arc<dyn Fn(&[ProjectId], Limits) + Send + Sync>;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct BillingMetrics {
    /// Webhook deliveries applied.
    pub webhook_applied: AtomicU64,
    /// Deliveries whose event was applied before (replays).
    pub webhook_duplicates: AtomicU64,
    /// Deliveries refused (signature, body).
    pub webhook_rejected: AtomicU64,
    /// Meter events Stripe accepted.
    pub meter_sent: AtomicU64,
    /// Meter event attempts that failed.
    pub meter_failures: AtomicU64,
    /// Meter events waiting (as of the worker's last round).
    pub meter_pending: AtomicI64,
    /// … of which have failed at least once.
    pub meter_failing: AtomicI64,
    /// Plan changes applied (webhook or grace expiry).
    pub plan_changes: AtomicU64,
}

struct Inner {
    config: BillingConfig,
    stripe: Arc<dyn Stripe>,
    store: SharedBillingStore,
    control: ControlPlane,
    on_plan_change: OnceLock<PlanHook>,
    metrics: BillingMetrics,
    /// Webhook deliveries are applied one at a time on a node (each reads the state it
    /// changes); the event-id record keeps them once across nodes.
    apply: tokio::sync::Mutex<()>,
}

/// The billing service. Cheap to clone.
#[derive(Clone)]
pub struct Billing {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing").finish_non_exhaustive()
    }
}

/// What the plan page shows.
#[derive(Debug, Clone)]
pub struct BillingStatus {
    /// The tenant's plan.
    pub plan: String,
    /// Plans that can be bought, with their prices.
    pub purchasable: Vec<String>,
    /// The Stripe account, once there is a customer.
    pub account: Option<BillingAccountRow>,
    /// The tenant's meter outbox.
    pub meter: MeterStats,
    /// Its most recent rows.
    pub recent: Vec<MeterRow>,
}

impl Billing {
    /// Billing with `config`, calling `stripe`, storing in `store`.
    pub fn new(
        config: BillingConfig,
        stripe: Arc<dyn Stripe>,
        store: SharedBillingStore,
        control: ControlPlane,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                stripe,
                store,
                control,
                on_plan_change: OnceLock::new(),
                metrics: BillingMetrics::default(),
                apply: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Sets the hook told about plan changes (once; later calls are ignored).
    pub fn on_plan_change(&self, hook: PlanHook) {
        let _ = self.inner.on_plan_change.set(hook);
    }

    /// The settings.
    pub fn config(&self) -> &BillingConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn metrics(&self) -> &BillingMetrics {
        &self.inner.metrics
    }

    fn require_owner(access: &TenantAccess) -> ControlResult<()> {
        // Billing moves money: owners only (admins manage projects, keys and members).
        if access.role < Role::Owner {
            return Err(ControlError::Forbidden(format!(
                "billing needs the owner role; you are {}",
                access.role.as_str()
            )));
        }
        Ok(())
    }

    /// The tenant's Stripe customer, created (once) if it has none.
    async fn ensure_customer(&self, access: &TenantAccess) -> ControlResult<BillingAccountRow> {
        let store = &self.inner.store;
        if let Some(account) = store.billing_account(&access.tenant_id).await? {
            return Ok(account);
        }
        let tenant = self
            .inner
            .control
            .store()
            .tenant(&access.tenant_id)
            .await?
            .ok_or(ControlError::NotFound)?;
        let customer_id = self
            .inner
            .stripe
            .create_customer(&NewCustomer {
                tenant_id: access.tenant_id.to_string(),
                name: tenant.name,
                email: access.user.email.clone(),
                // Two requests racing here get the same customer from Stripe.
                idempotency_key: format!("tandem-customer-{}", access.tenant_id),
            })
            .await
            .map_err(stripe_failed)?;
        let now = self.inner.control.now_ms();
        let stored = store
            .remember_customer(&BillingAccountRow {
                tenant_id: access.tenant_id.clone(),
                customer_id,
                subscription_id: None,
                subscription_status: None,
                price_id: None,
                current_period_end: None,
                cancel_at_period_end: false,
                payment_failed_at: None,
                grace_until: None,
                metered_through: None,
                state_event_at: 0,
                created_at: now,
                updated_at: now,
            })
            .await?;
        Ok(stored)
    }

    /// Opens a Checkout session for `plan` (owners only); `base_url` is this server's
    /// public URL, where Stripe sends the user back to.
    pub async fn checkout(
        &self,
        access: &TenantAccess,
        plan: &str,
        base_url: &str,
        meta: &RequestMeta,
    ) -> ControlResult<Session> {
        Self::require_owner(access)?;
        let price = self.inner.config.prices.get(plan).cloned().ok_or_else(|| {
            ControlError::Invalid(format!(
                "no plan {plan} to buy; plans: {}",
                self.purchasable().join(", ")
            ))
        })?;
        let account = self.ensure_customer(access).await?;
        let back = format!("{base_url}/dashboard/t/{}/plan", access.tenant_id);
        let session = self
            .inner
            .stripe
            .create_checkout_session(&NewCheckout {
                tenant_id: access.tenant_id.to_string(),
                customer_id: account.customer_id.clone(),
                price_id: price,
                plan: plan.to_owned(),
                success_url: format!("{back}?checkout=done"),
                cancel_url: format!("{back}?checkout=cancelled"),
            })
            .await
            .map_err(stripe_failed)?;
        self.inner
            .control
            .audit(AuditEvent {
                tenant_id: &access.tenant_id,
                project_id: None,
                actor: &access.actor,
                action: "billing.checkout_started",
                target: Some(&session.id),
                meta,
                details: serde_json::json!({ "plan": plan, "customer": account.customer_id }),
            })
            .await;
        Ok(session)
    }

    /// Opens a customer-portal session (owners only) for a tenant that has a customer.
    pub async fn portal(
        &self,
        access: &TenantAccess,
        base_url: &str,
        meta: &RequestMeta,
    ) -> ControlResult<Session> {
        Self::require_owner(access)?;
        let account = self
            .inner
            .store
            .billing_account(&access.tenant_id)
            .await?
            .ok_or_else(|| {
                ControlError::Conflict(
                    "this tenant has no Stripe customer yet: upgrade through checkout first".into(),
                )
            })?;
        let session = self
            .inner
            .stripe
            .create_portal_session(&NewPortal {
                customer_id: account.customer_id.clone(),
                return_url: format!("{base_url}/dashboard/t/{}/plan", access.tenant_id),
            })
            .await
            .map_err(stripe_failed)?;
        self.inner
            .control
            .audit(AuditEvent {
                tenant_id: &access.tenant_id,
                project_id: None,
                actor: &access.actor,
                action: "billing.portal_opened",
                target: Some(&session.id),
                meta,
                details: serde_json::json!({ "customer": account.customer_id }),
            })
            .await;
        Ok(session)
    }

    /// The plans that have a Stripe price.
    pub fn purchasable(&self) -> Vec<String> {
        self.inner.config.prices.keys().cloned().collect()
    }

    /// What the plan page shows (any member may see it).
    pub async fn status(&self, access: &TenantAccess) -> ControlResult<BillingStatus> {
        let store = &self.inner.store;
        let tenant = self
            .inner
            .control
            .store()
            .tenant(&access.tenant_id)
            .await?
            .ok_or(ControlError::NotFound)?;
        Ok(BillingStatus {
            plan: tenant.plan,
            purchasable: self.purchasable(),
            account: store.billing_account(&access.tenant_id).await?,
            meter: store.meter_stats(Some(&access.tenant_id)).await?,
            recent: store.meter_rows(&access.tenant_id, 24).await?,
        })
    }

    /// Tells the hook about `tenant`'s new plan.
    async fn plan_changed(&self, tenant: &TenantId, plan: &str) {
        self.inner
            .metrics
            .plan_changes
            .fetch_add(1, Ordering::Relaxed);
        let Some(hook) = self.inner.on_plan_change.get() else {
            return;
        };
        let limits = self.inner.control.config().plans.limits(plan);
        match self.inner.control.store().list_projects(tenant).await {
            Ok(projects) => {
                let ids: Vec<ProjectId> = projects.into_iter().map(|p| p.id).collect();
                hook(&ids, limits);
            }
            Err(error) => {
                // New connections and REST calls read the stored plan anyway; open
                // sockets keep the old limits until they reconnect.
                tracing::error!(%error, tenant = %tenant, "applying a plan change to live connections failed");
            }
        }
    }
}

fn stripe_failed(error: tandem_billing::StripeError) -> ControlError {
    tracing::error!(%error, "a Stripe call failed");
    ControlError::Internal(format!("Stripe: {error}"))
}
