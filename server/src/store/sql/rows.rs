//! Row decoders of the shared query set: a database row to the store's row types
//! (control plane, usage, and the copy's extra rows), plus `all` and `one`, which apply a
//! decoder to many rows or to an optional one. Compiled once per backend (see
//! `store/sql/control.rs`), as `store::sqlite::rows` and `store::postgres::rows`: the code
//! is the same, only the row type differs, and both schemas use types that decode to the
//! same Rust types (`BIGINT`/`INTEGER` → `i64`, `BYTEA`/`BLOB` → bytes,
//! `BOOLEAN`/`INTEGER 0|1` → `bool`).

use super::DbRow;
use crate::ids::{KeyId, ProjectId, TenantId, UserId};
use crate::store::control::{
    AuditRow, KeyKindRow, KeyRow, MemberRow, ProjectRow, Role, SigningKeyRow, TenantRow, UserRow,
};
use crate::store::rows::stored;
use sqlx::Row as _;

pub(super) fn user_row(row: &DbRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: UserId::from_db(row.try_get("id")?),
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn tenant_row(row: &DbRow) -> Result<TenantRow, sqlx::Error> {
    Ok(TenantRow {
        id: TenantId::from_db(row.try_get("id")?),
        name: row.try_get("name")?,
        plan: row.try_get("plan")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn member_row(row: &DbRow) -> Result<MemberRow, sqlx::Error> {
    Ok(MemberRow {
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        user_id: UserId::from_db(row.try_get("user_id")?),
        email: row.try_get("email")?,
        role: stored("role", row.try_get("role")?, Role::parse)?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn project_row(row: &DbRow) -> Result<ProjectRow, sqlx::Error> {
    Ok(ProjectRow {
        id: ProjectId::from_db(row.try_get("id")?),
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        public_access: row.try_get("public_access")?,
        public_rooms: row.try_get("public_rooms")?,
        public_scopes: row.try_get("public_scopes")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn key_row(row: &DbRow) -> Result<KeyRow, sqlx::Error> {
    Ok(KeyRow {
        id: KeyId::from_db(row.try_get("id")?),
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        project_id: row
            .try_get::<Option<String>, _>("project_id")?
            .map(ProjectId::from_db),
        user_id: row
            .try_get::<Option<String>, _>("user_id")?
            .map(UserId::from_db),
        kind: stored("kind", row.try_get("kind")?, KeyKindRow::parse)?,
        name: row.try_get("name")?,
        display_prefix: row.try_get("display_prefix")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(super) fn signing_key_row(row: &DbRow) -> Result<SigningKeyRow, sqlx::Error> {
    Ok(SigningKeyRow {
        kid: row.try_get("kid")?,
        secret: row.try_get("secret")?,
        created_at: row.try_get("created_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

pub(super) fn audit_row(row: &DbRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        id: row.try_get("id")?,
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        project_id: row
            .try_get::<Option<String>, _>("project_id")?
            .map(ProjectId::from_db),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        ip: row.try_get("ip")?,
        details: row.try_get("details")?,
        at: row.try_get("at")?,
    })
}

pub(super) fn room_hour(row: &DbRow) -> Result<crate::store::usage::RoomHour, sqlx::Error> {
    Ok(crate::store::usage::RoomHour {
        project_id: row.try_get("project_id")?,
        room: row.try_get("room")?,
        hour_start: row.try_get("hour_start")?,
        messages_in: row.try_get("messages_in")?,
        messages_out: row.try_get("messages_out")?,
        bytes_in: row.try_get("bytes_in")?,
        bytes_out: row.try_get("bytes_out")?,
        connection_ms: row.try_get("connection_ms")?,
        peak_connections: row.try_get("peak_connections")?,
        active: row.try_get("active")?,
        storage_bytes: row.try_get("storage_bytes")?,
    })
}

pub(super) fn project_hour(row: &DbRow) -> Result<crate::store::usage::ProjectHour, sqlx::Error> {
    Ok(crate::store::usage::ProjectHour {
        project_id: row.try_get("project_id")?,
        hour_start: row.try_get("hour_start")?,
        peak_connections: row.try_get("peak_connections")?,
    })
}

pub(super) fn month_users(row: &DbRow) -> Result<crate::store::usage::MonthUsers, sqlx::Error> {
    Ok(crate::store::usage::MonthUsers {
        month_start: row.try_get("month_start")?,
        users: row.try_get("users")?,
    })
}

pub(super) fn monthly_user(row: &DbRow) -> Result<crate::store::usage::MonthlyUser, sqlx::Error> {
    Ok(crate::store::usage::MonthlyUser {
        project_id: row.try_get("project_id")?,
        month_start: row.try_get("month_start")?,
        user_id: row.try_get("user_id")?,
    })
}

pub(super) fn usage_flush(row: &DbRow) -> Result<crate::store::export::UsageFlushRow, sqlx::Error> {
    Ok(crate::store::export::UsageFlushRow {
        flush_id: row.try_get("flush_id")?,
        applied_at: row.try_get("applied_at")?,
    })
}

pub(super) fn session_row(row: &DbRow) -> Result<crate::store::export::SessionRow, sqlx::Error> {
    Ok(crate::store::export::SessionRow {
        id_hash: row.try_get("id_hash")?,
        user_id: UserId::from_db(row.try_get("user_id")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

pub(super) fn stored_key(row: &DbRow) -> Result<crate::store::export::StoredKey, sqlx::Error> {
    Ok(crate::store::export::StoredKey {
        key: key_row(row)?,
        hash: row.try_get("hash")?,
    })
}

/// Decodes every row with `decode`.
pub(super) fn all<T>(
    rows: &[DbRow],
    decode: fn(&DbRow) -> Result<T, sqlx::Error>,
) -> crate::store::StoreResult<Vec<T>> {
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Decodes the row, if any, with `decode`.
pub(super) fn one<T>(
    row: Option<DbRow>,
    decode: fn(&DbRow) -> Result<T, sqlx::Error>,
) -> crate::store::StoreResult<Option<T>> {
    Ok(row.as_ref().map(decode).transpose()?)
}
