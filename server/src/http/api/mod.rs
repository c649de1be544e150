//! The REST API under `/v1`, described with utoipa as it is routed: each handler's
//! `#[utoipa::path]` is next to it, and [`router`] collects routes and spec together, so
//! the spec cannot list a route the server does not serve (or miss one).

pub mod auth;
pub mod billing;
pub mod connections;
pub mod history;
pub mod invitations;
pub mod keys;
pub mod management;
pub mod rooms;
pub mod sessions;
pub mod tokens;
pub mod usage;
pub mod views;
pub mod webhooks;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;

use super::error::{ApiError, Problem};
use super::limits::IpLayer;
use super::AppState;
use crate::control::ControlError;

/// The spec's fixed parts: info, tags and security schemes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tandem API",
        description = "Tandem's REST API: accounts, the management API (session or personal access token), and per-project rooms, tokens and keys (secret key). Errors are application/problem+json (RFC 9457) with a stable `code`; every response carries `x-request-id`.\n\nReal-time clients connect to `GET /v1/connect/{room}?token=…` with the y-websocket protocol (not described here).",
        license(name = "Apache-2.0"),
    ),
    paths(connect),
    modifiers(&SecuritySchemes),
    components(schemas(Problem)),
    tags(
        (name = "accounts", description = "Signup, login, logout, accepting invitations, your sessions and security log"),
        (name = "management", description = "Tenants, projects, members and invitations, keys, audit log, usage (session or personal access token)"),
        (name = "project", description = "Client tokens, keys and usage (project secret key)"),
        (name = "rooms", description = "Rooms and their documents (project secret key)"),
        (name = "realtime", description = "The WebSocket endpoint (y-websocket protocol)"),
        (name = "webhooks", description = "Webhook endpoints (Standard Webhooks signatures), their deliveries, and the project's change feed (project secret key)"),
        (name = "billing", description = "Stripe's webhook (when billing is configured)"),
    )
)]
struct ApiDoc;

/// Joins a room over WebSocket with the y-websocket protocol, unchanged: the stock
/// client works as `new WebsocketProvider('ws://host/v1/connect', room, doc, { params:
/// { token } })`. The room name is the rest of the path (it may contain `/`). Refusals
/// arrive as WebSocket close codes after the upgrade: 4401 token missing, invalid or
/// expired (fetch a new one), 4403 the token does not allow this room, 4404 room
/// deleted, 4400 malformed message or invalid room name (1 to 256 bytes of UTF-8, no
/// control, bidi-override, zero-width or other invisible format characters), 4413 too large, 4429 limit, 1012 restarting, 1013
/// try again later.
#[utoipa::path(
    get, path = "/v1/connect/{room}", tag = "realtime", operation_id = "connect",
    params(
        ("room" = String, Path, description = "The room name (the rest of the path)"),
        ("token" = Option<String>, Query, description = "A client token from POST /v1/tokens"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: y-websocket frames follow"),
        (status = 400, description = "Not a WebSocket upgrade request"),
    )
)]
#[allow(dead_code)] // documents the route served by `http::ws`
async fn connect() {}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme(
            "secret_key",
            bearer("A project's secret key: `Authorization: Bearer sk_…`. Server-side only."),
        );
        components.add_security_scheme(
            "publishable_key",
            bearer("A project's publishable key (`pk_…`); only mints tokens, only where the project allows public access."),
        );
        components.add_security_scheme(
            "personal_access_token",
            bearer("A personal access token for the management API of one tenant: `Authorization: Bearer pat_…`."),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::extract::SESSION_COOKIE,
                "The login session cookie set by signup and login.",
            ))),
        );
    }
}

/// Parses a prefixed id from a path; a malformed one is answered like an unknown one.
pub(crate) fn parse_id<T: ParseId>(raw: &str) -> Result<T, ApiError> {
    T::parse_id(raw).ok_or(ApiError::Control(ControlError::NotFound))
}

/// Ids that parse from a path segment.
pub(crate) trait ParseId: Sized {
    fn parse_id(raw: &str) -> Option<Self>;
}

macro_rules! parse_ids {
    ($($t:ty),*) => {$(
        impl ParseId for $t {
            fn parse_id(raw: &str) -> Option<Self> {
                <$t>::parse(raw)
            }
        }
    )*};
}
parse_ids!(
    crate::ids::TenantId,
    crate::ids::ProjectId,
    crate::ids::UserId,
    crate::ids::KeyId,
    crate::ids::InvitationId
);

/// The per-IP limits of the routes anyone can call (token minting with a publishable
/// key is limited per IP in its extractor).
#[derive(Default)]
pub struct IpLayers {
    /// On `POST /v1/auth/signup`.
    pub signup: Option<IpLayer>,
    /// On `POST /v1/auth/login`.
    pub login: Option<IpLayer>,
}

/// Every documented route, with its spec.
pub fn router(max_update_bytes: usize, ip_layers: IpLayers) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(auth::router(ip_layers))
        .merge(management::router())
        .merge(invitations::router())
        .merge(sessions::router())
        .merge(keys::router())
        .merge(tokens::router())
        .merge(rooms::router(max_update_bytes))
        .merge(connections::router())
        .merge(history::router())
        .merge(usage::router())
        .merge(webhooks::router())
        .merge(billing::router())
}

/// The routes and the finished spec.
pub fn split(max_update_bytes: usize, ip_layers: IpLayers) -> (axum::Router<AppState>, OpenApi) {
    let (routes, mut spec) = router(max_update_bytes, ip_layers).split_for_parts();
    document_common_errors(&mut spec);
    (routes, spec)
}

/// Adds the errors any route of a kind can answer, so a client (and the response
/// checks in the tests) can rely on the spec listing every status it may see: 500 and
/// 503 everywhere (the store may be down), and for JSON bodies 400 (malformed), 413 (too
/// large) and 415 (not JSON).
fn document_common_errors(spec: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    super::error::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in spec.paths.paths.iter_mut() {
        if path == "/v1/connect/{room}" {
            continue; // refusals there are WebSocket close codes
        }
        for (state_changing, operation) in [
            (false, &mut item.get),
            (true, &mut item.post),
            (true, &mut item.put),
            (true, &mut item.patch),
            (true, &mut item.delete),
        ]
        .into_iter()
        .filter_map(|(changing, op)| op.as_mut().map(|op| (changing, op)))
        {
            // What a cookie can authenticate (or what sets the cookie) is behind the
            // cross-site guard (`http::csrf`): 403 cross-site, 415 a form media type.
            let cookie_route = operation.security.as_ref().is_none_or(|s| {
                s.is_empty()
                    || s.iter().any(|req| {
                        serde_json::to_value(req)
                            .ok()
                            .is_some_and(|v| v.get("session").is_some())
                    })
            });
            let json_body = operation.request_body.as_ref().is_some_and(|b| match b {
                RefOr::T(body) => body.content.contains_key("application/json"),
                RefOr::Ref(_) => false,
            });
            let mut add = |status: &str, description: &str| {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            if json_body {
                add("400", "Malformed body");
                add("413", "Body too large");
                add("415", "Body is not JSON");
            }
            if state_changing && cookie_route {
                add(
                    "403",
                    "Cross-site request refused (`cross_site_request`: Sec-Fetch-Site or Origin names another site)",
                );
                add(
                    "415",
                    "A form media type (only JSON or no body is accepted)",
                );
            }
            let limited = operation.security.as_ref().is_some_and(|s| !s.is_empty())
                || matches!(
                    path.as_str(),
                    "/v1/auth/signup" | "/v1/auth/login" | "/v1/tokens"
                );
            if limited {
                add(
                    "429",
                    "Rate limit exceeded; see Retry-After and the RateLimit fields",
                );
            }
            add("500", "Internal error (details are logged, not returned)");
            if path != "/.well-known/jwks.json" {
                add("503", "Storage unavailable; retry after Retry-After");
            }
        }
    }
}

/// The OpenAPI document, as `tandem openapi` prints it and `/openapi.json` serves it.
pub fn openapi() -> OpenApi {
    split(
        crate::rooms::RoomsConfig::default().max_message_bytes,
        IpLayers::default(),
    )
    .1
}

/// The spec as pretty JSON with a trailing newline (the committed file's format).
pub fn openapi_json() -> String {
    let mut json = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}
