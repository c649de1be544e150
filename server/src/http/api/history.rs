//! A room's version history over REST, per project with its secret key: the versions,
//! what changed between two points and who changed it, restoring a point (a new update,
//! live to every client), naming a version, forking a room as it was. The document at a
//! point is `GET …/document?at=` and `GET …/document/update?at=` (in `rooms.rs`).
//!
//! A point (`at`, `from`, `to`, `before`) is an RFC 3339 time or a version id from the
//! listing (`v<first>-<last>`, `c<upto>`). Points older than the plan's history retention
//! are refused with 410 `outside_history`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::room_key;
use super::views::time;
use crate::control::ControlError;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Meta, SecretKey};
use crate::http::AppState;
use crate::rooms::history::{At, Author, ChangeKind, VersionKind};
use crate::store::{Attribution, Via};

/// Most versions per page.
pub const MAX_VERSIONS: usize = 100;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_versions, name_version))
        .routes(routes!(get_diff))
        .routes(routes!(restore))
        .routes(routes!(fork))
}

/// Parses a point of history: a version id or an RFC 3339 time.
pub(crate) fn parse_at(value: &str, what: &str) -> ApiResult<At> {
    if let Some(at) = At::parse_version(value) {
        return Ok(at);
    }
    let time = humantime::parse_rfc3339_weak(value.trim()).map_err(|_| {
        ApiError::BadRequest(format!(
            "{what} must be an RFC 3339 time or a version id (v<first>-<last>, c<upto>)"
        ))
    })?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms <= crate::control::clock::MAX_TIME_MS)
        .ok_or_else(|| ApiError::BadRequest(format!("{what} is out of range")))?;
    Ok(At::Time(ms))
}

/// Who wrote something.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorView {
    /// The token's user id (`sub`), for WebSocket writes by a user.
    user_id: Option<String>,
    /// The API key: the one a REST write used, or the one that minted the token.
    key_id: Option<String>,
}

impl From<&Author> for AuthorView {
    fn from(a: &Author) -> Self {
        Self {
            user_id: a.user_id.clone(),
            key_id: a.key_id.clone(),
        }
    }
}

/// A version: a burst of updates close in time, or the checkpoint the history starts
/// from (what came before it is past the retention).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// Use as `at`, `from` or `to`.
    id: String,
    /// `updates` or `checkpoint`.
    kind: String,
    /// When its first update was written.
    from: String,
    /// When its last update was written: the document at this version is the one then.
    at: String,
    /// Updates in it.
    updates: u64,
    /// Their size in bytes (a checkpoint's: its own).
    bytes: u64,
    /// Who wrote them.
    authors: Vec<AuthorView>,
    /// How they came: `socket`, `rest`, `restore`, `fork`.
    via: Vec<String>,
    /// Names given to it.
    names: Vec<String>,
}

/// A page of versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionPageView {
    data: Vec<VersionView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<String>,
}

/// Paging the versions.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Only versions before this: the previous page's `nextBefore`, or an RFC 3339 time.
    #[serde(default)]
    before: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    limit: Option<usize>,
}

/// The room's versions, newest first.
#[utoipa::path(
    get, path = "/v1/rooms/{roomId}/versions", tag = "rooms", operation_id = "listVersions",
    params(("roomId" = String, Path, description = "The room name, percent-encoded"), VersionsQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "A page of versions", body = VersionPageView),
        (status = 400, description = "Invalid room name, `before` or `limit`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_versions(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<VersionsQuery>,
) -> ApiResult<Json<VersionPageView>> {
    let key = room_key(&auth, &room)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_VERSIONS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_VERSIONS}"
        )));
    }
    let before = query
        .before
        .as_deref()
        .map(|b| parse_at(b, "before"))
        .transpose()?;
    let page = state
        .rooms
        .versions(&key, before, limit, auth.limits.history_retention())
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(Json(VersionPageView {
        data: page
            .versions
            .iter()
            .map(|v| VersionView {
                id: v.id.clone(),
                kind: match v.kind {
                    VersionKind::Updates => "updates",
                    VersionKind::Checkpoint => "checkpoint",
                }
                .to_owned(),
                from: time(v.from_ms),
                at: time(v.at_ms),
                updates: v.updates,
                bytes: v.bytes,
                authors: v.authors.iter().map(AuthorView::from).collect(),
                via: v.via.iter().map(|s| (*s).to_owned()).collect(),
                names: v.names.clone(),
            })
            .collect(),
        next_before: page.next_before,
    }))
}

/// A name for a point of the room's history.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameVersion {
    /// 1 to 200 characters, e.g. "before the big edit".
    name: String,
    /// The point it names (an RFC 3339 time or a version id); now when absent.
    #[serde(default)]
    at: Option<String>,
}

/// A named point of history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedVersion {
    name: String,
    /// The time it names; use it as `at`.
    at: String,
    created_at: String,
}

/// Names a point of the room's history (now, or `at`); the listing shows the name on
/// the version it falls in.
#[utoipa::path(
    post, path = "/v1/rooms/{roomId}/versions", tag = "rooms", operation_id = "nameVersion",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    request_body = NameVersion,
    security(("secret_key" = [])),
    responses(
        (status = 201, description = "Named", body = NamedVersion),
        (status = 400, description = "Invalid room name, name or `at`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`at` is older than the history keeps", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn name_version(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<NameVersion>,
) -> ApiResult<(StatusCode, Json<NamedVersion>)> {
    let key = room_key(&auth, &room)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must be 1 to 200 characters, without control characters".to_owned(),
        ));
    }
    let at = match body.at.as_deref() {
        Some(at) => parse_at(at, "at")?,
        None => At::Time(state.rooms.now_ms()),
    };
    let named = state
        .rooms
        .name_version(
            &key,
            at,
            name,
            auth.key_id.as_str(),
            auth.limits.history_retention(),
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    state
        .control
        .audit_room_action(
            (&auth.tenant_id, &auth.project_id),
            auth.key_id.as_str(),
            "room.version_named",
            &room,
            serde_json::json!({ "name": name, "at": time(named.at_ms) }),
            &meta,
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(NamedVersion {
            name: named.name,
            at: time(named.at_ms),
            created_at: time(named.created_at),
        }),
    ))
}

/// Two points of history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The earlier point (RFC 3339 time or version id).
    from: String,
    /// The later point; now when absent.
    #[serde(default)]
    to: Option<String>,
}

/// One change between two points.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeView {
    /// The root type's name.
    root: String,
    /// The map key (map changes only).
    key: Option<String>,
    /// `added`, `removed`, `changed` (map keys, whole roots), `text` (one range of a
    /// text), `array` (one slice of an array).
    kind: String,
    /// Where the text range (UTF-16 code units) or array slice starts.
    index: Option<usize>,
    /// Before: the value, the removed text or the removed items.
    before: serde_json::Value,
    /// After: the value, the inserted text or the inserted items.
    after: serde_json::Value,
    /// Who wrote the updates that made this change.
    authors: Vec<AuthorView>,
}

/// A writer and how many updates they wrote in between.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorCount {
    #[serde(flatten)]
    author: AuthorView,
    updates: u64,
}

/// What changed between two points, and by whom.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiffView {
    from: String,
    to: String,
    changes: Vec<ChangeView>,
    /// Everyone who wrote in between.
    authors: Vec<AuthorCount>,
    /// `false` when too many updates lie in between to attribute each change (each then
    /// lists every writer).
    attributed: bool,
}

/// What changed between two points of the room's history: map keys, text ranges, array
/// slices, each with who wrote it.
#[utoipa::path(
    get, path = "/v1/rooms/{roomId}/diff", tag = "rooms", operation_id = "diffVersions",
    params(("roomId" = String, Path, description = "The room name, percent-encoded"), DiffQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "The changes", body = DiffView),
        (status = 400, description = "Invalid room name, `from` or `to`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "A point is older than the history keeps", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_diff(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> ApiResult<Json<DiffView>> {
    let key = room_key(&auth, &room)?;
    let from = parse_at(&query.from, "from")?;
    let to = match query.to.as_deref() {
        Some(to) => parse_at(to, "to")?,
        None => At::Time(state.rooms.now_ms()),
    };
    let diff = state
        .rooms
        .diff(&key, from, to, auth.limits.history_retention())
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(Json(DiffView {
        from: time(diff.from_ms),
        to: time(diff.to_ms),
        changes: diff
            .changes
            .iter()
            .map(|c| ChangeView {
                root: c.root.clone(),
                key: c.key.clone(),
                kind: match c.kind {
                    ChangeKind::Added => "added",
                    ChangeKind::Removed => "removed",
                    ChangeKind::Changed => "changed",
                    ChangeKind::Text => "text",
                    ChangeKind::Array => "array",
                }
                .to_owned(),
                index: c.index,
                before: c.before.clone(),
                after: c.after.clone(),
                authors: c.authors.iter().map(AuthorView::from).collect(),
            })
            .collect(),
        authors: diff
            .authors
            .iter()
            .map(|(a, n)| AuthorCount {
                author: a.into(),
                updates: *n,
            })
            .collect(),
        attributed: diff.attributed,
    }))
}

/// A point to restore.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// An RFC 3339 time or a version id.
    at: String,
}

/// What a restore did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredView {
    /// The time restored.
    restored: String,
    /// The size of the update that did it (0: the document already was that).
    update_bytes: usize,
}

/// Makes the document what it was at `at`, as a new update: stored durably and sent
/// live to every connected client, who converge to it without reconnecting. The
/// restore is a version of its own (restore an earlier point to undo it) and an audit
/// event.
#[utoipa::path(
    post, path = "/v1/rooms/{roomId}/restore", tag = "rooms", operation_id = "restoreVersion",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    request_body = RestoreBody,
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Restored and durable", body = RestoredView),
        (status = 400, description = "Invalid room name or `at`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`at` is older than the history keeps", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The document would pass the plan's size cap", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> ApiResult<Json<RestoredView>> {
    let key = room_key(&auth, &room)?;
    let at = parse_at(&body.at, "at")?;
    let restored = state
        .rooms
        .restore(
            &key,
            at,
            auth.limits.history_retention(),
            key_author(auth.key_id.as_str(), Via::Restore),
            Some(auth.limits.max_document_bytes),
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    state
        .control
        .audit_room_action(
            (&auth.tenant_id, &auth.project_id),
            auth.key_id.as_str(),
            "room.restored",
            &room,
            serde_json::json!({
                "at": body.at,
                "restored": time(restored.from_ms),
                "updateBytes": restored.update_bytes,
            }),
            &meta,
        )
        .await;
    Ok(Json(RestoredView {
        restored: time(restored.from_ms),
        update_bytes: restored.update_bytes,
    }))
}

/// A fork: a new room holding this one as it was.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkBody {
    /// An RFC 3339 time or a version id.
    at: String,
    /// The new room's name (in the same project; must not exist).
    to: String,
}

/// The fork made.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Forked {
    /// The new room.
    room: String,
    /// The time it was copied as.
    from: String,
}

/// Copies the room as it was at `at` into a new room `to`.
#[utoipa::path(
    post, path = "/v1/rooms/{roomId}/fork", tag = "rooms", operation_id = "forkRoom",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    request_body = ForkBody,
    security(("secret_key" = [])),
    responses(
        (status = 201, description = "Forked", body = Forked),
        (status = 400, description = "Invalid room name or `at`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The room `to` exists", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`at` is older than the history keeps", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn fork(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<ForkBody>,
) -> ApiResult<(StatusCode, Json<Forked>)> {
    let key = room_key(&auth, &room)?;
    let to = room_key(&auth, &body.to)?;
    let at = parse_at(&body.at, "at")?;
    let from_ms = state
        .rooms
        .fork(
            &key,
            at,
            &to,
            auth.limits.history_retention(),
            key_author(auth.key_id.as_str(), Via::Fork),
            Some(auth.limits.max_document_bytes),
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    state
        .control
        .audit_room_action(
            (&auth.tenant_id, &auth.project_id),
            auth.key_id.as_str(),
            "room.forked",
            &room,
            serde_json::json!({ "to": body.to, "from": time(from_ms) }),
            &meta,
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(Forked {
            room: body.to,
            from: time(from_ms),
        }),
    ))
}

/// A REST write's attribution: the key, no user, no connection.
pub(crate) fn key_author(key_id: &str, via: Via) -> Attribution {
    Attribution {
        user_id: None,
        key_id: Some(key_id.to_owned()),
        conn_id: None,
        via,
    }
}
