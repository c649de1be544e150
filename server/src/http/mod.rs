//! HTTP adapters only: the router, the WebSocket upgrade ([`ws`]) and health checks
//! ([`health`]). Handlers translate between HTTP and the engine; they hold no logic of
//! their own.

pub mod health;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::rooms::auth::Authorizer;
use crate::rooms::Rooms;

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The rooms engine.
    pub rooms: Rooms,
    /// Who may enter which room.
    pub authorizer: Arc<dyn Authorizer>,
}

/// The whole HTTP application.
pub fn build_app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ws::router())
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
