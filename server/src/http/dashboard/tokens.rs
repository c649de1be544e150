//! Personal access tokens: the signed-in user's own, in the current tenant (create with
//! an expiry, shown once; list; revoke). Created from a session only: the dashboard
//! takes no bearer credential, so a token cannot mint tokens here.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use super::error::{render_status, DashError, DashResult};
use super::projects::KeyView;
use super::session::{Chrome, Ctx, DashUser};
use crate::http::api::parse_id;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::ids::KeyId;

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<KeyView>,
    revealed: Option<(String, String)>,
}

async fn page(
    state: &AppState,
    mut ctx: Ctx,
    status: StatusCode,
    revealed: Option<(String, String)>,
    error: Option<String>,
) -> DashResult {
    ctx.crumb("Access tokens");
    let now = state.control.now_ms();
    let rows = state
        .control
        .list_pats(&ctx.access.tenant_id, &ctx.auth)
        .await?;
    ctx.chrome.error = error;
    Ok(render_status(
        status,
        &TokensPage {
            tokens: rows.iter().map(|r| KeyView::new(r, now)).collect(),
            revealed,
            chrome: ctx.chrome,
        },
    ))
}

/// The user's tokens in this tenant.
pub(super) async fn list(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "tokens").await?;
    page(&state, ctx, StatusCode::OK, None, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    name: String,
    /// 0: never expires.
    #[serde(default)]
    days: u64,
}

pub(super) async fn create(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    Form(form): Form<CreateForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "tokens").await?;
    let expires = (form.days > 0).then(|| Duration::from_secs(form.days.saturating_mul(86_400)));
    match state
        .control
        .create_pat(&ctx.access.tenant_id, &ctx.auth, &form.name, expires, &meta)
        .await
    {
        Ok(created) => {
            let revealed = (created.row.name.clone(), created.plaintext.into_exposed());
            page(&state, ctx, StatusCode::CREATED, Some(revealed), None).await
        }
        Err(error) => {
            let (status, detail) = DashError::from(error).detail();
            page(&state, ctx, status, None, Some(detail)).await
        }
    }
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, key)): Path<(String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "tokens").await?;
    let result = async {
        let key_id: KeyId = parse_id(&key)?;
        state
            .control
            .revoke_pat(&ctx.access.tenant_id, &ctx.auth, &key_id, &meta)
            .await?;
        Ok::<_, DashError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{}/tokens", ctx.base())).into_response()),
        Err(error) => {
            let (status, detail) = error.detail();
            page(&state, ctx, status, None, Some(detail)).await
        }
    }
}
