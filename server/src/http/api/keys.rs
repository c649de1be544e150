//! Project API keys over HTTP, reachable two ways: by a signed-in member under
//! `/v1/tenants/{tenantId}/projects/{projectId}/keys` (the dashboard), and by the
//! project's own secret key under `/v1/keys` (automation). Revoking closes the
//! connections whose tokens the key minted.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::management::{access, List};
use super::parse_id;
use super::views::{ApiKey, CreatedApiKey, KeyKindView};
use crate::control::keywatch::KEY_STOPPED;
use crate::control::plane::RequestMeta;
use crate::control::ControlError;
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, Meta, SecretKey, SignedIn};
use crate::http::AppState;
use crate::ids::{KeyId, ProjectId, TenantId};
use crate::rooms::{CloseFilter, CloseReason};
use crate::store::control::{KeyKindRow, Role};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_list_keys, tenant_create_key))
        .routes(routes!(tenant_revoke_key))
        .routes(routes!(tenant_roll_key))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(roll_key))
}

/// A new project key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    /// `secret` or `publishable`.
    kind: KeyKindView,
    /// What it is for.
    #[serde(default)]
    name: String,
}

/// How to roll a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollKey {
    /// How long the old key keeps working, in seconds (0: stops now; at most 7 days).
    grace_period_seconds: u64,
}

/// The new key, and the old one with the end of its grace period.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolledKey {
    /// The replacement. Store `key` now: it cannot be shown again.
    new_key: CreatedApiKey,
    /// The rolled key; it stops working at `expiresAt`.
    old_key: ApiKey,
}

fn kind_row(kind: KeyKindView) -> ApiResult<KeyKindRow> {
    match kind {
        KeyKindView::Secret => Ok(KeyKindRow::Secret),
        KeyKindView::Publishable => Ok(KeyKindRow::Publishable),
        KeyKindView::PersonalAccessToken => Err(ControlError::Invalid(
            "project keys are secret or publishable; personal access tokens are created under /v1/tenants/{tenantId}/personal-access-tokens".to_owned(),
        )
        .into()),
    }
}

async fn list(
    state: &AppState,
    tenant: &TenantId,
    project: &ProjectId,
) -> ApiResult<Json<List<ApiKey>>> {
    let rows = state.control.list_project_keys(tenant, project).await?;
    let now = state.control.now_ms();
    Ok(Json(List {
        data: rows.iter().map(|r| ApiKey::new(r, now)).collect(),
    }))
}

async fn create(
    state: &AppState,
    tenant: &TenantId,
    project: &ProjectId,
    body: CreateKey,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let created = state
        .control
        .create_project_key(
            tenant,
            project,
            kind_row(body.kind)?,
            &body.name,
            actor,
            meta,
        )
        .await?;
    let now = state.control.now_ms();
    Ok((StatusCode::CREATED, Json(CreatedApiKey::new(created, now))))
}

/// Revokes a project key and closes the connections whose tokens it minted (the
/// dashboard revokes through this too).
pub(crate) async fn revoke(
    state: &AppState,
    tenant: &TenantId,
    project: &ProjectId,
    key: &str,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Json<ApiKey>> {
    let key_id: KeyId = parse_id(key)?;
    let row = state
        .control
        .revoke_project_key(tenant, project, &key_id, actor, meta)
        .await?;
    state
        .rooms
        .close_where(
            project.as_str(),
            CloseFilter::Key(key_id.to_string()),
            CloseReason::new(
                tandem_protocol::close::UNAUTHORIZED,
                "the API key behind this token was revoked",
            ),
        )
        .await;
    Ok(Json(ApiKey::new(&row, state.control.now_ms())))
}

async fn roll(
    state: &AppState,
    tenant: &TenantId,
    project: &ProjectId,
    key: &str,
    body: RollKey,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Json<RolledKey>> {
    let key_id: KeyId = parse_id(key)?;
    let (created, old) = state
        .control
        .roll_project_key(
            tenant,
            project,
            &key_id,
            Duration::from_secs(body.grace_period_seconds),
            actor,
            meta,
        )
        .await?;
    if body.grace_period_seconds == 0 {
        // The old key stopped now: so do its tokens' connections, on every node. With a
        // grace period, each node's key sweep closes them when it ends.
        state
            .rooms
            .close_where(
                project.as_str(),
                CloseFilter::Key(key_id.to_string()),
                CloseReason::new(tandem_protocol::close::UNAUTHORIZED, KEY_STOPPED),
            )
            .await;
    }
    let now = state.control.now_ms();
    Ok(Json(RolledKey {
        new_key: CreatedApiKey::new(created, now),
        old_key: ApiKey::new(&old, now),
    }))
}

/// The project's keys, newest first (never the keys themselves).
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/projects/{projectId}/keys", tag = "management", operation_id = "listProjectKeys",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Keys", body = List<ApiKey>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn tenant_list_keys(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath((tenant, project)): ApiPath<(String, String)>,
) -> ApiResult<Json<List<ApiKey>>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    list(&state, &access.tenant_id, &parse_id(&project)?).await
}

/// Creates a project key (admin). The key is in this response only.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/projects/{projectId}/keys", tag = "management", operation_id = "createProjectKey",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project")),
    request_body = CreateKey,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn tenant_create_key(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, project)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let access = access(&state, &auth, &tenant, Role::Admin).await?;
    create(
        &state,
        &access.tenant_id,
        &parse_id(&project)?,
        body,
        &access.actor,
        &meta,
    )
    .await
}

/// Revokes a project key at once (admin); connections using tokens it minted are
/// closed with 4401.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/projects/{projectId}/keys/{keyId}/revoke", tag = "management", operation_id = "revokeProjectKey",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project"), ("keyId" = String, Path, description = "The key")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Revoked", body = ApiKey),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn tenant_revoke_key(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, project, key)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ApiKey>> {
    let access = access(&state, &auth, &tenant, Role::Admin).await?;
    revoke(
        &state,
        &access.tenant_id,
        &parse_id(&project)?,
        &key,
        &access.actor,
        &meta,
    )
    .await
}

/// Rolls a project key (admin): a new key now, the old one working for the grace period.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/projects/{projectId}/keys/{keyId}/roll", tag = "management", operation_id = "rollProjectKey",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project"), ("keyId" = String, Path, description = "The key")),
    request_body = RollKey,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Rolled", body = RolledKey),
        (status = 400, description = "Grace period too long", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is already revoked or expired", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn tenant_roll_key(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, project, key)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<RollKey>,
) -> ApiResult<Json<RolledKey>> {
    let access = access(&state, &auth, &tenant, Role::Admin).await?;
    roll(
        &state,
        &access.tenant_id,
        &parse_id(&project)?,
        &key,
        body,
        &access.actor,
        &meta,
    )
    .await
}

/// This project's keys, newest first (never the keys themselves).
#[utoipa::path(
    get, path = "/v1/keys", tag = "project", operation_id = "listKeys",
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Keys", body = List<ApiKey>),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_keys(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
) -> ApiResult<Json<List<ApiKey>>> {
    list(&state, &auth.tenant_id, &auth.project_id).await
}

/// Creates a key for this project. The key is in this response only.
#[utoipa::path(
    post, path = "/v1/keys", tag = "project", operation_id = "createKey",
    request_body = CreateKey,
    security(("secret_key" = [])),
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_key(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    create(
        &state,
        &auth.tenant_id,
        &auth.project_id,
        body,
        auth.key_id.as_str(),
        &meta,
    )
    .await
}

/// Revokes a key of this project at once; connections using tokens it minted are
/// closed with 4401.
#[utoipa::path(
    post, path = "/v1/keys/{keyId}/revoke", tag = "project", operation_id = "revokeKey",
    params(("keyId" = String, Path, description = "The key")),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Revoked", body = ApiKey),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_key(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<ApiKey>> {
    revoke(
        &state,
        &auth.tenant_id,
        &auth.project_id,
        &key,
        auth.key_id.as_str(),
        &meta,
    )
    .await
}

/// Rolls a key of this project: a new key now, the old one working for the grace period.
#[utoipa::path(
    post, path = "/v1/keys/{keyId}/roll", tag = "project", operation_id = "rollKey",
    params(("keyId" = String, Path, description = "The key")),
    request_body = RollKey,
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Rolled", body = RolledKey),
        (status = 400, description = "Grace period too long", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in this project", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is already revoked or expired", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn roll_key(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<RollKey>,
) -> ApiResult<Json<RolledKey>> {
    roll(
        &state,
        &auth.tenant_id,
        &auth.project_id,
        &key,
        body,
        auth.key_id.as_str(),
        &meta,
    )
    .await
}
