//! How a failed dashboard request looks: not signed in is a redirect to the sign-in
//! page; anything else is a page showing the problem's `detail` (never internals).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::control::ControlError;
use crate::http::error::ApiError;
use crate::rooms::RoomError;

/// Why a dashboard request failed.
#[derive(Debug)]
pub(super) enum DashError {
    /// No valid session: go and sign in.
    SignIn,
    /// What the REST API would have answered.
    Api(ApiError),
}

/// Result alias for dashboard handlers.
pub(super) type DashResult<T = Response> = Result<T, DashError>;

impl From<ApiError> for DashError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<ControlError> for DashError {
    fn from(error: ControlError) -> Self {
        Self::Api(error.into())
    }
}

impl From<RoomError> for DashError {
    fn from(error: RoomError) -> Self {
        Self::Api(error.into())
    }
}

impl DashError {
    /// The `detail` to show next to a form (and the status to answer with).
    pub(super) fn detail(&self) -> (StatusCode, String) {
        match self {
            DashError::SignIn => (StatusCode::UNAUTHORIZED, "please sign in".to_owned()),
            DashError::Api(e) => {
                let (status, _, _, detail) = e.shown();
                (status, detail)
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    detail: String,
    status: u16,
    code: &'static str,
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        match self {
            DashError::SignIn => Redirect::to("/dashboard/login").into_response(),
            DashError::Api(e) => {
                let (status, title, code, detail) = e.shown();
                error_page(status, title, code, detail)
            }
        }
    }
}

/// An error page with `status`.
pub(super) fn error_page(
    status: StatusCode,
    title: &'static str,
    code: &'static str,
    detail: String,
) -> Response {
    let page = ErrorPage {
        title,
        detail,
        status: status.as_u16(),
        code,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, title).into_response(),
    }
}

/// Renders a page, or an error page if the template fails.
pub(super) fn render<T: Template>(page: &T) -> Response {
    render_status(StatusCode::OK, page)
}

/// Renders a page with `status`.
pub(super) fn render_status<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a dashboard page failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "internal",
                "something went wrong on our side".to_owned(),
            )
        }
    }
}
