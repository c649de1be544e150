//! Signing up (hosted signup: a tenant with `development` and `production`), signing in
//! and out, switching tenants, and the "get started" page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::error::{render, render_status, DashError, DashResult};
use super::session::{base_url, clear_cookie, session_value, set_cookie, Chrome, Ctx, DashUser};
use crate::control::accounts::Signup;
use crate::http::extract::Meta;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "auth.html")]
struct AuthPage {
    signup: bool,
    error: Option<String>,
    notice: Option<String>,
    email: String,
    tenant_name: String,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "start.html")]
pub(super) struct StartPage {
    chrome: Chrome,
    project_id: String,
    project_name: String,
    key: Option<String>,
    key_or_placeholder: String,
    base_url: String,
    ws_url: String,
}

/// `/dashboard`: the first tenant's projects, or the sign-in page.
pub(super) async fn home(
    State(state): State<AppState>,
    user: Result<DashUser, DashError>,
) -> DashResult {
    let Ok(DashUser(auth)) = user else {
        return Ok(Redirect::to("/dashboard/login").into_response());
    };
    let tenants = state.control.tenants_of(&auth).await?;
    match tenants.first() {
        Some((tenant, _)) => {
            Ok(Redirect::to(&format!("/dashboard/t/{}", tenant.id)).into_response())
        }
        None => Err(crate::control::ControlError::NotFound.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// Only a path inside the dashboard (no `//host`, no scheme) is followed after sign-in.
fn safe_next(next: Option<String>) -> Option<String> {
    next.filter(|n| {
        n.starts_with("/dashboard")
            && !n.contains("//")
            && !n.contains('\\')
            && n.chars().all(|c| c.is_ascii_graphic())
    })
}

pub(super) async fn signup_page() -> Response {
    render(&AuthPage {
        signup: true,
        error: None,
        notice: None,
        email: String::new(),
        tenant_name: String::new(),
        next: None,
    })
}

pub(super) async fn login_page(Query(query): Query<Next>) -> Response {
    render(&AuthPage {
        signup: false,
        error: None,
        notice: None,
        email: String::new(),
        tenant_name: String::new(),
        next: safe_next(query.next),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct SignupForm {
    email: String,
    password: String,
    tenant_name: String,
}

/// Creates the account and shows "get started" with the new secret key (once).
pub(super) async fn signup(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Form(form): Form<SignupForm>,
) -> DashResult {
    let signup = Signup {
        email: form.email.clone(),
        password: form.password,
        tenant_name: Some(form.tenant_name.clone()),
        project_name: None,
    };
    let created = match state.control.hosted_signup(signup, &meta).await {
        Ok(Some(created)) => created,
        // The email has an account: nothing was created (its owner was told). Say so
        // without confirming it here.
        Ok(None) => {
            return Ok(render(&AuthPage {
                signup: false,
                error: None,
                notice: Some(
                    "If this email already has an account, sign in with it; we sent a note to the address."
                        .to_owned(),
                ),
                email: form.email,
                tenant_name: String::new(),
                next: None,
            }));
        }
        Err(error) => {
            let (status, detail) = DashError::from(error).detail();
            return Ok(render_status(
                status,
                &AuthPage {
                    signup: true,
                    error: Some(detail),
                    notice: None,
                    email: form.email,
                    tenant_name: form.tenant_name,
                    next: None,
                },
            ));
        }
    };
    let session = state
        .control
        .create_session(&created.account.user, &meta)
        .await?;
    let auth = crate::control::plane::UserAuth {
        user: created.account.user.clone(),
        via: crate::control::plane::Via::Session,
    };
    let project = created.account.project.clone();
    let mut ctx = Ctx::load(
        &state,
        auth,
        created.account.tenant.id.as_str(),
        Some(project.id.as_str()),
        "start",
    )
    .await?;
    ctx.crumb("Get started");
    ctx.chrome.notice = Some(format!(
        "Welcome! {} is ready with a development and a production project.",
        created.account.tenant.name
    ));
    let (base, ws) = base_url(&state, &headers);
    let key = created.secret_key.plaintext.into_exposed();
    let page = StartPage {
        chrome: ctx.chrome,
        project_id: project.id.to_string(),
        project_name: project.name,
        key_or_placeholder: key.clone(),
        key: Some(key),
        base_url: base,
        ws_url: ws,
    };
    let mut response = render_status(StatusCode::CREATED, &page);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, &session));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().map_err(|_| DashError::SignIn)?,
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Form(form): Form<LoginForm>,
) -> DashResult {
    let next = safe_next(form.next);
    let user = match state
        .control
        .login(&form.email, &form.password, &meta)
        .await
    {
        Ok(user) => user,
        Err(error) => {
            let (status, detail) = DashError::from(error).detail();
            return Ok(render_status(
                status,
                &AuthPage {
                    signup: false,
                    error: Some(detail),
                    notice: None,
                    email: form.email,
                    tenant_name: String::new(),
                    next,
                },
            ));
        }
    };
    let session = state.control.create_session(&user, &meta).await?;
    let to = next.unwrap_or_else(|| "/dashboard".to_owned());
    Ok((
        [(header::SET_COOKIE, set_cookie(&state, &session))],
        Redirect::to(&to),
    )
        .into_response())
}

/// Ends the session on the server (a copied cookie stops working too).
pub(super) async fn logout(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> DashResult {
    let (parts, _) = request.into_parts();
    if let Some(cookie) = session_value(&parts) {
        state.control.logout(&cookie).await?;
    }
    let page = AuthPage {
        signup: false,
        error: None,
        notice: Some("You are signed out.".to_owned()),
        email: String::new(),
        tenant_name: String::new(),
        next: None,
    };
    let mut response = render(&page);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&state));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct Switch {
    tenant: String,
}

/// The tenant switcher without JavaScript.
pub(super) async fn switch(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Query(query): Query<Switch>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &query.tenant, None, "projects").await?;
    Ok(Redirect::to(&ctx.base()).into_response())
}

/// "Get started" for a project (the key is shown only right after signup).
pub(super) async fn start(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, Some(&project), "start").await?;
    let project = ctx.project()?;
    ctx.crumb("Get started");
    let (base, ws) = base_url(&state, &headers);
    Ok(render(&StartPage {
        chrome: ctx.chrome,
        project_id: project.id.to_string(),
        project_name: project.name,
        key: None,
        key_or_placeholder: "sk_…".to_owned(),
        base_url: base,
        ws_url: ws,
    }))
}
