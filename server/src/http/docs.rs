//! The API spec at `/openapi.json` and a self-contained documentation page at `/docs`:
//! one HTML file with inline script and styles that renders the spec, so the docs work
//! on a server with no internet access (the common Swagger/Redoc/Scalar pages load
//! their code from a CDN).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

const DOCS_HTML: &str = include_str!("../../assets/docs.html");

pub(crate) fn router(spec_json: String) -> Router<AppState> {
    let spec = bytes::Bytes::from(spec_json);
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        spec,
                    )
                }
            }),
        )
        .route("/docs", get(docs))
}

async fn docs() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
                ),
            ),
        ],
        DOCS_HTML,
    )
        .into_response()
}
