//! Tenant pages: the audit log (filterable by action, paginated) and the team.

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;

use super::error::{render, render_status, DashError, DashResult};
use super::render::{query_value, when};
use super::session::{Chrome, Ctx, DashUser};
use crate::control::ControlError;
use crate::http::api::parse_id;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::ids::UserId;
use crate::store::control::Role;

/// Events per page.
const PAGE: u32 = 50;

struct EventView {
    at: String,
    action: String,
    actor: String,
    target: String,
    ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    action: String,
    events: Vec<EventView>,
    next_href: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    before: Option<i64>,
}

/// The audit log, newest first (admin).
pub(super) async fn audit(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
    Query(query): Query<AuditQuery>,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, None, "audit").await?;
    ctx.crumb("Audit log");
    let filter = query.action.trim().to_owned();
    // The filter is applied to whole pages read from the store, so a page may hold
    // fewer than PAGE events; "Older" goes on from the last one read.
    let rows = state
        .control
        .audit_log(&ctx.access, query.before, PAGE)
        .await?;
    let next_href = (rows.len() == PAGE as usize)
        .then(|| {
            rows.last().map(|r| {
                format!(
                    "{}/audit?action={}&before={}",
                    ctx.base(),
                    query_value(&filter),
                    r.id
                )
            })
        })
        .flatten();
    // People by email rather than by id, where they are (still) members.
    let members = state.control.list_members(&ctx.access).await?;
    let actor = |id: &str| {
        members
            .iter()
            .find(|m| m.user_id.as_str() == id)
            .map_or_else(|| id.to_owned(), |m| m.email.clone())
    };
    let events = rows
        .iter()
        .filter(|r| filter.is_empty() || r.action.starts_with(&filter))
        .map(|r| EventView {
            at: when(r.at),
            action: r.action.clone(),
            actor: actor(&r.actor),
            target: r.target.clone().unwrap_or_default(),
            ip: r.ip.clone().unwrap_or_default(),
            details: if r.details == "{}" {
                String::new()
            } else {
                r.details.clone()
            },
        })
        .collect();
    Ok(render(&AuditPage {
        chrome: ctx.chrome,
        action: filter,
        events,
        next_href,
    }))
}

struct MemberView {
    id: String,
    email: String,
    role: &'static str,
    since: String,
    you: bool,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    chrome: Chrome,
    members: Vec<MemberView>,
    can_admin: bool,
    invitations: Vec<super::invitations::InvitationView>,
    /// Just created: (email, accept link).
    invite_link: Option<(String, String)>,
}

/// The tenant's members.
pub(super) async fn team(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    team_page(&state, ctx, StatusCode::OK, None, None).await
}

/// The team page, with a problem or a new invitation's link to show.
pub(super) async fn team_page(
    state: &AppState,
    mut ctx: Ctx,
    status: StatusCode,
    error: Option<String>,
    invite_link: Option<(String, String)>,
) -> DashResult {
    ctx.crumb("Team");
    ctx.chrome.error = error;
    let members = state.control.list_members(&ctx.access).await?;
    let now = state.control.now_ms();
    let invitations = if ctx.can_admin() {
        state
            .control
            .list_invitations(&ctx.access)
            .await?
            .iter()
            .map(|row| super::invitations::InvitationView::new(row, now))
            .collect()
    } else {
        Vec::new()
    };
    Ok(render_status(
        status,
        &TeamPage {
            can_admin: ctx.can_admin(),
            invitations,
            invite_link,
            members: members
                .iter()
                .map(|m| MemberView {
                    id: m.user_id.to_string(),
                    email: m.email.clone(),
                    role: m.role.as_str(),
                    since: when(m.created_at),
                    you: m.user_id == ctx.access.user.id,
                })
                .collect(),
            chrome: ctx.chrome,
        },
    ))
}

/// After a team change: the team page again, with the problem if it failed.
async fn after_team(state: &AppState, ctx: Ctx, result: Result<(), DashError>) -> DashResult {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{}/team", ctx.base())).into_response()),
        Err(DashError::SignIn) => Err(DashError::SignIn),
        Err(error) => {
            let (status, detail) = error.detail();
            team_page(state, ctx, status, Some(detail), None).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RoleForm {
    role: String,
}

/// Changes a member's role (admin; only owners make owners).
pub(super) async fn set_role(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, user)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    let result = async {
        let user_id: UserId = parse_id(&user)?;
        let role = Role::parse(&form.role).ok_or_else(|| {
            ControlError::Invalid("the role is owner, admin or member".to_owned())
        })?;
        state
            .control
            .set_member_role(&ctx.access, &user_id, role, &meta)
            .await?;
        Ok::<_, DashError>(())
    }
    .await;
    after_team(&state, ctx, result).await
}

/// Removes a member (admin).
pub(super) async fn remove(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, user)): Path<(String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    let result = async {
        let user_id: UserId = parse_id(&user)?;
        state
            .control
            .remove_member(&ctx.access, &user_id, &meta)
            .await?;
        Ok::<_, DashError>(())
    }
    .await;
    after_team(&state, ctx, result).await
}

/// Leaves the tenant (refused for its last owner).
pub(super) async fn leave(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    match state.control.leave_tenant(&ctx.access, &meta).await {
        Ok(()) => Ok(Redirect::to("/dashboard").into_response()),
        Err(error) => after_team(&state, ctx, Err(error.into())).await,
    }
}
