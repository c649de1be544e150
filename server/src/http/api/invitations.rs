//! Membership by consent over HTTP: invitations (create, list, revoke, accept), leaving a
//! tenant, and the signed-in user's own security log. The rules are in
//! [`crate::control::invitations`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::management::{access, List};
use super::parse_id;
use super::views::{time, RoleView};
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Meta, SignedIn};
use crate::http::AppState;
use crate::ids::{InvitationId, TenantId, UserId};
use crate::store::control::Role;
use crate::store::invitations::{InvitationRow, SecurityEventRow};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
        .routes(routes!(leave_tenant))
        .routes(routes!(security_log))
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

/// An invitation (never its token).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    id: InvitationId,
    tenant_id: TenantId,
    email: String,
    role: RoleView,
    status: InvitationStatus,
    invited_by: UserId,
    created_at: String,
    expires_at: String,
    accepted_at: Option<String>,
    accepted_by: Option<UserId>,
    revoked_at: Option<String>,
}

impl Invitation {
    fn new(row: &InvitationRow, now: i64) -> Self {
        let status = if row.accepted_at.is_some() {
            InvitationStatus::Accepted
        } else if row.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if row.expires_at <= now {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        };
        Self {
            id: row.id.clone(),
            tenant_id: row.tenant_id.clone(),
            email: row.email.clone(),
            role: row.role.into(),
            status,
            invited_by: row.invited_by.clone(),
            created_at: time(row.created_at),
            expires_at: time(row.expires_at),
            accepted_at: row.accepted_at.map(time),
            accepted_by: row.accepted_by.clone(),
            revoked_at: row.revoked_at.map(time),
        }
    }
}

/// Whom to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvitation {
    /// The invited person's email; only a user signed in with it can accept.
    email: String,
    role: RoleView,
}

/// A new invitation and its link, shown only now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedInvitation {
    invitation: Invitation,
    /// The secret of the link (also in `acceptUrl`); pass it to `acceptInvitation`.
    token: String,
    /// The link to send the invited person (also queued in the email outbox).
    accept_url: String,
}

/// The tenant's invitations, newest first, in every state (admin).
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/invitations", tag = "management", operation_id = "listInvitations",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Invitations", body = List<Invitation>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_invitations(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<List<Invitation>>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let rows = state.control.list_invitations(&access).await?;
    let now = state.control.now_ms();
    Ok(Json(List {
        data: rows.iter().map(|r| Invitation::new(r, now)).collect(),
    }))
}

/// Invites a person by email (admin; only owners invite owners). They join when they
/// accept, signed in with that email; the link expires in 7 days and works once.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/invitations", tag = "management", operation_id = "createInvitation",
    params(("tenantId" = String, Path, description = "The tenant")),
    request_body = CreateInvitation,
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 201, description = "Invited; `token` and `acceptUrl` are shown only now", body = CreatedInvitation),
        (status = 400, description = "Invalid email", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_invitation(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let created = state
        .control
        .create_invitation(&access, &body.email, body.role.into(), &meta)
        .await?;
    let now = state.control.now_ms();
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            invitation: Invitation::new(&created.row, now),
            token: created.token,
            accept_url: created.accept_url,
        }),
    ))
}

/// Revokes a pending invitation (admin): its link stops working.
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/invitations/{invitationId}/revoke", tag = "management", operation_id = "revokeInvitation",
    params(("tenantId" = String, Path, description = "The tenant"), ("invitationId" = String, Path, description = "The invitation")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Revoked", body = Invitation),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pending invitation", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_invitation(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath((tenant, invitation)): ApiPath<(String, String)>,
) -> ApiResult<Json<Invitation>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let id: InvitationId = parse_id(&invitation)?;
    let row = state.control.revoke_invitation(&access, &id, &meta).await?;
    Ok(Json(Invitation::new(&row, state.control.now_ms())))
}

/// The token of an invitation link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptInvitation {
    token: String,
}

/// Accepts an invitation: the signed-in user (a session, with the invited email) joins
/// the tenant with the invited role.
#[utoipa::path(
    post, path = "/v1/invitations/accept", tag = "accounts", operation_id = "acceptInvitation",
    request_body = AcceptInvitation,
    security(("session" = [])),
    responses(
        (status = 200, description = "Joined", body = Invitation),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "For another email, or not a session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already used, revoked or expired", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn accept_invitation(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> ApiResult<Json<Invitation>> {
    let row = state
        .control
        .accept_invitation(&auth, &body.token, &meta)
        .await?;
    Ok(Json(Invitation::new(&row, state.control.now_ms())))
}

/// Leaves the tenant (anyone but its last owner).
#[utoipa::path(
    post, path = "/v1/tenants/{tenantId}/leave", tag = "management", operation_id = "leaveTenant",
    params(("tenantId" = String, Path, description = "The tenant")),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot leave", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn leave_tenant(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    state.control.leave_tenant(&access, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One event of your own account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEvent {
    id: i64,
    at: String,
    /// `login.succeeded`, `login.failed`, `signup.attempted` (someone tried to sign up
    /// with your email).
    action: String,
    ip: Option<String>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
}

impl From<&SecurityEventRow> for SecurityEvent {
    fn from(row: &SecurityEventRow) -> Self {
        Self {
            id: row.id,
            at: time(row.at),
            action: row.action.clone(),
            ip: row.ip.clone(),
            details: serde_json::from_str(&row.details).unwrap_or_default(),
        }
    }
}

/// A page of the security log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SecurityLogQuery {
    /// Only events older than this id (the previous page's `nextCursor`).
    #[serde(default)]
    before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// Security log events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityLogPage {
    data: Vec<SecurityEvent>,
    /// Pass as `before` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

/// Your own security log: sign-ins and failed sign-ins (time, address), and signup
/// attempts with your email. Only you see it; the tenants you are in do not.
#[utoipa::path(
    get, path = "/v1/me/security-log", tag = "accounts", operation_id = "getSecurityLog",
    params(SecurityLogQuery),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Events, newest first", body = SecurityLogPage),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn security_log(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiQuery(query): ApiQuery<SecurityLogQuery>,
) -> ApiResult<Json<SecurityLogPage>> {
    let limit = query.limit.unwrap_or(50);
    let rows = state
        .control
        .security_log(&auth, query.before, limit)
        .await?;
    let next_cursor = (rows.len() as u32 >= limit.clamp(1, 200))
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(SecurityLogPage {
        data: rows.iter().map(SecurityEvent::from).collect(),
        next_cursor,
    }))
}
