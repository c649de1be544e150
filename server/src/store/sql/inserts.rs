//! The INSERT of each control-plane row, written once for the runtime writes
//! (`control.rs`) and the copy's import (`export.rs`): a query with the row bound, for
//! the caller to execute where it needs (and to map a unique violation as it needs).

use super::Db;
use crate::ids::{ProjectId, TenantId, UserId};
use crate::store::control::{KeyRow, ProjectRow, Role, SigningKeyRow, TenantRow, UserRow};

/// A query on this backend, with its arguments bound.
pub(super) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

pub(super) fn user(user: &UserRow) -> Query<'_> {
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.created_at)
}

pub(super) fn session(session: &crate::store::export::SessionRow) -> Query<'_> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, user_agent, ip,
                               last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(session.id_hash.as_slice())
    .bind(session.user_id.as_str())
    .bind(session.created_at)
    .bind(session.expires_at)
    .bind(session.user_agent.as_deref())
    .bind(session.ip.as_deref())
    .bind(session.last_seen_at)
}

pub(super) fn tenant(tenant: &TenantRow) -> Query<'_> {
    sqlx::query("INSERT INTO tenants (id, name, plan, created_at) VALUES ($1, $2, $3, $4)")
        .bind(tenant.id.as_str())
        .bind(&tenant.name)
        .bind(&tenant.plan)
        .bind(tenant.created_at)
}

pub(super) fn member<'q>(
    tenant_id: &'q TenantId,
    user_id: &'q UserId,
    role: Role,
    created_at: i64,
) -> Query<'q> {
    sqlx::query(
        "INSERT INTO members (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant_id.as_str())
    .bind(user_id.as_str())
    .bind(role.as_str())
    .bind(created_at)
}

/// `project` in the tenant `tenant_id` (which the caller chooses: a new account's first
/// project goes into the new tenant whatever `project.tenant_id` says).
pub(super) fn project<'q>(project: &'q ProjectRow, tenant_id: &'q TenantId) -> Query<'q> {
    sqlx::query(
        "INSERT INTO projects (id, tenant_id, name, public_access, public_rooms, public_scopes,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(project.id.as_str())
    .bind(tenant_id.as_str())
    .bind(&project.name)
    .bind(project.public_access)
    .bind(&project.public_rooms)
    .bind(&project.public_scopes)
    .bind(project.created_at)
}

pub(super) fn api_key<'q>(key: &'q KeyRow, hash: &'q [u8]) -> Query<'q> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, project_id, user_id, kind, name, display_prefix,
             created_at, last_used_at, expires_at, revoked_at, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(key.id.as_str())
    .bind(key.tenant_id.as_str())
    .bind(key.project_id.as_ref().map(ProjectId::as_str))
    .bind(key.user_id.as_ref().map(UserId::as_str))
    .bind(key.kind.as_str())
    .bind(&key.name)
    .bind(&key.display_prefix)
    .bind(key.created_at)
    .bind(key.last_used_at)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(hash)
}

pub(super) fn signing_key(key: &SigningKeyRow) -> Query<'_> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, secret, created_at, retired_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.kid)
    .bind(key.secret.as_slice())
    .bind(key.created_at)
    .bind(key.retired_at)
}
