//! The control plane's storage: users and sessions, tenants and members, projects, API
//! keys, token signing keys and the audit log. [`ControlStore`] is the one trait; every
//! method that touches tenant data takes the tenant (or project) id first, so a lookup
//! cannot forget to scope. Times are unix milliseconds.

use async_trait::async_trait;

pub use super::export::SessionRow;
use super::StoreResult;
use crate::ids::{KeyId, ProjectId, TenantId, UserId};

/// A user account. `password_hash` is an argon2id PHC string.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: UserId,
    /// Normalised (see `control::password::normalize_email`); unique.
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// A tenant: the billing entity.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    /// The plan's name (`free`, `pro`, `enterprise`).
    pub plan: String,
    pub created_at: i64,
}

/// A member's role in a tenant. Stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything, manages nothing but their own tokens.
    Member,
    /// Manages projects, keys and members (except owners).
    Admin,
    /// Everything, including other owners; a tenant always keeps at least one.
    Owner,
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// A user's membership in a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// The member's email (joined from the user), for listings.
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

/// A project inside a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub name: String,
    /// Whether publishable keys may mint tokens (for prototypes).
    pub public_access: bool,
    /// Which rooms publishable-key tokens may name: an exact room or `prefix*`
    /// ([`DEFAULT_PUBLIC_ROOMS`] for a new project).
    pub public_rooms: String,
    /// Which scopes they may carry, space-separated ([`DEFAULT_PUBLIC_SCOPES`]).
    pub public_scopes: String,
    pub created_at: i64,
}

/// The rooms a new project's publishable-key tokens may name: all of them.
pub const DEFAULT_PUBLIC_ROOMS: &str = "*";
/// The scopes a new project's publishable-key tokens may carry: reading and presence.
pub const DEFAULT_PUBLIC_SCOPES: &str = "room:read room:presence:write";

/// What a key is: stored as `secret`, `publishable`, `pat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKindRow {
    Secret,
    Publishable,
    Pat,
}

impl KeyKindRow {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKindRow::Secret => "secret",
            KeyKindRow::Publishable => "publishable",
            KeyKindRow::Pat => "pat",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "secret" => Some(KeyKindRow::Secret),
            "publishable" => Some(KeyKindRow::Publishable),
            "pat" => Some(KeyKindRow::Pat),
            _ => None,
        }
    }
}

/// An API key or personal access token. The secret itself is never stored: only its
/// SHA-256 (passed separately to [`ControlStore::insert_key`] and used for lookup).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: KeyId,
    pub tenant_id: TenantId,
    /// Set for `sk_`/`pk_` keys, `None` for personal access tokens.
    pub project_id: Option<ProjectId>,
    /// The owner of a personal access token; `None` for project keys.
    pub user_id: Option<UserId>,
    pub kind: KeyKindRow,
    pub name: String,
    /// The first characters of the key, shown in listings (e.g. `sk_4fQ2abc…`).
    pub display_prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Set when rolled (or created with an expiry): the key stops working at this time.
    pub expires_at: Option<i64>,
    /// Set when revoked: the key stopped working at this time.
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    /// Whether the key authenticates at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now_ms < at)
    }
}

/// An Ed25519 token signing key. `secret` is the 32-byte seed.
#[derive(Clone, PartialEq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
    /// Set when rotated out: no longer signs; still verifies (and is published) until
    /// every token it signed has expired.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// One security-relevant event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Assigned by the store (increasing); ignored on insert.
    pub id: i64,
    pub tenant_id: TenantId,
    pub project_id: Option<ProjectId>,
    /// Who did it: a user id, a key id, or `system`.
    pub actor: String,
    /// What happened, dotted (`login.succeeded`, `key.created`, `room.deleted`, …).
    pub action: String,
    /// What it was done to (a key id, a room name, a user id…).
    pub target: Option<String>,
    /// The client's IP address, when known.
    pub ip: Option<String>,
    /// Extra facts as a JSON object (text).
    pub details: String,
    pub at: i64,
}

/// What signup creates, in one transaction: the user, their tenant (the user is its
/// owner) and a first project.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user: UserRow,
    pub tenant: TenantRow,
    pub project: ProjectRow,
}

/// A change to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub public_access: Option<bool>,
    pub public_rooms: Option<String>,
    pub public_scopes: Option<String>,
}

/// Which keys to list.
#[derive(Debug, Clone)]
pub enum KeyFilter {
    /// The `sk_`/`pk_` keys of one project.
    Project(ProjectId),
    /// The personal access tokens of one user in the tenant.
    PatsOf(UserId),
}

/// The control plane's storage.
///
/// Errors: a unique-constraint violation is [`StoreError::Conflict`](super::StoreError)
/// (the email is taken, a project name exists…); everything else is `Unavailable`.
/// Lookups that find nothing return `None` / `false`, never an error.
#[async_trait]
pub trait ControlStore:
    super::invitations::InvitationStore + super::webhooks::WebhookStore + Send + Sync + 'static
{
    // --- users and sessions ---

    /// Creates the user, the tenant, the owner membership and the first project, all
    /// or nothing. `Conflict` if the email is taken.
    async fn create_account(&self, account: &NewAccount) -> StoreResult<()>;
    /// How many users exist (0 on a fresh installation).
    async fn count_users(&self) -> StoreResult<i64>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>>;
    async fn user_by_id(&self, user_id: &UserId) -> StoreResult<Option<UserRow>>;
    /// Replaces a password hash (rehash on login after a parameter change).
    async fn set_password_hash(&self, user_id: &UserId, hash: &str) -> StoreResult<()>;

    /// Stores a session by the SHA-256 of its id (the id itself is only in the cookie).
    async fn create_session(&self, session: &SessionRow) -> StoreResult<()>;
    /// The session's user and when the session was last seen, if the session exists
    /// and `now < expires_at`.
    async fn session_user(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<Option<(UserRow, Option<i64>)>>;
    /// Records that the session was used at `at`.
    async fn touch_session(&self, id_hash: &[u8; 32], at: i64) -> StoreResult<()>;
    /// The user's live sessions (`now < expires_at`), newest first.
    async fn list_sessions(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<SessionRow>>;
    /// Deletes one session; `false` if there was none.
    async fn delete_session(&self, id_hash: &[u8; 32]) -> StoreResult<bool>;
    /// Deletes every session of the user except `keep`; how many went.
    async fn delete_other_sessions(&self, user_id: &UserId, keep: &[u8; 32]) -> StoreResult<u64>;

    // --- tenants and members ---

    async fn tenant(&self, tenant_id: &TenantId) -> StoreResult<Option<TenantRow>>;
    /// Every tenant the user belongs to, with their role there, oldest first.
    async fn tenants_of_user(&self, user_id: &UserId) -> StoreResult<Vec<(TenantRow, Role)>>;
    async fn member_role(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
    ) -> StoreResult<Option<Role>>;
    /// Members with their emails, oldest first.
    async fn list_members(&self, tenant_id: &TenantId) -> StoreResult<Vec<MemberRow>>;
    /// `Conflict` if already a member.
    async fn add_member(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        role: Role,
        at: i64,
    ) -> StoreResult<()>;
    /// `false` if not a member.
    async fn set_member_role(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        role: Role,
    ) -> StoreResult<bool>;
    /// `false` if not a member. Also revokes the user's personal access tokens in this
    /// tenant (same transaction, `revoked_at = at`).
    async fn remove_member(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        at: i64,
    ) -> StoreResult<bool>;

    // --- projects ---

    /// `Conflict` if the tenant already has a project with this name.
    async fn create_project(&self, project: &ProjectRow) -> StoreResult<()>;
    /// Projects of the tenant, oldest first.
    async fn list_projects(&self, tenant_id: &TenantId) -> StoreResult<Vec<ProjectRow>>;
    async fn project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> StoreResult<Option<ProjectRow>>;
    /// The updated project, `None` if it does not exist in this tenant. `Conflict` on a
    /// duplicate name.
    async fn update_project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        patch: &ProjectPatch,
    ) -> StoreResult<Option<ProjectRow>>;
    /// Deletes the project, its keys and its rooms with their documents, in one
    /// transaction. `false` if it does not exist in this tenant.
    async fn delete_project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> StoreResult<bool>;

    // --- keys ---

    /// Stores a new key under the SHA-256 of its plaintext.
    async fn insert_key(&self, key: &KeyRow, hash: &[u8; 32]) -> StoreResult<()>;
    /// The key whose plaintext hashes to `hash` (active or not: the caller decides).
    async fn key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRow>>;
    async fn key(&self, tenant_id: &TenantId, key_id: &KeyId) -> StoreResult<Option<KeyRow>>;
    /// Keys matching `filter` in the tenant, newest first, revoked ones included.
    async fn list_keys(&self, tenant_id: &TenantId, filter: &KeyFilter)
        -> StoreResult<Vec<KeyRow>>;
    /// Sets `revoked_at = at` if not already revoked. The key after the change, `None` if
    /// it does not exist in this tenant.
    async fn revoke_key(
        &self,
        tenant_id: &TenantId,
        key_id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<KeyRow>>;
    /// Sets `expires_at = min(expires_at, at)` (a roll's grace period). The key after
    /// the change, `None` if it does not exist in this tenant.
    async fn expire_key(
        &self,
        tenant_id: &TenantId,
        key_id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<KeyRow>>;
    /// Records use (`last_used_at = at`). Best effort: callers throttle it.
    async fn touch_key(&self, key_id: &KeyId, at: i64) -> StoreResult<()>;

    // --- token signing keys ---

    async fn insert_signing_key(&self, key: &SigningKeyRow) -> StoreResult<()>;
    /// Every signing key, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>>;
    /// Sets `retired_at = at` on every key except `keep_kid` that is not yet retired.
    async fn retire_signing_keys_except(&self, keep_kid: &str, at: i64) -> StoreResult<()>;
    /// Replaces the stored secret of `kid` (sealing it under a KEK, or re-sealing under a
    /// new one). False if there is no such key.
    async fn set_signing_key_secret(&self, kid: &str, secret: &[u8]) -> StoreResult<bool>;

    // --- audit log ---

    /// Appends an event (its `id` is assigned by the store).
    async fn append_audit(&self, event: &AuditRow) -> StoreResult<()>;
    /// The tenant's events newest first, with `id < before` when given, at most `limit`.
    async fn list_audit(
        &self,
        tenant_id: &TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditRow>>;
}
