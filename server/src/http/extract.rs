//! Extractors that carry the API's rules: credentials become [`ProjectAuth`] or
//! [`UserAuth`] before a handler runs (so a handler cannot forget to scope by tenant),
//! and malformed bodies, queries and paths get the same problem+json as everything else.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::control::plane::{ProjectAuth, RequestMeta, UserAuth};
use crate::control::ControlError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tandem_session";

/// A JSON body; any rejection is a problem document.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".to_owned(),
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::BadRequest(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest(e.body_text())),
            Err(JsonRejection::BytesRejection(e)) => Err(ApiError::PayloadTooLarge(e.body_text())),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// Path parameters; a rejection is a problem document.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// Query parameters; a rejection is a problem document.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// The bearer token in `Authorization`, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie's value, if any.
pub(crate) fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Counts the request of `key` against `per_minute` under `policy`; the state goes to
/// the response's `RateLimit` fields.
/// In a cluster the quota is shared by every node (Redis), with this node's limiter as
/// the fallback when Redis does not answer.
async fn charge(
    parts: &Parts,
    state: &AppState,
    key: &str,
    per_minute: u32,
    policy: &'static str,
) -> Result<(), ApiError> {
    let rate = state
        .key_limits
        .check_policy_in(state.rooms.cluster(), key, per_minute, policy)
        .await?;
    if let Some(slot) = parts.extensions.get::<super::limits::RateSlot>() {
        slot.set(rate);
    }
    Ok(())
}

/// Authenticates the bearer project key (a publishable one only if allowed) and charges
/// the request to the key's quota.
async fn project_key(
    parts: &Parts,
    state: &AppState,
    allow_publishable: bool,
    missing: &'static str,
) -> Result<ProjectAuth, ApiError> {
    let key = bearer(parts).ok_or(ControlError::Unauthenticated(missing))?;
    let auth = state
        .control
        .authenticate_project_key(key, allow_publishable)
        .await?;
    let quota = auth.limits.rest_requests_per_minute;
    charge(parts, state, auth.key_id.as_str(), quota, "per-key").await?;
    Ok(auth)
}

/// A request made with a project's secret key (`Authorization: Bearer sk_…`).
#[derive(Debug, Clone)]
pub struct SecretKey(pub ProjectAuth);

impl FromRequestParts<AppState> for SecretKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let missing = "send the project's secret key as Authorization: Bearer sk_…";
        Ok(Self(project_key(parts, state, false, missing).await?))
    }
}

/// A request made with a secret key, or a publishable key where the project allows
/// public access (`POST /v1/tokens` only).
#[derive(Debug, Clone)]
pub struct TokenIssuer(pub ProjectAuth);

impl FromRequestParts<AppState> for TokenIssuer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let missing = "send a secret key (or a publishable key) as Authorization: Bearer …";
        let auth = project_key(parts, state, true, missing).await?;
        // A publishable key is public: whoever holds it mints from their own address,
        // so those requests are limited per client address too.
        if auth.publishable {
            if let (Some(ip_limits), Some(ConnectInfo(peer))) = (
                &state.ip_limits,
                parts.extensions.get::<ConnectInfo<SocketAddr>>(),
            ) {
                let client = ip_limits.peer.client(peer.ip(), &parts.headers);
                let key = format!("ip:{client}");
                charge(parts, state, &key, ip_limits.per_minute, "per-ip").await?;
            }
        }
        Ok(Self(auth))
    }
}

/// A signed-in user: a personal access token (`Authorization: Bearer pat_…`) or the
/// session cookie.
#[derive(Debug, Clone)]
pub struct SignedIn(pub UserAuth);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(parts) {
            let auth = state.control.authenticate_pat(token).await?;
            if let crate::control::plane::Via::Pat { key_id, tenant_id } = &auth.via {
                let limits = state.control.tenant_limits(tenant_id).await?;
                let quota = limits.rest_requests_per_minute;
                charge(parts, state, key_id.as_str(), quota, "per-key").await?;
            }
            return Ok(Self(auth));
        }
        let cookie = session_cookie(parts).ok_or(ControlError::Unauthenticated(
            "sign in, or send a personal access token as Authorization: Bearer pat_…",
        ))?;
        Ok(Self(state.control.session_user(cookie).await?))
    }
}

/// Facts about the request for the audit log and throttling.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl FromRequestParts<AppState> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(Self(RequestMeta {
            ip: client_ip(parts, state).map(|ip| ip.to_string()),
            user_agent,
        }))
    }
}

/// The client's address, as the per-IP rate limiter sees it: the TCP peer, or behind a
/// proxy listed in `--trusted-proxies`, the client it forwarded for (`X-Forwarded-For`
/// from anyone else is not believed). The login-failure counter and the audit and
/// security logs use this, so a proxy's clients are told apart.
pub fn client_ip(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    Some(match &state.ip_limits {
        Some(limits) => limits.peer.client(peer.ip(), &parts.headers),
        None => peer.ip(),
    })
}
