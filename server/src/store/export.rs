//! Whole-installation export and import, for `tandem store copy` ([`super::copy`]).
//! Separate from the runtime traits: the server never needs to read every row or to
//! write rows with their ids, and these methods would only widen what it could misuse.
//!
//! Both sides work inside one transaction: an export reads one consistent snapshot of the
//! source, and an import becomes visible all at once on commit (a failed copy leaves the
//! destination empty, so it can simply be run again).

use async_trait::async_trait;
use bytes::Bytes;

use super::control::{AuditRow, KeyRow, MemberRow, ProjectRow, SigningKeyRow, TenantRow, UserRow};
use super::usage::{MonthlyUser, ProjectHour, RoomHour};
use super::{RoomId, Seq, StoreResult};
use crate::ids::UserId;

/// Every table of an installation, in an order that satisfies the foreign keys on insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Users,
    Sessions,
    Tenants,
    Members,
    Projects,
    ApiKeys,
    SigningKeys,
    AuditLog,
    Invitations,
    SecurityLog,
    EmailOutbox,
    Rooms,
    RoomSnapshots,
    RoomUpdates,
    UsageFlushes,
    UsageHourly,
    UsageProjectHourly,
    UsageUsers,
}

impl Table {
    /// All tables, parents before children.
    pub const ALL: [Table; 18] = [
        Table::Users,
        Table::Sessions,
        Table::Tenants,
        Table::Members,
        Table::Projects,
        Table::ApiKeys,
        Table::SigningKeys,
        Table::AuditLog,
        Table::Invitations,
        Table::SecurityLog,
        Table::EmailOutbox,
        Table::Rooms,
        Table::RoomSnapshots,
        Table::RoomUpdates,
        Table::UsageFlushes,
        Table::UsageHourly,
        Table::UsageProjectHourly,
        Table::UsageUsers,
    ];

    /// The table's name in both schemas (a constant: safe to put into SQL).
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Sessions => "sessions",
            Table::Tenants => "tenants",
            Table::Members => "members",
            Table::Projects => "projects",
            Table::ApiKeys => "api_keys",
            Table::SigningKeys => "signing_keys",
            Table::AuditLog => "audit_log",
            Table::Invitations => "invitations",
            Table::SecurityLog => "security_log",
            Table::EmailOutbox => "email_outbox",
            Table::Rooms => "rooms",
            Table::RoomSnapshots => "room_snapshots",
            Table::RoomUpdates => "room_updates",
            Table::UsageFlushes => "usage_flushes",
            Table::UsageHourly => "usage_hourly",
            Table::UsageProjectHourly => "usage_project_hourly",
            Table::UsageUsers => "usage_users",
        }
    }
}

/// A dashboard login session, as stored (by the hash of its id).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub last_seen_at: Option<i64>,
}

/// An API key row with the hash it is looked up by.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub key: KeyRow,
    pub hash: Vec<u8>,
}

/// An invitation with the hash of its token.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInvitation {
    pub invitation: super::invitations::InvitationRow,
    pub token_hash: Vec<u8>,
}

/// Every control-plane row, each list in a stable order (by primary key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlRows {
    pub users: Vec<UserRow>,
    pub sessions: Vec<SessionRow>,
    pub tenants: Vec<TenantRow>,
    /// `email` is the joined user's, ignored on import.
    pub members: Vec<MemberRow>,
    pub projects: Vec<ProjectRow>,
    pub keys: Vec<StoredKey>,
    pub signing_keys: Vec<SigningKeyRow>,
    /// With their ids (kept on import).
    pub audit: Vec<AuditRow>,
    pub invitations: Vec<StoredInvitation>,
    /// With their ids (kept on import).
    pub security_log: Vec<super::invitations::SecurityEventRow>,
    /// With their ids (kept on import).
    pub outbox: Vec<super::invitations::OutboxEmail>,
}

/// An applied usage flush id (kept, so a flush retried against the copy is still
/// applied once).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageFlushRow {
    pub flush_id: String,
    pub applied_at: i64,
}

/// Every usage-metering row, each list in a stable order (by primary key). No foreign
/// keys: usage outlives the projects and rooms it describes, and is copied as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRows {
    pub flushes: Vec<UsageFlushRow>,
    /// `usage_hourly`, by (project, hour, room).
    pub rooms: Vec<RoomHour>,
    /// `usage_project_hourly`, by (project, hour).
    pub projects: Vec<ProjectHour>,
    /// `usage_users`, by (project, month, user).
    pub users: Vec<MonthlyUser>,
}

/// A room row.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEntry {
    pub id: RoomId,
    pub project_id: String,
    pub name: String,
    pub created_at: i64,
    pub read_only: bool,
}

/// A room's snapshot row.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub upto_seq: Seq,
    pub data: Bytes,
    pub updated_at: i64,
}

/// Everything stored for one room's document: the snapshot and every log row, as they
/// are (not filtered by the snapshot's `upto_seq`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomContents {
    pub snapshot: Option<SnapshotRow>,
    /// Log rows in seq order.
    pub updates: Vec<(Seq, Bytes)>,
}

/// A store that can be copied from and into.
#[async_trait]
pub trait Export: Send + Sync {
    /// Starts reading one consistent snapshot of the whole store.
    async fn export(&self) -> StoreResult<Box<dyn ExportTx>>;
    /// Starts a write transaction for an import; nothing is visible until
    /// [`ImportTx::commit`].
    async fn import(&self) -> StoreResult<Box<dyn ImportTx>>;
}

/// Reads inside an export transaction.
#[async_trait]
pub trait ExportTx: Send {
    /// Rows in `table`.
    async fn count(&mut self, table: Table) -> StoreResult<i64>;
    /// Every control-plane row.
    async fn control(&mut self) -> StoreResult<ControlRows>;
    /// Every usage row, applied flush ids included.
    async fn usage(&mut self) -> StoreResult<UsageRows>;
    /// Every room, by id.
    async fn rooms(&mut self) -> StoreResult<Vec<RoomEntry>>;
    /// One room's snapshot and log.
    async fn room(&mut self, room_id: RoomId) -> StoreResult<RoomContents>;
}

/// Writes inside an import transaction. Rows keep their ids (room ids, seqs, audit ids).
#[async_trait]
pub trait ImportTx: Send {
    /// Rows in `table` (as this transaction sees them).
    async fn count(&mut self, table: Table) -> StoreResult<i64>;
    /// Inserts every control-plane row.
    async fn control(&mut self, rows: &ControlRows) -> StoreResult<()>;
    /// Inserts every usage row as it is (flush ids included).
    async fn usage(&mut self, rows: &UsageRows) -> StoreResult<()>;
    /// Inserts a room with its snapshot and log.
    async fn room(&mut self, room: &RoomEntry, contents: &RoomContents) -> StoreResult<()>;
    /// Moves the id counters past every imported id (new rooms, log rows and audit
    /// events must not reuse one, and a new update's seq must exceed every snapshot's
    /// `upto_seq`, even when the log rows it covered are gone) and commits.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}
