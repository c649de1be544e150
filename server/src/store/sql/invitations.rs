//! [`InvitationStore`], once for both backends (migration `0004_invitations.sql`).

use async_trait::async_trait;
use sqlx::Row;

use super::rows::{all, one};
use super::{DbRow, Store};
use crate::ids::{InvitationId, TenantId, UserId};
use crate::store::control::Role;
use crate::store::invitations::{InvitationRow, InvitationStore, OutboxEmail, SecurityEventRow};
use crate::store::rows::{conflict, stored};
use crate::store::StoreResult;

const INVITATION_COLUMNS: &str = "id, tenant_id, email, role, invited_by, created_at, \
                                  expires_at, accepted_at, accepted_by, revoked_at";

fn invitation_row(row: &DbRow) -> Result<InvitationRow, sqlx::Error> {
    Ok(InvitationRow {
        id: InvitationId::from_db(row.try_get("id")?),
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        email: row.try_get("email")?,
        role: stored("role", row.try_get("role")?, Role::parse)?,
        invited_by: UserId::from_db(row.try_get("invited_by")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        accepted_at: row.try_get("accepted_at")?,
        accepted_by: row
            .try_get::<Option<String>, _>("accepted_by")?
            .map(UserId::from_db),
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn security_event_row(row: &DbRow) -> Result<SecurityEventRow, sqlx::Error> {
    Ok(SecurityEventRow {
        id: row.try_get("id")?,
        user_id: UserId::from_db(row.try_get("user_id")?),
        action: row.try_get("action")?,
        ip: row.try_get("ip")?,
        details: row.try_get("details")?,
        at: row.try_get("at")?,
    })
}

fn outbox_row(row: &DbRow) -> Result<OutboxEmail, sqlx::Error> {
    Ok(OutboxEmail {
        id: row.try_get("id")?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl InvitationStore for Store {
    async fn create_invitation(
        &self,
        invitation: &InvitationRow,
        token_hash: &[u8; 32],
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by,
                                      created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(invitation.id.as_str())
        .bind(invitation.tenant_id.as_str())
        .bind(&invitation.email)
        .bind(invitation.role.as_str())
        .bind(&token_hash[..])
        .bind(invitation.invited_by.as_str())
        .bind(invitation.created_at)
        .bind(invitation.expires_at)
        .execute(&self.pool)
        .await
        .map_err(conflict("invitation already exists"))?;
        Ok(())
    }

    async fn list_invitations(&self, tenant_id: &TenantId) -> StoreResult<Vec<InvitationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        all(&rows, invitation_row)
    }

    async fn invitation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<InvitationRow>> {
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1"
        ))
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await?;
        one(row, invitation_row)
    }

    async fn revoke_invitation(
        &self,
        tenant_id: &TenantId,
        id: &InvitationId,
        at: i64,
    ) -> StoreResult<Option<InvitationRow>> {
        let row = sqlx::query(&format!(
            "UPDATE invitations SET revoked_at = $1
             WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL AND accepted_at IS NULL
             RETURNING {INVITATION_COLUMNS}"
        ))
        .bind(at)
        .bind(tenant_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, invitation_row)
    }

    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        user_id: &UserId,
        now: i64,
    ) -> StoreResult<Option<InvitationRow>> {
        let mut tx = self.pool.begin().await?;
        // The conditional UPDATE is the single-use check: of two concurrent accepts,
        // one matches the row and the other (re-checking after the row lock on
        // Postgres, after the write lock on SQLite) finds it accepted.
        let row = sqlx::query(&format!(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2
             WHERE token_hash = $3 AND accepted_at IS NULL AND revoked_at IS NULL
               AND expires_at > $1
             RETURNING {INVITATION_COLUMNS}"
        ))
        .bind(now)
        .bind(user_id.as_str())
        .bind(&token_hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        let Some(invitation) = one(row, invitation_row)? else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO members (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, user_id) DO NOTHING",
        )
        .bind(invitation.tenant_id.as_str())
        .bind(user_id.as_str())
        .bind(invitation.role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(invitation))
    }

    async fn append_security_event(&self, event: &SecurityEventRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO security_log (user_id, action, ip, details, at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.user_id.as_str())
        .bind(&event.action)
        .bind(event.ip.as_deref())
        .bind(&event.details)
        .bind(event.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_security_events(
        &self,
        user_id: &UserId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<SecurityEventRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, action, ip, details, at FROM security_log
             WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(user_id.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(&rows, security_event_row)
    }

    async fn queue_email(&self, email: &OutboxEmail) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO email_outbox (recipient, subject, body, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&email.recipient)
        .bind(&email.subject)
        .bind(&email.body)
        .bind(email.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn emails_to(&self, recipient: &str) -> StoreResult<Vec<OutboxEmail>> {
        let rows = sqlx::query(
            "SELECT id, recipient, subject, body, created_at FROM email_outbox
             WHERE recipient = $1 ORDER BY id",
        )
        .bind(recipient)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, outbox_row)
    }
}
