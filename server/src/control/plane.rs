//! [`ControlPlane`]: the service the HTTP layer calls for accounts, tenants, projects,
//! keys and tokens. It holds the store, the clock, the token key ring and the login
//! throttle; the operations themselves live in the sibling modules by concern.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::clock::Clock;
use super::error::ControlResult;
use super::signing::KeyRing;
use super::throttle::LoginThrottle;
use crate::ids::{KeyId, ProjectId, TenantId};
use crate::store::control::{AuditRow, ControlStore, Role, UserRow};

/// Control-plane settings (from `tandem serve` options).
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// The longest client token `POST /v1/tokens` issues.
    pub token_max_ttl: Duration,
    /// The lifetime of a client token when the request names none.
    pub token_default_ttl: Duration,
    /// The longest grace period a rolled key may keep working.
    pub max_roll_grace: Duration,
    /// Session cookies get `Secure` (served over TLS, `--public-url https://…`).
    pub secure_cookies: bool,
    /// The server's public URL (`--public-url`), if configured: cross-site checks accept
    /// its origin besides the request's own `Host`.
    pub public_url: Option<String>,
    /// The plan new tenants start on.
    pub default_plan: String,
    /// Failed logins per account allowed in `login_window`.
    pub login_failures_per_account: u32,
    /// Failed logins per client IP allowed in `login_window`.
    pub login_failures_per_ip: u32,
    /// The window the failure limits count over.
    pub login_window: Duration,
    /// Every plan's limits.
    pub plans: super::plans::Plans,
    /// Seals the token-signing seeds at rest (`--kek-file` / `TANDEM_KEK`); `None`: they
    /// are stored in clear (a loud warning at start).
    pub kek: Option<Arc<super::kek::Kek>>,
    /// The KEK being rotated out (`--old-kek-file`): seeds sealed under it are re-sealed
    /// under `kek` at start.
    pub old_kek: Option<Arc<super::kek::Kek>>,
    /// Webhooks and the change feed.
    pub webhooks: super::webhooks::WebhookConfig,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            token_max_ttl: Duration::from_secs(24 * 3600),
            token_default_ttl: Duration::from_secs(3600),
            max_roll_grace: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            public_url: None,
            default_plan: "free".to_owned(),
            login_failures_per_account: 5,
            login_failures_per_ip: 30,
            login_window: Duration::from_secs(15 * 60),
            plans: super::plans::Plans::default(),
            kek: None,
            old_kek: None,
            webhooks: Default::default(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ControlStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: ControlConfig,
    pub(crate) keys: KeyRing,
    pub(crate) throttle: LoginThrottle,
    pub(crate) key_watch: super::keywatch::KeyWatch,
    /// The project event hub (webhooks and the change feed).
    pub(crate) events: super::events::EventHub,
    /// The webhook HTTP client (with the SSRF guard).
    pub(crate) delivery: super::webhooks::deliver::Client,
}

/// The control plane. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

/// A request authenticated by a project's API key (`sk_…`, or `pk_…` where allowed).
#[derive(Debug, Clone)]
pub struct ProjectAuth {
    /// The tenant owning the project.
    pub tenant_id: TenantId,
    /// The project every lookup is scoped to.
    pub project_id: ProjectId,
    /// The key used (for audit, and for the tokens it mints).
    pub key_id: KeyId,
    /// Whether it was a publishable key (only `POST /v1/tokens` accepts those).
    pub publishable: bool,
    /// With a publishable key: what the project opens to the public (its tokens stay
    /// inside it).
    pub public: Option<super::public::PublicAccess>,
    /// The limits of the tenant's plan.
    pub limits: crate::rooms::limits::Limits,
}

/// How a management request was authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A login session (the dashboard).
    Session,
    /// A personal access token bound to one tenant.
    Pat {
        /// The token's id.
        key_id: KeyId,
        /// The only tenant it reaches.
        tenant_id: TenantId,
    },
}

/// A signed-in user, by session or personal access token.
#[derive(Debug, Clone)]
pub struct UserAuth {
    /// The user.
    pub user: UserRow,
    /// The credential.
    pub via: Via,
}

impl UserAuth {
    /// Refuses (403) what only a login session may do, such as creating personal access
    /// tokens: a token must not be able to mint tokens that outlive it.
    pub fn require_session(&self, why: &str) -> ControlResult<()> {
        match self.via {
            Via::Session => Ok(()),
            Via::Pat { .. } => Err(super::ControlError::Forbidden(why.to_owned())),
        }
    }
}

/// A user's access to one tenant, checked by [`ControlPlane::tenant_access`].
#[derive(Debug, Clone)]
pub struct TenantAccess {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user: UserRow,
    /// Their role there.
    pub role: Role,
    /// For the audit log: the user id, or the PAT's key id.
    pub actor: String,
}

/// Context of a request for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's `User-Agent` (cut to 256 characters), for the sessions page.
    pub user_agent: Option<String>,
}

impl ControlPlane {
    /// Starts the control plane on `store`: loads (or creates) the token signing key.
    pub async fn new(
        store: Arc<dyn ControlStore>,
        clock: Arc<dyn Clock>,
        config: ControlConfig,
    ) -> ControlResult<Self> {
        let keys = KeyRing::load(
            store.clone(),
            clock.clone(),
            config.token_max_ttl,
            super::signing::Keks {
                current: config.kek.clone(),
                old: config.old_kek.clone(),
            },
        )
        .await?;
        let throttle = LoginThrottle::new(clock.clone());
        let events = super::events::EventHub::new(
            store.clone(),
            super::events::HubConfig {
                debounce: config.webhooks.debounce,
                public_url: config.public_url.clone(),
                document_json_bytes: config.webhooks.document_json_bytes,
            },
        );
        let delivery =
            super::webhooks::deliver::Client::new(config.webhooks.policy, config.webhooks.timeout)
                .map_err(super::ControlError::Internal)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                keys,
                throttle,
                key_watch: Default::default(),
                events,
                delivery,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ControlConfig {
        &self.inner.config
    }

    /// The store (for the authorizer and bootstrap).
    pub(crate) fn store(&self) -> &Arc<dyn ControlStore> {
        &self.inner.store
    }

    /// The project event hub: the engine's events sink, and the change feed.
    pub fn events(&self) -> &super::events::EventHub {
        &self.inner.events
    }

    /// The webhook HTTP client.
    pub(crate) fn delivery_client(&self) -> &super::webhooks::deliver::Client {
        &self.inner.delivery
    }

    /// The token key ring.
    pub fn key_ring(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// Now, in unix milliseconds (the store's unit), by the control plane's clock.
    pub fn now_ms(&self) -> i64 {
        to_ms(self.now())
    }

    /// The limits of the tenant's plan.
    pub async fn tenant_limits(
        &self,
        tenant_id: &TenantId,
    ) -> ControlResult<crate::rooms::limits::Limits> {
        let plan = self
            .inner
            .store
            .tenant(tenant_id)
            .await?
            .map(|t| t.plan)
            .unwrap_or_else(|| super::plans::DEFAULT_PLAN.to_owned());
        Ok(self.config().plans.limits(&plan))
    }

    /// Records a security-relevant event. A failure is logged, not returned: the action
    /// it describes already happened.
    pub(crate) async fn audit(&self, event: AuditEvent<'_>) {
        let row = AuditRow {
            id: 0,
            tenant_id: event.tenant_id.clone(),
            project_id: event.project_id.cloned(),
            actor: event.actor.to_owned(),
            action: event.action.to_owned(),
            target: event.target.map(str::to_owned),
            ip: event.meta.ip.clone(),
            details: event.details.to_string(),
            at: self.now_ms(),
        };
        if let Err(error) = self.inner.store.append_audit(&row).await {
            tracing::error!(%error, action = event.action, "writing the audit log failed");
        }
        self.publish_audited(&row).await;
    }

    /// Key and member changes are project events too (webhooks, the change feed): a
    /// project key's for its project, a member's for every project of the tenant.
    async fn publish_audited(&self, row: &AuditRow) {
        let event_type = row.action.as_str();
        let key_event = matches!(event_type, "key.created" | "key.rolled" | "key.revoked");
        if !(key_event || event_type.starts_with("member.")) {
            return;
        }
        let details: serde_json::Value =
            serde_json::from_str(&row.details).unwrap_or(serde_json::Value::Null);
        let data = serde_json::json!({
            "target": row.target,
            "actor": row.actor,
            "details": details,
        });
        let projects = match (&row.project_id, key_event) {
            (Some(project), _) => vec![project.clone()],
            (None, true) => return, // a personal access token: no project
            (None, false) => match self.inner.store.list_projects(&row.tenant_id).await {
                Ok(projects) => projects.into_iter().map(|p| p.id).collect(),
                Err(error) => {
                    tracing::warn!(%error, "listing projects for a member event failed");
                    return;
                }
            },
        };
        for project in projects {
            self.inner
                .events
                .publish(&project, event_type, None, data.clone());
        }
    }
}

/// One audit event, before it is stamped.
pub(crate) struct AuditEvent<'a> {
    pub(crate) tenant_id: &'a TenantId,
    pub(crate) project_id: Option<&'a ProjectId>,
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    pub(crate) target: Option<&'a str>,
    pub(crate) meta: &'a RequestMeta,
    pub(crate) details: serde_json::Value,
}

/// A time as unix milliseconds.
pub(crate) fn to_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Unix milliseconds as a time.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default())
}
