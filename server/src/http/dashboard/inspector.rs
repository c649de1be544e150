//! The inspector's admin actions on a room: close one connection (the client gets 4403,
//! "closed by an administrator of this project") and switch the room read-only for
//! every connection without `room:admin`. Both call the engine operations the REST
//! routes call, and are written to the tenant's audit log.

use axum::extract::{Path, Query, State};
use axum::Form;
use serde::Deserialize;

use super::error::{DashError, DashResult};
use super::rooms::{respond, room_key, RoomQuery};
use super::session::{Ctx, DashUser};
use crate::control::ControlError;
use crate::http::api::connections::parse_node;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::rooms::inspect::Closed;
use crate::store::control::Role;

#[derive(Debug, Deserialize)]
pub(super) struct CloseForm {
    connection: u64,
    #[serde(default)]
    node: String,
}

/// Closes one connection of the room (admin).
pub(super) async fn close(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
    Form(form): Form<CloseForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let row = ctx.project()?;
    let result = async {
        let access = state
            .control
            .tenant_access(&ctx.auth, &ctx.access.tenant_id, Role::Admin)
            .await?;
        let key = room_key(row.id.as_str(), &query.name)?;
        let node = parse_node(Some(form.node.as_str()))?;
        let closed = state
            .rooms
            .close_connection(&key, node, form.connection)
            .await?;
        if closed == Closed::NotFound {
            return Err(ControlError::Invalid(format!(
                "connection {} is not open in this room any more",
                form.connection
            ))
            .into());
        }
        state
            .control
            .audit_room_action(
                (&access.tenant_id, &row.id),
                &access.actor,
                "room.connection_closed",
                &query.name,
                serde_json::json!({ "connectionId": form.connection }),
                &meta,
            )
            .await;
        Ok::<_, DashError>(closed)
    }
    .await;
    let notice = |closed| match closed {
        Closed::Elsewhere => format!(
            "Connection {} is on another node, which was asked to close it.",
            form.connection
        ),
        _ => format!(
            "Connection {} was closed (the client was told 4403, closed by an administrator).",
            form.connection
        ),
    };
    respond(&state, ctx, &query.name, result.map(notice)).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ReadOnlyForm {
    /// `on` or `off`.
    read_only: String,
}

/// Switches the room read-only, or writable again (admin).
pub(super) async fn read_only(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
    Form(form): Form<ReadOnlyForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let row = ctx.project()?;
    let result = async {
        let access = state
            .control
            .tenant_access(&ctx.auth, &ctx.access.tenant_id, Role::Admin)
            .await?;
        let on = match form.read_only.as_str() {
            "on" => true,
            "off" => false,
            _ => return Err(ControlError::Invalid("read_only must be on or off".into()).into()),
        };
        let key = room_key(row.id.as_str(), &query.name)?;
        if !state.rooms.set_read_only(&key, on).await? {
            return Err(ControlError::NotFound.into());
        }
        state
            .control
            .audit_room_action(
                (&access.tenant_id, &row.id),
                &access.actor,
                "room.read_only",
                &query.name,
                serde_json::json!({ "readOnly": on }),
                &meta,
            )
            .await;
        Ok::<_, DashError>(if on {
            "The room is read-only: only connections with room:admin can change it now.".to_owned()
        } else {
            "The room is writable again.".to_owned()
        })
    }
    .await;
    respond(&state, ctx, &query.name, result).await
}
