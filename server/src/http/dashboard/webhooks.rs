//! A project's webhooks page: endpoints (with a notice when one was disabled after
//! failing), creating one (its secret shown once), enabling, disabling, deleting, a
//! test delivery, and each endpoint's recent deliveries with a retry button. The
//! handlers call the same `ControlPlane` operations as `/v1/webhooks`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use super::error::{render_status, DashError, DashResult};
use super::render::{ago, when};
use super::session::{Chrome, Ctx, DashUser};
use crate::control::events::EVENT_TYPES;
use crate::control::webhooks::NewWebhook;
use crate::http::api::parse_id;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::ids::{DeliveryId, WebhookId};
use crate::store::webhooks::WebhookPatch;

struct DeliveryView {
    id: String,
    event: String,
    seq: i64,
    status: &'static str,
    attempts: i64,
    response: String,
    error: String,
    when: String,
}

struct WebhookView {
    id: String,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    disabled_reason: String,
    last_success: String,
    deliveries: Vec<DeliveryView>,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    chrome: Chrome,
    project_id: String,
    webhooks: Vec<WebhookView>,
    event_types: &'static [&'static str],
    can_admin: bool,
    /// A new secret (shown once): the endpoint's URL and the secret.
    revealed: Option<(String, String)>,
    /// The outcome of a test delivery.
    notice: Option<String>,
}

async fn page(
    state: &AppState,
    mut ctx: Ctx,
    status: StatusCode,
    revealed: Option<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
) -> DashResult {
    let project = ctx.project()?;
    ctx.crumb("Webhooks");
    let now = state.control.now_ms();
    let rows = state.control.list_webhooks(&project.id).await?;
    let mut webhooks = Vec::with_capacity(rows.len());
    for row in rows {
        let deliveries = state
            .control
            .list_deliveries(&project.id, &row.id, None, 10)
            .await?;
        webhooks.push(WebhookView {
            id: row.id.to_string(),
            url: row.url.clone(),
            description: row.description.clone(),
            events: row.event_types.join(", "),
            enabled: row.disabled_at.is_none(),
            disabled_reason: row.disabled_reason.clone().unwrap_or_default(),
            last_success: row
                .last_success_at
                .map_or_else(|| "never".to_owned(), |at| ago(at, now)),
            deliveries: deliveries
                .iter()
                .map(|d| DeliveryView {
                    id: d.id.to_string(),
                    event: d.event_type.clone(),
                    seq: d.event_seq,
                    status: d.status.as_str(),
                    attempts: d.attempts,
                    response: d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                    error: d.last_error.clone().unwrap_or_default(),
                    when: when(d.last_attempt_at.unwrap_or(d.created_at)),
                })
                .collect(),
        });
    }
    ctx.chrome.error = error;
    Ok(render_status(
        status,
        &WebhooksPage {
            project_id: project.id.to_string(),
            webhooks,
            event_types: EVENT_TYPES,
            can_admin: ctx.can_admin(),
            revealed,
            notice,
            chrome: ctx.chrome,
        },
    ))
}

fn admin(ctx: &Ctx) -> Result<(), DashError> {
    if ctx.can_admin() {
        Ok(())
    } else {
        Err(crate::control::ControlError::Forbidden(
            "managing webhooks needs the admin role".into(),
        )
        .into())
    }
}

/// The page again with the problem shown.
async fn failed(state: &AppState, ctx: Ctx, error: DashError) -> DashResult {
    if let DashError::SignIn = error {
        return Err(error);
    }
    let (status, detail) = error.detail();
    page(state, ctx, status, None, None, Some(detail)).await
}

fn back(ctx: &Ctx, project: &str) -> axum::response::Response {
    Redirect::to(&format!("{}/p/{project}/webhooks", ctx.base())).into_response()
}

/// The project's webhooks.
pub(super) async fn list(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "webhooks").await?;
    page(&state, ctx, StatusCode::OK, None, None, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

/// Creates an endpoint and shows its secret once.
pub(super) async fn create(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Form(form): Form<CreateForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "webhooks").await?;
    if let Err(error) = admin(&ctx) {
        return failed(&state, ctx, error).await;
    }
    let project_id = ctx.project()?.id;
    let events: Vec<String> = form
        .events
        .split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let events = if events.is_empty() {
        vec!["*".to_owned()]
    } else {
        events
    };
    match state
        .control
        .create_webhook(
            &ctx.access.tenant_id,
            &project_id,
            NewWebhook {
                url: form.url,
                event_types: events,
                description: form.description,
            },
            &ctx.access.actor,
            &meta,
        )
        .await
    {
        Ok(created) => {
            let revealed = Some((created.webhook.url, created.secret));
            page(&state, ctx, StatusCode::CREATED, revealed, None, None).await
        }
        Err(error) => failed(&state, ctx, error.into()).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct EnableForm {
    enabled: bool,
}

/// Enables (pending deliveries resume) or disables an endpoint.
pub(super) async fn enable(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project, webhook)): Path<(String, String, String)>,
    Form(form): Form<EnableForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "webhooks").await?;
    let result = async {
        admin(&ctx)?;
        let id: WebhookId = parse_id(&webhook)?;
        let patch = WebhookPatch {
            enabled: Some(form.enabled),
            ..WebhookPatch::default()
        };
        state
            .control
            .update_webhook(
                &ctx.access.tenant_id,
                &ctx.project()?.id,
                &id,
                patch,
                &ctx.access.actor,
                &meta,
            )
            .await?;
        state.control.events().wake_deliveries();
        Ok::<_, DashError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(back(&ctx, &project)),
        Err(error) => failed(&state, ctx, error).await,
    }
}

/// Deletes an endpoint.
pub(super) async fn delete(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project, webhook)): Path<(String, String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "webhooks").await?;
    let result = async {
        admin(&ctx)?;
        let id: WebhookId = parse_id(&webhook)?;
        state
            .control
            .delete_webhook(
                &ctx.access.tenant_id,
                &ctx.project()?.id,
                &id,
                &ctx.access.actor,
                &meta,
            )
            .await?;
        Ok::<_, DashError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(back(&ctx, &project)),
        Err(error) => failed(&state, ctx, error).await,
    }
}

/// Sends a test delivery and shows what the endpoint answered.
pub(super) async fn test(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project, webhook)): Path<(String, String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "webhooks").await?;
    let result = async {
        admin(&ctx)?;
        let id: WebhookId = parse_id(&webhook)?;
        Ok::<_, DashError>(state.control.test_webhook(&ctx.project()?.id, &id).await?)
    }
    .await;
    match result {
        Ok(tested) => {
            let notice = match (tested.delivered, tested.status, tested.error) {
                (true, Some(status), _) => {
                    format!("Test delivered: the endpoint answered {status}.")
                }
                (false, Some(status), _) => {
                    format!("Test not accepted: the endpoint answered {status}.")
                }
                (_, None, Some(error)) => format!("Test failed: {error}"),
                _ => "Test failed.".to_owned(),
            };
            page(&state, ctx, StatusCode::OK, None, Some(notice), None).await
        }
        Err(error) => failed(&state, ctx, error).await,
    }
}

/// Makes a delivery due again now.
pub(super) async fn retry(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project, webhook, delivery)): Path<(String, String, String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "webhooks").await?;
    let result = async {
        admin(&ctx)?;
        let id: WebhookId = parse_id(&webhook)?;
        let delivery: DeliveryId = parse_id(&delivery)?;
        state
            .control
            .retry_delivery(
                &ctx.access.tenant_id,
                &ctx.project()?.id,
                &id,
                &delivery,
                &ctx.access.actor,
                &meta,
            )
            .await?;
        Ok::<_, DashError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(back(&ctx, &project)),
        Err(error) => failed(&state, ctx, error).await,
    }
}
