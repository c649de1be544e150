//! `/healthz` (the process answers) and `/readyz` (it can serve: storage answers and it
//! is not shutting down). Load balancers should route by `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.rooms.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting down" })),
        );
    }
    if !state.rooms.store_ready().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "storage unavailable" })),
        );
    }
    let mut body = json!({ "status": "ready", "loaded_rooms": state.rooms.loaded_rooms() });
    if let Some(cluster) = state.rooms.cluster() {
        // Informational: without Redis a node still serves its own clients (and catches
        // up once it is back), so this does not make the node unready.
        body["redis"] = json!(if cluster.is_up() { "up" } else { "down" });
    }
    (StatusCode::OK, Json(body))
}
