//! Stripe, as Tandem uses it: the few API calls the server makes ([`Stripe`], with the
//! real client on async-stripe in [`client`] and a recording fake in [`fake`]), the
//! webhook signature scheme ([`signature`]) and the webhook events Tandem acts on
//! ([`event`]). A crate of its own so that async-stripe's generated code is compiled
//! once and stays off the server's hot crates; the server's billing rules live in
//! `tandem-server`'s `control::billing`, which sees only this trait.

pub mod client;
pub mod event;
pub mod fake;
pub mod signature;

use async_trait::async_trait;

pub use client::{StripeClient, API_VERSION};

/// A new Stripe customer for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    /// The tenant's id, also stored in the customer's metadata (`tenant_id`).
    pub tenant_id: String,
    /// The tenant's name.
    pub name: String,
    /// The email of the owner who asked.
    pub email: String,
    /// Sent as `Idempotency-Key`: two requests racing to create the tenant's customer
    /// get the same one from Stripe.
    pub idempotency_key: String,
}

/// A Checkout session in subscription mode for one plan's price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckout {
    /// The tenant (`client_reference_id` and subscription metadata `tenant_id`).
    pub tenant_id: String,
    /// The tenant's Stripe customer.
    pub customer_id: String,
    /// The plan's Stripe price.
    pub price_id: String,
    /// The plan's name (subscription metadata `plan`).
    pub plan: String,
    /// Where Stripe sends the user after paying…
    pub success_url: String,
    /// …or after giving up.
    pub cancel_url: String,
}

/// A customer-portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPortal {
    /// The tenant's Stripe customer.
    pub customer_id: String,
    /// Where the portal's "return" link goes.
    pub return_url: String,
}

/// A hosted Stripe page to send the user to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Stripe's id of the session.
    pub id: String,
    /// The page.
    pub url: String,
}

/// One billing meter event (`POST /v1/billing/meter_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEvent {
    /// The meter's event name.
    pub event_name: String,
    /// The customer it is billed to (payload `stripe_customer_id`).
    pub customer_id: String,
    /// The quantity (payload `value`).
    pub value: i64,
    /// When it happened, unix seconds.
    pub timestamp: i64,
    /// Unique per usage row and quantity: Stripe counts an identifier once, so a retry
    /// (or a restart that sends it again) never double-counts. Also sent as the
    /// `Idempotency-Key`.
    pub identifier: String,
}

/// Why a Stripe call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stripe: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct StripeError {
    /// The HTTP status Stripe answered with; `None`: no answer (network, timeout).
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl StripeError {
    /// Whether trying again later may work: no answer, 409 (an idempotent request
    /// still in flight), 429 or a 5xx. Other 4xx answers will not change.
    pub fn is_retryable(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => status == 409 || status == 429 || status >= 500,
        }
    }
}

/// The Stripe API calls Tandem makes.
#[async_trait]
pub trait Stripe: Send + Sync + 'static {
    /// Creates a customer; returns its id (`cus_…`).
    async fn create_customer(&self, customer: &NewCustomer) -> Result<String, StripeError>;
    /// Creates a Checkout session in subscription mode.
    async fn create_checkout_session(&self, checkout: &NewCheckout)
        -> Result<Session, StripeError>;
    /// Creates a customer-portal session.
    async fn create_portal_session(&self, portal: &NewPortal) -> Result<Session, StripeError>;
    /// Reports one meter event.
    async fn send_meter_event(&self, event: &MeterEvent) -> Result<(), StripeError>;
}
