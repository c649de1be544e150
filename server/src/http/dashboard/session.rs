//! Who is signed in to the dashboard (the server-side session in a cookie, `__Host-`
//! prefixed when the public URL is https), and the page chrome every signed-in page
//! shares: the user, their tenants, the current tenant's projects and the navigation.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};

use super::error::{DashError, DashResult};
use crate::control::accounts::NewSession;
use crate::control::plane::{TenantAccess, UserAuth};
use crate::control::ControlError;
use crate::http::api::parse_id;
use crate::http::extract::SESSION_COOKIE;
use crate::http::AppState;
use crate::ids::{ProjectId, TenantId};
use crate::store::control::{ProjectRow, Role, TenantRow};

/// The cookie name over https: `__Host-` makes the browser insist on Secure, Path=/ and
/// no Domain, so no sibling subdomain can plant or overwrite it.
pub(super) const SECURE_SESSION_COOKIE: &str = "__Host-tandem_session";

fn cookie_name(state: &AppState) -> &'static str {
    if state.control.config().secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The session cookie's value (the `__Host-` one first).
pub(super) fn session_value(parts: &Parts) -> Option<String> {
    let pairs: Vec<(String, String)> = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    [SECURE_SESSION_COOKIE, SESSION_COOKIE]
        .iter()
        .find_map(|name| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
}

/// `Set-Cookie` for a new session: HttpOnly, SameSite=Lax, Secure over https.
pub(super) fn set_cookie(state: &AppState, session: &NewSession) -> HeaderValue {
    let max_age = (session.expires_at - state.control.now_ms()).max(0) / 1000;
    cookie(state, &session.cookie_value, max_age)
}

/// `Set-Cookie` that removes the session cookie.
pub(super) fn clear_cookie(state: &AppState) -> HeaderValue {
    cookie(state, "", 0)
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.control.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let name = cookie_name(state);
    // The value is base64url and the rest ASCII: always a valid header value.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A user signed in to the dashboard by session (personal access tokens are for the
/// API). Without one, the request is sent to the sign-in page.
#[derive(Debug, Clone)]
pub(super) struct DashUser(pub UserAuth);

impl FromRequestParts<AppState> for DashUser {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> DashResult<Self> {
        let cookie = session_value(parts).ok_or(DashError::SignIn)?;
        match state.control.session_user(&cookie).await {
            Ok(auth) => Ok(Self(auth)),
            Err(ControlError::Unauthenticated(_)) => Err(DashError::SignIn),
            Err(other) => Err(other.into()),
        }
    }
}

/// A link in the sidebar.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub id: String,
    pub name: String,
    pub current: bool,
}

/// A breadcrumb.
#[derive(Debug, Clone)]
pub(super) struct Crumb {
    pub label: String,
    pub href: Option<String>,
}

/// What the layout shows around every page.
#[derive(Debug, Clone)]
pub(super) struct Chrome {
    pub email: String,
    pub initial: String,
    pub tenants: Vec<Link>,
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: &'static str,
    pub plan: String,
    pub projects: Vec<Link>,
    pub nav: &'static str,
    pub crumbs: Vec<Crumb>,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// A signed-in page in one tenant: the access check done, the chrome built.
#[derive(Debug)]
pub(super) struct Ctx {
    pub auth: UserAuth,
    pub access: TenantAccess,
    pub tenant: TenantRow,
    pub projects: Vec<ProjectRow>,
    /// The project the page is about, if any.
    pub project: Option<ProjectRow>,
    pub chrome: Chrome,
}

impl Ctx {
    /// Checks that the user reaches `tenant` (as a member at least) and `project` in it
    /// (if any: another tenant's is a 404), and builds the chrome.
    pub(super) async fn load(
        state: &AppState,
        auth: UserAuth,
        tenant: &str,
        project: Option<&str>,
        nav: &'static str,
    ) -> DashResult<Self> {
        let tenant_id: TenantId = parse_id(tenant)?;
        let project_id: Option<ProjectId> = project.map(parse_id).transpose()?;
        let access = state
            .control
            .tenant_access(&auth, &tenant_id, Role::Member)
            .await?;
        let tenants = state.control.tenants_of(&auth).await?;
        let row = state.control.tenant(&access).await?;
        let projects = state.control.list_projects(&access).await?;
        let base = format!("/dashboard/t/{}", row.id);
        let mut crumbs = vec![Crumb {
            label: row.name.clone(),
            href: Some(base.clone()),
        }];
        let project = match &project_id {
            Some(id) => Some(
                projects
                    .iter()
                    .find(|p| &p.id == id)
                    .cloned()
                    .ok_or(ControlError::NotFound)?,
            ),
            None => None,
        };
        if let Some(p) = &project {
            crumbs.push(Crumb {
                label: p.name.clone(),
                href: Some(format!("{base}/p/{}", p.id)),
            });
        }
        let chrome = Chrome {
            email: auth.user.email.clone(),
            initial: auth
                .user
                .email
                .chars()
                .next()
                .map(|c| c.to_uppercase().to_string())
                .unwrap_or_default(),
            tenants: tenants
                .iter()
                .map(|(t, _)| Link {
                    id: t.id.to_string(),
                    name: t.name.clone(),
                    current: t.id == row.id,
                })
                .collect(),
            tenant_id: row.id.to_string(),
            tenant_name: row.name.clone(),
            role: access.role.as_str(),
            plan: row.plan.clone(),
            projects: projects
                .iter()
                .map(|p| Link {
                    id: p.id.to_string(),
                    name: p.name.clone(),
                    current: Some(&p.id) == project_id.as_ref(),
                })
                .collect(),
            nav,
            crumbs,
            error: None,
            notice: None,
        };
        Ok(Self {
            auth,
            access,
            tenant: row,
            projects,
            project,
            chrome,
        })
    }

    /// The page's project (loaded with one).
    pub(super) fn project(&self) -> DashResult<ProjectRow> {
        self.project
            .clone()
            .ok_or_else(|| ControlError::NotFound.into())
    }

    /// Whether the user may manage (admin or owner).
    pub(super) fn can_admin(&self) -> bool {
        self.access.role >= Role::Admin
    }

    /// Adds a breadcrumb without a link (the page itself).
    pub(super) fn crumb(&mut self, label: impl Into<String>) {
        self.chrome.crumbs.push(Crumb {
            label: label.into(),
            href: None,
        });
    }

    /// The tenant's dashboard path.
    pub(super) fn base(&self) -> String {
        format!("/dashboard/t/{}", self.tenant.id)
    }
}

/// This server's URL as the browser reached it (for the snippets): the `Host` header,
/// https when the public URL is.
pub(super) fn base_url(
    state: &AppState,
    parts_headers: &axum::http::HeaderMap,
) -> (String, String) {
    let host = parts_headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1:8080");
    if state.control.config().secure_cookies {
        (format!("https://{host}"), format!("wss://{host}"))
    } else {
        (format!("http://{host}"), format!("ws://{host}"))
    }
}
