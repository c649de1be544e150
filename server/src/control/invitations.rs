//! Membership by consent: an owner or admin invites an email with a role; the person
//! with that email accepts with the token of the link (stored only as its SHA-256,
//! expiring, single use, revocable), or leaves a tenant later. Also each user's own
//! security log (their logins: never shown to the tenants they are in) and the outbox
//! where the server leaves the emails it would send (there is no mail server in the
//! binary: an operator's mailer reads `email_outbox`).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{ControlError, ControlResult};
use super::fill_random;
use super::password::normalize_email;
use super::plane::{AuditEvent, ControlPlane, RequestMeta, TenantAccess, UserAuth};
use crate::ids::{InvitationId, UserId};
use crate::store::control::Role;
use crate::store::invitations::{InvitationRow, OutboxEmail, SecurityEventRow};

/// How long an invitation link works.
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most security-log events returned per page.
pub const MAX_SECURITY_LOG_PAGE: u32 = 200;

/// A new invitation. `token` is in this value and the link only.
#[derive(Debug, Clone)]
pub struct CreatedInvitation {
    /// The stored invitation.
    pub row: InvitationRow,
    /// The secret of the link (43 base64url characters).
    pub token: String,
    /// Where the invited person accepts: `<public URL>/dashboard/invitations/accept?token=…`
    /// (relative when no `--public-url` is set).
    pub accept_url: String,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn require(access: &TenantAccess, needed: Role) -> ControlResult<()> {
    if access.role < needed {
        return Err(ControlError::Forbidden(format!(
            "this needs the {} role; you are {}",
            needed.as_str(),
            access.role.as_str()
        )));
    }
    Ok(())
}

impl ControlPlane {
    /// Invites `email` to the tenant with `role` (admin; only an owner invites owners).
    /// Nothing tells the inviter whether the email has an account. The link is also
    /// queued in the email outbox for the invited address.
    pub async fn create_invitation(
        &self,
        access: &TenantAccess,
        email: &str,
        role: Role,
        meta: &RequestMeta,
    ) -> ControlResult<CreatedInvitation> {
        require(access, Role::Admin)?;
        if role == Role::Owner {
            require(access, Role::Owner)?;
        }
        let email = normalize_email(email).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let mut secret = [0u8; 32];
        fill_random(&mut secret)?;
        let token = base64_url(&secret);
        let now = self.now_ms();
        let ttl = i64::try_from(INVITATION_TTL.as_millis()).unwrap_or(i64::MAX);
        let row = InvitationRow {
            id: InvitationId::generate()?,
            tenant_id: access.tenant_id.clone(),
            email: email.as_str().to_owned(),
            role,
            invited_by: access.user.id.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
        };
        self.store()
            .create_invitation(&row, &token_hash(&token))
            .await?;
        let base = self.config().public_url.as_deref().unwrap_or("");
        let accept_url = format!(
            "{}/dashboard/invitations/accept?token={token}",
            base.trim_end_matches('/')
        );
        let tenant_name = self
            .store()
            .tenant(&access.tenant_id)
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        self.send_email(
            &row.email,
            &format!("You are invited to join {tenant_name} on Tandem"),
            &format!(
                "{} invited you to join {tenant_name} as {}.\n\nAccept (signed in with this email) before it expires in 7 days:\n{accept_url}\n\nIf you did not expect this, ignore this email.",
                access.user.email,
                role.as_str()
            ),
        )
        .await;
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: None,
            actor: &access.actor,
            action: "member.invited",
            target: Some(row.id.as_str()),
            meta,
            details: serde_json::json!({ "email": row.email, "role": role.as_str() }),
        })
        .await;
        Ok(CreatedInvitation {
            row,
            token,
            accept_url,
        })
    }

    /// The tenant's invitations, newest first, in every state (admin).
    pub async fn list_invitations(
        &self,
        access: &TenantAccess,
    ) -> ControlResult<Vec<InvitationRow>> {
        require(access, Role::Admin)?;
        Ok(self.store().list_invitations(&access.tenant_id).await?)
    }

    /// Revokes a pending invitation (admin): its link stops working.
    pub async fn revoke_invitation(
        &self,
        access: &TenantAccess,
        id: &InvitationId,
        meta: &RequestMeta,
    ) -> ControlResult<InvitationRow> {
        require(access, Role::Admin)?;
        let row = self
            .store()
            .revoke_invitation(&access.tenant_id, id, self.now_ms())
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: None,
            actor: &access.actor,
            action: "member.invitation_revoked",
            target: Some(id.as_str()),
            meta,
            details: serde_json::json!({ "email": row.email }),
        })
        .await;
        Ok(row)
    }

    /// Accepts an invitation for the signed-in user (a session, not a token), whose email
    /// must be the invited one. Works once, before it expires, unless revoked.
    pub async fn accept_invitation(
        &self,
        auth: &UserAuth,
        token: &str,
        meta: &RequestMeta,
    ) -> ControlResult<InvitationRow> {
        auth.require_session("invitations are accepted from a signed-in session")?;
        let hash = token_hash(token.trim());
        let invitation = self
            .store()
            .invitation_by_token(&hash)
            .await?
            .ok_or(ControlError::NotFound)?;
        if invitation.email != auth.user.email {
            return Err(ControlError::Forbidden(
                "this invitation is for another email address; sign in with that one".to_owned(),
            ));
        }
        let accepted = self
            .store()
            .accept_invitation(&hash, &auth.user.id, self.now_ms())
            .await?
            .ok_or_else(|| {
                ControlError::Conflict(
                    "this invitation was already used, was revoked, or has expired".to_owned(),
                )
            })?;
        self.audit(AuditEvent {
            tenant_id: &accepted.tenant_id,
            project_id: None,
            actor: auth.user.id.as_str(),
            action: "member.joined",
            target: Some(auth.user.id.as_str()),
            meta,
            details: serde_json::json!({
                "invitation": accepted.id.as_str(),
                "role": accepted.role.as_str(),
            }),
        })
        .await;
        Ok(accepted)
    }

    /// Leaves the tenant (anyone but its last owner).
    pub async fn leave_tenant(
        &self,
        access: &TenantAccess,
        meta: &RequestMeta,
    ) -> ControlResult<()> {
        let me = access.user.id.clone();
        self.remove_member(access, &me, meta).await
    }

    /// A page of the user's own security log (logins, failed logins, signup attempts
    /// with their email), newest first.
    pub async fn security_log(
        &self,
        auth: &UserAuth,
        before: Option<i64>,
        limit: u32,
    ) -> ControlResult<Vec<SecurityEventRow>> {
        Ok(self
            .store()
            .list_security_events(&auth.user.id, before, limit.clamp(1, MAX_SECURITY_LOG_PAGE))
            .await?)
    }

    /// Records an event of the user's own account. A failure is logged, not returned.
    pub(crate) async fn record_security_event(
        &self,
        user: &UserId,
        action: &str,
        meta: &RequestMeta,
        details: serde_json::Value,
    ) {
        let row = SecurityEventRow {
            id: 0,
            user_id: user.clone(),
            action: action.to_owned(),
            ip: meta.ip.clone(),
            details: details.to_string(),
            at: self.now_ms(),
        };
        if let Err(error) = self.store().append_security_event(&row).await {
            tracing::error!(%error, action, "writing the security log failed");
        }
    }

    /// Leaves an email in the outbox. A failure is logged, not returned.
    pub(crate) async fn send_email(&self, recipient: &str, subject: &str, body: &str) {
        let email = OutboxEmail {
            id: 0,
            recipient: recipient.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            created_at: self.now_ms(),
        };
        tracing::info!(recipient, subject, "email queued in the outbox");
        if let Err(error) = self.store().queue_email(&email).await {
            tracing::error!(%error, "queueing an email failed");
        }
    }

    /// The emails queued for `recipient`, oldest first.
    pub async fn outbox_for(&self, recipient: &str) -> ControlResult<Vec<OutboxEmail>> {
        Ok(self.store().emails_to(recipient).await?)
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
    use crate::control::plane::Via;
    use crate::control::ControlConfig;
    use crate::ids::TenantId;
    use crate::store::sqlite::SqliteStore;

    async fn plane(dir: &tempfile::TempDir) -> (ControlPlane, Arc<ManualClock>) {
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let plane = ControlPlane::new(store, clock.clone(), ControlConfig::default())
            .await
            .unwrap();
        (plane, clock)
    }

    async fn user(plane: &ControlPlane, email: &str) -> (UserAuth, TenantId) {
        crate::control::test_support::signed_up(plane, email).await
    }

    #[tokio::test]
    async fn membership_needs_the_invited_persons_acceptance() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, clock) = plane(&dir).await;
        let meta = RequestMeta::default();
        let (ada, tenant) = user(&plane, "ada@example.com").await;
        let (bob, _) = user(&plane, "bob@example.com").await;
        let (eve, _) = user(&plane, "eve@example.com").await;
        let owner = plane
            .tenant_access(&ada, &tenant, Role::Owner)
            .await
            .unwrap();

        let invited = plane
            .create_invitation(&owner, "Bob@Example.com", Role::Admin, &meta)
            .await
            .unwrap();
        assert_eq!(invited.row.email, "bob@example.com");
        assert!(invited
            .accept_url
            .ends_with(&format!("?token={}", invited.token)));
        // The link is in Bob's outbox, and nowhere stored in the clear.
        let mail = plane.outbox_for("bob@example.com").await.unwrap();
        assert!(mail.iter().any(|m| m.body.contains(&invited.token)));
        // Not a member yet; someone else with the link cannot use it.
        assert!(plane
            .tenant_access(&bob, &tenant, Role::Member)
            .await
            .is_err());
        assert!(matches!(
            plane.accept_invitation(&eve, &invited.token, &meta).await,
            Err(ControlError::Forbidden(_))
        ));
        // A personal access token cannot accept for its user.
        let via_pat = UserAuth {
            user: bob.user.clone(),
            via: Via::Pat {
                key_id: crate::ids::KeyId::generate().unwrap(),
                tenant_id: tenant.clone(),
            },
        };
        assert!(matches!(
            plane
                .accept_invitation(&via_pat, &invited.token, &meta)
                .await,
            Err(ControlError::Forbidden(_))
        ));
        assert!(matches!(
            plane.accept_invitation(&bob, "not-a-token", &meta).await,
            Err(ControlError::NotFound)
        ));
        let joined = plane
            .accept_invitation(&bob, &invited.token, &meta)
            .await
            .unwrap();
        assert_eq!(joined.role, Role::Admin);
        let bob_in = plane
            .tenant_access(&bob, &tenant, Role::Admin)
            .await
            .unwrap();
        // Once only.
        assert!(matches!(
            plane.accept_invitation(&bob, &invited.token, &meta).await,
            Err(ControlError::Conflict(_))
        ));
        // An admin cannot invite owners.
        assert!(matches!(
            plane
                .create_invitation(&bob_in, "eve@example.com", Role::Owner, &meta)
                .await,
            Err(ControlError::Forbidden(_))
        ));

        // Revoked and expired links stop working.
        let revoked = plane
            .create_invitation(&owner, "eve@example.com", Role::Member, &meta)
            .await
            .unwrap();
        plane
            .revoke_invitation(&owner, &revoked.row.id, &meta)
            .await
            .unwrap();
        assert!(matches!(
            plane.accept_invitation(&eve, &revoked.token, &meta).await,
            Err(ControlError::Conflict(_))
        ));
        let late = plane
            .create_invitation(&owner, "eve@example.com", Role::Member, &meta)
            .await
            .unwrap();
        clock.advance(INVITATION_TTL);
        assert!(matches!(
            plane.accept_invitation(&eve, &late.token, &meta).await,
            Err(ControlError::Conflict(_))
        ));
        assert!(plane
            .tenant_access(&eve, &tenant, Role::Member)
            .await
            .is_err());
        assert_eq!(plane.list_invitations(&owner).await.unwrap().len(), 3);

        // Bob leaves; the last owner cannot.
        plane.leave_tenant(&bob_in, &meta).await.unwrap();
        assert!(plane
            .tenant_access(&bob, &tenant, Role::Member)
            .await
            .is_err());
        assert!(matches!(
            plane.leave_tenant(&owner, &meta).await,
            Err(ControlError::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn logins_go_to_the_users_security_log_not_the_tenants_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let (plane, _) = plane(&dir).await;
        let meta = RequestMeta {
            ip: Some("192.0.2.1".to_owned()),
            user_agent: None,
        };
        let (ada, ada_tenant) = user(&plane, "ada@example.com").await;
        let (bob, bob_tenant) = user(&plane, "bob@example.com").await;
        // Bob is also a member of Ada's tenant.
        let owner = plane
            .tenant_access(&ada, &ada_tenant, Role::Owner)
            .await
            .unwrap();
        let invited = plane
            .create_invitation(&owner, "bob@example.com", Role::Admin, &meta)
            .await
            .unwrap();
        plane
            .accept_invitation(&bob, &invited.token, &meta)
            .await
            .unwrap();
        assert!(plane
            .login("bob@example.com", "wrong password!", &meta)
            .await
            .is_err());
        plane
            .login("bob@example.com", "correct horse battery", &meta)
            .await
            .unwrap();
        // The log is written off the request path: wait for it, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let events = loop {
            let events = plane.security_log(&bob, None, 50).await.unwrap();
            if events.len() >= 2 || std::time::Instant::now() > deadline {
                break events;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["login.succeeded", "login.failed"]);
        assert_eq!(events[0].ip.as_deref(), Some("192.0.2.1"));
        assert!(plane.security_log(&ada, None, 50).await.unwrap().is_empty());
        // Neither tenant's audit log shows Bob's logins.
        let bob_owner = plane
            .tenant_access(&bob, &bob_tenant, Role::Owner)
            .await
            .unwrap();
        for access in [&owner, &bob_owner] {
            let audit = plane.audit_log(access, None, 50).await.unwrap();
            assert!(
                audit.iter().all(|a| !a.action.starts_with("login.")),
                "{:?}",
                audit.iter().map(|a| &a.action).collect::<Vec<_>>()
            );
        }
    }
}
