//! Postgres's side of [`Dialect`]: the group commit as one `UNNEST` statement, array
//! binds for the other bulk writes (a statement per table, whatever the row count), and
//! identity sequences moved with `setval` after an import.

use bytes::Bytes;
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres, Row};

use super::PostgresStore;
use crate::store::dialect::Dialect;
use crate::store::export::UsageRows;
use crate::store::usage::{MonthlyUser, ProjectHour, RoomHour, UsageBatch};
use crate::store::{Append, RoomId, Seq, StoreResult};

/// Starts a read-only transaction that sees one snapshot of the database throughout.
const READ_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Appends a batch in one statement (one round trip, one commit, one WAL flush). The
/// seqs are drawn from the log's sequence first, sorted, and handed out in batch order,
/// so the i-th update gets the i-th smallest seq without relying on the order in which
/// Postgres evaluates defaults or returns rows.
const APPEND_SQL: &str = "
    WITH allocated AS (
        SELECT array_agg(seq ORDER BY seq) AS seqs
        FROM (
            SELECT nextval(pg_get_serial_sequence('room_updates', 'seq')) AS seq
            FROM generate_series(1, cardinality($1::BIGINT[]))
        ) AS drawn
    )
    INSERT INTO room_updates (seq, room_id, data, written_at, author, key_id, conn_id, via)
    SELECT allocated.seqs[u.n], u.room_id, u.data, u.written_at, u.author, u.key_id,
           u.conn_id, u.via
    FROM allocated,
         UNNEST($1::BIGINT[], $2::BYTEA[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                $6::BIGINT[], $7::TEXT[])
             WITH ORDINALITY AS u (room_id, data, written_at, author, key_id, conn_id, via, n)
    RETURNING seq";

const ROOM_UPSERT: &str = "
    INSERT INTO usage_hourly AS u (project_id, room, hour_start, messages_in, messages_out,
        bytes_in, bytes_out, connection_ms, peak_connections, active, storage_bytes)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[],
        $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BOOLEAN[], $11::BIGINT[])
    ON CONFLICT (project_id, hour_start, room) DO UPDATE SET
        messages_in = u.messages_in + EXCLUDED.messages_in,
        messages_out = u.messages_out + EXCLUDED.messages_out,
        bytes_in = u.bytes_in + EXCLUDED.bytes_in,
        bytes_out = u.bytes_out + EXCLUDED.bytes_out,
        connection_ms = u.connection_ms + EXCLUDED.connection_ms,
        peak_connections = GREATEST(u.peak_connections, EXCLUDED.peak_connections),
        active = u.active OR EXCLUDED.active,
        storage_bytes = COALESCE(EXCLUDED.storage_bytes, u.storage_bytes)";

/// A copy's rows, as they are.
const ROOM_IMPORT: &str = "
    INSERT INTO usage_hourly (project_id, room, hour_start, messages_in, messages_out,
        bytes_in, bytes_out, connection_ms, peak_connections, active, storage_bytes)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[],
        $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BOOLEAN[], $11::BIGINT[])";

const PROJECT_UPSERT: &str = "
    INSERT INTO usage_project_hourly AS p (project_id, hour_start, peak_connections)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[])
    ON CONFLICT (project_id, hour_start) DO UPDATE SET
        peak_connections = GREATEST(p.peak_connections, EXCLUDED.peak_connections)";

const PROJECT_IMPORT: &str = "
    INSERT INTO usage_project_hourly (project_id, hour_start, peak_connections)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[])";

const USERS_UPSERT: &str = "
    INSERT INTO usage_users (project_id, month_start, user_id)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[])
    ON CONFLICT DO NOTHING";

const USERS_IMPORT: &str = "
    INSERT INTO usage_users (project_id, month_start, user_id)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[])";

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// Binds `r` as the eleven arrays of [`ROOM_UPSERT`] and [`ROOM_IMPORT`].
fn bind_rooms<'q>(query: Query<'q>, r: &'q [RoomHour]) -> Query<'q> {
    let col = |f: fn(&RoomHour) -> i64| r.iter().map(f).collect::<Vec<i64>>();
    query
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
}

fn bind_projects<'q>(query: Query<'q>, p: &'q [ProjectHour]) -> Query<'q> {
    query
        .bind(p.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.hour_start).collect::<Vec<i64>>())
        .bind(p.iter().map(|x| x.peak_connections).collect::<Vec<i64>>())
}

fn bind_users<'q>(query: Query<'q>, u: &'q [MonthlyUser]) -> Query<'q> {
    query
        .bind(u.iter().map(|x| x.project_id.as_str()).collect::<Vec<_>>())
        .bind(u.iter().map(|x| x.month_start).collect::<Vec<i64>>())
        .bind(u.iter().map(|x| x.user_id.as_str()).collect::<Vec<_>>())
}

/// Runs `sql` with `rows` bound by `bind`, unless there are no rows.
async fn insert_all<'q, T>(
    conn: &mut PgConnection,
    sql: &'q str,
    rows: &'q [T],
    bind: fn(Query<'q>, &'q [T]) -> Query<'q>,
) -> StoreResult<()> {
    if !rows.is_empty() {
        bind(sqlx::query(sql), rows).execute(conn).await?;
    }
    Ok(())
}

impl Dialect for PostgresStore {
    type Db = Postgres;

    const BEGIN_SNAPSHOT: Option<&'static str> = Some(READ_SNAPSHOT);

    const BEGIN_IMPORT: Option<&'static str> = None;

    async fn append_log(&self, batch: &[Append]) -> StoreResult<Vec<Seq>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let room_ids: Vec<RoomId> = batch.iter().map(|item| item.room_id).collect();
        let data: Vec<&[u8]> = batch.iter().map(|item| item.data.as_ref()).collect();
        let written_at: Vec<i64> = batch.iter().map(|item| item.written_at).collect();
        let authors: Vec<Option<&str>> =
            batch.iter().map(|i| i.author.user_id.as_deref()).collect();
        let keys: Vec<Option<&str>> = batch.iter().map(|i| i.author.key_id.as_deref()).collect();
        let conns: Vec<Option<i64>> = batch.iter().map(|i| i.author.conn_id).collect();
        let via: Vec<&str> = batch.iter().map(|i| i.author.via.as_str()).collect();
        // One statement is one transaction: all rows or none.
        let mut seqs = sqlx::query(APPEND_SQL)
            .bind(&room_ids)
            .bind(&data)
            .bind(&written_at)
            .bind(&authors)
            .bind(&keys)
            .bind(&conns)
            .bind(&via)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<Seq, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING order is unspecified; the seqs were assigned in batch order.
        seqs.sort_unstable();
        Ok(seqs)
    }

    async fn delete_log_rows(
        conn: &mut PgConnection,
        room_id: RoomId,
        seqs: &[Seq],
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM room_updates WHERE room_id = $1 AND seq = ANY($2::BIGINT[])")
            .bind(room_id)
            .bind(seqs)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn archive_log_rows(
        conn: &mut PgConnection,
        room_id: RoomId,
        seqs: &[Seq],
        checkpoint: Seq,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO room_history
                 (seq, room_id, checkpoint, written_at, author, key_id, conn_id, via, data)
             SELECT seq, room_id, $3, written_at, author, key_id, conn_id, via, data
             FROM room_updates WHERE room_id = $1 AND seq = ANY($2::BIGINT[])",
        )
        .bind(room_id)
        .bind(seqs)
        .bind(checkpoint)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn upsert_usage(conn: &mut PgConnection, batch: &UsageBatch) -> StoreResult<()> {
        insert_all(conn, ROOM_UPSERT, &batch.rooms, bind_rooms).await?;
        insert_all(conn, PROJECT_UPSERT, &batch.projects, bind_projects).await?;
        insert_all(conn, USERS_UPSERT, &batch.users, bind_users).await
    }

    async fn import_usage(conn: &mut PgConnection, rows: &UsageRows) -> StoreResult<()> {
        // One statement per table (these tables grow with rooms × hours).
        let flushes = &rows.flushes;
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
            .execute(&mut *conn)
            .await?;
        }
        insert_all(conn, ROOM_IMPORT, &rows.rooms, bind_rooms).await?;
        insert_all(conn, PROJECT_IMPORT, &rows.projects, bind_projects).await?;
        insert_all(conn, USERS_IMPORT, &rows.users, bind_users).await
    }

    async fn import_log(
        conn: &mut PgConnection,
        room_id: RoomId,
        updates: &[(Seq, Bytes)],
    ) -> StoreResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = updates.iter().map(|(seq, _)| *seq).collect();
        let data: Vec<&[u8]> = updates.iter().map(|(_, d)| d.as_ref()).collect();
        sqlx::query(
            "INSERT INTO room_updates (seq, room_id, data)
             SELECT u.seq, $2, u.data FROM UNNEST($1::BIGINT[], $3::BYTEA[]) AS u (seq, data)",
        )
        .bind(&seqs)
        .bind(room_id)
        .bind(&data)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn advance_sequences(conn: &mut PgConnection) -> StoreResult<()> {
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
            "SELECT setval(pg_get_serial_sequence('security_log', 'id'),
                           COALESCE((SELECT MAX(id) FROM security_log), 0) + 1, false)",
            "SELECT setval(pg_get_serial_sequence('email_outbox', 'id'),
                           COALESCE((SELECT MAX(id) FROM email_outbox), 0) + 1, false)",
            "SELECT setval(pg_get_serial_sequence('room_updates', 'seq'),
                           GREATEST(COALESCE((SELECT MAX(seq) FROM room_updates), 0),
                                    COALESCE((SELECT MAX(upto_seq) FROM room_snapshots), 0)) + 1,
                           false)",
        ] {
            sqlx::query(sql).execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn close_store(&self) {
        self.pool.close().await;
    }
}
