//! Rooms: a searchable, paginated list, and the live inspector (the document as a tree,
//! who is connected and their presence; its feed is in [`super::live`]); actions:
//! broadcast an event, delete the room (closing a connection and the read-only switch
//! are in [`super::inspector`]).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use super::error::{render, render_status, DashError, DashResult};
use super::render::{self, ago, bytes, query_value, when};
use super::session::{Chrome, Ctx, DashUser};
use crate::control::usage::{Granularity, UsageRange};
use crate::control::ControlError;
use crate::http::extract::Meta;
use crate::http::ws::{valid_room_name, MAX_ROOM_NAME};
use crate::http::AppState;
use crate::rooms::RoomKey;
use crate::store::control::Role;
use crate::store::usage::HOUR_MS;

/// Rooms per page.
const PAGE: u32 = 25;

struct RoomRowView {
    name: String,
    name_q: String,
    connections: usize,
    size: String,
    last_activity: String,
    created: String,
    read_only: bool,
}

#[derive(Template)]
#[template(path = "rooms.html")]
struct RoomsPage {
    chrome: Chrome,
    project_id: String,
    project_name: String,
    q: String,
    rooms: Vec<RoomRowView>,
    next_href: Option<String>,
    first_page_href: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: Option<String>,
}

pub(super) fn room_key(project_id: &str, name: &str) -> DashResult<RoomKey> {
    if !valid_room_name(name) {
        return Err(DashError::Api(crate::http::error::ApiError::BadRequest(
            format!("room names are 1 to {MAX_ROOM_NAME} bytes without control characters"),
        )));
    }
    Ok(RoomKey {
        project_id: project_id.into(),
        name: name.into(),
    })
}

/// Per room of the project: (last active hour, latest stored size), from the usage
/// report of the last week.
async fn activity(
    state: &AppState,
    ctx: &Ctx,
    project_id: &str,
) -> DashResult<HashMap<String, (Option<i64>, Option<i64>)>> {
    let now = state.control.now_ms();
    let range = UsageRange::new(now - 7 * 24 * 3_600_000, now, Granularity::Hour)?;
    let usage = state
        .control
        .tenant_usage(&*state.usage, &ctx.access, &range)
        .await?;
    let mut out: HashMap<String, (Option<i64>, Option<i64>)> = HashMap::new();
    if let Some((_, report)) = usage
        .projects
        .iter()
        .find(|(p, _)| p.id.as_str() == project_id)
    {
        for bucket in &report.buckets {
            for room in &bucket.rooms {
                let entry = out.entry(room.room.clone()).or_default();
                if room.active || room.messages_in > 0 || room.connection_ms > 0 {
                    entry.0 = Some(bucket.start);
                }
                if room.storage_bytes.is_some() {
                    entry.1 = room.storage_bytes;
                }
            }
        }
    }
    Ok(out)
}

/// The project's rooms, by name.
pub(super) async fn list(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let row = ctx.project()?;
    ctx.crumb("Rooms");
    let prefix = query.q.trim().to_owned();
    let rows = state
        .docs
        .list_rooms(
            row.id.as_str(),
            Some(prefix.as_str()).filter(|p| !p.is_empty()),
            query.after.as_deref().filter(|a| !a.is_empty()),
            PAGE,
        )
        .await
        .map_err(ControlError::from)?;
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let counts = state.rooms.connection_counts(row.id.as_str(), &names).await;
    let activity = activity(&state, &ctx, row.id.as_str()).await?;
    let now = state.control.now_ms();
    let base = format!(
        "{}/p/{}/rooms?q={}",
        ctx.base(),
        row.id,
        query_value(&prefix)
    );
    let next_href = (rows.len() == PAGE as usize)
        .then(|| {
            rows.last()
                .map(|r| format!("{base}&after={}", query_value(&r.name)))
        })
        .flatten();
    let first_page_href = query.after.as_ref().map(|_| base.clone());
    let rooms = rows
        .iter()
        .zip(counts)
        .map(|(r, connections)| {
            let (last, size) = activity.get(&r.name).copied().unwrap_or_default();
            RoomRowView {
                name: r.name.clone(),
                name_q: query_value(&r.name),
                connections,
                size: size.map_or_else(|| "—".to_owned(), bytes),
                last_activity: if connections > 0 {
                    "now".to_owned()
                } else {
                    last.map_or_else(
                        || "—".to_owned(),
                        |hour| {
                            // Usage is counted per hour: say which hour, not a minute.
                            if hour + HOUR_MS > now {
                                "this hour".to_owned()
                            } else {
                                ago(hour + HOUR_MS, now)
                            }
                        },
                    )
                },
                created: when(r.created_at),
                read_only: r.read_only,
            }
        })
        .collect();
    Ok(render(&RoomsPage {
        project_id: row.id.to_string(),
        project_name: row.name,
        chrome: ctx.chrome,
        q: prefix,
        rooms,
        next_href,
        first_page_href,
    }))
}

#[derive(Template)]
#[template(path = "room.html")]
pub(super) struct RoomPage {
    pub(super) chrome: Chrome,
    project_id: String,
    project_name: String,
    room: String,
    room_q: String,
    connections: usize,
    tree: String,
    people: String,
    live_href: String,
    action_base: String,
    can_write: bool,
    read_only: bool,
    /// The newest versions, for the timeline.
    versions: Vec<VersionRow>,
}

/// One version on the room's timeline.
struct VersionRow {
    id: String,
    at: String,
    updates: u64,
    authors: String,
    via: String,
    names: String,
}

/// The room's newest versions (an empty timeline when history cannot be read).
async fn timeline(state: &AppState, key: &RoomKey) -> Vec<VersionRow> {
    let Ok(Some(page)) = state.rooms.versions(key, None, 20, None).await else {
        return Vec::new();
    };
    page.versions
        .into_iter()
        .map(|v| VersionRow {
            at: crate::http::api::views::time(v.at_ms),
            updates: v.updates,
            authors: v
                .authors
                .iter()
                .map(|a| {
                    a.user_id
                        .clone()
                        .or(a.key_id.clone())
                        .unwrap_or_else(|| "anonymous".to_owned())
                })
                .collect::<Vec<_>>()
                .join(", "),
            via: v.via.join(", "),
            names: v.names.join(", "),
            id: v.id,
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub(super) struct RoomQuery {
    pub(super) name: String,
}

/// Where an admin's "close" button posts (`None` for members, who see no button).
pub(super) fn close_action(
    ctx_base: &str,
    project: &str,
    name: &str,
    admin: bool,
) -> Option<String> {
    admin.then(|| {
        format!(
            "{ctx_base}/p/{project}/room/close?name={}",
            query_value(name)
        )
    })
}

pub(super) async fn room_page(state: &AppState, mut ctx: Ctx, name: &str) -> DashResult<RoomPage> {
    let row = ctx.project()?;
    let key = room_key(row.id.as_str(), name)?;
    let doc = state
        .rooms
        .to_json(&key)
        .await?
        .ok_or(ControlError::NotFound)?;
    let people = state.rooms.presence(&key).await?;
    let connections = state.rooms.connection_count(&key).await;
    let read_only = state.rooms.read_only(&key).await?.unwrap_or(false);
    let close = close_action(&ctx.base(), row.id.as_str(), name, ctx.can_admin());
    let rooms_href = format!("{}/p/{}/rooms", ctx.base(), row.id);
    ctx.chrome.crumbs.push(super::session::Crumb {
        label: "Rooms".to_owned(),
        href: Some(rooms_href),
    });
    ctx.crumb(name);
    let action_base = format!("{}/p/{}/room", ctx.base(), row.id);
    let versions = timeline(state, &key).await;
    Ok(RoomPage {
        versions,
        live_href: format!("{action_base}/live?name={}", query_value(name)),
        action_base,
        project_id: row.id.to_string(),
        project_name: row.name,
        room: name.to_owned(),
        room_q: query_value(name),
        connections,
        tree: render::tree(&doc),
        people: render::people(&people, state.control.now_ms(), close.as_deref()),
        can_write: ctx.can_admin(),
        read_only,
        chrome: ctx.chrome,
    })
}

/// The live inspector of one room.
pub(super) async fn show(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    Ok(render(&room_page(&state, ctx, &query.name).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventForm {
    event: String,
}

/// Broadcasts a custom event to every connection in the room (admin).
pub(super) async fn broadcast(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
    Form(form): Form<EventForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let result = async {
        state
            .control
            .tenant_access(&ctx.auth, &ctx.access.tenant_id, Role::Admin)
            .await?;
        let event: serde_json::Value = serde_json::from_str(&form.event)
            .map_err(|e| ControlError::Invalid(format!("the event is not valid JSON: {e}")))?;
        let key = room_key(ctx.project()?.id.as_str(), &query.name)?;
        Ok::<_, DashError>(state.rooms.broadcast_event(&key, event).await?)
    }
    .await;
    let notice = |n: usize| {
        format!(
            "Event sent to {n} connection{}.",
            if n == 1 { "" } else { "s" }
        )
    };
    respond(&state, ctx, &query.name, result.map(notice)).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// Deletes the room (admin) after its name was typed; its connections close with 4404.
pub(super) async fn delete(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
    Form(form): Form<ConfirmForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let row = ctx.project()?;
    let result = async {
        let access = state
            .control
            .tenant_access(&ctx.auth, &ctx.access.tenant_id, Role::Admin)
            .await?;
        if form.confirm != query.name {
            return Err(ControlError::Invalid(format!(
                "type the room's name, {}, to confirm",
                query.name
            ))
            .into());
        }
        let key = room_key(row.id.as_str(), &query.name)?;
        if !state.rooms.delete(&key).await? {
            return Err(ControlError::NotFound.into());
        }
        state
            .control
            .audit_room_deleted(
                &access.tenant_id,
                &row.id,
                &access.actor,
                &query.name,
                &meta,
            )
            .await;
        Ok::<_, DashError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{}/p/{}/rooms", ctx.base(), row.id)).into_response()),
        Err(e) => respond(&state, ctx, &query.name, Err(e)).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RestoreForm {
    at: String,
}

/// Restores the room to a version of its timeline (admin): a new update every connected
/// client receives live, itself a version (restore an earlier one to undo it).
pub(super) async fn restore(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
    Form(form): Form<RestoreForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let row = ctx.project()?;
    let result = async {
        let access = state
            .control
            .tenant_access(&ctx.auth, &ctx.access.tenant_id, Role::Admin)
            .await?;
        let at = crate::rooms::history::At::parse_version(&form.at)
            .ok_or_else(|| ControlError::Invalid("pick a version of the timeline".to_owned()))?;
        let key = room_key(row.id.as_str(), &query.name)?;
        // Written by the dashboard user (no key, no connection).
        let author = crate::store::Attribution {
            user_id: Some(access.actor.clone()),
            ..Default::default()
        };
        let restored = state
            .rooms
            .restore(&key, at, None, author, None)
            .await?
            .ok_or(ControlError::NotFound)?;
        state
            .control
            .audit_room_action(
                (&access.tenant_id, &row.id),
                &access.actor,
                "room.restored",
                &query.name,
                serde_json::json!({ "at": form.at, "updateBytes": restored.update_bytes }),
                &meta,
            )
            .await;
        Ok::<_, DashError>(())
    }
    .await;
    let notice = |()| format!("Restored to {}.", form.at);
    respond(&state, ctx, &query.name, result.map(notice)).await
}

/// The room page again, with the action's notice or its error.
pub(super) async fn respond(
    state: &AppState,
    ctx: Ctx,
    name: &str,
    result: Result<String, DashError>,
) -> DashResult {
    let (status, notice, error) = match result {
        Ok(notice) => (axum::http::StatusCode::OK, Some(notice), None),
        Err(DashError::SignIn) => return Err(DashError::SignIn),
        Err(e) => {
            let (status, detail) = e.detail();
            (status, None, Some(detail))
        }
    };
    let mut page = room_page(state, ctx, name).await?;
    page.chrome.notice = notice;
    page.chrome.error = error;
    Ok(render_status(status, &page))
}
