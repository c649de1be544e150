//! Storage of membership by consent and of what belongs to a person, not a tenant:
//! invitations (migration `0004_invitations.sql`), each user's own security log, and the
//! outbox of emails the server would send. [`InvitationStore`] is a supertrait of
//! [`ControlStore`](super::control::ControlStore), so the control plane reaches it through
//! the same store object. Times are unix milliseconds.

use async_trait::async_trait;

use super::control::Role;
use super::StoreResult;
use crate::ids::{InvitationId, TenantId, UserId};

/// An invitation to join a tenant with a role. Its token is only in the link.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationRow {
    pub id: InvitationId,
    pub tenant_id: TenantId,
    /// Normalised; only a user with this email may accept.
    pub email: String,
    pub role: Role,
    pub invited_by: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub accepted_by: Option<UserId>,
    pub revoked_at: Option<i64>,
}

/// One event of a user's own account (a login, a failed login).
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEventRow {
    /// Assigned by the store (0 when appending).
    pub id: i64,
    pub user_id: UserId,
    pub action: String,
    pub ip: Option<String>,
    /// A JSON object.
    pub details: String,
    pub at: i64,
}

/// An email the server would send, waiting for a mailer.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEmail {
    /// Assigned by the store (0 when queueing).
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

/// Invitations, security logs and the email outbox.
#[async_trait]
pub trait InvitationStore: Send + Sync + 'static {
    /// Stores a new invitation with the SHA-256 of its token.
    async fn create_invitation(
        &self,
        invitation: &InvitationRow,
        token_hash: &[u8; 32],
    ) -> StoreResult<()>;
    /// The tenant's invitations, newest first (every state).
    async fn list_invitations(&self, tenant_id: &TenantId) -> StoreResult<Vec<InvitationRow>>;
    /// The invitation whose token has this hash, in whatever state.
    async fn invitation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<InvitationRow>>;
    /// Revokes a pending invitation of the tenant; `None` if there is no such pending one.
    async fn revoke_invitation(
        &self,
        tenant_id: &TenantId,
        id: &InvitationId,
        at: i64,
    ) -> StoreResult<Option<InvitationRow>>;
    /// Accepts the invitation with this token hash for `user_id`, in one transaction:
    /// marks it accepted if it is still pending and unexpired at `now`, and adds the
    /// membership (keeping an existing one as it is). `None` if it was not pending (used,
    /// revoked or expired): a token works once.
    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        user_id: &UserId,
        now: i64,
    ) -> StoreResult<Option<InvitationRow>>;

    /// Appends to a user's security log.
    async fn append_security_event(&self, event: &SecurityEventRow) -> StoreResult<()>;
    /// A page of the user's security log, newest first, ids below `before`.
    async fn list_security_events(
        &self,
        user_id: &UserId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<SecurityEventRow>>;

    /// Queues an email.
    async fn queue_email(&self, email: &OutboxEmail) -> StoreResult<()>;
    /// The queued emails to `recipient`, oldest first (for a mailer, and tests).
    async fn emails_to(&self, recipient: &str) -> StoreResult<Vec<OutboxEmail>>;
}
