//! Accounts: signup (a user, their tenant and a first project), login with throttling,
//! server-side sessions, logout, and the bootstrap of a fresh embedded installation.

use sha2::{Digest, Sha256};

use super::error::{ControlError, ControlResult};
use super::password::{self, normalize_email, PasswordError};
use super::plane::{AuditEvent, ControlPlane, RequestMeta, UserAuth, Via};
use super::{fill_random, keys::CreatedKey};
use crate::ids::{ProjectId, TenantId, UserId};
use crate::store::control::{KeyKindRow, NewAccount, ProjectRow, TenantRow, UserRow};

/// Longest tenant or project name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What signup asks for.
#[derive(Debug, Clone)]
pub struct Signup {
    /// The email (normalised before use).
    pub email: String,
    /// The password (policy-checked, then hashed with argon2id).
    pub password: String,
    /// The tenant's name; defaults to the email's domain-less part.
    pub tenant_name: Option<String>,
    /// The first project's name; defaults to `development`.
    pub project_name: Option<String>,
}

/// What signup created.
#[derive(Debug, Clone)]
pub struct SignedUp {
    /// The user.
    pub user: UserRow,
    /// Their tenant.
    pub tenant: TenantRow,
    /// The first project.
    pub project: ProjectRow,
    /// Whether the account was created: `false` when the email was taken (the rows
    /// are then a decoy that exists nowhere; see [`ControlPlane::signup`]).
    pub created: bool,
}

/// A new login session. `cookie_value` goes into the cookie and nowhere else.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The random 256-bit session id, base64url.
    pub cookie_value: String,
    /// When it expires (unix ms).
    pub expires_at: i64,
}

/// What the first start of a fresh installation created.
#[derive(Debug)]
pub struct Bootstrap {
    /// The admin's email.
    pub email: String,
    /// The admin's generated password.
    pub password: String,
    /// The tenant and project.
    pub account: SignedUp,
    /// A secret key for the project.
    pub secret_key: CreatedKey,
}

/// Checks a tenant or project name: 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters, trimmed.
pub fn check_name(what: &str, name: &str) -> ControlResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ControlError::Invalid(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ControlError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(name.to_owned())
}

pub(crate) fn session_hash(cookie_value: &str) -> [u8; 32] {
    Sha256::digest(cookie_value.as_bytes()).into()
}

fn password_error(error: PasswordError) -> ControlError {
    match error {
        PasswordError::TooShort { .. }
        | PasswordError::TooLong { .. }
        | PasswordError::TooWeak(_) => ControlError::Invalid(error.to_string()),
        other => ControlError::Internal(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ControlResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ControlError::Internal(format!("password hashing task failed: {e}")))
}

impl ControlPlane {
    /// Signs a user up: creates the user, a tenant they own, and a first project.
    ///
    /// A taken email gets the same answer after the same work (`created: false`, with
    /// ids that exist nowhere), so signup does not reveal which emails are registered;
    /// the account's owner gets a notice in the email outbox and their security log
    /// instead. The caller must not start a session for an uncreated account.
    pub async fn signup(&self, signup: Signup, meta: &RequestMeta) -> ControlResult<SignedUp> {
        match self.create_account(signup, meta).await? {
            Ok(created) => Ok(created),
            Err(decoy) => {
                // The notice is written off the request path, so the answer does not take
                // longer for a taken email.
                let plane = self.clone();
                let (email, meta) = (decoy.user.email.clone(), meta.clone());
                let notice = async move { plane.notify_signup_attempt(&email, &meta).await };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn(notice)),
                    Err(_) => tracing::warn!("no runtime to send the signup notice"),
                }
                Ok(decoy)
            }
        }
    }

    /// Tells the owner of `email` that someone tried to sign up with it.
    async fn notify_signup_attempt(&self, email: &str, meta: &RequestMeta) {
        let existing = match self.store().user_by_email(email).await {
            Ok(Some(user)) => user,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "signup notice: looking up the account failed");
                return;
            }
        };
        self.record_security_event(
            &existing.id,
            "signup.attempted",
            meta,
            serde_json::json!({}),
        )
        .await;
        self.send_email(
            &existing.email,
            "Someone tried to sign up with your email",
            "Someone (maybe you) tried to create a Tandem account with this email, which already has one. Nothing was changed.\n\nIf it was you, sign in instead. If not, you can ignore this email; your security log lists the attempt.",
        )
        .await;
    }

    /// Creates the account; `Err(decoy)` (uncreated rows) if the email is taken.
    async fn create_account(
        &self,
        signup: Signup,
        meta: &RequestMeta,
    ) -> ControlResult<Result<SignedUp, SignedUp>> {
        let email =
            normalize_email(&signup.email).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let tenant_name = match signup.tenant_name {
            Some(name) => check_name("tenant name", &name)?,
            None => email
                .as_str()
                .split('@')
                .next()
                .unwrap_or("my team")
                .to_owned(),
        };
        let local = email.as_str().split('@').next().unwrap_or_default();
        password::check_password_policy(
            &signup.password,
            &[email.as_str(), local, &tenant_name, "tandem"],
        )
        .map_err(password_error)?;
        let project_name = check_name(
            "project name",
            signup.project_name.as_deref().unwrap_or("development"),
        )?;
        // Hashed whether or not the email is taken: the same work either way.
        let plain = signup.password;
        let hash = blocking(move || password::hash_password(&plain))
            .await?
            .map_err(password_error)?;
        let now = self.now_ms();
        let user = UserRow {
            id: UserId::generate()?,
            email: email.as_str().to_owned(),
            password_hash: hash,
            created_at: now,
        };
        let tenant = TenantRow {
            id: TenantId::generate()?,
            name: tenant_name,
            plan: self.config().default_plan.clone(),
            created_at: now,
        };
        let project = ProjectRow {
            id: ProjectId::generate()?,
            tenant_id: tenant.id.clone(),
            name: project_name,
            public_access: false,
            public_rooms: crate::store::control::DEFAULT_PUBLIC_ROOMS.to_owned(),
            public_scopes: crate::store::control::DEFAULT_PUBLIC_SCOPES.to_owned(),
            created_at: now,
        };
        let account = NewAccount {
            user,
            tenant,
            project,
        };
        let created = self.store().create_account(&account).await;
        let signed_up = |created| SignedUp {
            user: account.user.clone(),
            tenant: account.tenant.clone(),
            project: account.project.clone(),
            created,
        };
        match created.map_err(ControlError::from) {
            Ok(()) => {}
            Err(ControlError::Conflict(_)) => return Ok(Err(signed_up(false))),
            Err(other) => return Err(other),
        }
        self.audit(AuditEvent {
            tenant_id: &account.tenant.id,
            project_id: None,
            actor: account.user.id.as_str(),
            action: "account.created",
            target: Some(account.user.id.as_str()),
            meta,
            details: serde_json::json!({ "email": account.user.email }),
        })
        .await;
        Ok(Ok(signed_up(true)))
    }

    /// Checks an email and password. Refused with [`ControlError::TooManyAttempts`]
    /// after too many failures for the (account, client IP) pair or from the IP, before
    /// anything is hashed. The attempt is counted before the password is checked (and
    /// given back if it was right), so parallel guesses cannot outrun the limit. A
    /// stranger's failures from elsewhere never lock the owner out: the account is
    /// limited per address, not as a whole. A wrong email and a wrong password get the
    /// same answer after the same work (an unknown email is verified against a dummy
    /// hash).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> ControlResult<UserRow> {
        const WRONG: &str = "wrong email or password";
        let config = self.config();
        let window = config.login_window;
        let ip = meta.ip.as_deref().unwrap_or("-");
        // An unparseable email still counts against the IP.
        let email = normalize_email(email).ok();
        let pair_key = email.as_ref().map(|e| format!("pair:{} {ip}", e.as_str()));
        let ip_key = meta.ip.as_ref().map(|ip| format!("ip:{ip}"));
        let throttle = &self.inner.throttle;
        let mut keys = Vec::new();
        if let Some(key) = &pair_key {
            keys.push((key.as_str(), config.login_failures_per_account));
        }
        if let Some(key) = &ip_key {
            keys.push((key.as_str(), config.login_failures_per_ip));
        }
        throttle
            .reserve(&keys, window)
            .map_err(|refusal| ControlError::TooManyAttempts {
                retry_after: refusal.retry_after,
                limit: refusal.limit,
                window,
            })?;
        let user = match &email {
            Some(email) => self.store().user_by_email(email.as_str()).await,
            None => Ok(None),
        };
        let user = match user {
            Ok(user) => user,
            Err(error) => {
                // Not an attempt at a password: give the reservations back.
                for key in [&pair_key, &ip_key].into_iter().flatten() {
                    throttle.release(key);
                }
                return Err(error.into());
            }
        };
        let plain = password.to_owned();
        let verified = match &user {
            Some(user) => {
                let phc = user.password_hash.clone();
                blocking(move || password::verify_password(&plain, &phc))
                    .await?
                    .map_err(|e| ControlError::Internal(e.to_string()))?
            }
            None => {
                blocking(move || password::verify_dummy_password(&plain)).await?;
                false
            }
        };
        let user = match user {
            Some(user) if verified => user,
            other => {
                // The failure stays counted (it was reserved above).
                if let Some(user) = other {
                    self.log_login(&user.id, "login.failed", meta);
                }
                return Err(ControlError::Unauthenticated(WRONG));
            }
        };
        if let Some(key) = &pair_key {
            throttle.reset(key);
        }
        if let Some(key) = &ip_key {
            throttle.release(key);
        }
        if password::needs_rehash(&user.password_hash) {
            let plain = password.to_owned();
            if let Ok(Ok(hash)) = blocking(move || password::hash_password(&plain)).await {
                if let Err(error) = self.store().set_password_hash(&user.id, &hash).await {
                    tracing::warn!(%error, "upgrading a password hash failed");
                }
            }
        }
        self.log_login(&user.id, "login.succeeded", meta);
        Ok(user)
    }

    /// Records a login event in the user's own security log, off the request's path so
    /// that the answer takes the same time whether or not the email has an account.
    fn log_login(&self, user: &UserId, action: &'static str, meta: &RequestMeta) {
        let plane = self.clone();
        let (user, meta) = (user.clone(), meta.clone());
        let record = async move {
            plane
                .record_security_event(&user, action, &meta, serde_json::json!({}))
                .await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(record)),
            Err(_) => tracing::warn!(action, "no runtime to write the security log"),
        }
    }

    /// Starts a session for `user`, remembering the browser and address it came from
    /// (shown on the sessions page).
    pub async fn create_session(
        &self,
        user: &UserRow,
        meta: &RequestMeta,
    ) -> ControlResult<NewSession> {
        let mut id = [0u8; 32];
        fill_random(&mut id)?;
        let cookie_value = base64_url(&id);
        let now = self.now_ms();
        let ttl = i64::try_from(self.config().session_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl);
        self.store()
            .create_session(&crate::store::control::SessionRow {
                id_hash: session_hash(&cookie_value).to_vec(),
                user_id: user.id.clone(),
                created_at: now,
                expires_at,
                user_agent: meta.user_agent.clone(),
                ip: meta.ip.clone(),
                last_seen_at: Some(now),
            })
            .await?;
        Ok(NewSession {
            cookie_value,
            expires_at,
        })
    }

    /// A session cookie of the usual form that no session has (signup's answer for a
    /// taken email).
    pub fn decoy_session(&self) -> ControlResult<NewSession> {
        let mut id = [0u8; 32];
        fill_random(&mut id)?;
        let ttl = i64::try_from(self.config().session_ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(NewSession {
            cookie_value: base64_url(&id),
            expires_at: self.now_ms().saturating_add(ttl),
        })
    }

    /// The user a session cookie belongs to, if it is live.
    pub async fn session_user(&self, cookie_value: &str) -> ControlResult<UserAuth> {
        // Session ids are 43 base64url characters; refuse anything else without a lookup.
        if cookie_value.len() != 43 {
            return Err(ControlError::Unauthenticated("not signed in"));
        }
        let hash = session_hash(cookie_value);
        let now = self.now_ms();
        let (user, last_seen) =
            self.store()
                .session_user(&hash, now)
                .await?
                .ok_or(ControlError::Unauthenticated(
                    "not signed in or session expired",
                ))?;
        // "Last seen" to the minute: one write a minute per session, not one a request.
        if last_seen.is_none_or(|at| now - at >= crate::control::sessions::TOUCH_EVERY_MS) {
            if let Err(error) = self.store().touch_session(&hash, now).await {
                tracing::warn!(%error, "recording a session's last use failed");
            }
        }
        Ok(UserAuth {
            user,
            via: Via::Session,
        })
    }

    /// Ends a session server-side: the cookie value stops working everywhere.
    pub async fn logout(&self, cookie_value: &str) -> ControlResult<()> {
        self.store()
            .delete_session(&session_hash(cookie_value))
            .await?;
        Ok(())
    }

    /// On a fresh installation (no users), creates an admin, a `local` tenant, a
    /// `development` project and a secret key, and returns them to print once.
    pub async fn bootstrap_if_empty(&self) -> ControlResult<Option<Bootstrap>> {
        if self.store().count_users().await? > 0 {
            return Ok(None);
        }
        let mut raw = [0u8; 18];
        fill_random(&mut raw)?;
        let password = base64_url(&raw);
        let email = "admin@tandem.local".to_owned();
        let signed_up = self
            .create_account(
                Signup {
                    email: email.clone(),
                    password: password.clone(),
                    tenant_name: Some("local".to_owned()),
                    project_name: Some("development".to_owned()),
                },
                &RequestMeta::default(),
            )
            .await?;
        let account = match signed_up {
            Ok(account) => account,
            // Several nodes started together on an empty database: another one created
            // the account (in one transaction) between our count and our signup.
            Err(_) => return Ok(None),
        };
        let secret_key = self
            .create_project_key(
                &account.tenant.id,
                &account.project.id,
                KeyKindRow::Secret,
                "bootstrap",
                account.user.id.as_str(),
                &RequestMeta::default(),
            )
            .await?;
        Ok(Some(Bootstrap {
            email,
            password,
            account,
            secret_key,
        }))
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::clock::ManualClock;
    use crate::control::ControlConfig;
    use crate::store::sqlite::SqliteStore;

    async fn plane(dir: &tempfile::TempDir) -> (ControlPlane, Arc<ManualClock>) {
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let config = ControlConfig {
            login_failures_per_account: 3,
            ..ControlConfig::default()
        };
        let plane = ControlPlane::new(store, clock.clone(), config)
            .await
            .unwrap();
        (plane, clock)
    }

    fn signup(email: &str) -> Signup {
        Signup {
            email: email.to_owned(),
            password: "correct horse battery".to_owned(),
            tenant_name: None,
            project_name: None,
        }
    }

    #[tokio::test]
    async fn signup_login_throttle_and_logout() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, clock) = plane(&dir).await;
        let meta = RequestMeta {
            ip: Some("192.0.2.1".to_owned()),
            user_agent: None,
        };
        let created = plane
            .signup(signup("  Ada@Example.COM "), &meta)
            .await
            .unwrap();
        assert_eq!(created.user.email, "ada@example.com");
        assert!(created
            .user
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(created.project.name, "development");
        // A taken email: the same kind of answer, nothing created, a notice for Ada.
        let again = plane
            .signup(signup("Ada@example.com"), &meta)
            .await
            .unwrap();
        assert!(created.created && !again.created);
        assert_ne!(again.user.id, created.user.id);
        assert_eq!(plane.store().count_users().await.unwrap(), 1);
        // The notice is written off the request path: wait for it, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let notices = loop {
            let notices = plane.outbox_for("ada@example.com").await.unwrap();
            if !notices.is_empty() || std::time::Instant::now() > deadline {
                break notices;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].subject.contains("sign up with your email"));
        let mut short = signup("bob@example.com");
        short.password = "short".to_owned();
        assert!(matches!(
            plane.signup(short, &meta).await,
            Err(ControlError::Invalid(_))
        ));

        let user = plane
            .login("ada@EXAMPLE.com", "correct horse battery", &meta)
            .await
            .unwrap();
        assert_eq!(user.id, created.user.id);
        for _ in 0..3 {
            assert!(matches!(
                plane
                    .login("Ada@example.com", "wrong password!", &meta)
                    .await,
                Err(ControlError::Unauthenticated(_))
            ));
        }
        // Throttled now, even with the right password, until the window passes.
        assert!(matches!(
            plane
                .login("Ada@example.com", "correct horse battery", &meta)
                .await,
            Err(ControlError::TooManyAttempts { .. })
        ));
        clock.advance(plane.config().login_window);
        plane
            .login("Ada@example.com", "correct horse battery", &meta)
            .await
            .unwrap();

        let session = plane.create_session(&user, &meta).await.unwrap();
        assert_eq!(session.cookie_value.len(), 43);
        let copy = session.cookie_value.clone();
        assert_eq!(plane.session_user(&copy).await.unwrap().user.id, user.id);
        plane.logout(&session.cookie_value).await.unwrap();
        assert!(matches!(
            plane.session_user(&copy).await,
            Err(ControlError::Unauthenticated(_))
        ));
        // Sessions also end on their own.
        let session = plane.create_session(&user, &meta).await.unwrap();
        clock.advance(plane.config().session_ttl);
        assert!(plane.session_user(&session.cookie_value).await.is_err());
    }

    #[tokio::test]
    async fn parallel_guesses_cannot_outrun_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, _) = plane(&dir).await;
        let meta = RequestMeta {
            ip: Some("192.0.2.1".to_owned()),
            user_agent: None,
        };
        plane
            .signup(signup("ada@example.com"), &meta)
            .await
            .unwrap();
        // 20 wrong passwords at once: all are checked against the count before any
        // password hash finishes.
        let attempts = (0..20).map(|i| {
            let plane = plane.clone();
            let meta = meta.clone();
            async move {
                plane
                    .login("ada@example.com", &format!("wrong password {i}"), &meta)
                    .await
            }
        });
        let results = futures_util::future::join_all(attempts).await;
        let wrong = results
            .iter()
            .filter(|r| matches!(r, Err(ControlError::Unauthenticated(_))))
            .count();
        let throttled = results
            .iter()
            .filter(|r| matches!(r, Err(ControlError::TooManyAttempts { .. })))
            .count();
        assert_eq!(
            (wrong, throttled),
            (3, 17),
            "limit 3 per account and address"
        );
    }

    #[tokio::test]
    async fn a_stranger_cannot_lock_the_owner_out_but_the_address_is_limited() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, _) = plane(&dir).await;
        let ada = RequestMeta {
            ip: Some("192.0.2.1".to_owned()),
            user_agent: None,
        };
        let stranger = RequestMeta {
            ip: Some("198.51.100.9".to_owned()),
            user_agent: None,
        };
        plane.signup(signup("ada@example.com"), &ada).await.unwrap();
        for _ in 0..3 {
            assert!(matches!(
                plane
                    .login("ada@example.com", "guess guess guess", &stranger)
                    .await,
                Err(ControlError::Unauthenticated(_))
            ));
        }
        let Err(ControlError::TooManyAttempts { limit, window, .. }) = plane
            .login("ada@example.com", "correct horse battery", &stranger)
            .await
        else {
            panic!("the stranger's address is locked for this account")
        };
        assert_eq!((limit, window), (3, plane.config().login_window));
        // Ada, from her own address, is not affected.
        plane
            .login("ada@example.com", "correct horse battery", &ada)
            .await
            .unwrap();
        // The per-address limit still counts failures across accounts (30 by default).
        for i in 0..30 {
            let email = format!("nobody{i}@example.com");
            assert!(matches!(
                plane.login(&email, "guess guess guess", &stranger).await,
                Err(ControlError::Unauthenticated(_) | ControlError::TooManyAttempts { .. })
            ));
        }
        assert!(matches!(
            plane
                .login("new@example.com", "guess guess guess", &stranger)
                .await,
            Err(ControlError::TooManyAttempts { limit: 30, .. })
        ));
    }

    #[tokio::test]
    async fn weak_passwords_are_refused_at_signup() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, _) = plane(&dir).await;
        for weak in ["aaaaaaaaaa", "password1234", "ada@example.com!"] {
            let mut form = signup("ada@example.com");
            form.password = weak.to_owned();
            let refused = plane.signup(form, &RequestMeta::default()).await;
            assert!(
                matches!(&refused, Err(ControlError::Invalid(d)) if d.contains("too easy to guess")),
                "{weak}: {refused:?}"
            );
        }
    }

    #[tokio::test]
    async fn bootstrap_runs_once_on_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, _) = plane(&dir).await;
        let boot = plane.bootstrap_if_empty().await.unwrap().unwrap();
        assert!(boot.secret_key.plaintext.expose().starts_with("sk_"));
        plane
            .login(&boot.email, &boot.password, &RequestMeta::default())
            .await
            .unwrap();
        assert!(plane.bootstrap_if_empty().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bootstraps_racing_on_one_store_create_one_account_and_both_succeed() {
        // Nodes started together on an empty shared database: both see no users.
        let dir = tempfile::tempdir().unwrap();
        let (plane, _) = plane(&dir).await;
        let (a, b) = tokio::join!(plane.bootstrap_if_empty(), plane.bootstrap_if_empty());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            usize::from(a.is_some()) + usize::from(b.is_some()),
            1,
            "exactly one bootstrap creates the account"
        );
        assert_eq!(plane.store().count_users().await.unwrap(), 1);
    }
}
