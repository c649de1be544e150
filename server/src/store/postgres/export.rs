//! [`Export`] on Postgres: a REPEATABLE READ, READ ONLY transaction (one snapshot) for
//! exports, a plain transaction for imports, with each room's log inserted in one
//! statement.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::docs::READ_SNAPSHOT;
use super::rows::{
    all, audit_row, key_row, member_row, monthly_user, project_hour, project_row, room_hour,
    signing_key_row, tenant_row, usage_flush, user_row,
};
use super::PostgresStore;
use crate::ids::{ProjectId, UserId};
use crate::store::export::{
    ControlRows, Export, ExportTx, ImportTx, RoomContents, RoomEntry, SessionRow, SnapshotRow,
    StoredKey, Table, UsageRows,
};
use crate::store::usage::RoomHour;
use crate::store::{RoomId, StoreResult};

const KEY_COLUMNS: &str = "id, tenant_id, project_id, user_id, kind, name, display_prefix, \
                           created_at, last_used_at, expires_at, revoked_at, hash";

/// An export or import transaction.
struct PgTx(Transaction<'static, Postgres>);

#[async_trait]
impl Export for PostgresStore {
    async fn export(&self) -> StoreResult<Box<dyn ExportTx>> {
        Ok(Box::new(PgTx(self.pool.begin_with(READ_SNAPSHOT).await?)))
    }

    async fn import(&self) -> StoreResult<Box<dyn ImportTx>> {
        Ok(Box::new(PgTx(self.pool.begin().await?)))
    }
}

impl PgTx {
    async fn count(&mut self, table: Table) -> StoreResult<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        Ok(sqlx::query(&sql)
            .fetch_one(&mut *self.0)
            .await?
            .try_get(0)?)
    }

    async fn fetch(&mut self, sql: &str) -> StoreResult<Vec<PgRow>> {
        Ok(sqlx::query(sql).fetch_all(&mut *self.0).await?)
    }
}

#[async_trait]
impl ExportTx for PgTx {
    async fn count(&mut self, table: Table) -> StoreResult<i64> {
        PgTx::count(self, table).await
    }

    async fn control(&mut self) -> StoreResult<ControlRows> {
        let users = self
            .fetch("SELECT id, email, password_hash, created_at FROM users ORDER BY id")
            .await?;
        let sessions = self
            .fetch("SELECT id_hash, user_id, created_at, expires_at FROM sessions ORDER BY id_hash")
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
                "SELECT id, tenant_id, name, public_access, created_at FROM projects ORDER BY id",
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
        Ok(ControlRows {
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
            .fetch("SELECT id, project_id, name, created_at FROM rooms ORDER BY id")
            .await?;
        all(&rows, |row| {
            Ok(RoomEntry {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
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

fn session_row(row: &PgRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id_hash: row.try_get("id_hash")?,
        user_id: UserId::from_db(row.try_get("user_id")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn stored_key(row: &PgRow) -> Result<StoredKey, sqlx::Error> {
    Ok(StoredKey {
        key: key_row(row)?,
        hash: row.try_get("hash")?,
    })
}

#[async_trait]
impl ImportTx for PgTx {
    async fn count(&mut self, table: Table) -> StoreResult<i64> {
        PgTx::count(self, table).await
    }

    async fn control(&mut self, rows: &ControlRows) -> StoreResult<()> {
        let tx = &mut *self.0;
        for user in &rows.users {
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user.id.as_str())
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for session in &rows.sessions {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(session.id_hash.as_slice())
            .bind(session.user_id.as_str())
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await?;
        }
        for tenant in &rows.tenants {
            sqlx::query("INSERT INTO tenants (id, name, plan, created_at) VALUES ($1, $2, $3, $4)")
                .bind(tenant.id.as_str())
                .bind(&tenant.name)
                .bind(&tenant.plan)
                .bind(tenant.created_at)
                .execute(&mut *tx)
                .await?;
        }
        for member in &rows.members {
            sqlx::query(
                "INSERT INTO members (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(member.tenant_id.as_str())
            .bind(member.user_id.as_str())
            .bind(member.role.as_str())
            .bind(member.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for project in &rows.projects {
            sqlx::query(
                "INSERT INTO projects (id, tenant_id, name, public_access, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(project.id.as_str())
            .bind(project.tenant_id.as_str())
            .bind(&project.name)
            .bind(project.public_access)
            .bind(project.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for StoredKey { key, hash } in &rows.keys {
            sqlx::query(&format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
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
            .bind(hash.as_slice())
            .execute(&mut *tx)
            .await?;
        }
        for key in &rows.signing_keys {
            sqlx::query(
                "INSERT INTO signing_keys (kid, secret, created_at, retired_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&key.kid)
            .bind(key.secret.as_slice())
            .bind(key.created_at)
            .bind(key.retired_at)
            .execute(&mut *tx)
            .await?;
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
        Ok(())
    }

    async fn usage(&mut self, rows: &UsageRows) -> StoreResult<()> {
        // One statement per table (these tables grow with rooms × hours).
        let tx = &mut *self.0;
        let UsageRows {
            flushes,
            rooms: r,
            projects: p,
            users: u,
        } = rows;
        if !flushes.is_empty() {
            sqlx::query(
                "INSERT INTO usage_flushes (flush_id, applied_at)
                 SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[])",
            )
            .bind(
                flushes
                    .iter()
                    .map(|f| f.flush_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(flushes.iter().map(|f| f.applied_at).collect::<Vec<i64>>())
            .execute(&mut *tx)
            .await?;
        }
        if !r.is_empty() {
            let col = |f: fn(&RoomHour) -> i64| r.iter().map(f).collect::<Vec<i64>>();
            sqlx::query(
                "INSERT INTO usage_hourly (project_id, room, hour_start, messages_in,
                     messages_out, bytes_in, bytes_out, connection_ms, peak_connections,
                     active, storage_bytes)
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[],
                     $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[],
                     $10::BOOLEAN[], $11::BIGINT[])",
            )
            .bind(r.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
            .bind(r.iter().map(|x| x.room.as_str()).collect::<Vec<_>>())
            .bind(col(|x| x.hour_start))
            .bind(col(|x| x.messages_in))
            .bind(col(|x| x.messages_out))
            .bind(col(|x| x.bytes_in))
            .bind(col(|x| x.bytes_out))
            .bind(col(|x| x.connection_ms))
            .bind(col(|x| x.peak_connections))
            .bind(r.iter().map(|x| x.active).collect::<Vec<bool>>())
            .bind(
                r.iter()
                    .map(|x| x.storage_bytes)
                    .collect::<Vec<Option<i64>>>(),
            )
            .execute(&mut *tx)
            .await?;
        }
        if !p.is_empty() {
            sqlx::query(
                "INSERT INTO usage_project_hourly (project_id, hour_start, peak_connections)
                 SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[])",
            )
            .bind(p.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
            .bind(p.iter().map(|x| x.hour_start).collect::<Vec<i64>>())
            .bind(p.iter().map(|x| x.peak_connections).collect::<Vec<i64>>())
            .execute(&mut *tx)
            .await?;
        }
        if !u.is_empty() {
            sqlx::query(
                "INSERT INTO usage_users (project_id, month_start, user_id)
                 SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[])",
            )
            .bind(u.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
            .bind(u.iter().map(|x| x.month_start).collect::<Vec<i64>>())
            .bind(u.iter().map(|x| x.user_id.as_str()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn room(&mut self, room: &RoomEntry, contents: &RoomContents) -> StoreResult<()> {
        let tx = &mut *self.0;
        sqlx::query("INSERT INTO rooms (id, project_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(room.id)
            .bind(&room.project_id)
            .bind(&room.name)
            .bind(room.created_at)
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
        if !contents.updates.is_empty() {
            let seqs: Vec<i64> = contents.updates.iter().map(|(seq, _)| *seq).collect();
            let data: Vec<&[u8]> = contents.updates.iter().map(|(_, d)| d.as_ref()).collect();
            sqlx::query(
                "INSERT INTO room_updates (seq, room_id, data)
                 SELECT u.seq, $2, u.data FROM UNNEST($1::BIGINT[], $3::BYTEA[]) AS u (seq, data)",
            )
            .bind(&seqs)
            .bind(room.id)
            .bind(&data)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let mut tx = self.0;
        // Explicit ids do not advance identity sequences: move each past the largest id
        // imported. The log's must also pass every snapshot's `upto_seq` (the rows it
        // covered may be gone): it is the snapshot's version, which every compaction must
        // raise with a newer seq (new updates sorting before it would never be compacted).
        // `setval(…, n, false)`: the next value handed out is n.
        for sql in [
            "SELECT setval(pg_get_serial_sequence('rooms', 'id'),
                           COALESCE((SELECT MAX(id) FROM rooms), 0) + 1, false)",
            "SELECT setval(pg_get_serial_sequence('audit_log', 'id'),
                           COALESCE((SELECT MAX(id) FROM audit_log), 0) + 1, false)",
            "SELECT setval(pg_get_serial_sequence('room_updates', 'seq'),
                           GREATEST(COALESCE((SELECT MAX(seq) FROM room_updates), 0),
                                    COALESCE((SELECT MAX(upto_seq) FROM room_snapshots), 0)) + 1,
                           false)",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
