//! The management API (session or personal access token), per tenant: the tenant,
//! projects, members, personal access tokens and the audit log. Project keys are in
//! [`super::keys`]. Every route starts from [`ControlPlane::tenant_access`], which
//! answers 404 for a tenant the caller is not in.
//!
//! [`ControlPlane::tenant_access`]: crate::control::ControlPlane::tenant_access

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::parse_id;
use super::views::{ApiKey, AuditEntry, CreatedApiKey, Member, Project, RoleView, Tenant};
use crate::control::plane::TenantAccess;
use crate::control::ControlError;
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Meta, SignedIn};
use crate::http::AppState;
use crate::ids::{KeyId, ProjectId, TenantId, UserId};
use crate::rooms::{CloseFilter, CloseReason};
use crate::store::control::{KeyKindRow, ProjectPatch, Role};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_tenant))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(list_members))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(list_pats, create_pat))
        .routes(routes!(revoke_pat))
        .routes(routes!(audit_log))
}

/// A list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    /// The items.
    pub data: Vec<T>,
}

pub(super) async fn access(
    state: &AppState,
    auth: &crate::control::plane::UserAuth,
    tenant: &str,
    needed: Role,
) -> ApiResult<TenantAccess> {
    let tenant_id: TenantId = parse_id(tenant)?;
    Ok(state
        .control
        .tenant_access(auth, &tenant_id, needed)
        .await?)
}

/// The tenant.
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}", tag = "management", operation_id = "getTenant",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant (or not yours)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_tenant(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Tenant>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let row = state.control.tenant(&access).await?;
    Ok(Json(Tenant::new(&row, Some(access.role))))
}

/// The tenant's projects.
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/projects", tag = "management", operation_id = "listProjects",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Projects, oldest first", body = List<Project>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_projects(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<List<Project>>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let rows = state.control.list_projects(&access).await?;
    Ok(Json(List {
        data: rows.iter().map(Project::from).collect(),
    }))
}

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProject {
    /// Unique in the tenant, e.g. `production`.
    name: String,
    /// Let publishable keys mint tokens (for prototypes). Default false.
    #[serde(default)]
    public_access: bool,
}

/// Creates a project (admin).
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/projects", tag = "management", operation_id = "createProject",
    params(("tenantId" = String, Path, description = "The tenant")),
    request_body = CreateProject,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 201, description = "Created", body = Project),
        (status = 400, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A project with this name exists", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_project(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let row = state
        .control
        .create_project(&access, &body.name, body.public_access, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(Project::from(&row))))
}

/// One project.
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/projects/{projectId}", tag = "management", operation_id = "getProject",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_project(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath((tenant, project)): ApiPath<(String, String)>,
) -> ApiResult<Json<Project>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let project_id: ProjectId = parse_id(&project)?;
    let row = state.control.project(&access, &project_id).await?;
    Ok(Json(Project::from(&row)))
}

/// A change to a project; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    public_access: Option<bool>,
    /// The rooms publishable-key tokens may name: an exact room or `prefix*` (`*`: all).
    #[serde(default)]
    public_rooms: Option<String>,
    /// The scopes publishable-key tokens may carry, space-separated: `room:read`
    /// (required), `room:presence:write`, `room:write`.
    #[serde(default)]
    public_scopes: Option<String>,
}

/// Renames a project or changes its public access (admin). Changing the public rooms
/// or scopes closes the open connections of the project's publishable-key tokens
/// (4401); they reconnect under the new settings.
#[utoipa::path(
    patch, path = "/v1/tenants/{tenantId}/projects/{projectId}", tag = "management", operation_id = "updateProject",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project")),
    request_body = UpdateProject,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Updated", body = Project),
        (status = 400, description = "Invalid name, room pattern or scopes", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A project with this name exists", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_project(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, project)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> ApiResult<Json<Project>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let project_id: ProjectId = parse_id(&project)?;
    let row = state
        .control
        .update_project(
            &access,
            &project_id,
            ProjectPatch {
                name: body.name,
                public_access: body.public_access,
                public_rooms: body.public_rooms.clone(),
                public_scopes: body.public_scopes.clone(),
            },
            &meta,
        )
        .await?;
    if body.public_rooms.is_some() || body.public_scopes.is_some() {
        // Open connections were admitted under the old settings: they reconnect under
        // the new ones (the authorizer holds every publishable-key token to them).
        let keys = state
            .control
            .list_project_keys(&access.tenant_id, &project_id)
            .await?;
        for key in keys.iter().filter(|k| k.kind == KeyKindRow::Publishable) {
            state
                .rooms
                .close_where(
                    project_id.as_str(),
                    CloseFilter::Key(key.id.to_string()),
                    CloseReason::new(
                        tandem_protocol::close::UNAUTHORIZED,
                        "the project's public access settings changed",
                    ),
                )
                .await;
        }
    }
    Ok(Json(Project::from(&row)))
}

/// Deletes a project with its keys, rooms and documents (admin). Its connections are
/// closed with 4404.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenantId}/projects/{projectId}", tag = "management", operation_id = "deleteProject",
    params(("tenantId" = String, Path, description = "The tenant"), ("projectId" = String, Path, description = "The project")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_project(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, project)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let project_id: ProjectId = parse_id(&project)?;
    state
        .control
        .delete_project(&access, &project_id, &meta)
        .await?;
    state
        .rooms
        .close_where(
            project_id.as_str(),
            CloseFilter::All,
            CloseReason::new(tandem_protocol::close::ROOM_DELETED, "project deleted"),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's members.
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/members", tag = "management", operation_id = "listMembers",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Members, oldest first", body = List<Member>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_members(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<List<Member>>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let rows = state.control.list_members(&access).await?;
    Ok(Json(List {
        data: rows.iter().map(Member::from).collect(),
    }))
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMember {
    role: RoleView,
}

/// Changes a member's role (admin; owner roles by owners; the last owner stays).
#[utoipa::path(
    patch, path = "/v1/tenants/{tenantId}/members/{userId}", tag = "management", operation_id = "updateMember",
    params(("tenantId" = String, Path, description = "The tenant"), ("userId" = String, Path, description = "The member")),
    request_body = UpdateMember,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Updated", body = Member),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would leave the tenant without an owner", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_member(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, user)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> ApiResult<Json<Member>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let user_id: UserId = parse_id(&user)?;
    let row = state
        .control
        .set_member_role(&access, &user_id, body.role.into(), &meta)
        .await?;
    Ok(Json(Member::from(&row)))
}

/// Removes a member (admin, or yourself); their personal access tokens here are revoked.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenantId}/members/{userId}", tag = "management", operation_id = "removeMember",
    params(("tenantId" = String, Path, description = "The tenant"), ("userId" = String, Path, description = "The member")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would leave the tenant without an owner", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove_member(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, user)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let user_id: UserId = parse_id(&user)?;
    state
        .control
        .remove_member(&access, &user_id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your personal access tokens in this tenant.
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/personal-access-tokens", tag = "management", operation_id = "listPersonalAccessTokens",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Tokens, newest first (never the token itself)", body = List<ApiKey>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_pats(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<List<ApiKey>>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let rows = state.control.list_pats(&access.tenant_id, &auth).await?;
    let now = state.control.now_ms();
    Ok(Json(List {
        data: rows.iter().map(|r| ApiKey::new(r, now)).collect(),
    }))
}

/// A new personal access token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePat {
    /// What it is for.
    name: String,
    /// Lifetime in seconds, 1 to 315360000 (ten years); none means until revoked.
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Creates a personal access token for the management API of this tenant. The token is
/// in this response only. Only a signed-in session may create one (not another token).
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/personal-access-tokens", tag = "management", operation_id = "createPersonalAccessToken",
    params(("tenantId" = String, Path, description = "The tenant")),
    request_body = CreatePat,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Made with a personal access token (only a session creates them), or cross-site", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_pat(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<CreatePat>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    // A token cannot mint tokens: one that leaked would otherwise outlive its revocation
    // through the children it made.
    auth.require_session("personal access tokens are created from a signed-in session, not with a personal access token")?;
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let max = crate::control::clock::MAX_PAT_LIFETIME.as_secs();
    if body.expires_in == Some(0) || body.expires_in.is_some_and(|s| s > max) {
        return Err(ControlError::Invalid(format!(
            "expiresIn must be 1 to {max} seconds (ten years); leave it out for a token that lasts until revoked"
        ))
        .into());
    }
    let created = state
        .control
        .create_pat(
            &access.tenant_id,
            &auth,
            &body.name,
            body.expires_in.map(Duration::from_secs),
            &meta,
        )
        .await?;
    let now = state.control.now_ms();
    Ok((StatusCode::CREATED, Json(CreatedApiKey::new(created, now))))
}

/// Revokes one of your personal access tokens, at once.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenantId}/personal-access-tokens/{keyId}", tag = "management", operation_id = "revokePersonalAccessToken",
    params(("tenantId" = String, Path, description = "The tenant"), ("keyId" = String, Path, description = "The token's id")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_pat(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, key)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let key_id: KeyId = parse_id(&key)?;
    state
        .control
        .revoke_pat(&access.tenant_id, &auth, &key_id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries older than this id (the previous page's `nextCursor`).
    #[serde(default)]
    before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// Audit log entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    data: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

/// The tenant's audit log of security-relevant actions (admin).
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/audit-log", tag = "management", operation_id = "listAuditLog",
    params(("tenantId" = String, Path, description = "The tenant"), AuditQuery),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Entries, newest first", body = AuditPage),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn audit_log(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let limit = query.limit.unwrap_or(50);
    let rows = state
        .control
        .audit_log(&access, query.before, limit)
        .await?;
    let next_cursor = (rows.len() as u32 >= limit.clamp(1, 200))
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage {
        data: rows.iter().map(AuditEntry::from).collect(),
        next_cursor,
    }))
}
