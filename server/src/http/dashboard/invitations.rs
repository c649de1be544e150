//! Invitations by email link: an admin invites an address (the link is queued in the
//! email outbox and shown once to the admin), the invited person opens it signed in as
//! that address and accepts, and only then joins. Revoking a pending one; leaving.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use super::error::{render, render_status, DashError, DashResult};
use super::render::{query_value, when};
use super::session::{Ctx, DashUser};
use super::tenant::team_page;
use crate::control::ControlError;
use crate::http::api::parse_id;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::ids::InvitationId;
use crate::store::control::Role;
use crate::store::invitations::InvitationRow;

/// An invitation as the team page lists it.
pub(super) struct InvitationView {
    pub(super) id: String,
    pub(super) email: String,
    pub(super) role: &'static str,
    pub(super) status: &'static str,
    pub(super) expires: String,
}

impl InvitationView {
    pub(super) fn new(row: &InvitationRow, now: i64) -> Self {
        let status = if row.accepted_at.is_some() {
            "accepted"
        } else if row.revoked_at.is_some() {
            "revoked"
        } else if row.expires_at <= now {
            "expired"
        } else {
            "pending"
        };
        Self {
            id: row.id.to_string(),
            email: row.email.clone(),
            role: row.role.as_str(),
            status,
            expires: when(row.expires_at),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct InviteForm {
    email: String,
    role: String,
}

/// Invites an address (admin; owners invite owners).
pub(super) async fn create(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
    Form(form): Form<InviteForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    let result = async {
        let role = Role::parse(&form.role).ok_or_else(|| {
            ControlError::Invalid("the role is owner, admin or member".to_owned())
        })?;
        Ok::<_, DashError>(
            state
                .control
                .create_invitation(&ctx.access, &form.email, role, &meta)
                .await?,
        )
    }
    .await;
    match result {
        Ok(created) => {
            // Without --public-url the link is relative: show it absolute.
            let link = if created.accept_url.starts_with('/') {
                format!(
                    "{}{}",
                    super::session::base_url(&state, &headers).0,
                    created.accept_url
                )
            } else {
                created.accept_url.clone()
            };
            team_page(
                &state,
                ctx,
                StatusCode::CREATED,
                None,
                Some((created.row.email, link)),
            )
            .await
        }
        Err(DashError::SignIn) => Err(DashError::SignIn),
        Err(error) => {
            let (status, detail) = error.detail();
            team_page(&state, ctx, status, Some(detail), None).await
        }
    }
}

/// Revokes a pending invitation (admin).
pub(super) async fn revoke(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, invitation)): Path<(String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    let result = async {
        let id: InvitationId = parse_id(&invitation)?;
        state
            .control
            .revoke_invitation(&ctx.access, &id, &meta)
            .await?;
        Ok::<_, DashError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{}/team", ctx.base())).into_response()),
        Err(DashError::SignIn) => Err(DashError::SignIn),
        Err(error) => {
            let (status, detail) = error.detail();
            team_page(&state, ctx, status, Some(detail), None).await
        }
    }
}

#[derive(Template)]
#[template(path = "accept.html")]
struct AcceptPage {
    email: String,
    token: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The link in the email: asks the signed-in person to accept (signing in first).
pub(super) async fn page(
    user: Result<DashUser, DashError>,
    Query(query): Query<TokenQuery>,
) -> DashResult {
    let Ok(DashUser(auth)) = user else {
        let next = format!(
            "/dashboard/invitations/accept?token={}",
            query_value(&query.token)
        );
        return Ok(
            Redirect::to(&format!("/dashboard/login?next={}", query_value(&next))).into_response(),
        );
    };
    Ok(render(&AcceptPage {
        email: auth.user.email,
        token: query.token,
        error: None,
    }))
}

/// Accepts: joins the tenant and opens it.
pub(super) async fn accept(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Form(form): Form<TokenQuery>,
) -> DashResult {
    match state
        .control
        .accept_invitation(&auth, &form.token, &meta)
        .await
    {
        Ok(row) => Ok(Redirect::to(&format!("/dashboard/t/{}", row.tenant_id)).into_response()),
        Err(error) => {
            let (status, detail) = DashError::from(error).detail();
            Ok(render_status(
                status,
                &AcceptPage {
                    email: auth.user.email,
                    token: form.token,
                    error: Some(detail),
                },
            ))
        }
    }
}
