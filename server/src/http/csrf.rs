//! Cross-site request refusal for everything a browser's cookie can authenticate.
//!
//! A browser attaches the session cookie to any request it sends to us, including one a
//! page on another site makes it send (a form post, a `fetch` without CORS). SameSite=Lax
//! keeps the cookie off cross-site subrequests, but not off every top-level navigation,
//! and "same-site" still includes sibling subdomains. So every state-changing request that
//! is not authenticated by a bearer credential (which no other site can make a browser
//! attach) passes [`check`]:
//!
//! 1. Fetch Metadata: when `Sec-Fetch-Site` is present (every current browser sends it),
//!    only `same-origin` and `none` (typed into the address bar, a bookmark) pass; a
//!    `same-site` or `cross-site` request is refused with 403 `cross_site_request`.
//! 2. Without Fetch Metadata (older browsers), an `Origin` header must name this server:
//!    the origin of `--public-url`, or the request's own `Host`. `Origin: null` (sandboxed
//!    frames, privacy redirects) is refused. No `Origin` at all is a non-browser client.
//! 3. Optionally ([`CsrfPolicy::json_api`]), a form media type (`application/x-www-form-
//!    urlencoded`, `multipart/form-data`, `text/plain`: the three an HTML form can send
//!    without CORS) is refused with 415, so body-less and JSON routes cannot be reached by
//!    a form even from a browser that sends neither header. The dashboard, whose own pages
//!    post forms, uses [`CsrfPolicy::forms`]: same checks 1 and 2, forms allowed.
//!
//! Apply it to a router with [`protect`]; safe methods (GET, HEAD, OPTIONS, TRACE) are
//! never refused, so pages and reads keep working from links.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::error::ApiError;

/// Which cross-site checks a group of routes gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfPolicy {
    /// The public URL's origin (`https://collab.example.com`), lowercased, without a
    /// default port; requests whose `Origin` is this pass besides those matching `Host`.
    public_origin: Option<String>,
    /// Refuse the media types an HTML form can send.
    refuse_forms: bool,
}

impl CsrfPolicy {
    /// For JSON and body-less routes (the REST API): Fetch Metadata / `Origin`, and no
    /// form media types.
    pub fn json_api(public_url: Option<&str>) -> Self {
        Self {
            public_origin: public_url.and_then(origin_of_url),
            refuse_forms: true,
        }
    }

    /// For routes that take same-origin HTML form posts (the dashboard): Fetch Metadata /
    /// `Origin` only.
    pub fn forms(public_url: Option<&str>) -> Self {
        Self {
            public_origin: public_url.and_then(origin_of_url),
            refuse_forms: false,
        }
    }
}

/// Refuses a request that a page on another site could have made a browser send with our
/// cookie. Safe methods and requests carrying `Authorization: Bearer …` always pass.
pub fn check(policy: &CsrfPolicy, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || has_bearer(headers)
    {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if site != "same-origin" && site != "none" {
            return Err(ApiError::CrossSite(format!(
                "cross-site request refused (Sec-Fetch-Site: {}); send it from this server's own pages, or authenticate with Authorization: Bearer",
                if site.is_empty() { "?" } else { &site }
            )));
        }
    } else if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if !origin_allowed(policy, &origin, headers) {
            return Err(ApiError::CrossSite(
                "cross-site request refused (Origin is not this server); send it from this server's own pages, or authenticate with Authorization: Bearer".to_owned(),
            ));
        }
    }
    if policy.refuse_forms && is_form(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "form posts are not accepted here: send JSON with Content-Type: application/json (or no body)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Middleware running [`check`] under `policy`.
pub async fn guard(
    State(policy): State<Arc<CsrfPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match check(&policy, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// `router` with every route behind [`guard`] under `policy`.
pub fn protect<S>(router: Router<S>, policy: CsrfPolicy) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(policy),
        guard,
    ))
}

fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_TYPE).iter().any(|value| {
        let essence = value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            essence.as_str(),
            "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        )
    })
}

fn origin_allowed(policy: &CsrfPolicy, origin: &str, headers: &HeaderMap) -> bool {
    if origin == "null" {
        return false;
    }
    let Some(origin) = origin_of_url(origin) else {
        return false;
    };
    if policy.public_origin.as_deref() == Some(origin.as_str()) {
        return true;
    }
    // The request's own origin: its Host, on whichever scheme reached us (TLS may end at a
    // proxy, so the scheme is not known here; the host is what another site cannot fake).
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    let (scheme, _) = origin.split_once("://").unwrap_or(("", ""));
    authority == host || authority == strip_default_port(scheme, &host)
}

/// `scheme://host[:port]` of a URL, lowercased, without its path or a default port.
fn origin_of_url(url: &str) -> Option<String> {
    let url = url.trim().to_ascii_lowercase();
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!(
        "{scheme}://{}",
        strip_default_port(scheme, authority)
    ))
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn refused(policy: &CsrfPolicy, pairs: &[(&'static str, &'static str)]) -> Option<u16> {
        check(policy, &Method::POST, &headers(pairs))
            .err()
            .map(|e| e.into_response().status().as_u16())
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        let api = CsrfPolicy::json_api(None);
        assert_eq!(
            refused(&api, &[("sec-fetch-site", "cross-site")]),
            Some(403)
        );
        assert_eq!(refused(&api, &[("sec-fetch-site", "same-site")]), Some(403));
        assert_eq!(refused(&api, &[("sec-fetch-site", "bogus")]), Some(403));
        assert_eq!(refused(&api, &[("sec-fetch-site", "same-origin")]), None);
        assert_eq!(refused(&api, &[("sec-fetch-site", "none")]), None);
        // Fetch Metadata wins over a matching Origin.
        assert_eq!(
            refused(
                &api,
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("host", "a.example"),
                    ("origin", "http://a.example")
                ]
            ),
            Some(403)
        );
    }

    #[test]
    fn origin_must_be_this_server_without_fetch_metadata() {
        let api = CsrfPolicy::json_api(Some("https://Collab.Example.com/base"));
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            refused(&api, &[host, ("origin", "http://127.0.0.1:8080")]),
            None
        );
        assert_eq!(
            refused(&api, &[host, ("origin", "https://collab.example.com")]),
            None
        );
        assert_eq!(
            refused(&api, &[host, ("origin", "https://collab.example.com:443")]),
            None
        );
        assert_eq!(
            refused(&api, &[host, ("origin", "https://evil.example")]),
            Some(403)
        );
        assert_eq!(
            refused(&api, &[host, ("origin", "http://127.0.0.1:9090")]),
            Some(403)
        );
        assert_eq!(refused(&api, &[host, ("origin", "null")]), Some(403));
        assert_eq!(
            refused(&api, &[("origin", "http://127.0.0.1:8080")]),
            Some(403)
        );
        // No Origin, no Fetch Metadata: not a browser.
        assert_eq!(refused(&api, &[host]), None);
    }

    #[test]
    fn forms_are_refused_only_where_the_policy_says() {
        let api = CsrfPolicy::json_api(None);
        let dashboard = CsrfPolicy::forms(None);
        for form in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "Text/Plain;charset=UTF-8",
        ] {
            let mut map = headers(&[("sec-fetch-site", "same-origin")]);
            map.insert(header::CONTENT_TYPE, HeaderValue::from_str(form).unwrap());
            let api_status = check(&api, &Method::POST, &map)
                .err()
                .map(|e| e.into_response().status().as_u16());
            assert_eq!(api_status, Some(415), "{form}");
            assert!(check(&dashboard, &Method::POST, &map).is_ok(), "{form}");
        }
        // The dashboard still refuses a cross-site form.
        assert_eq!(
            refused(
                &dashboard,
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("content-type", "application/x-www-form-urlencoded")
                ]
            ),
            Some(403)
        );
        assert_eq!(refused(&api, &[("content-type", "application/json")]), None);
    }

    #[test]
    fn safe_methods_and_bearer_requests_pass() {
        let api = CsrfPolicy::json_api(None);
        let cross = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("content-type", "text/plain"),
        ]);
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(check(&api, &method, &cross).is_ok(), "{method}");
        }
        let mut bearer = cross.clone();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk_x"),
        );
        assert!(check(&api, &Method::POST, &bearer).is_ok());
        // A non-bearer Authorization does not exempt the request.
        let mut basic = cross;
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert!(check(&api, &Method::DELETE, &basic).is_err());
    }
}
