//! Cross-site request refusal for the dashboard. Every state-changing request (anything
//! but GET/HEAD/OPTIONS) passes the server's shared rule first ([`crate::http::csrf`]
//! with its forms policy: `Sec-Fetch-Site` same-origin, or an `Origin` naming this
//! server), and then the dashboard's own stricter one: it must be a form post
//! (`application/x-www-form-urlencoded`, which is all the dashboard's pages send) that
//! carries `Sec-Fetch-Site` or `Origin` (every browser sends one of them with a form).
//! So a body-less POST, or one with neither header, is refused too. Refusals are a 403
//! page before any handler runs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use super::error::error_page;
use crate::http::csrf::{self, CsrfPolicy};

/// `router` with every route behind the guard.
pub(super) fn protect<S>(router: Router<S>, public_url: Option<&str>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(CsrfPolicy::forms(public_url)),
        same_origin,
    ))
}

async fn same_origin(
    State(policy): State<Arc<CsrfPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match check(&policy, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(detail) => {
            tracing::debug!(%detail, path = %request.uri().path(), "dashboard request refused");
            error_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "cross_site_request",
                detail,
            )
        }
    }
}

/// The shared rule, then the dashboard's: why a request is refused, if it is.
pub(super) fn check(
    policy: &CsrfPolicy,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    csrf::check(policy, method, headers).map_err(|e| e.shown().3)?;
    form_post_from_a_browser(headers).map_err(str::to_owned)
}

fn form_post_from_a_browser(headers: &HeaderMap) -> Result<(), &'static str> {
    if headers.get("sec-fetch-site").is_none() && headers.get(header::ORIGIN).is_none() {
        return Err("this request names no origin; send it from the dashboard's own pages");
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err("dashboard actions are form posts from its own pages (application/x-www-form-urlencoded)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    fn post(h: &HeaderMap) -> Result<(), String> {
        check(&CsrfPolicy::forms(None), &Method::POST, h)
    }

    #[test]
    fn same_origin_form_posts_pass() {
        assert!(post(&headers(&[("sec-fetch-site", "same-origin"), FORM])).is_ok());
        assert!(post(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
            FORM
        ]))
        .is_ok());
        assert!(check(&CsrfPolicy::forms(None), &Method::GET, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn cross_site_or_originless_or_bodyless_posts_fail() {
        for site in ["cross-site", "same-site"] {
            let h = headers(&[("sec-fetch-site", site), FORM]);
            assert!(post(&h).is_err(), "{site}");
        }
        let foreign = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
            FORM,
        ]);
        assert!(post(&foreign).is_err());
        assert!(post(&headers(&[("host", "127.0.0.1:8080"), FORM])).is_err());
        // Same origin, but no form body (a body-less or JSON POST).
        assert!(post(&headers(&[("sec-fetch-site", "same-origin")])).is_err());
        assert!(post(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("content-type", "text/plain")
        ]))
        .is_err());
        // A bearer header does not make a form-less post acceptable here.
        assert!(post(&headers(&[("authorization", "Bearer x")])).is_err());
    }
}
