//! [`Export`], once for both backends; compiled once per backend (see
//! `store/sql/mod.rs`). An export reads inside one snapshot transaction
//! ([`Dialect::BEGIN_SNAPSHOT`]: a deferred transaction's WAL snapshot on SQLite,
//! REPEATABLE READ, READ ONLY on Postgres), an import writes inside one
//! [`Dialect::BEGIN_IMPORT`] transaction; the bulk inserts and the id counters are the
//! dialect's.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{Row, Transaction};

use super::invitations::{invitation_row, outbox_row, security_event_row, INVITATION_COLUMNS};
use super::rows::{
    all, audit_row, member_row, monthly_user, project_hour, project_row, room_hour, session_row,
    signing_key_row, stored_key, tenant_row, usage_flush, user_row,
};
use super::{inserts, Db, DbRow, Store};
use crate::ids::{ProjectId, UserId};
use crate::store::dialect::Dialect;
use crate::store::export::{
    ControlRows, Export, ExportTx, ImportTx, RoomContents, RoomEntry, SnapshotRow,
    StoredInvitation, StoredKey, Table, UsageRows,
};
use crate::store::{RoomId, StoreResult};

const KEY_COLUMNS: &str = "id, tenant_id, project_id, user_id, kind, name, display_prefix, \
                           created_at, last_used_at, expires_at, revoked_at, hash";

/// An export or import transaction.
struct Tx(Transaction<'static, Db>);

#[async_trait]
impl Export for Store {
    async fn export(&self) -> StoreResult<Box<dyn ExportTx>> {
        Ok(Box::new(Tx(self.begin_snapshot().await?)))
    }

    async fn import(&self) -> StoreResult<Box<dyn ImportTx>> {
        let tx = match Store::BEGIN_IMPORT {
            Some(begin) => self.pool.begin_with(begin).await?,
            None => self.pool.begin().await?,
        };
        Ok(Box::new(Tx(tx)))
    }
}

impl Tx {
    async fn count(&mut self, table: Table) -> StoreResult<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        Ok(sqlx::query(&sql)
            .fetch_one(&mut *self.0)
            .await?
            .try_get(0)?)
    }

    async fn fetch(&mut self, sql: &str) -> StoreResult<Vec<DbRow>> {
        Ok(sqlx::query(sql).fetch_all(&mut *self.0).await?)
    }
}

#[async_trait]
impl ExportTx for Tx {
    async fn count(&mut self, table: Table) -> StoreResult<i64> {
        Tx::count(self, table).await
    }

    async fn control(&mut self) -> StoreResult<ControlRows> {
        let users = self
            .fetch("SELECT id, email, password_hash, created_at FROM users ORDER BY id")
            .await?;
        let sessions = self
            .fetch("SELECT id_hash, user_id, created_at, expires_at, user_agent, ip, last_seen_at FROM sessions ORDER BY id_hash")
            .await?;
        let tenants = self
            .fetch("SELECT id, name, plan, created_at FROM tenants ORDER BY id")
            .await?;
        let members = self
            .fetch(
                "SELECT m.tenant_id, m.user_id, u.email, m.role, m.created_at
                 FROM members m JOIN users u ON u.id = m.user_id
                 ORDER BY m.tenant_id, m.user_id",
            )
            .await?;
        let projects = self
            .fetch(
                "SELECT id, tenant_id, name, public_access, public_rooms, public_scopes, created_at
                 FROM projects ORDER BY id",
            )
            .await?;
        let keys = self
            .fetch(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))
            .await?;
        let signing_keys = self
            .fetch("SELECT kid, secret, created_at, retired_at FROM signing_keys ORDER BY kid")
            .await?;
        let audit = self
            .fetch(
                "SELECT id, tenant_id, project_id, actor, action, target, ip, details, at
                 FROM audit_log ORDER BY id",
            )
            .await?;
        let invitations = self
            .fetch(&format!(
                "SELECT {INVITATION_COLUMNS}, token_hash FROM invitations ORDER BY id"
            ))
            .await?;
        let security_log = self
            .fetch("SELECT id, user_id, action, ip, details, at FROM security_log ORDER BY id")
            .await?;
        let outbox = self
            .fetch("SELECT id, recipient, subject, body, created_at FROM email_outbox ORDER BY id")
            .await?;
        Ok(ControlRows {
            invitations: invitations
                .iter()
                .map(|row| {
                    Ok(StoredInvitation {
                        invitation: invitation_row(row)?,
                        token_hash: row.try_get("token_hash")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?,
            security_log: all(&security_log, security_event_row)?,
            outbox: all(&outbox, outbox_row)?,
            users: all(&users, user_row)?,
            sessions: all(&sessions, session_row)?,
            tenants: all(&tenants, tenant_row)?,
            members: all(&members, member_row)?,
            projects: all(&projects, project_row)?,
            keys: all(&keys, stored_key)?,
            signing_keys: all(&signing_keys, signing_key_row)?,
            audit: all(&audit, audit_row)?,
        })
    }

    async fn usage(&mut self) -> StoreResult<UsageRows> {
        let flushes = self
            .fetch("SELECT flush_id, applied_at FROM usage_flushes ORDER BY flush_id")
            .await?;
        let rooms = self
            .fetch(
                "SELECT project_id, room, hour_start, messages_in, messages_out, bytes_in,
                        bytes_out, connection_ms, peak_connections, active, storage_bytes
                 FROM usage_hourly ORDER BY project_id, hour_start, room",
            )
            .await?;
        let projects = self
            .fetch(
                "SELECT project_id, hour_start, peak_connections FROM usage_project_hourly
                 ORDER BY project_id, hour_start",
            )
            .await?;
        let users = self
            .fetch(
                "SELECT project_id, month_start, user_id FROM usage_users
                 ORDER BY project_id, month_start, user_id",
            )
            .await?;
        Ok(UsageRows {
            flushes: all(&flushes, usage_flush)?,
            rooms: all(&rooms, room_hour)?,
            projects: all(&projects, project_hour)?,
            users: all(&users, monthly_user)?,
        })
    }

    async fn rooms(&mut self) -> StoreResult<Vec<RoomEntry>> {
        let rows = self
            .fetch("SELECT id, project_id, name, created_at, read_only FROM rooms ORDER BY id")
            .await?;
        all(&rows, |row| {
            Ok(RoomEntry {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                read_only: row.try_get("read_only")?,
            })
        })
    }

    async fn room(&mut self, room_id: RoomId) -> StoreResult<RoomContents> {
        let snapshot =
            sqlx::query("SELECT upto_seq, data, updated_at FROM room_snapshots WHERE room_id = $1")
                .bind(room_id)
                .fetch_optional(&mut *self.0)
                .await?
                .map(|row| -> Result<_, sqlx::Error> {
                    Ok(SnapshotRow {
                        upto_seq: row.try_get("upto_seq")?,
                        data: Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
                        updated_at: row.try_get("updated_at")?,
                    })
                })
                .transpose()?;
        let updates =
            sqlx::query("SELECT seq, data FROM room_updates WHERE room_id = $1 ORDER BY seq")
                .bind(room_id)
                .fetch_all(&mut *self.0)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get("seq")?,
                        Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()?;
        Ok(RoomContents { snapshot, updates })
    }
}

#[async_trait]
impl ImportTx for Tx {
    async fn count(&mut self, table: Table) -> StoreResult<i64> {
        Tx::count(self, table).await
    }

    async fn control(&mut self, rows: &ControlRows) -> StoreResult<()> {
        let tx = &mut *self.0;
        for user in &rows.users {
            inserts::user(user).execute(&mut *tx).await?;
        }
        for session in &rows.sessions {
            inserts::session(session).execute(&mut *tx).await?;
        }
        for tenant in &rows.tenants {
            inserts::tenant(tenant).execute(&mut *tx).await?;
        }
        for member in &rows.members {
            inserts::member(
                &member.tenant_id,
                &member.user_id,
                member.role,
                member.created_at,
            )
            .execute(&mut *tx)
            .await?;
        }
        for project in &rows.projects {
            inserts::project(project, &project.tenant_id)
                .execute(&mut *tx)
                .await?;
        }
        for StoredKey { key, hash } in &rows.keys {
            inserts::api_key(key, hash).execute(&mut *tx).await?;
        }
        for key in &rows.signing_keys {
            inserts::signing_key(key).execute(&mut *tx).await?;
        }
        for event in &rows.audit {
            sqlx::query(
                "INSERT INTO audit_log (id, tenant_id, project_id, actor, action, target, ip, details, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(event.id)
            .bind(event.tenant_id.as_str())
            .bind(event.project_id.as_ref().map(ProjectId::as_str))
            .bind(&event.actor)
            .bind(&event.action)
            .bind(event.target.as_deref())
            .bind(event.ip.as_deref())
            .bind(&event.details)
            .bind(event.at)
            .execute(&mut *tx)
            .await?;
        }
        for stored in &rows.invitations {
            let i = &stored.invitation;
            sqlx::query(
                "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by,
                     created_at, expires_at, accepted_at, accepted_by, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(i.id.as_str())
            .bind(i.tenant_id.as_str())
            .bind(&i.email)
            .bind(i.role.as_str())
            .bind(stored.token_hash.as_slice())
            .bind(i.invited_by.as_str())
            .bind(i.created_at)
            .bind(i.expires_at)
            .bind(i.accepted_at)
            .bind(i.accepted_by.as_ref().map(UserId::as_str))
            .bind(i.revoked_at)
            .execute(&mut *tx)
            .await?;
        }
        for event in &rows.security_log {
            sqlx::query(
                "INSERT INTO security_log (id, user_id, action, ip, details, at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.id)
            .bind(event.user_id.as_str())
            .bind(&event.action)
            .bind(event.ip.as_deref())
            .bind(&event.details)
            .bind(event.at)
            .execute(&mut *tx)
            .await?;
        }
        for email in &rows.outbox {
            sqlx::query(
                "INSERT INTO email_outbox (id, recipient, subject, body, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(email.id)
            .bind(&email.recipient)
            .bind(&email.subject)
            .bind(&email.body)
            .bind(email.created_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn usage(&mut self, rows: &UsageRows) -> StoreResult<()> {
        Store::import_usage(&mut *self.0, rows).await
    }

    async fn room(&mut self, room: &RoomEntry, contents: &RoomContents) -> StoreResult<()> {
        let tx = &mut *self.0;
        sqlx::query(
            "INSERT INTO rooms (id, project_id, name, created_at, read_only)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(room.id)
        .bind(&room.project_id)
        .bind(&room.name)
        .bind(room.created_at)
        .bind(room.read_only)
        .execute(&mut *tx)
        .await?;
        if let Some(snapshot) = &contents.snapshot {
            sqlx::query(
                "INSERT INTO room_snapshots (room_id, upto_seq, data, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(room.id)
            .bind(snapshot.upto_seq)
            .bind(snapshot.data.as_ref())
            .bind(snapshot.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        Store::import_log(&mut *tx, room.id, &contents.updates).await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let mut tx = self.0;
        Store::advance_sequences(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
