//! HTTP adapters only: the REST API ([`api`]) with its error model ([`error`]) and
//! extractors ([`extract`]), the WebSocket upgrade ([`ws`]), the spec and its docs page
//! ([`docs`]) and health checks ([`health`]). Handlers translate between HTTP and the
//! control plane or the engine; they hold no logic of their own.

pub mod api;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::control::ControlPlane;
use crate::rooms::auth::Authorizer;
use crate::rooms::Rooms;
use crate::store::SharedDocStore;

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The rooms engine.
    pub rooms: Rooms,
    /// Room listings (the engine's store).
    pub docs: SharedDocStore,
    /// Accounts, tenants, keys and tokens.
    pub control: ControlPlane,
    /// Who may enter which room.
    pub authorizer: Arc<dyn Authorizer>,
}

/// The whole HTTP application.
pub fn build_app(state: AppState) -> Router {
    let max_update = state.rooms.config().max_message_bytes;
    let (api, spec) = api::split(max_update);
    let spec_json = spec.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    Router::new()
        .merge(api)
        .merge(docs::router(spec_json))
        .merge(health::router())
        .merge(ws::router())
        .fallback(error::no_route)
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

#[cfg(test)]
mod tests;
