//! Closing one connection of a room over HTTP (the inspector's action): the client is
//! closed with 4403 and a reason saying an administrator closed it, so stock clients
//! stop instead of reconnecting at once. Connection ids are per node; in a cluster the
//! `node` from the connection listing says where it is.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::room_key;
use crate::control::ControlError;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiPath, ApiQuery, Meta, SecretKey};
use crate::http::AppState;
use crate::rooms::inspect::Closed;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(close_connection))
}

/// Where the connection is.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseQuery {
    /// The cluster node it is on (`node` from the connection listing, 16 hex digits);
    /// omitted: this server.
    #[serde(default)]
    node: Option<String>,
}

/// Parses a node id as the listing shows it.
pub(crate) fn parse_node(node: Option<&str>) -> ApiResult<Option<u64>> {
    node.filter(|n| !n.is_empty())
        .map(|n| {
            u64::from_str_radix(n, 16)
                .map_err(|_| ApiError::BadRequest("node must be 16 hex digits".to_owned()))
        })
        .transpose()
}

/// Closes one connection of the room with 4403 ("closed by an administrator of this
/// project"). Its token still works: to keep someone out, revoke the key that minted it
/// or stop minting tokens for them.
#[utoipa::path(
    delete, path = "/v1/rooms/{roomId}/connections/{connectionId}", tag = "rooms",
    operation_id = "closeConnection",
    params(
        ("roomId" = String, Path, description = "The room name, percent-encoded"),
        ("connectionId" = u64, Path, description = "The connection (from the users listing)"),
        CloseQuery,
    ),
    security(("secret_key" = [])),
    responses(
        (status = 204, description = "Closed"),
        (status = 202, description = "It is on another node, which was asked to close it"),
        (status = 400, description = "Invalid room name or node", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection in this room", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn close_connection(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    Meta(meta): Meta,
    ApiPath((room, conn)): ApiPath<(String, u64)>,
    ApiQuery(query): ApiQuery<CloseQuery>,
) -> ApiResult<StatusCode> {
    let key = room_key(&auth, &room)?;
    let node = parse_node(query.node.as_deref())?;
    let status = match state.rooms.close_connection(&key, node, conn).await? {
        Closed::Here => StatusCode::NO_CONTENT,
        Closed::Elsewhere => StatusCode::ACCEPTED,
        Closed::NotFound => return Err(ControlError::NotFound.into()),
    };
    state
        .control
        .audit_room_action(
            (&auth.tenant_id, &auth.project_id),
            auth.key_id.as_str(),
            "room.connection_closed",
            &room,
            serde_json::json!({ "connectionId": conn }),
            &meta,
        )
        .await;
    Ok(status)
}
