//! The API's one error type: every failure becomes an RFC 9457 `application/problem+json`
//! body with a stable `code`, chosen here and nowhere else. 5xx bodies say nothing
//! internal (the details are logged with the request id).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::control::ControlError;
use crate::rooms::RoomError;

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:tandem:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for humans.
    pub detail: String,
    /// A stable machine-readable code (`not_found`, `invalid_request`, …).
    pub code: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the control plane.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// From the rooms engine.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The request itself is malformed (body, query, path, headers).
    #[error("{0}")]
    BadRequest(String),
    /// The body's media type is not what the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the route accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A state-changing request a page on another site made a browser send
    /// (see [`super::csrf`]).
    #[error("{0}")]
    CrossSite(String),
    /// No such route.
    #[error("no such route")]
    NoRoute,
    /// Over a rate limit; the state says which and when to retry.
    #[error("rate limit exceeded ({} requests per {} s); retry in {} s", .0.policy.quota, .0.policy.window.as_secs(), .0.reset)]
    RateLimited(super::limits::RateState),
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

struct Mapped {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<Duration>,
    rate: Option<super::limits::RateState>,
}

impl ApiError {
    fn mapped(&self) -> Mapped {
        let m = |status, code, title, detail: String| Mapped {
            status,
            code,
            title,
            detail,
            retry_after: None,
            rate: None,
        };
        match self {
            ApiError::Control(e) => match e {
                ControlError::Invalid(d) => m(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Invalid request",
                    d.clone(),
                ),
                ControlError::Unauthenticated(d) => m(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authentication required",
                    (*d).to_owned(),
                ),
                ControlError::Forbidden(d) => {
                    m(StatusCode::FORBIDDEN, "forbidden", "Forbidden", d.clone())
                }
                ControlError::NotFound => m(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "Not found",
                    "nothing with this id here".to_owned(),
                ),
                ControlError::Conflict(d) => {
                    m(StatusCode::CONFLICT, "conflict", "Conflict", d.clone())
                }
                // The same shape as every other 429: Retry-After and the RateLimit fields.
                ControlError::TooManyAttempts {
                    retry_after,
                    limit,
                    window,
                } => Mapped {
                    retry_after: Some(*retry_after),
                    rate: Some(super::limits::RateState {
                        policy: super::limits::Policy {
                            name: "login-failures",
                            quota: *limit,
                            window: *window,
                        },
                        remaining: 0,
                        reset: retry_after.as_secs().max(1),
                    }),
                    ..m(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_attempts",
                        "Too many attempts",
                        e.to_string(),
                    )
                },
                ControlError::Unavailable(_) => Mapped {
                    retry_after: Some(Duration::from_secs(5)),
                    ..m(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "Service unavailable",
                        "storage is unavailable; try again shortly".to_owned(),
                    )
                },
                ControlError::Internal(_) => m(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "something went wrong on our side".to_owned(),
                ),
            },
            ApiError::Room(e) => match e {
                RoomError::InvalidUpdate(d) => m(
                    StatusCode::BAD_REQUEST,
                    "invalid_update",
                    "Invalid update",
                    d.clone(),
                ),
                RoomError::InvalidEvent(d) => m(
                    StatusCode::BAD_REQUEST,
                    "invalid_event",
                    "Invalid event",
                    d.clone(),
                ),
                RoomError::InvalidStateVector(d) => m(
                    StatusCode::BAD_REQUEST,
                    "invalid_state_vector",
                    "Invalid state vector",
                    d.clone(),
                ),
                RoomError::DocumentTooLarge(d) => m(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "document_too_large",
                    "Document too large",
                    d.clone(),
                ),
                RoomError::OutsideHistory(d) => m(
                    StatusCode::GONE,
                    "outside_history",
                    "Not in the room's history",
                    d.clone(),
                ),
                RoomError::RoomExists(d) => m(
                    StatusCode::CONFLICT,
                    "room_exists",
                    "Room exists",
                    d.clone(),
                ),
                RoomError::Unavailable | RoomError::ShuttingDown => Mapped {
                    retry_after: Some(Duration::from_secs(5)),
                    ..m(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "Service unavailable",
                        e.to_string(),
                    )
                },
            },
            ApiError::BadRequest(d) => m(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
                d.clone(),
            ),
            ApiError::UnsupportedMediaType(d) => m(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                d.clone(),
            ),
            ApiError::PayloadTooLarge(d) => m(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                d.clone(),
            ),
            ApiError::RateLimited(state) => Mapped {
                retry_after: Some(Duration::from_secs(state.reset.max(1))),
                rate: Some(*state),
                ..m(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Rate limit exceeded",
                    self.to_string(),
                )
            },
            ApiError::CrossSite(d) => m(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "Cross-site request refused",
                d.clone(),
            ),
            ApiError::NoRoute => m(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "no such route".to_owned(),
            ),
        }
    }
}

impl ApiError {
    /// What a person is shown (the dashboard's pages): the status, title, stable code and
    /// the problem's `detail`. As in the JSON body, a 5xx says nothing internal; it is
    /// logged here instead.
    pub fn shown(&self) -> (StatusCode, &'static str, &'static str, String) {
        let mapped = self.mapped();
        if mapped.status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        (mapped.status, mapped.title, mapped.code, mapped.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mapped = self.mapped();
        if mapped.status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let body = Problem {
            type_: format!("urn:tandem:problem:{}", mapped.code),
            title: mapped.title.to_owned(),
            status: mapped.status.as_u16(),
            detail: mapped.detail,
            code: mapped.code.to_owned(),
        };
        let mut response = (mapped.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(rate) = mapped.rate {
            rate.write(headers);
        }
        if let Some(after) = mapped.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if mapped.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The fallback for unknown routes, so even a 404 is a problem document.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}
