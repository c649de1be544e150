//! The signed-in user's own sessions over HTTP: list them, end one, end every other.
//! The rules are in [`crate::control::sessions`].

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::time;
use crate::control::sessions::SessionInfo;
use crate::control::ControlError;
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{session_cookie, ApiPath, Meta, SignedIn};
use crate::http::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, end_other_sessions))
        .routes(routes!(end_session))
}

/// One of your sessions (never its cookie).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `ses_…`: names the session, opens nothing.
    id: String,
    /// When it signed in.
    created_at: String,
    /// When it was last used (to the minute); absent for sessions from before this was
    /// recorded.
    last_seen_at: Option<String>,
    /// When it ends on its own.
    expires_at: String,
    /// The browser's User-Agent at sign-in.
    user_agent: Option<String>,
    /// The address it signed in from.
    ip: Option<String>,
    /// Whether this is the session making the request.
    current: bool,
}

impl From<SessionInfo> for Session {
    fn from(s: SessionInfo) -> Self {
        Self {
            id: s.id,
            created_at: time(s.created_at),
            last_seen_at: s.last_seen_at.map(time),
            expires_at: time(s.expires_at),
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.current,
        }
    }
}

/// Your sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    data: Vec<Session>,
}

/// Your live sign-in sessions, newest first, with the browser and address each signed
/// in from.
#[utoipa::path(
    get, path = "/v1/me/sessions", tag = "accounts", operation_id = "listSessions",
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "Sessions, newest first", body = SessionList),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_sessions(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    parts: Parts,
) -> ApiResult<Json<SessionList>> {
    let sessions = state
        .control
        .list_sessions(&auth, session_cookie(&parts))
        .await?;
    Ok(Json(SessionList {
        data: sessions.into_iter().map(Session::from).collect(),
    }))
}

/// Ends one of your sessions: its cookie stops working at once (ending the current one
/// signs you out). Needs a session, not a token.
#[utoipa::path(
    delete, path = "/v1/me/sessions/{sessionId}", tag = "accounts", operation_id = "endSession",
    params(("sessionId" = String, Path, description = "The session's `ses_…` id")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a session (a personal access token)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of your live sessions", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn end_session(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.control.end_session(&auth, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    ended: u64,
}

/// Ends every one of your sessions except the one making the request ("sign out
/// everywhere else").
#[utoipa::path(
    delete, path = "/v1/me/sessions", tag = "accounts", operation_id = "endOtherSessions",
    security(("session" = [])),
    responses(
        (status = 200, description = "The other sessions ended", body = SessionsEnded),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a session (a personal access token)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn end_other_sessions(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    Meta(meta): Meta,
    parts: Parts,
) -> ApiResult<Json<SessionsEnded>> {
    auth.require_session("sessions can only be ended from a signed-in session")?;
    let current = session_cookie(&parts).ok_or(ControlError::Unauthenticated("not signed in"))?;
    let ended = state
        .control
        .end_other_sessions(&auth, current, &meta)
        .await?;
    Ok(Json(SessionsEnded { ended }))
}
