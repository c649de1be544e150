//! [`ControlStore`], once for both backends: the control plane's rows (migration
//! `0002_control.sql`), in SQL both dialects run as written. Compiled once per backend
//! (see `store/sql/mod.rs`); the shared storage suite (`store/suite`) holds both
//! to the same behaviour.
//!
//! Writes of several statements run in one transaction. On SQLite its first statement
//! writes, so SQLite takes its write lock at once (waiting on `busy_timeout`) instead of
//! failing on a late read-to-write upgrade; on Postgres (READ COMMITTED) each statement
//! sees what committed before it, and conditional UPDATEs re-check their WHERE after
//! waiting on a concurrent writer's row lock.

use async_trait::async_trait;
use sqlx::Row;

use super::rows::{
    all, audit_row, key_row, member_row, one, project_row, session_row, signing_key_row,
    tenant_row, user_row,
};
use super::{inserts, DbRow, Store};
use crate::ids::{KeyId, ProjectId, TenantId, UserId};
use crate::store::control::{
    AuditRow, ControlStore, KeyFilter, KeyRow, MemberRow, NewAccount, ProjectPatch, ProjectRow,
    Role, SessionRow, SigningKeyRow, TenantRow, UserRow,
};
use crate::store::rows::{conflict, stored};
use crate::store::StoreResult;

const USER_COLUMNS: &str = "u.id, u.email, u.password_hash, u.created_at";
const PROJECT_COLUMNS: &str =
    "id, tenant_id, name, public_access, public_rooms, public_scopes, created_at";
const KEY_COLUMNS: &str = "id, tenant_id, project_id, user_id, kind, name, display_prefix, \
                           created_at, last_used_at, expires_at, revoked_at";

#[async_trait]
impl ControlStore for Store {
    // --- users and sessions ---

    async fn create_account(&self, account: &NewAccount) -> StoreResult<()> {
        let NewAccount {
            user,
            tenant,
            project,
        } = account;
        let mut tx = self.pool.begin().await?;
        inserts::user(user)
            .execute(&mut *tx)
            .await
            .map_err(conflict("email already registered"))?;
        inserts::tenant(tenant)
            .execute(&mut *tx)
            .await
            .map_err(conflict("tenant already exists"))?;
        inserts::member(&tenant.id, &user.id, Role::Owner, user.created_at)
            .execute(&mut *tx)
            .await?;
        // The first project belongs to the new tenant by definition, whatever
        // `project.tenant_id` says: it must never land in someone else's tenant.
        inserts::project(project, &tenant.id)
            .execute(&mut *tx)
            .await
            .map_err(conflict("project already exists"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        one(row, user_row)
    }

    async fn user_by_id(&self, user_id: &UserId) -> StoreResult<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        ))
        .bind(user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, user_row)
    }

    async fn set_password_hash(&self, user_id: &UserId, hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_session(&self, session: &SessionRow) -> StoreResult<()> {
        inserts::session(session)
            .execute(&self.pool)
            .await
            .map_err(conflict("session already exists"))?;
        Ok(())
    }

    async fn session_user(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<Option<(UserRow, Option<i64>)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.last_seen_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = $1 AND s.expires_at > $2"
        ))
        .bind(id_hash.as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((user_row(&row)?, row.try_get("last_seen_at")?)))
            .transpose()
    }

    async fn touch_session(&self, id_hash: &[u8; 32], at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(at)
            .bind(id_hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_sessions(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<SessionRow>> {
        let rows = sqlx::query(
            "SELECT id_hash, user_id, created_at, expires_at, user_agent, ip, last_seen_at
             FROM sessions WHERE user_id = $1 AND expires_at > $2
             ORDER BY created_at DESC, id_hash",
        )
        .bind(user_id.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, session_row)
    }

    async fn delete_other_sessions(&self, user_id: &UserId, keep: &[u8; 32]) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id.as_str())
            .bind(keep.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn delete_session(&self, id_hash: &[u8; 32]) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // --- tenants and members ---

    async fn tenant(&self, tenant_id: &TenantId) -> StoreResult<Option<TenantRow>> {
        let row = sqlx::query("SELECT id, name, plan, created_at FROM tenants WHERE id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        one(row, tenant_row)
    }

    async fn tenants_of_user(&self, user_id: &UserId) -> StoreResult<Vec<(TenantRow, Role)>> {
        // "Oldest" is the membership: the tenant a user signed up with comes first.
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.plan, t.created_at, m.role
             FROM members m JOIN tenants t ON t.id = m.tenant_id
             WHERE m.user_id = $1 ORDER BY m.created_at, t.id",
        )
        .bind(user_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let decode = |row: &DbRow| -> Result<_, sqlx::Error> {
            let role = stored("role", row.try_get("role")?, Role::parse)?;
            Ok((tenant_row(row)?, role))
        };
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }

    async fn member_role(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
    ) -> StoreResult<Option<Role>> {
        let row = sqlx::query("SELECT role FROM members WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id.as_str())
            .bind(user_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|row| stored("role", row.try_get("role")?, Role::parse))
            .transpose()?)
    }

    async fn list_members(&self, tenant_id: &TenantId) -> StoreResult<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT m.tenant_id, m.user_id, u.email, m.role, m.created_at
             FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.tenant_id = $1 ORDER BY m.created_at, m.user_id",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        all(&rows, member_row)
    }

    async fn add_member(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        role: Role,
        at: i64,
    ) -> StoreResult<()> {
        inserts::member(tenant_id, user_id, role, at)
            .execute(&self.pool)
            .await
            .map_err(conflict("already a member"))?;
        Ok(())
    }

    async fn set_member_role(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        role: Role,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE members SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(tenant_id.as_str())
                .bind(user_id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_member(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        at: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM members WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id.as_str())
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE tenant_id = $2 AND user_id = $3 AND kind = 'pat' AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(tenant_id.as_str())
        .bind(user_id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    // --- projects ---

    async fn create_project(&self, project: &ProjectRow) -> StoreResult<()> {
        inserts::project(project, &project.tenant_id)
            .execute(&self.pool)
            .await
            .map_err(conflict("a project with this name already exists"))?;
        Ok(())
    }

    async fn list_projects(&self, tenant_id: &TenantId) -> StoreResult<Vec<ProjectRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        all(&rows, project_row)
    }

    async fn project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> StoreResult<Option<ProjectRow>> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(project_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, project_row)
    }

    async fn update_project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        patch: &ProjectPatch,
    ) -> StoreResult<Option<ProjectRow>> {
        let row = sqlx::query(&format!(
            "UPDATE projects
             SET name = COALESCE($1, name), public_access = COALESCE($2, public_access),
                 public_rooms = COALESCE($5, public_rooms),
                 public_scopes = COALESCE($6, public_scopes)
             WHERE tenant_id = $3 AND id = $4
             RETURNING {PROJECT_COLUMNS}"
        ))
        .bind(patch.name.as_deref())
        .bind(patch.public_access)
        .bind(tenant_id.as_str())
        .bind(project_id.as_str())
        .bind(patch.public_rooms.as_deref())
        .bind(patch.public_scopes.as_deref())
        .fetch_optional(&self.pool)
        .await
        .map_err(conflict("a project with this name already exists"))?;
        one(row, project_row)
    }

    async fn delete_project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Children first, explicitly (not through ON DELETE CASCADE): rooms are not
        // foreign-keyed to projects, and this reads the same on every backend. Scoping
        // the keys by tenant too means a wrong tenant touches nothing before the
        // project's own DELETE finds no row and rolls back.
        sqlx::query("DELETE FROM api_keys WHERE tenant_id = $1 AND project_id = $2")
            .bind(tenant_id.as_str())
            .bind(project_id.as_str())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM projects WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id.as_str())
            .bind(project_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for sql in [
            "DELETE FROM room_updates WHERE room_id IN (SELECT id FROM rooms WHERE project_id = $1)",
            "DELETE FROM room_history WHERE room_id IN (SELECT id FROM rooms WHERE project_id = $1)",
            "DELETE FROM room_checkpoints WHERE room_id IN (SELECT id FROM rooms WHERE project_id = $1)",
            "DELETE FROM room_version_names WHERE room_id IN (SELECT id FROM rooms WHERE project_id = $1)",
            "DELETE FROM room_snapshots WHERE room_id IN (SELECT id FROM rooms WHERE project_id = $1)",
            "DELETE FROM rooms WHERE project_id = $1",
        ] {
            sqlx::query(sql)
                .bind(project_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    // --- keys ---

    async fn insert_key(&self, key: &KeyRow, hash: &[u8; 32]) -> StoreResult<()> {
        inserts::api_key(key, hash)
            .execute(&self.pool)
            .await
            .map_err(conflict("key already exists"))?;
        Ok(())
    }

    async fn key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"
        ))
        .bind(hash.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        one(row, key_row)
    }

    async fn key(&self, tenant_id: &TenantId, key_id: &KeyId) -> StoreResult<Option<KeyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(key_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, key_row)
    }

    async fn list_keys(
        &self,
        tenant_id: &TenantId,
        filter: &KeyFilter,
    ) -> StoreResult<Vec<KeyRow>> {
        let (condition, id) = match filter {
            KeyFilter::Project(project_id) => ("project_id = $2", project_id.as_str()),
            KeyFilter::PatsOf(user_id) => ("user_id = $2 AND kind = 'pat'", user_id.as_str()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND {condition}
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(tenant_id.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, key_row)
    }

    async fn revoke_key(
        &self,
        tenant_id: &TenantId,
        key_id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<KeyRow>> {
        // COALESCE keeps the first revocation time: revoking twice is a no-op.
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1)
             WHERE tenant_id = $2 AND id = $3 RETURNING {KEY_COLUMNS}"
        ))
        .bind(at)
        .bind(tenant_id.as_str())
        .bind(key_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, key_row)
    }

    async fn expire_key(
        &self,
        tenant_id: &TenantId,
        key_id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<KeyRow>> {
        // CASE rather than MIN/LEAST, which differ between SQLite and Postgres.
        let row = sqlx::query(&format!(
            "UPDATE api_keys
             SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $1 THEN $2 ELSE expires_at END
             WHERE tenant_id = $3 AND id = $4 RETURNING {KEY_COLUMNS}"
        ))
        .bind(at)
        .bind(at)
        .bind(tenant_id.as_str())
        .bind(key_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        one(row, key_row)
    }

    async fn touch_key(&self, key_id: &KeyId, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(key_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- token signing keys ---

    async fn insert_signing_key(&self, key: &SigningKeyRow) -> StoreResult<()> {
        inserts::signing_key(key)
            .execute(&self.pool)
            .await
            .map_err(conflict("signing key id already exists"))?;
        Ok(())
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, secret, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        all(&rows, signing_key_row)
    }

    async fn retire_signing_keys_except(&self, keep_kid: &str, at: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE kid <> $2 AND retired_at IS NULL",
        )
        .bind(at)
        .bind(keep_kid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_signing_key_secret(&self, kid: &str, secret: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE signing_keys SET secret = $1 WHERE kid = $2")
            .bind(secret)
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // --- audit log ---

    async fn append_audit(&self, event: &AuditRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, project_id, actor, action, target, ip, details, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.tenant_id.as_str())
        .bind(event.project_id.as_ref().map(ProjectId::as_str))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.target.as_deref())
        .bind(event.ip.as_deref())
        .bind(&event.details)
        .bind(event.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant_id: &TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditRow>> {
        // No cursor is "before everything" (no `$2 IS NULL OR …`, which Postgres cannot
        // type without a cast).
        let rows = sqlx::query(
            "SELECT id, tenant_id, project_id, actor, action, target, ip, details, at
             FROM audit_log WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(tenant_id.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        all(&rows, audit_row)
    }
}
