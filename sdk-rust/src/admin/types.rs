//! The REST API's shapes, as serde structs matching `openapi/openapi.json` field for
//! field (camelCase on the wire; a unit test compares them with the committed spec).
//! They serialize back to the same JSON, so a backend can pass them on to its own
//! clients. Times are RFC 3339 strings, as the server sends them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Room name (exact) or prefix ending in `*` → scopes, e.g. `{"doc-1": [Write],
/// "team-*": [Read]}`.
pub type Permissions = BTreeMap<String, Vec<Scope>>;

/// An RFC 9457 problem document: what the server answers with every error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Problem {
    /// A URI naming the problem type: `urn:tandem:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for humans.
    pub detail: String,
    /// A stable machine-readable code (`not_found`, `invalid_request`, …).
    pub code: String,
}

/// A permission scope.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[non_exhaustive]
pub enum Scope {
    /// `room:read`: sync the document, see presence.
    #[default]
    #[serde(rename = "room:read")]
    Read,
    /// `room:write`: edit (implies read and presence).
    #[serde(rename = "room:write")]
    Write,
    /// `room:presence:write`: set presence and send events.
    #[serde(rename = "room:presence:write")]
    PresenceWrite,
    /// `room:admin`: write even while the room is read-only.
    #[serde(rename = "room:admin")]
    Admin,
}

/// A minted client token (`POST /v1/tokens`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Authorization {
    /// Pass it as `?token=` when connecting (or return it from a token provider).
    pub token: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The project whose rooms it opens.
    pub project_id: String,
    /// The user id in the token.
    pub user_id: String,
}

/// A room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Room {
    /// The room's name.
    pub name: String,
    /// When it was first opened.
    pub created_at: String,
    /// Live WebSocket connections (in a cluster, on every node).
    pub connections: u64,
    /// Whether only `room:admin` tokens (and REST) may change the document.
    pub read_only: bool,
}

/// A page of rooms, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RoomPage {
    /// The rooms.
    pub data: Vec<Room>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A connected user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ActiveUser {
    /// The connection; 0 for a connection on another node of a cluster (one presence
    /// state, and no key, scopes or time).
    pub connection_id: u64,
    /// When it connected (`None` for a connection on another node).
    pub connected_at: Option<String>,
    /// The API key that minted its token.
    pub key_id: Option<String>,
    /// The cluster node it is connected to, as 16 hex digits (`None` on a single
    /// server).
    pub node: Option<String>,
    /// What its token allows in this room (`room:read` always).
    pub scopes: Vec<String>,
    /// Its presence states.
    pub presence: Vec<PresenceState>,
    /// The token's user id.
    pub user_id: Option<String>,
    /// The token's user info.
    pub user_info: Option<Map<String, Value>>,
}

/// One awareness state of a connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PresenceState {
    /// The Yjs client id.
    pub client_id: u64,
    /// The state (with `user` attached by the server from the token).
    pub state: Map<String, Value>,
}

/// How many connections an event reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Broadcasted {
    /// Connections that were sent the event.
    pub delivered: u64,
}

/// What a key is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum KeyKind {
    /// `sk_…`: server-side, mints tokens for any user.
    #[default]
    Secret,
    /// `pk_…`: mints anonymous read/presence tokens (when the project allows it).
    Publishable,
    /// `pat_…`: a user's personal access token for the tenant routes.
    PersonalAccessToken,
}

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ApiKey {
    /// `key_…`.
    pub id: String,
    /// What it is.
    pub kind: KeyKind,
    /// What it is for.
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// When it was created.
    pub created_at: String,
    /// Whether it authenticates right now.
    pub active: bool,
    /// When it stops (or stopped) working after a roll or its chosen lifetime.
    pub expires_at: Option<String>,
    /// When it was last used (written at most once a minute).
    pub last_used_at: Option<String>,
    /// Its project (`None` for a PAT).
    pub project_id: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

/// A key just created: the only answer that ever contains the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreatedApiKey {
    /// The key as listed.
    #[serde(flatten)]
    pub info: ApiKey,
    /// The key itself. Store it now: it cannot be shown again.
    pub key: String,
}

/// The new key, and the old one with the end of its grace period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RolledKey {
    /// The replacement.
    pub new_key: CreatedApiKey,
    /// The rolled key; it stops working at `expires_at`.
    pub old_key: ApiKey,
}

/// Bucket size of a usage report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Granularity {
    /// UTC hours.
    #[default]
    Hour,
    /// UTC days.
    Day,
}

impl Granularity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// Totals of one bucket: counters are sums, peaks the most connections open at once,
/// storage the sum over rooms of each room's latest stored size in the bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UsageTotals {
    /// Binary WebSocket messages received from clients.
    pub messages_in: i64,
    /// Binary WebSocket messages sent to clients.
    pub messages_out: i64,
    /// Payload bytes received.
    pub bytes_in: i64,
    /// Payload bytes sent.
    pub bytes_out: i64,
    /// Connection time, milliseconds.
    pub connection_ms: i64,
    /// Most connections open at once.
    pub peak_connections: i64,
    /// Rooms with at least one connection.
    pub active_rooms: i64,
    /// Stored bytes.
    pub storage_bytes: i64,
}

/// One room's usage in a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RoomUsage {
    /// The room.
    pub room: String,
    /// Messages received.
    pub messages_in: i64,
    /// Messages sent.
    pub messages_out: i64,
    /// Bytes received.
    pub bytes_in: i64,
    /// Bytes sent.
    pub bytes_out: i64,
    /// Connection time, milliseconds.
    pub connection_ms: i64,
    /// Most connections open at once in the room.
    pub peak_connections: i64,
    /// Whether it had a connection.
    pub active: bool,
    /// Its latest stored size in the bucket; `None` when it was not loaded then.
    pub storage_bytes: Option<i64>,
}

/// A bucket of a project's usage, with its rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UsageBucket {
    /// The bucket's first instant.
    pub start: String,
    /// Its totals.
    pub totals: UsageTotals,
    /// By room name.
    pub rooms: Vec<RoomUsage>,
}

/// Distinct users (token `sub`) in a calendar month (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MonthlyActiveUsers {
    /// `YYYY-MM`.
    pub month: String,
    /// Distinct users.
    pub users: i64,
}

/// A project's usage (`GET /v1/usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProjectUsage {
    /// The project.
    pub project_id: String,
    /// Start of the range covered (whole buckets).
    pub from: String,
    /// End of the range (exclusive).
    pub to: String,
    /// Bucket size.
    pub granularity: Granularity,
    /// Buckets with any usage, oldest first.
    pub buckets: Vec<UsageBucket>,
    /// Every month the range touches.
    pub monthly_active_users: Vec<MonthlyActiveUsers>,
}

/// A bucket of a tenant's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TotalsBucket {
    /// The bucket's first instant.
    pub start: String,
    /// Sums over the projects.
    pub totals: UsageTotals,
}

/// One project's usage within a tenant's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TenantProjectUsage {
    /// The project.
    pub project_id: String,
    /// Its name.
    pub name: String,
    /// Its buckets.
    pub buckets: Vec<UsageBucket>,
    /// Its monthly active users.
    pub monthly_active_users: Vec<MonthlyActiveUsers>,
}

/// A tenant's usage: its totals and each project's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TenantUsage {
    /// The tenant.
    pub tenant_id: String,
    /// Start of the range covered.
    pub from: String,
    /// End of the range (exclusive).
    pub to: String,
    /// Bucket size.
    pub granularity: Granularity,
    /// Sums over the projects, bucket by bucket.
    pub buckets: Vec<TotalsBucket>,
    /// Sums over the projects (user ids are per project).
    pub monthly_active_users: Vec<MonthlyActiveUsers>,
    /// The tenant's current projects, oldest first.
    pub projects: Vec<TenantProjectUsage>,
}

/// One audit log entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuditEntry {
    /// Its id (newest highest).
    pub id: i64,
    /// When.
    pub at: String,
    /// A user id, a key id, or `system`.
    pub actor: String,
    /// `key.created`, `key.revoked`, `project.created`, `room.deleted`…
    pub action: String,
    /// Extra facts.
    pub details: Map<String, Value>,
    /// The client address, when there was one.
    pub ip: Option<String>,
    /// The project, when it concerns one.
    pub project_id: Option<String>,
    /// What it was done to.
    pub target: Option<String>,
}

/// Audit log entries, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuditPage {
    /// The entries.
    pub data: Vec<AuditEntry>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Role {
    /// Everything, including deleting the tenant.
    Owner,
    /// Members, projects, keys, the audit log.
    Admin,
    /// Read access.
    #[default]
    Member,
}

/// A tenant: the billing entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Tenant {
    /// `ten_…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The plan (`free`, `pro`, `enterprise`).
    pub plan: String,
    /// When it was created.
    pub created_at: String,
    /// The caller's role here.
    pub role: Option<Role>,
}

/// A project: a namespace of rooms and keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Project {
    /// `prj_…`.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// Whether publishable keys may mint client tokens.
    pub public_access: bool,
    /// The rooms publishable-key tokens may name: an exact room or `prefix*`.
    pub public_rooms: String,
    /// The scopes they may carry, space-separated (`room:read`, `room:presence:write`,
    /// `room:write`).
    pub public_scopes: String,
    /// When it was created.
    pub created_at: String,
}

/// A user account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct User {
    /// `usr_…`.
    pub id: String,
    /// The sign-in email.
    pub email: String,
    /// When it signed up.
    pub created_at: String,
}

/// The PAT's user and their tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Me {
    /// The user.
    pub user: User,
    /// Their tenants.
    pub tenants: Vec<Tenant>,
}

/// `{"data": […]}`, how the API wraps lists without a cursor.
#[derive(Debug, Deserialize)]
pub(crate) struct List<T> {
    pub(crate) data: Vec<T>,
}
