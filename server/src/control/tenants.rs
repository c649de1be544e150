//! Tenancy: who may act in a tenant ([`ControlPlane::tenant_access`]), and the tenant's
//! projects, members and audit log. Every operation takes the tenant id first and
//! answers [`ControlError::NotFound`] for anything outside it.

use super::accounts::check_name;
use super::error::{ControlError, ControlResult};
use super::plane::{AuditEvent, ControlPlane, RequestMeta, TenantAccess, UserAuth, Via};
use crate::ids::{ProjectId, TenantId, UserId};
use crate::store::control::{AuditRow, MemberRow, ProjectPatch, ProjectRow, Role, TenantRow};

/// Most audit events returned per page.
pub const MAX_AUDIT_PAGE: u32 = 200;

impl ControlPlane {
    /// Checks that `auth` reaches `tenant_id` with at least `needed`. A tenant the user
    /// is not a member of (or a PAT of another tenant) is `NotFound`; a role too low is
    /// `Forbidden`.
    pub async fn tenant_access(
        &self,
        auth: &UserAuth,
        tenant_id: &TenantId,
        needed: Role,
    ) -> ControlResult<TenantAccess> {
        let actor = match &auth.via {
            Via::Pat {
                tenant_id: bound,
                key_id,
            } => {
                if bound != tenant_id {
                    return Err(ControlError::NotFound);
                }
                key_id.to_string()
            }
            Via::Session => auth.user.id.to_string(),
        };
        let role = self
            .store()
            .member_role(tenant_id, &auth.user.id)
            .await?
            .ok_or(ControlError::NotFound)?;
        if role < needed {
            return Err(ControlError::Forbidden(format!(
                "this needs the {} role; you are {}",
                needed.as_str(),
                role.as_str()
            )));
        }
        Ok(TenantAccess {
            tenant_id: tenant_id.clone(),
            user: auth.user.clone(),
            role,
            actor,
        })
    }

    /// The tenants the user belongs to (a PAT sees only its own).
    pub async fn tenants_of(&self, auth: &UserAuth) -> ControlResult<Vec<(TenantRow, Role)>> {
        let mut tenants = self.store().tenants_of_user(&auth.user.id).await?;
        if let Via::Pat { tenant_id, .. } = &auth.via {
            tenants.retain(|(t, _)| &t.id == tenant_id);
        }
        Ok(tenants)
    }

    /// The tenant itself.
    pub async fn tenant(&self, access: &TenantAccess) -> ControlResult<TenantRow> {
        self.store()
            .tenant(&access.tenant_id)
            .await?
            .ok_or(ControlError::NotFound)
    }

    /// The tenant's projects.
    pub async fn list_projects(&self, access: &TenantAccess) -> ControlResult<Vec<ProjectRow>> {
        Ok(self.store().list_projects(&access.tenant_id).await?)
    }

    /// One project of the tenant.
    pub async fn project(
        &self,
        access: &TenantAccess,
        project_id: &ProjectId,
    ) -> ControlResult<ProjectRow> {
        self.store()
            .project(&access.tenant_id, project_id)
            .await?
            .ok_or(ControlError::NotFound)
    }

    /// Creates a project (admin).
    pub async fn create_project(
        &self,
        access: &TenantAccess,
        name: &str,
        public_access: bool,
        meta: &RequestMeta,
    ) -> ControlResult<ProjectRow> {
        require(access, Role::Admin)?;
        let project = ProjectRow {
            id: ProjectId::generate()?,
            tenant_id: access.tenant_id.clone(),
            name: check_name("project name", name)?,
            public_access,
            public_rooms: crate::store::control::DEFAULT_PUBLIC_ROOMS.to_owned(),
            public_scopes: crate::store::control::DEFAULT_PUBLIC_SCOPES.to_owned(),
            created_at: self.now_ms(),
        };
        self.store().create_project(&project).await?;
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: Some(&project.id),
            actor: &access.actor,
            action: "project.created",
            target: Some(project.id.as_str()),
            meta,
            details: serde_json::json!({ "name": project.name, "public_access": public_access }),
        })
        .await;
        Ok(project)
    }

    /// Renames a project or changes its public access: the switch, the room pattern and
    /// the scopes of publishable-key tokens (admin; see [`super::public`]).
    pub async fn update_project(
        &self,
        access: &TenantAccess,
        project_id: &ProjectId,
        mut patch: ProjectPatch,
        meta: &RequestMeta,
    ) -> ControlResult<ProjectRow> {
        require(access, Role::Admin)?;
        if let Some(name) = &patch.name {
            patch.name = Some(check_name("project name", name)?);
        }
        if let Some(rooms) = &patch.public_rooms {
            super::public::PublicAccess::parse(rooms, "room:read")
                .map_err(ControlError::Invalid)?;
        }
        if let Some(scopes) = &patch.public_scopes {
            let parsed =
                super::public::PublicAccess::parse("*", scopes).map_err(ControlError::Invalid)?;
            patch.public_scopes = Some(parsed.scopes_text());
        }
        let project = self
            .store()
            .update_project(&access.tenant_id, project_id, &patch)
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: Some(project_id),
            actor: &access.actor,
            action: "project.updated",
            target: Some(project_id.as_str()),
            meta,
            details: serde_json::json!({
                "name": patch.name,
                "public_access": patch.public_access,
                "public_rooms": patch.public_rooms,
                "public_scopes": patch.public_scopes,
            }),
        })
        .await;
        Ok(project)
    }

    /// Deletes a project with its keys and rooms (admin). The caller closes its
    /// connections.
    pub async fn delete_project(
        &self,
        access: &TenantAccess,
        project_id: &ProjectId,
        meta: &RequestMeta,
    ) -> ControlResult<()> {
        require(access, Role::Admin)?;
        if !self
            .store()
            .delete_project(&access.tenant_id, project_id)
            .await?
        {
            return Err(ControlError::NotFound);
        }
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: None,
            actor: &access.actor,
            action: "project.deleted",
            target: Some(project_id.as_str()),
            meta,
            details: serde_json::json!({}),
        })
        .await;
        Ok(())
    }

    /// The tenant's members.
    pub async fn list_members(&self, access: &TenantAccess) -> ControlResult<Vec<MemberRow>> {
        Ok(self.store().list_members(&access.tenant_id).await?)
    }

    async fn member(&self, access: &TenantAccess, user_id: &UserId) -> ControlResult<MemberRow> {
        self.store()
            .list_members(&access.tenant_id)
            .await?
            .into_iter()
            .find(|m| &m.user_id == user_id)
            .ok_or(ControlError::NotFound)
    }

    async fn keeps_an_owner(&self, access: &TenantAccess, leaving: &UserId) -> ControlResult<()> {
        let others = self
            .store()
            .list_members(&access.tenant_id)
            .await?
            .into_iter()
            .filter(|m| m.role == Role::Owner && &m.user_id != leaving)
            .count();
        if others == 0 {
            return Err(ControlError::Conflict(
                "a tenant must keep at least one owner".to_owned(),
            ));
        }
        Ok(())
    }

    /// Changes a member's role (admin; owner roles only by an owner; the last owner
    /// stays).
    pub async fn set_member_role(
        &self,
        access: &TenantAccess,
        user_id: &UserId,
        role: Role,
        meta: &RequestMeta,
    ) -> ControlResult<MemberRow> {
        require(access, Role::Admin)?;
        let member = self.member(access, user_id).await?;
        if member.role == Role::Owner || role == Role::Owner {
            require(access, Role::Owner)?;
        }
        if member.role == Role::Owner && role != Role::Owner {
            self.keeps_an_owner(access, user_id).await?;
        }
        if !self
            .store()
            .set_member_role(&access.tenant_id, user_id, role)
            .await?
        {
            return Err(ControlError::NotFound);
        }
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: None,
            actor: &access.actor,
            action: "member.role_changed",
            target: Some(user_id.as_str()),
            meta,
            details: serde_json::json!({ "from": member.role.as_str(), "to": role.as_str() }),
        })
        .await;
        Ok(MemberRow { role, ..member })
    }

    /// Removes a member (admin; owners only by an owner; the last owner stays). Their
    /// personal access tokens for this tenant are revoked with it.
    pub async fn remove_member(
        &self,
        access: &TenantAccess,
        user_id: &UserId,
        meta: &RequestMeta,
    ) -> ControlResult<()> {
        // Anyone may leave; removing someone else needs admin.
        if user_id != &access.user.id {
            require(access, Role::Admin)?;
        }
        let member = self.member(access, user_id).await?;
        if member.role == Role::Owner {
            if user_id != &access.user.id {
                require(access, Role::Owner)?;
            }
            self.keeps_an_owner(access, user_id).await?;
        }
        if !self
            .store()
            .remove_member(&access.tenant_id, user_id, self.now_ms())
            .await?
        {
            return Err(ControlError::NotFound);
        }
        self.audit(AuditEvent {
            tenant_id: &access.tenant_id,
            project_id: None,
            actor: &access.actor,
            action: "member.removed",
            target: Some(user_id.as_str()),
            meta,
            details: serde_json::json!({}),
        })
        .await;
        Ok(())
    }

    /// A page of the audit log, newest first (admin).
    pub async fn audit_log(
        &self,
        access: &TenantAccess,
        before: Option<i64>,
        limit: u32,
    ) -> ControlResult<Vec<AuditRow>> {
        require(access, Role::Admin)?;
        Ok(self
            .store()
            .list_audit(&access.tenant_id, before, limit.clamp(1, MAX_AUDIT_PAGE))
            .await?)
    }

    /// Records that a room was deleted through the REST API.
    pub async fn audit_room_deleted(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        key_id: &str,
        room: &str,
        meta: &RequestMeta,
    ) {
        self.audit(AuditEvent {
            tenant_id,
            project_id: Some(project_id),
            actor: key_id,
            action: "room.deleted",
            target: Some(room),
            meta,
            details: serde_json::json!({}),
        })
        .await;
    }

    /// Writes a room action to the tenant's audit log (`room.read_only`,
    /// `room.connection_closed`, `room.restored`, `room.forked`, `room.version_named`)
    /// by `actor` (a key id or a user id), in `project`
    /// (tenant, project).
    pub async fn audit_room_action(
        &self,
        (tenant_id, project_id): (&TenantId, &ProjectId),
        actor: &str,
        action: &str,
        room: &str,
        details: serde_json::Value,
        meta: &RequestMeta,
    ) {
        self.audit(AuditEvent {
            tenant_id,
            project_id: Some(project_id),
            actor,
            action,
            target: Some(room),
            meta,
            details,
        })
        .await;
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::clock::SystemClock;
    use crate::control::ControlConfig;
    use crate::store::sqlite::SqliteStore;

    async fn user(plane: &ControlPlane, email: &str) -> (UserAuth, TenantId) {
        crate::control::test_support::signed_up(plane, email).await
    }

    #[tokio::test]
    async fn roles_scope_and_the_last_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let plane = ControlPlane::new(store, Arc::new(SystemClock), ControlConfig::default())
            .await
            .unwrap();
        let meta = RequestMeta::default();
        let (ada, ada_tenant) = user(&plane, "ada@example.com").await;
        let (bob, bob_tenant) = user(&plane, "bob@example.com").await;

        // Another tenant is invisible, not forbidden.
        assert!(matches!(
            plane.tenant_access(&bob, &ada_tenant, Role::Member).await,
            Err(ControlError::NotFound)
        ));
        let owner = plane
            .tenant_access(&ada, &ada_tenant, Role::Owner)
            .await
            .unwrap();
        let invited = plane
            .create_invitation(&owner, "BOB@example.com", Role::Member, &meta)
            .await
            .unwrap();
        // Not a member until Bob accepts.
        assert!(matches!(
            plane.tenant_access(&bob, &ada_tenant, Role::Member).await,
            Err(ControlError::NotFound)
        ));
        plane
            .accept_invitation(&bob, &invited.token, &meta)
            .await
            .unwrap();
        let bob_in_ada = plane
            .tenant_access(&bob, &ada_tenant, Role::Member)
            .await
            .unwrap();
        assert!(matches!(
            plane
                .create_project(&bob_in_ada, "prod", false, &meta)
                .await,
            Err(ControlError::Forbidden(_))
        ));
        assert!(matches!(
            plane.tenant_access(&bob, &ada_tenant, Role::Admin).await,
            Err(ControlError::Forbidden(_))
        ));
        // The only owner cannot step down or leave.
        assert!(matches!(
            plane
                .set_member_role(&owner, &ada.user.id, Role::Admin, &meta)
                .await,
            Err(ControlError::Conflict(_))
        ));
        assert!(matches!(
            plane.remove_member(&owner, &ada.user.id, &meta).await,
            Err(ControlError::Conflict(_))
        ));
        // A project of another tenant is a 404 through this tenant.
        let bob_own = plane
            .tenant_access(&bob, &bob_tenant, Role::Owner)
            .await
            .unwrap();
        let bobs = plane
            .create_project(&bob_own, "prod", false, &meta)
            .await
            .unwrap();
        assert!(matches!(
            plane.project(&owner, &bobs.id).await,
            Err(ControlError::NotFound)
        ));
        assert!(matches!(
            plane.delete_project(&owner, &bobs.id, &meta).await,
            Err(ControlError::NotFound)
        ));

        // A PAT reaches only its own tenant.
        let pat = plane
            .create_pat(&bob_tenant, &bob, "ci", None, &meta)
            .await
            .unwrap();
        let via_pat = plane
            .authenticate_pat(pat.plaintext.expose())
            .await
            .unwrap();
        assert!(plane
            .tenant_access(&via_pat, &bob_tenant, Role::Owner)
            .await
            .is_ok());
        assert!(matches!(
            plane
                .tenant_access(&via_pat, &ada_tenant, Role::Member)
                .await,
            Err(ControlError::NotFound)
        ));
        // Removing Bob from Ada's tenant leaves his own tenant alone.
        plane
            .remove_member(&owner, &bob.user.id, &meta)
            .await
            .unwrap();
        assert!(plane.authenticate_pat(pat.plaintext.expose()).await.is_ok());
        let actions: Vec<String> = plane
            .audit_log(&owner, None, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            actions,
            [
                "member.removed",
                "member.joined",
                "member.invited",
                "account.created"
            ]
        );
    }
}
