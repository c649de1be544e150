//! Cross-site request refusal for the dashboard: a state-changing request (anything
//! but GET/HEAD/OPTIONS) must come from a page of this origin — `Sec-Fetch-Site:
//! same-origin`, or, from a browser that sends no Fetch Metadata, an `Origin` equal to
//! the `Host` — and must be a form post. Everything else is refused with 403 before a
//! handler runs, so a cross-site form (with or without a body) cannot act for a
//! signed-in user even though SameSite=Lax lets top-level POSTs carry no cookie anyway.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::error::error_page;

/// Refuses cross-site and non-form state-changing requests with 403.
pub(super) async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    match check_same_origin(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::debug!(reason, path = %request.uri().path(), "cross-site dashboard request refused");
            error_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "cross_site",
                reason.to_owned(),
            )
        }
    }
}

/// Why a state-changing request is refused, if it is.
pub(super) fn check_same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match text("sec-fetch-site") {
        Some("same-origin") => {}
        Some(_) => return Err("this request came from another site; it was refused"),
        None => {
            let origin = text(header::ORIGIN.as_str())
                .ok_or("this request names no origin; send it from the dashboard's own pages")?;
            let host = text(header::HOST.as_str()).unwrap_or_default();
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
            if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
                return Err("this request came from another origin; it was refused");
            }
        }
    }
    let form = text(header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Err("dashboard actions are form posts (application/x-www-form-urlencoded)");
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

    #[test]
    fn same_origin_form_posts_pass() {
        assert!(check_same_origin(&headers(&[("sec-fetch-site", "same-origin"), FORM])).is_ok());
        assert!(check_same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
            FORM
        ]))
        .is_ok());
    }

    #[test]
    fn cross_site_or_originless_or_bodyless_posts_fail() {
        for site in ["cross-site", "same-site", "none"] {
            let h = headers(&[("sec-fetch-site", site), FORM]);
            assert!(check_same_origin(&h).is_err(), "{site}");
        }
        let foreign = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
            FORM,
        ]);
        assert!(check_same_origin(&foreign).is_err());
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:8080"), FORM])).is_err());
        // Same origin, but no form body (a body-less or JSON POST).
        assert!(check_same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_err());
        assert!(check_same_origin(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("content-type", "text/plain")
        ]))
        .is_err());
    }
}
