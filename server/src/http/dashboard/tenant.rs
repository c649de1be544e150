//! Tenant pages: the audit log (filterable by action, paginated) and the team.

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::error::{render, DashResult};
use super::render::{query_value, when};
use super::session::{Chrome, Ctx, DashUser};
use crate::http::AppState;

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
}

/// The tenant's members.
pub(super) async fn team(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, None, "team").await?;
    ctx.crumb("Team");
    let members = state.control.list_members(&ctx.access).await?;
    Ok(render(&TeamPage {
        members: members
            .iter()
            .map(|m| MemberView {
                email: m.email.clone(),
                role: m.role.as_str(),
                since: when(m.created_at),
                you: m.user_id == ctx.access.user.id,
            })
            .collect(),
        chrome: ctx.chrome,
    }))
}
