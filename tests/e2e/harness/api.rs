//! Control-plane steps the tests repeat: sign up (a fresh account and tenant per call),
//! log in, create a project, a secret key, mint a client token.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::{Cred, HttpResponse, Server};

/// A signed-up user with their tenant and first project.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub password: String,
    /// The session cookie pair (`tandem_session=…`) from signup.
    pub cookie: String,
    pub user_id: String,
    pub tenant_id: String,
    /// The project signup created.
    pub project_id: String,
}

/// A project with a secret key.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub key: CreatedKey,
}

/// A key as its create response shows it.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub id: String,
    /// The plaintext `sk_…`, shown only in the create response.
    pub key: String,
}

/// A fresh email: unique per process and call, so accounts never collide.
fn fresh_email() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "user-{}-{}-{nanos}@example.test",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Percent-encodes a room name for a REST path (every byte but unreserved ones).
pub fn enc(room: &str) -> String {
    room.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `name=value` pair of the session cookie a response sets.
pub fn session_cookie(response: &HttpResponse) -> String {
    let set = response
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with("tandem_session="))
        .unwrap_or_else(|| panic!("no session cookie in {:?}", response.headers));
    set.split(';').next().unwrap_or_default().trim().to_owned()
}

impl Server {
    /// Signs up a new user (new tenant, first project) and keeps the session cookie.
    pub async fn signup(&self) -> Account {
        let email = fresh_email();
        let password = "correct horse battery staple".to_owned();
        let response = self
            .call(
                "POST",
                "/v1/auth/signup",
                Cred::None,
                Some(json!({"email": email, "password": password})),
            )
            .await
            .expect(201);
        let body = response.json();
        Account {
            cookie: session_cookie(&response),
            user_id: str_at(&body, "/user/id"),
            tenant_id: str_at(&body, "/tenant/id"),
            project_id: str_at(&body, "/project/id"),
            email,
            password,
        }
    }

    /// Logs in; returns the response (the caller checks the status).
    pub async fn login(&self, email: &str, password: &str) -> HttpResponse {
        self.call(
            "POST",
            "/v1/auth/login",
            Cred::None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Logs in and returns the new session's cookie pair.
    pub async fn login_cookie(&self, email: &str, password: &str) -> String {
        session_cookie(&self.login(email, password).await.expect(200))
    }

    /// Creates a project in the account's tenant with the session; returns its id.
    pub async fn create_project(&self, account: &Account, name: &str) -> String {
        let body = self
            .call(
                "POST",
                &format!("/v1/tenants/{}/projects", account.tenant_id),
                Cred::Cookie(&account.cookie),
                Some(json!({"name": name})),
            )
            .await
            .expect(201)
            .json();
        str_at(&body, "/id")
    }

    /// Creates a secret key for a project of the account's tenant with the session.
    pub async fn create_secret_key(&self, account: &Account, project_id: &str) -> CreatedKey {
        let body = self
            .call(
                "POST",
                &format!(
                    "/v1/tenants/{}/projects/{project_id}/keys",
                    account.tenant_id
                ),
                Cred::Cookie(&account.cookie),
                Some(json!({"kind": "secret", "name": "e2e"})),
            )
            .await
            .expect(201)
            .json();
        CreatedKey {
            id: str_at(&body, "/id"),
            key: str_at(&body, "/key"),
        }
    }

    /// A new account's first project with a secret key: the usual starting point.
    pub async fn project(&self) -> (Account, Project) {
        let account = self.signup().await;
        let key = self.create_secret_key(&account, &account.project_id).await;
        let project = Project {
            id: account.project_id.clone(),
            key,
        };
        (account, project)
    }

    /// `POST /v1/tokens` with `secret_key`: the raw response.
    pub async fn mint(&self, secret_key: &str, body: Value) -> HttpResponse {
        self.call("POST", "/v1/tokens", Cred::Bearer(secret_key), Some(body))
            .await
    }

    /// Mints a client token for `user` with `permissions` (`{"room": ["room:write"]}`)
    /// and, if given, a lifetime in seconds.
    pub async fn token(
        &self,
        secret_key: &str,
        user: &str,
        permissions: Value,
        expires_in: Option<u64>,
    ) -> String {
        let mut body = json!({"userId": user, "permissions": permissions});
        if let Some(ttl) = expires_in {
            body["expiresIn"] = json!(ttl);
        }
        let created = self.mint(secret_key, body).await.expect(200).json();
        str_at(&created, "/token")
    }

    /// The WebSocket URL of `room` with `token`.
    pub fn ws_url_token(&self, room: &str, token: &str) -> String {
        format!("{}?token={token}", self.ws_url(room))
    }
}

/// The string at JSON pointer `pointer`; panics with the document if absent.
pub fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
        .to_owned()
}
