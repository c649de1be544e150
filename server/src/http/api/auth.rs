//! Accounts over HTTP: signup, login, logout and "who am I", with the session in an
//! HttpOnly, SameSite=Lax cookie (Secure behind `--public-url https://…`).
//!
//! CSRF: every state-changing route here and elsewhere that a cookie can authenticate is
//! behind [`crate::http::csrf`] (Fetch Metadata / `Origin`, no form media types); the
//! cookie is SameSite=Lax and no CORS headers are served, as further layers.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{Project, Tenant, User};
use crate::control::accounts::{NewSession, Signup};
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{session_cookie, ApiJson, Meta, SignedIn, SESSION_COOKIE};
use crate::http::AppState;

pub(super) fn router(ip_layers: super::IpLayers) -> OpenApiRouter<AppState> {
    let limited = |router: OpenApiRouter<AppState>, layer| match layer {
        Some(layer) => router.layer(layer),
        None => router,
    };
    OpenApiRouter::new()
        .merge(limited(
            OpenApiRouter::new().routes(routes!(signup)),
            ip_layers.signup,
        ))
        .merge(limited(
            OpenApiRouter::new().routes(routes!(login)),
            ip_layers.login,
        ))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Signup form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    /// Your email (normalised: trimmed, domain lowercased).
    email: String,
    /// At least 10 characters, and not easy to guess (common and breached passwords,
    /// keyboard patterns, repeats and the email itself are refused).
    password: String,
    /// The tenant (team) name; defaults to the email's local part.
    #[serde(default)]
    tenant_name: Option<String>,
    /// The first project's name; defaults to `development`.
    #[serde(default)]
    project_name: Option<String>,
}

/// What signup created.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    user: User,
    tenant: Tenant,
    project: Project,
}

/// Login form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// The signed-in user and their tenants.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    user: User,
    tenants: Vec<Tenant>,
}

fn session_cookie_header(state: &AppState, session: &NewSession) -> HeaderValue {
    let max_age = (session.expires_at - state.control.now_ms()).max(0) / 1000;
    let secure = if state.control.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session.cookie_value
    );
    // The value is base64url and the rest is ASCII: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie(state: &AppState) -> HeaderValue {
    let secure = if state.control.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Sign up: creates a user, a tenant they own and a first project, and signs them in.
/// An email that is already registered gets the same answer (and its owner a notice),
/// so this does not reveal which emails have accounts; that session does not work.
#[utoipa::path(
    post, path = "/v1/auth/signup", tag = "accounts", operation_id = "signup",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Signed up and signed in (sets the session cookie)", body = SignupResponse),
        (status = 400, description = "Invalid email or password", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn signup(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<SignupRequest>,
) -> ApiResult<Response> {
    let created = state
        .control
        .signup(
            Signup {
                email: body.email,
                password: body.password,
                tenant_name: body.tenant_name,
                project_name: body.project_name,
            },
            &meta,
        )
        .await?;
    // A taken email gets the same answer (see `ControlPlane::signup`): a cookie of the
    // same form that opens nothing.
    let session = if created.created {
        state.control.create_session(&created.user, &meta).await?
    } else {
        state.control.decoy_session()?
    };
    let body = SignupResponse {
        user: User::from(&created.user),
        tenant: Tenant::new(&created.tenant, Some(crate::store::control::Role::Owner)),
        project: Project::from(&created.project),
    };
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, session_cookie_header(&state, &session))],
        axum::Json(body),
    )
        .into_response())
}

/// Sign in with email and password. Repeated failures for an account or from an
/// address are refused with 429 for a while.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "accounts", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in (sets the session cookie)", body = Me),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let user = state
        .control
        .login(&body.email, &body.password, &meta)
        .await?;
    let session = state.control.create_session(&user, &meta).await?;
    let auth = crate::control::plane::UserAuth {
        user,
        via: crate::control::plane::Via::Session,
    };
    let body = me_view(&state, &auth).await?;
    Ok((
        [(header::SET_COOKIE, session_cookie_header(&state, &session))],
        axum::Json(body),
    )
        .into_response())
}

/// Sign out: the session ends on the server, so a copied cookie stops working too.
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "accounts", operation_id = "logout",
    responses((status = 204, description = "Signed out (clears the cookie)")),
)]
async fn logout(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    if let Some(cookie) = session_cookie(&parts) {
        state.control.logout(cookie).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(&state))],
    )
        .into_response())
}

/// The signed-in user and the tenants they belong to.
#[utoipa::path(
    get, path = "/v1/auth/me", tag = "accounts", operation_id = "me",
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "The user", body = Me),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn me(State(state): State<AppState>, SignedIn(auth): SignedIn) -> ApiResult<axum::Json<Me>> {
    Ok(axum::Json(me_view(&state, &auth).await?))
}

/// The user and the tenants their credential reaches.
async fn me_view(state: &AppState, auth: &crate::control::plane::UserAuth) -> ApiResult<Me> {
    let tenants = state.control.tenants_of(auth).await?;
    Ok(Me {
        user: User::from(&auth.user),
        tenants: tenants
            .iter()
            .map(|(t, r)| Tenant::new(t, Some(*r)))
            .collect(),
    })
}
