//! The real Stripe client: async-stripe 1.0 (hyper + rustls/ring), one typed request per
//! call. The API version is the one async-stripe pins ([`API_VERSION`], sent as
//! `Stripe-Version` on every request), at or after 2025-03-31.basil, the first with
//! billing meter events as the only usage reporting.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest as _};

use crate::{MeterEvent, NewCheckout, NewCustomer, NewPortal, Session, Stripe, StripeError};

/// The Stripe API version every request is pinned to.
pub const API_VERSION: &str = "2026-09-30.endive";

/// How long one request may take before it counts as failed (and is retried by the
/// caller where that is safe).
const TIMEOUT: Duration = Duration::from_secs(20);

/// Stripe over HTTPS (or, for tests, plain HTTP to a local fake).
pub struct StripeClient {
    client: stripe::Client,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("StripeClient").finish_non_exhaustive()
    }
}

impl StripeClient {
    /// A client with `secret_key` (`sk_live_…`/`sk_test_…`), against `api_base` when
    /// given (`http://127.0.0.1:PORT/`, a test's fake) instead of api.stripe.com.
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, StripeError> {
        let mut builder = stripe::ClientBuilder::new(secret_key).timeout(TIMEOUT);
        if let Some(base) = api_base {
            // async-stripe appends `v1/…` to the base as written.
            let base = if base.ends_with('/') {
                base.to_owned()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        let client = builder.build().map_err(convert)?;
        Ok(Self { client })
    }
}

fn convert(error: stripe::StripeError) -> StripeError {
    match error {
        stripe::StripeError::Stripe(api, status) => StripeError {
            status: Some(status),
            message: api
                .message
                .clone()
                .unwrap_or_else(|| format!("{:?}", api.type_)),
        },
        other => StripeError {
            status: None,
            message: other.to_string(),
        },
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, StripeError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeError {
            status: None,
            message: format!("idempotency key: {e}"),
        })
}

#[async_trait]
impl Stripe for StripeClient {
    async fn create_customer(&self, customer: &NewCustomer) -> Result<String, StripeError> {
        let metadata = HashMap::from([("tenant_id".to_owned(), customer.tenant_id.clone())]);
        let created = stripe_core::customer::CreateCustomer::new()
            .name(customer.name.clone())
            .email(customer.email.clone())
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(&customer.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(convert)?;
        Ok(created.id.to_string())
    }

    async fn create_checkout_session(
        &self,
        checkout: &NewCheckout,
    ) -> Result<Session, StripeError> {
        use stripe_checkout::checkout_session::{
            CreateCheckoutSession, CreateCheckoutSessionLineItems,
            CreateCheckoutSessionSubscriptionData,
        };
        let metadata = HashMap::from([
            ("tenant_id".to_owned(), checkout.tenant_id.clone()),
            ("plan".to_owned(), checkout.plan.clone()),
        ]);
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(checkout.price_id.clone());
        item.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(metadata.clone());
        let session = CreateCheckoutSession::new()
            .mode(stripe_checkout::CheckoutSessionMode::Subscription)
            .customer(checkout.customer_id.clone())
            .client_reference_id(checkout.tenant_id.clone())
            .line_items(vec![item])
            .subscription_data(subscription)
            .metadata(metadata)
            .success_url(checkout.success_url.clone())
            .cancel_url(checkout.cancel_url.clone())
            .send(&self.client)
            .await
            .map_err(convert)?;
        let url = session.url.ok_or_else(|| StripeError {
            status: None,
            message: "the Checkout session has no url".into(),
        })?;
        Ok(Session {
            id: session.id.to_string(),
            url,
        })
    }

    async fn create_portal_session(&self, portal: &NewPortal) -> Result<Session, StripeError> {
        let session = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
            .customer(portal.customer_id.clone())
            .return_url(portal.return_url.clone())
            .send(&self.client)
            .await
            .map_err(convert)?;
        Ok(Session {
            id: session.id.to_string(),
            url: session.url,
        })
    }

    async fn send_meter_event(&self, event: &MeterEvent) -> Result<(), StripeError> {
        let payload = HashMap::from([
            ("stripe_customer_id".to_owned(), event.customer_id.clone()),
            ("value".to_owned(), event.value.to_string()),
        ]);
        stripe_billing::billing_meter_event::CreateBillingMeterEvent::new(
            event.event_name.clone(),
            payload,
        )
        .identifier(event.identifier.clone())
        .timestamp(event.timestamp)
        .customize()
        .request_strategy(idempotent(&event.identifier)?)
        .send(&self.client)
        .await
        .map_err(convert)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pinned_version_is_async_stripes_and_not_before_basil() {
        assert_eq!(stripe_shared::version::VERSION.as_str(), super::API_VERSION);
        assert!(super::API_VERSION >= "2025-03-31.basil");
    }
}
