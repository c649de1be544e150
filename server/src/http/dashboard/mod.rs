//! The tenant dashboard at `/dashboard`: server-rendered pages (askama templates from
//! the top-level `dashboard/templates`, compiled in) and their static assets (compiled
//! in too: nothing is loaded from elsewhere). Handlers are adapters only: they call the
//! same [`ControlPlane`](crate::control::ControlPlane) and [`Rooms`](crate::rooms::Rooms)
//! operations as the REST API. Every state-changing request passes the guard first.

mod account;
mod auth;
mod chart;
mod error;
mod guard;
mod inspector;
mod invitations;
mod live;
mod projects;
mod render;
mod rooms;
mod session;
mod tenant;
mod tokens;
mod usage;
mod webhooks;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::AppState;

/// The dashboard's routes (and `/` redirecting to it).
pub fn router(public_url: Option<&str>) -> Router<AppState> {
    let tenant = "/dashboard/t/{tenant}";
    let project = "/dashboard/t/{tenant}/p/{project}";
    let routes = Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(auth::home))
        .route("/dashboard/", get(auth::home))
        .route("/dashboard/static/{file}", get(asset))
        .route(
            "/dashboard/signup",
            get(auth::signup_page).post(auth::signup),
        )
        .route("/dashboard/login", get(auth::login_page).post(auth::login))
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/switch", get(auth::switch))
        .route(tenant, get(projects::list))
        .route(&format!("{tenant}/projects"), post(projects::create))
        .route(project, get(projects::show))
        .route(&format!("{project}/start"), get(auth::start))
        .route(&format!("{project}/rename"), post(projects::rename))
        .route(
            &format!("{project}/public-access"),
            post(projects::public_access),
        )
        .route(&format!("{project}/delete"), post(projects::delete))
        .route(&format!("{project}/keys"), post(projects::create_key))
        .route(
            &format!("{project}/keys/{{key}}/roll"),
            post(projects::roll_key),
        )
        .route(
            &format!("{project}/keys/{{key}}/revoke"),
            post(projects::revoke_key),
        )
        .route(
            &format!("{project}/webhooks"),
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            &format!("{project}/webhooks/{{webhook}}/enable"),
            post(webhooks::enable),
        )
        .route(
            &format!("{project}/webhooks/{{webhook}}/delete"),
            post(webhooks::delete),
        )
        .route(
            &format!("{project}/webhooks/{{webhook}}/test"),
            post(webhooks::test),
        )
        .route(
            &format!("{project}/webhooks/{{webhook}}/deliveries/{{delivery}}/retry"),
            post(webhooks::retry),
        )
        .route(&format!("{project}/rooms"), get(rooms::list))
        .route(&format!("{project}/room"), get(rooms::show))
        .route(&format!("{project}/room/live"), get(live::live))
        .route(&format!("{project}/room/close"), post(inspector::close))
        .route(
            &format!("{project}/room/read-only"),
            post(inspector::read_only),
        )
        .route(&format!("{project}/room/broadcast"), post(rooms::broadcast))
        .route(&format!("{project}/room/delete"), post(rooms::delete))
        .route(&format!("{project}/room/restore"), post(rooms::restore))
        .route(&format!("{tenant}/usage"), get(usage::page))
        .route(&format!("{tenant}/plan"), get(usage::plan))
        .route(
            &format!("{tenant}/plan/checkout"),
            post(usage::plan_checkout),
        )
        .route(&format!("{tenant}/plan/portal"), post(usage::plan_portal))
        .route(&format!("{tenant}/audit"), get(tenant::audit))
        .route(&format!("{tenant}/team"), get(tenant::team))
        .route(
            &format!("{tenant}/team/{{user}}/role"),
            post(tenant::set_role),
        )
        .route(
            &format!("{tenant}/team/{{user}}/remove"),
            post(tenant::remove),
        )
        .route(&format!("{tenant}/leave"), post(tenant::leave))
        .route(&format!("{tenant}/invitations"), post(invitations::create))
        .route(
            &format!("{tenant}/invitations/{{invitation}}/revoke"),
            post(invitations::revoke),
        )
        .route(
            "/dashboard/invitations/accept",
            get(invitations::page).post(invitations::accept),
        )
        .route(
            &format!("{tenant}/tokens"),
            get(tokens::list).post(tokens::create),
        )
        .route(
            &format!("{tenant}/tokens/{{key}}/revoke"),
            post(tokens::revoke),
        )
        .route(
            &format!("{tenant}/account/sessions"),
            get(account::sessions),
        )
        .route(
            &format!("{tenant}/account/sessions/end-others"),
            post(account::end_others),
        )
        .route(
            &format!("{tenant}/account/sessions/{{session}}/end"),
            post(account::end),
        )
        .route(
            &format!("{tenant}/account/security"),
            get(account::security),
        );
    guard::protect(routes, public_url).layer(axum::middleware::map_response(security_headers))
}

/// Every path the guard must protect: the dashboard's state-changing routes, with
/// placeholders filled in (for the test that proves each one refuses cross-site posts).
#[cfg(test)]
pub(crate) const STATE_CHANGING: &[&str] = &[
    "/dashboard/signup",
    "/dashboard/login",
    "/dashboard/logout",
    "/dashboard/t/{tenant}/projects",
    "/dashboard/t/{tenant}/p/{project}/rename",
    "/dashboard/t/{tenant}/p/{project}/public-access",
    "/dashboard/t/{tenant}/p/{project}/delete",
    "/dashboard/t/{tenant}/p/{project}/keys",
    "/dashboard/t/{tenant}/p/{project}/keys/{key}/roll",
    "/dashboard/t/{tenant}/p/{project}/keys/{key}/revoke",
    "/dashboard/t/{tenant}/p/{project}/room/broadcast?name=r",
    "/dashboard/t/{tenant}/p/{project}/room/delete?name=r",
    "/dashboard/t/{tenant}/p/{project}/room/restore?name=r",
    "/dashboard/t/{tenant}/team/{user}/role",
    "/dashboard/t/{tenant}/team/{user}/remove",
    "/dashboard/t/{tenant}/leave",
    "/dashboard/t/{tenant}/invitations",
    "/dashboard/t/{tenant}/invitations/inv_000000000000000000000000/revoke",
    "/dashboard/invitations/accept",
    "/dashboard/t/{tenant}/tokens",
    "/dashboard/t/{tenant}/tokens/{key}/revoke",
    "/dashboard/t/{tenant}/p/{project}/room/close?name=r",
    "/dashboard/t/{tenant}/p/{project}/room/read-only?name=r",
    "/dashboard/t/{tenant}/account/sessions/end-others",
    "/dashboard/t/{tenant}/account/sessions/{session}/end",
    "/dashboard/t/{tenant}/p/{project}/webhooks",
    "/dashboard/t/{tenant}/p/{project}/webhooks/whk_000000000000000000000000/enable",
    "/dashboard/t/{tenant}/p/{project}/webhooks/whk_000000000000000000000000/delete",
    "/dashboard/t/{tenant}/p/{project}/webhooks/whk_000000000000000000000000/test",
    "/dashboard/t/{tenant}/p/{project}/webhooks/whk_000000000000000000000000/deliveries/dlv_000000000000000000000000/retry",
    "/dashboard/t/{tenant}/plan/checkout",
    "/dashboard/t/{tenant}/plan/portal",
];

/// Pages may not be framed, load nothing from other origins, and are never stored by
/// the browser or a proxy: they show private data, and some show a secret once (a new
/// key or token is in the response of the POST that made it, and only there).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The compiled-in static assets.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../../../../dashboard/static/dashboard.css"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../dashboard/static/dashboard.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../../dashboard/static/favicon.svg"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests;
