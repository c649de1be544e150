//! The rooms REST API, per project with its secret key: list, get, delete, the document
//! as JSON or as a binary update, applying an update, the users present, and
//! broadcasting a custom event. Room names in paths are percent-encoded (`a%2Fb` is the
//! room `a/b`); every room is looked up in the key's project only, so another
//! project's room is indistinguishable from one that does not exist.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::time;
use crate::control::plane::ProjectAuth;
use crate::control::ControlError;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Meta, SecretKey};
use crate::http::ws::valid_room_name;
use crate::http::AppState;
use crate::rooms::RoomKey;

/// Most rooms per page.
pub const MAX_PAGE: u32 = 100;

pub(super) fn router(max_update_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms))
        .routes(routes!(get_room, delete_room, update_room))
        .routes(routes!(get_document))
        .routes(routes!(get_update, apply_update))
        .routes(routes!(list_users))
        .routes(routes!(broadcast_event))
        // Updates may be as large as a WebSocket message; JSON bodies stay small anyway.
        .layer(DefaultBodyLimit::max(max_update_bytes))
}

pub(super) fn room_key(auth: &ProjectAuth, room: &str) -> ApiResult<RoomKey> {
    if !valid_room_name(room) {
        return Err(ApiError::BadRequest(
            crate::http::ws::ROOM_NAME_RULES.to_owned(),
        ));
    }
    Ok(RoomKey {
        project_id: auth.project_id.as_str().into(),
        name: room.into(),
    })
}

/// A room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// The room's name.
    name: String,
    /// When it was first opened.
    created_at: String,
    /// Live WebSocket connections on this server.
    connections: usize,
    /// Only `room:admin` connections (and this API) may change the document.
    read_only: bool,
}

/// Filters and paging for listing rooms.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListRooms {
    /// Only rooms whose name starts with this.
    #[serde(default)]
    prefix: Option<String>,
    /// The previous page's `nextCursor`.
    #[serde(default)]
    cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    limit: Option<u32>,
}

/// A page of rooms, by name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomPage {
    data: Vec<Room>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn encode_cursor(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_cursor(cursor: &str) -> ApiResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::BadRequest("invalid cursor".to_owned()))
}

/// The project's rooms, ordered by name.
#[utoipa::path(
    get, path = "/v1/rooms", tag = "rooms", operation_id = "listRooms",
    params(ListRooms),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "A page of rooms", body = RoomPage),
        (status = 400, description = "Invalid cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_rooms(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiQuery(query): ApiQuery<ListRooms>,
) -> ApiResult<Json<RoomPage>> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows = state
        .docs
        .list_rooms(
            auth.project_id.as_str(),
            query.prefix.as_deref().filter(|p| !p.is_empty()),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(ControlError::from)?;
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let counts = state
        .rooms
        .connection_counts(auth.project_id.as_str(), &names)
        .await;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| encode_cursor(&r.name)))
        .flatten();
    Ok(Json(RoomPage {
        data: rows
            .iter()
            .zip(counts)
            .map(|(r, connections)| Room {
                name: r.name.clone(),
                created_at: time(r.created_at),
                connections,
                read_only: r.read_only,
            })
            .collect(),
        next_cursor,
    }))
}

/// One room with its live connection count.
#[utoipa::path(
    get, path = "/v1/rooms/{roomId}", tag = "rooms", operation_id = "getRoom",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "The room", body = Room),
        (status = 400, description = "Invalid room name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_room(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
) -> ApiResult<Json<Room>> {
    let key = room_key(&auth, &room)?;
    // A prefix listing of one whose first row is the exact name, if the room exists.
    let row = state
        .docs
        .list_rooms(auth.project_id.as_str(), Some(&room), None, 1)
        .await
        .map_err(ControlError::from)?
        .into_iter()
        .find(|r| r.name == room)
        .ok_or(ControlError::NotFound)?;
    Ok(Json(Room {
        name: row.name,
        created_at: time(row.created_at),
        connections: state.rooms.connection_count(&key).await,
        read_only: row.read_only,
    }))
}

/// Room settings to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRoom {
    /// Read-only: only connections whose token has `room:admin` (and this API) may
    /// change the document; everyone else's updates are refused, not applied, while
    /// reading and presence go on. Applies at once to open connections too.
    read_only: bool,
}

/// Changes a room's settings (read-only), for open connections too.
#[utoipa::path(
    patch, path = "/v1/rooms/{roomId}", tag = "rooms", operation_id = "updateRoom",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    request_body = UpdateRoom,
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "The room with its new settings", body = Room),
        (status = 400, description = "Invalid room name or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_room(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRoom>,
) -> ApiResult<Json<Room>> {
    let key = room_key(&auth, &room)?;
    if !state.rooms.set_read_only(&key, body.read_only).await? {
        return Err(ControlError::NotFound.into());
    }
    state
        .control
        .audit_room_action(
            (&auth.tenant_id, &auth.project_id),
            auth.key_id.as_str(),
            "room.read_only",
            &room,
            serde_json::json!({ "readOnly": body.read_only }),
            &meta,
        )
        .await;
    get_room(State(state), SecretKey(auth), ApiPath(room)).await
}

/// Deletes a room: its connections are closed with 4404 and its document is erased.
#[utoipa::path(
    delete, path = "/v1/rooms/{roomId}", tag = "rooms", operation_id = "deleteRoom",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    security(("secret_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid room name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_room(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath(room): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let key = room_key(&auth, &room)?;
    if !state.rooms.delete(&key).await? {
        return Err(ControlError::NotFound.into());
    }
    state
        .control
        .audit_room_deleted(
            &auth.tenant_id,
            &auth.project_id,
            auth.key_id.as_str(),
            &room,
            &meta,
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Which version of the document.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The document as it was then: an RFC 3339 time or a version id from
    /// `GET /v1/rooms/{roomId}/versions`. The live document when absent.
    #[serde(default)]
    at: Option<String>,
}

/// The document as JSON: each root type by name (maps as objects, arrays as arrays,
/// text as strings); with `at`, as it was then.
#[utoipa::path(
    get, path = "/v1/rooms/{roomId}/document", tag = "rooms", operation_id = "getDocument",
    params(("roomId" = String, Path, description = "The room name, percent-encoded"), AtQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "The document", body = Object),
        (status = 400, description = "Invalid room name or `at`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`at` is older than the history keeps", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_document(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<AtQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = room_key(&auth, &room)?;
    if let Some(at) = &query.at {
        let at = super::history::parse_at(at, "at")?;
        let past = state
            .rooms
            .document_at(&key, at, auth.limits.history_retention())
            .await?
            .ok_or(ControlError::NotFound)?;
        return Ok(Json(past.to_json()));
    }
    let doc = state
        .rooms
        .to_json(&key)
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(Json(doc))
}

/// What part of the document to send.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UpdateQuery {
    /// A Yjs state vector (v1), base64: only what it lacks is sent.
    #[serde(default)]
    state_vector: Option<String>,
    /// The document as it was then (an RFC 3339 time or a version id), all of it; not
    /// with `stateVector`.
    #[serde(default)]
    at: Option<String>,
}

/// The document as a Yjs update (v1): all of it, or only what `stateVector` lacks.
/// Apply it with `Y.applyUpdate(doc, bytes)`.
#[utoipa::path(
    get, path = "/v1/rooms/{roomId}/document/update", tag = "rooms", operation_id = "getDocumentUpdate",
    params(("roomId" = String, Path, description = "The room name, percent-encoded"), UpdateQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "A Yjs v1 update", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Invalid room name, state vector or `at`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room in this project", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`at` is older than the history keeps", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_update(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<UpdateQuery>,
) -> ApiResult<Response> {
    let key = room_key(&auth, &room)?;
    let octets = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    )];
    if let Some(at) = &query.at {
        if query.state_vector.is_some() {
            return Err(ApiError::BadRequest(
                "at and stateVector cannot be combined".to_owned(),
            ));
        }
        let at = super::history::parse_at(at, "at")?;
        let past = state
            .rooms
            .document_at(&key, at, auth.limits.history_retention())
            .await?
            .ok_or(ControlError::NotFound)?;
        return Ok((octets, past.encode()).into_response());
    }
    let sv = match &query.state_vector {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64))
                .map_err(|_| ApiError::BadRequest("stateVector is not base64".to_owned()))?,
        ),
        None => None,
    };
    let update = state
        .rooms
        .encode_state(&key, sv.as_deref())
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok((octets, update).into_response())
}

/// Applies a Yjs update (v1) to the document, as if a client had sent it: validated,
/// stored durably, then relayed live to every connected client. Creates the room if
/// it does not exist.
#[utoipa::path(
    post, path = "/v1/rooms/{roomId}/document/update", tag = "rooms", operation_id = "applyDocumentUpdate",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A Yjs v1 update"),
    security(("secret_key" = [])),
    responses(
        (status = 204, description = "Applied and durable"),
        (status = 400, description = "Invalid room name, or not a valid update for this document", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the message limit, or the document would pass the plan's size cap", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/octet-stream", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn apply_update(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<StatusCode> {
    let key = room_key(&auth, &room)?;
    let octets = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/octet-stream"));
    if !octets {
        return Err(ApiError::UnsupportedMediaType(
            "send the update as Content-Type: application/octet-stream".to_owned(),
        ));
    }
    let body = body.map_err(|e| ApiError::PayloadTooLarge(e.body_text()))?;
    state
        .rooms
        .apply_update_as(
            &key,
            body,
            Some(auth.limits.max_document_bytes),
            super::history::key_author(auth.key_id.as_str(), crate::store::Via::Rest),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One awareness state of a connection.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceState {
    /// The Yjs client id.
    client_id: u64,
    /// The awareness state (with `user` attached by the server from the token).
    #[schema(value_type = Object)]
    state: serde_json::Value,
}

/// A connected user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveUser {
    /// The connection; 0 for a connection on another node of a cluster (such an entry
    /// has one presence state, and no key, scopes or time: the other node sent only
    /// the presence).
    connection_id: u64,
    /// The token's user id.
    user_id: Option<String>,
    /// The token's user info.
    #[schema(value_type = Option<Object>)]
    user_info: Option<serde_json::Value>,
    /// Its presence.
    presence: Vec<PresenceState>,
    /// The API key that minted its token.
    key_id: Option<String>,
    /// What its token allows in this room (`room:read` always).
    scopes: Vec<String>,
    /// When it connected (absent for a connection on another node).
    #[serde(skip_serializing_if = "Option::is_none")]
    connected_at: Option<String>,
    /// The cluster node it is connected to, as 16 hex digits (absent on a single
    /// server); pass it to close the connection from another node.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

/// Users connected to a room.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    data: Vec<ActiveUser>,
}

/// The users connected to the room now, with their presence: this node's connections
/// with what their token allows, since when and which key minted it, and (in a cluster)
/// the presence states the other nodes' connections sent.
#[utoipa::path(
    get, path = "/v1/rooms/{roomId}/users", tag = "rooms", operation_id = "listActiveUsers",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Connected users (empty when nobody is connected)", body = UserList),
        (status = 400, description = "Invalid room name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
) -> ApiResult<Json<UserList>> {
    let key = room_key(&auth, &room)?;
    let entries = state.rooms.presence(&key).await?;
    Ok(Json(UserList {
        data: entries
            .into_iter()
            .map(|e| ActiveUser {
                connection_id: e.connection_id,
                key_id: e.key_id,
                scopes: e.rights.scopes().into_iter().map(str::to_owned).collect(),
                connected_at: (e.connection_id != 0).then(|| time(e.connected_at)),
                node: e.node.map(|n| format!("{n:016x}")),
                user_id: e.user_id,
                user_info: e.user_info,
                presence: e
                    .states
                    .into_iter()
                    .map(|(client_id, state)| PresenceState { client_id, state })
                    .collect(),
            })
            .collect(),
    }))
}

/// A custom event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastEvent {
    /// Any JSON value; clients receive `{"event": …, "connectionId": null, "userId": null}`
    /// as a Tandem event message (type 100).
    #[schema(value_type = Object)]
    event: serde_json::Value,
}

/// How many connections the event reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct Broadcasted {
    delivered: usize,
}

/// Sends a custom event to everyone connected to the room (not stored).
#[utoipa::path(
    post, path = "/v1/rooms/{roomId}/events", tag = "rooms", operation_id = "broadcastEvent",
    params(("roomId" = String, Path, description = "The room name, percent-encoded")),
    request_body = BroadcastEvent,
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "Sent", body = Broadcasted),
        (status = 400, description = "Invalid room name, or invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn broadcast_event(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<BroadcastEvent>,
) -> ApiResult<Json<Broadcasted>> {
    let key = room_key(&auth, &room)?;
    let delivered = state.rooms.broadcast_event(&key, body.event).await?;
    Ok(Json(Broadcasted { delivered }))
}
