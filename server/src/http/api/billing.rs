//! Stripe billing over REST (present when billing is configured; otherwise 404): an
//! owner opens a Checkout session to buy a plan or a customer-portal session to manage
//! it, and Stripe posts its events to the webhook. The rules are
//! [`crate::control::billing`]'s; here they get their HTTP shape.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::management::access;
use crate::control::billing::webhook::{Outcome, WebhookError};
use crate::control::billing::Billing;
use crate::control::ControlError;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, Meta, SignedIn};
use crate::http::AppState;
use crate::store::control::Role;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(portal))
        .routes(routes!(stripe_webhook))
}

/// The service, or 404 when billing is not configured (the route exists, so the
/// answer is the plain "not found", not "no such route").
fn billing(state: &AppState) -> ApiResult<&Billing> {
    state
        .billing
        .as_ref()
        .ok_or(ApiError::Control(ControlError::NotFound))
}

/// This server's address as the user reaches it: `--public-url`, else the request's
/// `Host`.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.control.config().public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Which plan to buy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequest {
    /// A plan with a Stripe price (`pro`, `enterprise`, …).
    plan: String,
}

/// A Stripe page to send the user to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingSession {
    /// Stripe's id of the session (`cs_…`, `bps_…`).
    id: String,
    /// The page.
    url: String,
}

/// Opens a Stripe Checkout session (subscription mode) for a plan. Owners only. The
/// tenant's Stripe customer is created on the first call and kept. The plan changes
/// when Stripe reports the payment (the webhook), not here.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/billing/checkout", tag = "management", operation_id = "createCheckoutSession",
    params(("tenantId" = String, Path, description = "The tenant")),
    request_body = CheckoutRequest,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 201, description = "Send the user to `url`", body = BillingSession),
        (status = 400, description = "No such plan to buy", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant (or not yours), or billing is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn checkout(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
    Meta(meta): Meta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CheckoutRequest>,
) -> ApiResult<(StatusCode, Json<BillingSession>)> {
    let billing = billing(&state)?;
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let base = base_url(&state, &headers);
    let session = billing.checkout(&access, &body.plan, &base, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(BillingSession {
            id: session.id,
            url: session.url,
        }),
    ))
}

/// Opens a Stripe customer-portal session (change plan, card, cancel). Owners only,
/// once the tenant has a Stripe customer.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/billing/portal", tag = "management", operation_id = "createPortalSession",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 201, description = "Send the user to `url`", body = BillingSession),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant (or not yours), or billing is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Stripe customer yet (upgrade first)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn portal(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
    Meta(meta): Meta,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<BillingSession>)> {
    let billing = billing(&state)?;
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let base = base_url(&state, &headers);
    let session = billing.portal(&access, &base, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(BillingSession {
            id: session.id,
            url: session.url,
        }),
    ))
}

/// Whether the event was new.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// `false`: this event was applied before (a replay); nothing changed.
    applied: bool,
}

/// Stripe's webhook. The body must be signed (`Stripe-Signature`, within 5 minutes)
/// with one of the configured endpoint secrets; every event is applied once, by its id.
#[utoipa::path(
    post, path = "/v1/billing/stripe/webhook", tag = "billing", operation_id = "stripeWebhook",
    request_body(content = String, content_type = "application/json", description = "A Stripe event, as Stripe sent it"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<HMAC-SHA256>[,v1=…]")),
    responses(
        (status = 200, description = "Received", body = WebhookAnswer),
        (status = 400, description = "Bad or stale signature, or not an event: nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Billing is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAnswer>> {
    let billing = billing(&state)?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match billing.handle_webhook(&body, signature).await {
        Ok(outcome) => Ok(Json(WebhookAnswer {
            applied: outcome == Outcome::Applied,
        })),
        Err(WebhookError::Unavailable) => Err(ApiError::Control(ControlError::Internal(
            "applying a Stripe event failed".into(),
        ))),
        Err(error) => Err(ApiError::BadRequest(format!("webhook refused: {error}"))),
    }
}
