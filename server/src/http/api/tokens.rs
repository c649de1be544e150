//! `POST /v1/tokens` (mint a client token) and `/.well-known/jwks.json` (the public keys
//! that verify them).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::time;
use crate::control::token::{RoomPattern, RoomPermission, Scope};
use crate::control::tokens::TokenRequest;
use crate::control::ControlError;
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, TokenIssuer};
use crate::http::AppState;
use crate::ids::ProjectId;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token))
        .routes(routes!(jwks))
}

/// A permission scope.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub enum ScopeView {
    /// Read the document and see presence.
    #[serde(rename = "room:read")]
    Read,
    /// Change the document (implies read and presence).
    #[serde(rename = "room:write")]
    Write,
    /// Publish one's own presence (and custom events).
    #[serde(rename = "room:presence:write")]
    PresenceWrite,
    /// Write even while the room is read-only (implies `room:write`); for your own
    /// moderators and services.
    #[serde(rename = "room:admin")]
    Admin,
}

/// What the token is for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// Your app's id for the user (shown with their presence). Required with a secret
    /// key; must be omitted with a publishable key, whose tokens are anonymous (the
    /// server chooses an `anon_…` id).
    #[serde(default)]
    user_id: Option<String>,
    /// Shown to others with the user's presence, e.g. `{"name": "Ada", "color": "#f0a"}`.
    /// Secret keys only.
    /// The server puts it into the user's awareness state as `user` (with `id`), so
    /// clients cannot forge it. At most 4 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    user_info: Option<serde_json::Value>,
    /// Room name (exact) or prefix ending in `*` → scopes, e.g.
    /// `{"doc-1": ["room:write"], "team-*": ["room:read"]}`.
    permissions: BTreeMap<String, Vec<ScopeView>>,
    /// Lifetime in seconds (default 3600, at most the server's maximum, 86400 by
    /// default).
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A minted client token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// Pass it as `?token=` when connecting (y-websocket: `params: { token }`).
    token: String,
    /// When it expires; clients refresh before (the SDKs do it for you).
    expires_at: String,
    /// The project whose rooms it opens.
    project_id: ProjectId,
    /// The user id in the token: the one asked for, or the server-chosen `anon_…` id
    /// of a publishable-key token.
    user_id: String,
}

/// Mints a client token for a user of your app, with room permissions. Needs the
/// project's secret key, or its publishable key where public access is on: a
/// publishable key mints anonymous tokens (server-chosen `anon_…` id, no user info)
/// with `room:read` and `room:presence:write` only.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "project", operation_id = "createToken",
    request_body = CreateToken,
    security(("secret_key" = []), ("publishable_key" = [])),
    responses(
        (status = 200, description = "The token", body = CreatedToken),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Publishable key without public access", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_token(
    State(state): State<AppState>,
    TokenIssuer(auth): TokenIssuer,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<Json<CreatedToken>> {
    let mut permissions = Vec::with_capacity(body.permissions.len());
    for (pattern, scopes) in body.permissions {
        let room = RoomPattern::new(pattern.clone())
            .map_err(|e| ControlError::Invalid(format!("permission pattern {pattern:?}: {e}")))?;
        let scopes = scopes
            .into_iter()
            .map(|s| match s {
                ScopeView::Read => Scope::Read,
                ScopeView::Write => Scope::Write,
                ScopeView::PresenceWrite => Scope::PresenceWrite,
                ScopeView::Admin => Scope::Admin,
            })
            .collect();
        permissions.push(RoomPermission { room, scopes });
    }
    let minted = state.control.mint_token(
        &auth,
        TokenRequest {
            user_id: body.user_id,
            user_info: body.user_info,
            permissions,
            ttl: body.expires_in.map(Duration::from_secs),
        },
    )?;
    let exp_ms = i64::try_from(minted.claims.exp.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(Json(CreatedToken {
        token: minted.token,
        expires_at: time(exp_ms),
        project_id: auth.project_id,
        user_id: minted.claims.sub,
    }))
}

/// An Ed25519 public key (RFC 8037).
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkView {
    /// `OKP`.
    kty: String,
    /// `Ed25519`.
    crv: String,
    /// The public key, base64url.
    x: String,
    /// The key id tokens name in their header.
    kid: String,
    /// `EdDSA`.
    alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    use_: String,
}

/// The keys that verify client tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwksView {
    keys: Vec<JwkView>,
}

/// The public keys that verify client tokens (current and recently rotated), for
/// verifying tokens outside Tandem.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "project", operation_id = "jwks",
    responses((status = 200, description = "JSON Web Key Set", body = JwksView)),
)]
async fn jwks(State(state): State<AppState>) -> Response {
    let set = state.control.key_ring().jwks();
    let body = JwksView {
        keys: set
            .keys
            .into_iter()
            .map(|k| JwkView {
                kty: k.kty,
                crv: k.crv,
                x: k.x,
                kid: k.kid,
                alg: k.alg,
                use_: k.use_,
            })
            .collect(),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
