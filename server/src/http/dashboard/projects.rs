//! Projects (list, create, rename, public access, delete with a typed confirmation) and
//! their API keys (create and roll, shown once; revoke; last used).

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use super::error::{render, render_status, DashError, DashResult};
use super::render::{ago, when};
use super::session::{Chrome, Ctx, DashUser};
use crate::control::ControlError;
use crate::http::api::parse_id;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::ids::KeyId;
use crate::rooms::{CloseFilter, CloseReason};
use crate::store::control::{KeyKindRow, KeyRow, ProjectPatch, ProjectRow};

struct ProjectCard {
    id: String,
    name: String,
    public_access: bool,
    connections: u32,
    created: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    chrome: Chrome,
    projects: Vec<ProjectCard>,
    can_admin: bool,
}

pub(super) struct KeyView {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) kind: &'static str,
    pub(super) status: &'static str,
    pub(super) created: String,
    pub(super) last_used: String,
    pub(super) expires: String,
    /// Open connections (on this server) whose token this key minted.
    pub(super) open: usize,
    /// The rooms they are in, for the tooltip.
    pub(super) open_rooms: String,
}

impl KeyView {
    pub(super) fn new(row: &KeyRow, now: i64) -> Self {
        let status = match (row.revoked_at, row.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            (None, Some(_)) => "expiring",
            (None, None) => "active",
        };
        Self {
            id: row.id.to_string(),
            name: row.name.clone(),
            prefix: row.display_prefix.clone(),
            kind: match row.kind {
                KeyKindRow::Secret => "secret",
                KeyKindRow::Publishable => "publishable",
                KeyKindRow::Pat => "personal",
            },
            status,
            created: when(row.created_at),
            last_used: row
                .last_used_at
                .map_or_else(|| "never".to_owned(), |at| ago(at, now)),
            expires: row.expires_at.map(when).unwrap_or_default(),
            open: 0,
            open_rooms: String::new(),
        }
    }
}

/// A key's plaintext, shown once.
pub(super) struct Revealed {
    title: String,
    key: String,
    grace: Option<String>,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    chrome: Chrome,
    project: ProjectRow,
    keys: Vec<KeyView>,
    can_admin: bool,
    revealed: Option<Revealed>,
}

/// The tenant's projects (the home page).
pub(super) async fn list(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "projects").await?;
    Ok(render(&projects_page(&state, ctx, StatusCode::OK)))
}

fn projects_page(state: &AppState, ctx: Ctx, _status: StatusCode) -> ProjectsPage {
    ProjectsPage {
        projects: ctx
            .projects
            .iter()
            .map(|p| ProjectCard {
                id: p.id.to_string(),
                name: p.name.clone(),
                public_access: p.public_access,
                connections: state.rooms.project_connections(p.id.as_str()),
                created: when(p.created_at),
            })
            .collect(),
        can_admin: ctx.can_admin(),
        chrome: ctx.chrome,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NameForm {
    name: String,
}

pub(super) async fn create(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    Form(form): Form<NameForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "projects").await?;
    match state
        .control
        .create_project(&ctx.access, &form.name, false, &meta)
        .await
    {
        Ok(project) => {
            Ok(Redirect::to(&format!("{}/p/{}", ctx.base(), project.id)).into_response())
        }
        Err(error) => {
            let (status, detail) = DashError::from(error).detail();
            let mut page = projects_page(&state, ctx, status);
            page.chrome.error = Some(detail);
            Ok(render_status(status, &page))
        }
    }
}

async fn project_page(
    state: &AppState,
    mut ctx: Ctx,
    revealed: Option<Revealed>,
    error: Option<String>,
) -> DashResult<ProjectPage> {
    let project = ctx.project()?;
    let now = state.control.now_ms();
    let keys = state
        .control
        .list_project_keys(&ctx.access.tenant_id, &project.id)
        .await?;
    ctx.crumb("API keys & settings");
    ctx.chrome.error = error;
    // Which key minted the tokens of the open connections.
    let open = state.rooms.project_presence(project.id.as_str()).await?;
    let keys = keys
        .iter()
        .map(|k| {
            let mut view = KeyView::new(k, now);
            let mut rooms: Vec<&str> = open
                .iter()
                .filter(|(_, e)| e.key_id.as_deref() == Some(view.id.as_str()))
                .map(|(room, _)| room.as_str())
                .collect();
            view.open = rooms.len();
            rooms.dedup();
            view.open_rooms = rooms.join(", ");
            view
        })
        .collect();
    Ok(ProjectPage {
        keys,
        can_admin: ctx.can_admin(),
        revealed,
        project,
        chrome: ctx.chrome,
    })
}

/// A project: its keys and settings.
pub(super) async fn show(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    Ok(render(&project_page(&state, ctx, None, None).await?))
}

/// After a change: back to the project page, or the page again with the problem shown.
async fn after(state: &AppState, ctx: Ctx, result: Result<(), DashError>) -> DashResult {
    let project = ctx.project()?;
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{}/p/{}", ctx.base(), project.id)).into_response()),
        Err(DashError::SignIn) => Err(DashError::SignIn),
        Err(error) => {
            let (status, detail) = error.detail();
            let page = project_page(state, ctx, None, Some(detail)).await?;
            Ok(render_status(status, &page))
        }
    }
}

pub(super) async fn rename(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Form(form): Form<NameForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    let id = ctx.project()?.id;
    let patch = ProjectPatch {
        name: Some(form.name),
        ..ProjectPatch::default()
    };
    let result = state
        .control
        .update_project(&ctx.access, &id, patch, &meta)
        .await;
    // Reload so the chrome shows the new name.
    let ctx = Ctx::load(&state, ctx.auth, &tenant, Some(&project), "project").await?;
    after(&state, ctx, result.map(drop).map_err(DashError::from)).await
}

#[derive(Debug, Deserialize)]
pub(super) struct PublicForm {
    enabled: bool,
}

pub(super) async fn public_access(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Form(form): Form<PublicForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    let id = ctx.project()?.id;
    let patch = ProjectPatch {
        public_access: Some(form.enabled),
        ..ProjectPatch::default()
    };
    let result = state
        .control
        .update_project(&ctx.access, &id, patch, &meta)
        .await;
    let ctx = Ctx::load(&state, ctx.auth, &tenant, Some(&project), "project").await?;
    after(&state, ctx, result.map(drop).map_err(DashError::from)).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

pub(super) async fn delete(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Form(form): Form<ConfirmForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    let row = ctx.project()?;
    if form.confirm != row.name {
        let error =
            ControlError::Invalid(format!("type the project's name, {}, to confirm", row.name));
        return after(&state, ctx, Err(error.into())).await;
    }
    if let Err(error) = state
        .control
        .delete_project(&ctx.access, &row.id, &meta)
        .await
    {
        return after(&state, ctx, Err(error.into())).await;
    }
    state
        .rooms
        .close_where(
            row.id.as_str(),
            CloseFilter::All,
            CloseReason::new(tandem_protocol::close::ROOM_DELETED, "project deleted"),
        )
        .await;
    Ok(Redirect::to(&ctx.base()).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyForm {
    #[serde(default)]
    name: String,
    kind: String,
}

pub(super) async fn create_key(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Form(form): Form<KeyForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    let id = ctx.project()?.id;
    let kind = match form.kind.as_str() {
        "publishable" => KeyKindRow::Publishable,
        _ => KeyKindRow::Secret,
    };
    // The role check is the management API's: admins manage keys.
    let admin = state
        .control
        .tenant_access(
            &ctx.auth,
            &ctx.access.tenant_id,
            crate::store::control::Role::Admin,
        )
        .await;
    let created = match admin {
        Ok(access) => {
            state
                .control
                .create_project_key(
                    &access.tenant_id,
                    &id,
                    kind,
                    &form.name,
                    &access.actor,
                    &meta,
                )
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => {
            let title = format!(
                "New {} key{}",
                if kind == KeyKindRow::Secret {
                    "secret"
                } else {
                    "publishable"
                },
                if created.row.name.is_empty() {
                    String::new()
                } else {
                    format!(" “{}”", created.row.name)
                }
            );
            let revealed = Revealed {
                title,
                key: created.plaintext.into_exposed(),
                grace: None,
            };
            Ok(render_status(
                StatusCode::CREATED,
                &project_page(&state, ctx, Some(revealed), None).await?,
            ))
        }
        Err(error) => after(&state, ctx, Err(error.into())).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RollForm {
    #[serde(default)]
    grace: u64,
}

pub(super) async fn roll_key(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project, key)): Path<(String, String, String)>,
    Form(form): Form<RollForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    let id = ctx.project()?.id;
    let rolled = async {
        let key_id: KeyId = parse_id(&key)?;
        let access = state
            .control
            .tenant_access(
                &ctx.auth,
                &ctx.access.tenant_id,
                crate::store::control::Role::Admin,
            )
            .await?;
        Ok::<_, DashError>(
            state
                .control
                .roll_project_key(
                    &access.tenant_id,
                    &id,
                    &key_id,
                    Duration::from_secs(form.grace),
                    &access.actor,
                    &meta,
                )
                .await?,
        )
    }
    .await;
    match rolled {
        Ok((created, old)) => {
            let grace = match old.expires_at {
                Some(at) if form.grace > 0 => Some(format!(
                    "The old key ({}…) keeps working until {}.",
                    old.display_prefix,
                    when(at)
                )),
                _ => Some(format!(
                    "The old key ({}…) stopped working now.",
                    old.display_prefix
                )),
            };
            let revealed = Revealed {
                title: "Rolled: here is the new key".to_owned(),
                key: created.plaintext.into_exposed(),
                grace,
            };
            Ok(render(
                &project_page(&state, ctx, Some(revealed), None).await?,
            ))
        }
        Err(error) => after(&state, ctx, Err(error)).await,
    }
}

pub(super) async fn revoke_key(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project, key)): Path<(String, String, String)>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "project").await?;
    let id = ctx.project()?.id;
    let result = async {
        let access = state
            .control
            .tenant_access(
                &ctx.auth,
                &ctx.access.tenant_id,
                crate::store::control::Role::Admin,
            )
            .await?;
        let _revoked = crate::http::api::keys::revoke(
            &state,
            &access.tenant_id,
            &id,
            &key,
            &access.actor,
            &meta,
        )
        .await?;
        Ok::<_, DashError>(())
    }
    .await;
    after(&state, ctx, result).await
}
