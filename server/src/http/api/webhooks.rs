//! Webhook endpoints and their deliveries over HTTP (`/v1/webhooks…`, project secret
//! key), and the change feed (`GET /v1/events` with long-polling, `GET
//! /v1/events/stream` as server-sent events resuming from `Last-Event-ID`). The rules
//! are in `control::webhooks` and `control::events`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::management::List;
use super::parse_id;
use super::views::time;
use crate::control::webhooks::NewWebhook;
use crate::control::ControlError;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Meta, SecretKey};
use crate::http::AppState;
use crate::ids::{DeliveryId, EventId, ProjectId, WebhookId};
use crate::store::webhooks::{DeliveryRow, EventRow, WebhookPatch, WebhookRow};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(roll_webhook_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
        .routes(routes!(test_webhook))
        .routes(routes!(list_events))
        .routes(routes!(stream_events))
}

impl super::ParseId for WebhookId {
    fn parse_id(raw: &str) -> Option<Self> {
        WebhookId::parse(raw)
    }
}

impl super::ParseId for DeliveryId {
    fn parse_id(raw: &str) -> Option<Self> {
        DeliveryId::parse(raw)
    }
}

/// A webhook endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    id: WebhookId,
    url: String,
    description: String,
    /// Event types it receives (`*` all, `member.*` a family).
    events: Vec<String>,
    /// `false` when disabled (by you, or after failing for the whole retry period).
    enabled: bool,
    /// Why it is disabled.
    disabled_reason: Option<String>,
    disabled_at: Option<String>,
    /// The last 2xx answer.
    last_success_at: Option<String>,
    /// While a rolled secret still signs (a second signature in `webhook-signature`).
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Webhook {
    pub(crate) fn new(row: &WebhookRow, now: i64) -> Self {
        Self {
            id: row.id.clone(),
            url: row.url.clone(),
            description: row.description.clone(),
            events: row.event_types.clone(),
            enabled: row.disabled_at.is_none(),
            disabled_reason: row.disabled_reason.clone(),
            disabled_at: row.disabled_at.map(time),
            last_success_at: row.last_success_at.map(time),
            previous_secret_expires_at: row.previous_expires_at.filter(|at| *at > now).map(time),
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
        }
    }
}

/// An endpoint with its signing secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    webhook: Webhook,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Store it now.
    secret: String,
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://…` (the operator may allow `http://`); must not resolve to an internal
    /// address.
    url: String,
    /// Event types: `room.created`, `room.deleted`, `user.entered`, `user.left`,
    /// `document.updated`, `key.created`, `key.rolled`, `key.revoked`,
    /// `usage.limit_reached`, `member.*` (or one member event), or `*`.
    events: Vec<String>,
    #[serde(default)]
    description: String,
}

/// Changes to an endpoint (absent fields stay).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    /// `true` re-enables a disabled endpoint (its pending deliveries resume).
    #[serde(default)]
    enabled: Option<bool>,
}

/// How to roll the secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollSecret {
    /// How long the old secret keeps signing too, in seconds (default 86400, at most 7
    /// days; 0: it stops now).
    #[serde(default)]
    overlap_seconds: Option<u64>,
}

/// One event's delivery to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    id: DeliveryId,
    event_id: EventId,
    event_type: String,
    /// The event's seq in the project's feed.
    event_seq: i64,
    /// `pending`, `delivered` or `failed`.
    status: String,
    attempts: i64,
    /// The endpoint's HTTP status on the last attempt.
    response_status: Option<i64>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    last_attempt_at: Option<String>,
    /// When a pending delivery is tried next.
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
    created_at: String,
}

impl From<&DeliveryRow> for Delivery {
    fn from(row: &DeliveryRow) -> Self {
        let pending = row.status == crate::store::webhooks::DeliveryStatus::Pending;
        Self {
            id: row.id.clone(),
            event_id: row.event_id.clone(),
            event_type: row.event_type.clone(),
            event_seq: row.event_seq,
            status: row.status.as_str().to_owned(),
            attempts: row.attempts,
            response_status: row.last_status,
            last_error: row.last_error.clone(),
            last_attempt_at: row.last_attempt_at.map(time),
            next_attempt_at: pending.then(|| time(row.next_attempt_at)),
            delivered_at: row.delivered_at.map(time),
            created_at: time(row.created_at),
        }
    }
}

/// A page of deliveries, newest event first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    data: Vec<Delivery>,
    /// Pass as `before` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

/// A page query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries of events with a seq below this (the previous page's
    /// `nextCursor`).
    #[serde(default)]
    before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// What a test delivery did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestDelivery {
    /// The endpoint answered 2xx.
    delivered: bool,
    /// Its HTTP status, if it answered.
    status: Option<u16>,
    /// Why there was no answer (refused by the address guard, DNS, timeout…).
    error: Option<String>,
}

/// A project event, as webhooks deliver it and the feed lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectEvent {
    /// Stable: the `webhook-id` of its deliveries.
    id: EventId,
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    project_id: ProjectId,
    /// Per project, increasing by one in commit order: the feed's cursor.
    seq: i64,
    /// Depends on the type (`room`, `userId`, `fromSeq`/`toSeq`, …).
    data: serde_json::Value,
}

impl From<&EventRow> for ProjectEvent {
    fn from(row: &EventRow) -> Self {
        Self {
            id: row.id.clone(),
            event_type: row.event_type.clone(),
            timestamp: time(row.created_at),
            project_id: row.project_id.clone(),
            seq: row.seq,
            data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    data: Vec<ProjectEvent>,
    /// The seq to pass as `after` next time (the last event's, or `after` if none).
    next_after: i64,
}

/// The feed query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Events with a seq above this (default 0: from the oldest kept).
    #[serde(default)]
    after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    limit: Option<u32>,
    /// Long-poll: when nothing is newer, wait up to this many seconds (at most 60) for
    /// an event before answering an empty page.
    #[serde(default)]
    wait: Option<u64>,
}

fn body_patch(body: UpdateWebhook) -> WebhookPatch {
    WebhookPatch {
        url: body.url,
        description: body.description,
        event_types: body.events,
        enabled: body.enabled,
    }
}

/// This project's webhook endpoints, oldest first.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks", operation_id = "listWebhooks",
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Endpoints", body = List<Webhook>),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_webhooks(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
) -> ApiResult<Json<List<Webhook>>> {
    let rows = state.control.list_webhooks(&auth.project_id).await?;
    let now = state.control.now_ms();
    Ok(Json(List {
        data: rows.iter().map(|r| Webhook::new(r, now)).collect(),
    }))
}

/// Creates a webhook endpoint. Its `secret` is in this answer only.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks", operation_id = "createWebhook",
    request_body = CreateWebhook,
    security(("secret_key" = [])),
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = WebhookWithSecret),
        (status = 400, description = "Invalid URL (not https, an internal address), unknown event type", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_webhook(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    let created = state
        .control
        .create_webhook(
            &auth.tenant_id,
            &auth.project_id,
            NewWebhook {
                url: body.url,
                event_types: body.events,
                description: body.description,
            },
            auth.key_id.as_str(),
            &meta,
        )
        .await?;
    let now = state.control.now_ms();
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            webhook: Webhook::new(&created.webhook, now),
            secret: created.secret,
        }),
    ))
}

/// One webhook endpoint.
#[utoipa::path(
    get, path = "/v1/webhooks/{webhookId}", tag = "webhooks", operation_id = "getWebhook",
    params(("webhookId" = String, Path, description = "The endpoint")),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "The endpoint", body = Webhook),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_webhook(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Webhook>> {
    let row = state
        .control
        .webhook(&auth.project_id, &parse_id(&id)?)
        .await?;
    Ok(Json(Webhook::new(&row, state.control.now_ms())))
}

/// Changes an endpoint's URL, event types, description, or enables/disables it.
#[utoipa::path(
    patch, path = "/v1/webhooks/{webhookId}", tag = "webhooks", operation_id = "updateWebhook",
    params(("webhookId" = String, Path, description = "The endpoint")),
    request_body = UpdateWebhook,
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Updated", body = Webhook),
        (status = 400, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_webhook(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    let row = state
        .control
        .update_webhook(
            &auth.tenant_id,
            &auth.project_id,
            &parse_id(&id)?,
            body_patch(body),
            auth.key_id.as_str(),
            &meta,
        )
        .await?;
    if row.disabled_at.is_none() {
        state.control.events().wake_deliveries();
    }
    Ok(Json(Webhook::new(&row, state.control.now_ms())))
}

/// Deletes an endpoint and its deliveries.
#[utoipa::path(
    delete, path = "/v1/webhooks/{webhookId}", tag = "webhooks", operation_id = "deleteWebhook",
    params(("webhookId" = String, Path, description = "The endpoint")),
    security(("secret_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_webhook(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .control
        .delete_webhook(
            &auth.tenant_id,
            &auth.project_id,
            &parse_id(&id)?,
            auth.key_id.as_str(),
            &meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rolls the signing secret: the new one signs from now on, the old one too until the
/// overlap ends (each delivery then carries two signatures). The new secret is in this
/// answer only.
#[utoipa::path(
    post, path = "/v1/webhooks/{webhookId}/roll-secret", tag = "webhooks", operation_id = "rollWebhookSecret",
    params(("webhookId" = String, Path, description = "The endpoint")),
    request_body = RollSecret,
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Rolled; `secret` is shown only now", body = WebhookWithSecret),
        (status = 400, description = "Overlap too long", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn roll_webhook_secret(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RollSecret>,
) -> ApiResult<Json<WebhookWithSecret>> {
    let overlap = Duration::from_secs(body.overlap_seconds.unwrap_or(24 * 3600));
    let rolled = state
        .control
        .roll_webhook_secret(
            &auth.tenant_id,
            &auth.project_id,
            &parse_id(&id)?,
            overlap,
            auth.key_id.as_str(),
            &meta,
        )
        .await?;
    Ok(Json(WebhookWithSecret {
        webhook: Webhook::new(&rolled.webhook, state.control.now_ms()),
        secret: rolled.secret,
    }))
}

/// The endpoint's deliveries (status, attempts, its last answer), newest event first.
#[utoipa::path(
    get, path = "/v1/webhooks/{webhookId}/deliveries", tag = "webhooks", operation_id = "listWebhookDeliveries",
    params(("webhookId" = String, Path, description = "The endpoint"), DeliveryQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Deliveries", body = DeliveryPage),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_deliveries(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let rows = state
        .control
        .list_deliveries(&auth.project_id, &parse_id(&id)?, query.before, limit)
        .await?;
    let next_cursor = (rows.len() as u32 >= limit)
        .then(|| rows.last().map(|r| r.event_seq))
        .flatten();
    Ok(Json(DeliveryPage {
        data: rows.iter().map(Delivery::from).collect(),
        next_cursor,
    }))
}

/// Tries a delivery again now (a failed one, or a pending one sooner).
#[utoipa::path(
    post, path = "/v1/webhooks/{webhookId}/deliveries/{deliveryId}/retry", tag = "webhooks", operation_id = "retryWebhookDelivery",
    params(("webhookId" = String, Path, description = "The endpoint"), ("deliveryId" = String, Path, description = "The delivery")),
    security(("secret_key" = [])),
    responses(
        (status = 202, description = "Due now", body = Delivery),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn retry_delivery(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath((id, delivery)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let row = state
        .control
        .retry_delivery(
            &auth.tenant_id,
            &auth.project_id,
            &parse_id(&id)?,
            &parse_id(&delivery)?,
            auth.key_id.as_str(),
            &meta,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Delivery::from(&row))))
}

/// Sends a signed `webhook.test` event to the endpoint now (not stored, not retried)
/// and reports how the endpoint answered.
#[utoipa::path(
    post, path = "/v1/webhooks/{webhookId}/test", tag = "webhooks", operation_id = "testWebhook",
    params(("webhookId" = String, Path, description = "The endpoint")),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "What happened", body = TestDelivery),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn test_webhook(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TestDelivery>> {
    let result = state
        .control
        .test_webhook(&auth.project_id, &parse_id(&id)?)
        .await?;
    Ok(Json(TestDelivery {
        delivered: result.delivered,
        status: result.status,
        error: result.error,
    }))
}

/// Longest long-poll.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The project's events after a cursor, oldest first: the same events webhooks
/// deliver, kept for the retention period. With `wait`, an empty answer waits (up to
/// that many seconds) for the next event.
#[utoipa::path(
    get, path = "/v1/events", tag = "webhooks", operation_id = "listEvents",
    params(EventQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Events", body = EventPage),
        (status = 400, description = "Invalid cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest("after must not be negative".into()));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let hub = state.control.events();
    loop {
        // Registered before reading, so an event recorded between the read and the wait
        // still wakes us.
        let recorded = hub.recorded().notified();
        tokio::pin!(recorded);
        recorded.as_mut().enable();
        let rows = hub
            .feed(&auth.project_id, after, limit)
            .await
            .map_err(ControlError::from)?;
        let now = tokio::time::Instant::now();
        if !rows.is_empty() || now >= deadline {
            let next_after = rows.last().map_or(after, |r| r.seq);
            return Ok(Json(EventPage {
                data: rows.iter().map(ProjectEvent::from).collect(),
                next_after,
            }));
        }
        // Other nodes' events wake nobody here: look again within a second.
        let nap = (deadline - now).min(Duration::from_secs(1));
        tokio::select! {
            () = recorded => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// The cursor query of the stream.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Events with a seq above this; the `Last-Event-ID` header (sent by EventSource on
    /// reconnect) takes precedence (default 0).
    #[serde(default)]
    after: Option<i64>,
}

/// How long one stream lasts (EventSource reconnects with `Last-Event-ID`).
const STREAM_FOR: Duration = Duration::from_secs(10 * 60);

/// The project's events as server-sent events: `id` is the seq, `event` the type,
/// `data` the event as JSON. Resumes after `Last-Event-ID` (or `after`).
#[utoipa::path(
    get, path = "/v1/events/stream", tag = "webhooks", operation_id = "streamEvents",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "The last seq received"),
    ),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "text/event-stream of events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn stream_events(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> ApiResult<Response> {
    let last = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be a seq".into()))?,
        ),
        None => None,
    };
    let after = last.or(query.after).unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest("after must not be negative".into()));
    }
    struct Cursor {
        state: AppState,
        project: ProjectId,
        after: i64,
        buffered: std::collections::VecDeque<EventRow>,
        ends: tokio::time::Instant,
    }
    let cursor = Cursor {
        state,
        project: auth.project_id,
        after,
        buffered: Default::default(),
        ends: tokio::time::Instant::now() + STREAM_FOR,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(row) = c.buffered.pop_front() {
                c.after = row.seq;
                let data = serde_json::to_string(&ProjectEvent::from(&row)).unwrap_or_default();
                let event = Event::default()
                    .id(row.seq.to_string())
                    .event(row.event_type.clone())
                    .data(data);
                return Some((Ok::<_, Infallible>(event), c));
            }
            if tokio::time::Instant::now() >= c.ends {
                return None;
            }
            let hub = c.state.control.events().clone();
            let recorded = hub.recorded().notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            match hub.feed(&c.project, c.after, 100).await {
                Ok(rows) if !rows.is_empty() => c.buffered.extend(rows),
                // Nothing new, or the store is down: wait and look again.
                _ => {
                    tokio::select! {
                        () = recorded => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
