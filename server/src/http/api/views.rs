//! The JSON shapes the API returns for control-plane rows (camelCase, RFC 3339 times),
//! kept apart from the store's rows so a column can change without changing the API.

use serde::Serialize;
use utoipa::ToSchema;

use crate::control::keys::CreatedKey;
use crate::ids::{KeyId, ProjectId, TenantId, UserId};
use crate::store::control::{
    AuditRow, KeyKindRow, KeyRow, MemberRow, ProjectRow, Role, TenantRow, UserRow,
};

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn time(ms: i64) -> String {
    let at = crate::control::plane::from_ms(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// A user account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub created_at: String,
}

impl From<&UserRow> for User {
    fn from(row: &UserRow) -> Self {
        Self {
            id: row.id.clone(),
            email: row.email.clone(),
            created_at: time(row.created_at),
        }
    }
}

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleView {
    Owner,
    Admin,
    Member,
}

impl From<Role> for RoleView {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => RoleView::Owner,
            Role::Admin => RoleView::Admin,
            Role::Member => RoleView::Member,
        }
    }
}

impl From<RoleView> for Role {
    fn from(role: RoleView) -> Self {
        match role {
            RoleView::Owner => Role::Owner,
            RoleView::Admin => Role::Admin,
            RoleView::Member => Role::Member,
        }
    }
}

/// A tenant: the billing entity.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The plan (`free`, `pro`, `enterprise`).
    pub plan: String,
    pub created_at: String,
    /// The caller's role here (absent where it does not apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleView>,
}

impl Tenant {
    pub fn new(row: &TenantRow, role: Option<Role>) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            plan: row.plan.clone(),
            created_at: time(row.created_at),
            role: role.map(RoleView::from),
        }
    }
}

/// A project: a namespace of rooms and keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Whether publishable keys may mint client tokens.
    pub public_access: bool,
    /// The rooms publishable-key tokens may name: an exact room or `prefix*`.
    pub public_rooms: String,
    /// The scopes they may carry, space-separated (`room:read`, `room:presence:write`,
    /// `room:write`).
    pub public_scopes: String,
    pub created_at: String,
}

impl From<&ProjectRow> for Project {
    fn from(row: &ProjectRow) -> Self {
        Self {
            id: row.id.clone(),
            tenant_id: row.tenant_id.clone(),
            name: row.name.clone(),
            public_access: row.public_access,
            public_rooms: row.public_rooms.clone(),
            public_scopes: row.public_scopes.clone(),
            created_at: time(row.created_at),
        }
    }
}

/// A tenant member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: RoleView,
    pub created_at: String,
}

impl From<&MemberRow> for Member {
    fn from(row: &MemberRow) -> Self {
        Self {
            user_id: row.user_id.clone(),
            email: row.email.clone(),
            role: row.role.into(),
            created_at: time(row.created_at),
        }
    }
}

/// What a key is.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum KeyKindView {
    /// `sk_…`: server-side, full access to the project.
    Secret,
    /// `pk_…`: browser-safe, mints tokens where the project allows public access.
    Publishable,
    /// `pat_…`: a personal access token for the management API.
    PersonalAccessToken,
}

impl From<KeyKindRow> for KeyKindView {
    fn from(kind: KeyKindRow) -> Self {
        match kind {
            KeyKindRow::Secret => KeyKindView::Secret,
            KeyKindRow::Publishable => KeyKindView::Publishable,
            KeyKindRow::Pat => KeyKindView::PersonalAccessToken,
        }
    }
}

/// An API key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: KeyId,
    pub kind: KeyKindView,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// When it stops (or stopped) working after a roll or its chosen lifetime.
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Whether it authenticates right now.
    pub active: bool,
}

impl ApiKey {
    pub fn new(row: &KeyRow, now_ms: i64) -> Self {
        Self {
            id: row.id.clone(),
            kind: row.kind.into(),
            name: row.name.clone(),
            prefix: row.display_prefix.clone(),
            project_id: row.project_id.clone(),
            created_at: time(row.created_at),
            last_used_at: row.last_used_at.map(time),
            expires_at: row.expires_at.map(time),
            revoked_at: row.revoked_at.map(time),
            active: row.is_active(now_ms),
        }
    }
}

/// A key just created: the only response that ever contains the key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    /// The key. Store it now: it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKey,
}

impl CreatedApiKey {
    pub fn new(created: CreatedKey, now_ms: i64) -> Self {
        Self {
            info: ApiKey::new(&created.row, now_ms),
            key: created.plaintext.into_exposed(),
        }
    }
}

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// A user id, a key id, or `system`.
    pub actor: String,
    /// `account.created`, `key.created`, `key.revoked`, `key.rolled`, `pat.created`,
    /// `pat.revoked`, `project.created`, `project.updated`, `project.deleted`,
    /// `member.invited`, `member.invitation_revoked`, `member.joined`,
    /// `member.role_changed`, `member.removed`, `room.deleted`. (Logins are in each
    /// user's own security log, not here.)
    pub action: String,
    pub target: Option<String>,
    pub project_id: Option<ProjectId>,
    pub ip: Option<String>,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AuditRow> for AuditEntry {
    fn from(row: &AuditRow) -> Self {
        Self {
            id: row.id,
            at: time(row.at),
            actor: row.actor.clone(),
            action: row.action.clone(),
            target: row.target.clone(),
            project_id: row.project_id.clone(),
            ip: row.ip.clone(),
            details: serde_json::from_str(&row.details).unwrap_or(serde_json::Value::Null),
        }
    }
}
