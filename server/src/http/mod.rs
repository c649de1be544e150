//! HTTP adapters only: the REST API ([`api`]) with its error model ([`error`]),
//! extractors ([`extract`]) and cross-site guard ([`csrf`]), the WebSocket upgrade
//! ([`ws`]), the spec and its docs page ([`docs`]), the tenant dashboard ([`dashboard`])
//! and health checks ([`health`]). Handlers translate between HTTP and the control plane
//! or the engine; they hold no logic of their own.

pub mod api;
pub mod csrf;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod redact;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::control::ControlPlane;
use crate::rooms::auth::Authorizer;
use crate::rooms::Rooms;
use crate::store::usage::SharedUsageStore;
use crate::store::SharedDocStore;

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The rooms engine.
    pub rooms: Rooms,
    /// Room listings (the engine's store).
    pub docs: SharedDocStore,
    /// Usage reports (what the engine's meter writes).
    pub usage: SharedUsageStore,
    /// Accounts, tenants, keys and tokens.
    pub control: ControlPlane,
    /// Who may enter which room.
    pub authorizer: Arc<dyn Authorizer>,
    /// REST quotas per API key / personal access token.
    pub key_limits: Arc<limits::KeyLimits>,
    /// The per-IP limit on signup, login and token minting (`None`: off).
    pub ip_limits: Option<IpLimits>,
    /// Stripe billing (`None`: not configured).
    pub billing: Option<crate::control::billing::Billing>,
}

/// The per-IP limit of the public routes.
#[derive(Debug, Clone)]
pub struct IpLimits {
    /// Requests per minute per client address.
    pub per_minute: u32,
    /// Who the client is (trusted proxies).
    pub peer: limits::PeerIp,
}

/// The whole HTTP application.
pub fn build_app(state: AppState) -> Router {
    let max_update = state.rooms.config().max_message_bytes;
    // One limiter per route: a burst of signups does not use up the login budget.
    let ip_layer = || {
        state.ip_limits.as_ref().and_then(|ip| {
            let (layer, prune) = limits::per_ip_layer(ip.per_minute, ip.peer.clone())?;
            spawn_pruning(prune);
            Some(layer)
        })
    };
    let ip_layers = api::IpLayers {
        signup: ip_layer(),
        login: ip_layer(),
    };
    let keys = state.key_limits.clone();
    spawn_pruning(Arc::new(move || keys.retain_recent()));
    let (api, spec) = api::split(max_update, ip_layers);
    // Every state-changing API call a cookie can authenticate refuses cross-site requests
    // and form posts (a bearer credential is never attached by a browser on its own).
    let api = csrf::protect(
        api,
        csrf::CsrfPolicy::json_api(state.control.config().public_url.as_deref()),
    );
    let spec_json = spec.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    Router::new()
        .merge(api)
        .merge(dashboard::router(
            state.control.config().public_url.as_deref(),
        ))
        .merge(docs::router(spec_json))
        .merge(health::router())
        .merge(metrics::router())
        .merge(ws::router())
        .fallback(error::no_route)
        .with_state(state)
        .layer(axum::middleware::from_fn(limits::rate_headers))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(redact::RedactedSpan))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Prunes rate-limit state every minute (keyed state grows until pruned). Outside a
/// runtime (the spec generator) there is nothing to prune.
fn spawn_pruning(prune: Arc<dyn Fn() + Send + Sync>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                prune();
            }
        });
    }
}

#[cfg(test)]
mod tests;
