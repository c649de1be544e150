//! The signed-in person's own pages (shown inside whichever tenant they are looking at,
//! but about them, not the tenant): their sessions (see and end them) and their security
//! log. Both call the control-plane operations the `/v1/me/...` routes call.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::error::{render, render_status, DashError, DashResult};
use super::render::{ago, when};
use super::session::{clear_cookie, session_value, Chrome, Ctx, DashUser};
use crate::control::sessions::SessionInfo;
use crate::http::extract::Meta;
use crate::http::AppState;

/// Security-log events per page.
const PAGE: u32 = 50;

struct SessionView {
    id: String,
    device: String,
    user_agent: String,
    ip: String,
    created: String,
    last_seen: String,
    expires: String,
    current: bool,
}

impl SessionView {
    fn new(s: &SessionInfo, now: i64) -> Self {
        Self {
            id: s.id.clone(),
            device: s
                .user_agent
                .as_deref()
                .map_or_else(|| "Unknown device".to_owned(), device),
            user_agent: s.user_agent.clone().unwrap_or_default(),
            ip: s.ip.clone().unwrap_or_else(|| "—".to_owned()),
            created: when(s.created_at),
            last_seen: if s.current {
                "now".to_owned()
            } else {
                s.last_seen_at
                    .map_or_else(|| "—".to_owned(), |at| ago(at, now))
            },
            expires: when(s.expires_at),
            current: s.current,
        }
    }
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    chrome: Chrome,
    sessions: Vec<SessionView>,
    others: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    ended: Option<u64>,
}

/// The person's sessions, newest first.
pub(super) async fn sessions(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
    Query(done): Query<Done>,
    parts: Parts,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, None, "sessions").await?;
    ctx.crumb("Your sessions");
    let current = session_value(&parts);
    let rows = state
        .control
        .list_sessions(&ctx.auth, current.as_deref())
        .await?;
    let now = state.control.now_ms();
    ctx.chrome.notice = done.ended.map(|n| match n {
        1 => "1 session was ended; it is signed out.".to_owned(),
        n => format!("{n} sessions were ended; they are signed out."),
    });
    Ok(render(&SessionsPage {
        others: rows.iter().filter(|s| !s.current).count(),
        sessions: rows.iter().map(|s| SessionView::new(s, now)).collect(),
        chrome: ctx.chrome,
    }))
}

/// Ends one session; ending the current one signs out.
pub(super) async fn end(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, session)): Path<(String, String)>,
    parts: Parts,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "sessions").await?;
    let current = session_value(&parts);
    let was_current = state
        .control
        .list_sessions(&ctx.auth, current.as_deref())
        .await?
        .iter()
        .any(|s| s.current && s.id == session);
    match state.control.end_session(&ctx.auth, &session, &meta).await {
        Ok(()) if was_current => Ok((
            [(header::SET_COOKIE, clear_cookie(&state))],
            Redirect::to("/dashboard/login"),
        )
            .into_response()),
        Ok(()) => {
            Ok(Redirect::to(&format!("{}/account/sessions?ended=1", ctx.base())).into_response())
        }
        Err(error) => error_on_page(&state, ctx, current.as_deref(), error.into()).await,
    }
}

/// Ends every session but this one.
pub(super) async fn end_others(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    parts: Parts,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "sessions").await?;
    let current = session_value(&parts).ok_or(DashError::SignIn)?;
    match state
        .control
        .end_other_sessions(&ctx.auth, &current, &meta)
        .await
    {
        Ok(n) => {
            Ok(Redirect::to(&format!("{}/account/sessions?ended={n}", ctx.base())).into_response())
        }
        Err(error) => error_on_page(&state, ctx, Some(&current), error.into()).await,
    }
}

async fn error_on_page(
    state: &AppState,
    mut ctx: Ctx,
    current: Option<&str>,
    error: DashError,
) -> DashResult {
    if let DashError::SignIn = error {
        return Err(error);
    }
    let (status, detail) = error.detail();
    ctx.crumb("Your sessions");
    let rows = state.control.list_sessions(&ctx.auth, current).await?;
    let now = state.control.now_ms();
    ctx.chrome.error = Some(detail);
    Ok(render_status(
        status,
        &SessionsPage {
            others: rows.iter().filter(|s| !s.current).count(),
            sessions: rows.iter().map(|s| SessionView::new(s, now)).collect(),
            chrome: ctx.chrome,
        },
    ))
}

struct EventView {
    at: String,
    action: String,
    ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage {
    chrome: Chrome,
    events: Vec<EventView>,
    next_href: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Before {
    #[serde(default)]
    before: Option<i64>,
}

/// The person's own security log, newest first.
pub(super) async fn security(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
    Query(query): Query<Before>,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, None, "security").await?;
    ctx.crumb("Your security log");
    let rows = state
        .control
        .security_log(&ctx.auth, query.before, PAGE)
        .await?;
    let next_href = (rows.len() == PAGE as usize)
        .then(|| {
            rows.last()
                .map(|r| format!("{}/account/security?before={}", ctx.base(), r.id))
        })
        .flatten();
    let events = rows
        .iter()
        .map(|r| EventView {
            at: when(r.at),
            action: r.action.clone(),
            ip: r.ip.clone().unwrap_or_default(),
            details: if r.details == "{}" {
                String::new()
            } else {
                r.details.clone()
            },
        })
        .collect();
    Ok(render_status(
        StatusCode::OK,
        &SecurityPage {
            chrome: ctx.chrome,
            events,
            next_href,
        },
    ))
}

/// A person's name for a browser: "Chrome on Linux", from its `User-Agent`.
fn device(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("node", "Node.js"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let os = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("A browser on {o}"),
        (None, None) => {
            let short: String = ua.chars().take(40).collect();
            if short.is_empty() {
                "Unknown device".to_owned()
            } else {
                short
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::device;

    #[test]
    fn devices_are_named_like_people_name_them() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(device(chrome), "Chrome on Linux");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        assert_eq!(device(safari), "Safari on iOS");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0";
        assert_eq!(device(edge), "Edge on Windows");
        assert_eq!(device("curl/8.4.0"), "curl");
        assert_eq!(device(""), "Unknown device");
    }
}
