//! [`DocStore`] on Postgres: rooms, snapshots and the update log (migration
//! `0001_rooms.sql`).

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{PgConnection, Row};

use super::PostgresStore;
use crate::store::{
    unix_ms, Append, DocStore, RoomId, RoomRow, RoomVersion, Seq, StoreResult, StoredDoc,
};

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
    INSERT INTO room_updates (seq, room_id, data)
    SELECT allocated.seqs[u.n], u.room_id, u.data
    FROM allocated, UNNEST($1::BIGINT[], $2::BYTEA[]) WITH ORDINALITY AS u (room_id, data, n)
    RETURNING seq";

/// Starts a read-only transaction that sees one snapshot of the database throughout.
pub(super) const READ_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

impl PostgresStore {
    async fn room_id(&self, project_id: &str, room: &str) -> StoreResult<RoomId> {
        let select = "SELECT id FROM rooms WHERE project_id = $1 AND name = $2";
        if let Some(row) = sqlx::query(select)
            .bind(project_id)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(row.try_get("id")?);
        }
        // A concurrent insert of the same room makes this wait for it and do nothing;
        // the SELECT after it (a new snapshot under READ COMMITTED) then finds the row.
        sqlx::query(
            "INSERT INTO rooms (project_id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO NOTHING",
        )
        .bind(project_id)
        .bind(room)
        .bind(unix_ms())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(select)
            .bind(project_id)
            .bind(room)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// Reads the snapshot and the log rows `<= upto` from one snapshot of the database:
    /// REPEATABLE READ, because under READ COMMITTED a compaction committing between the
    /// two SELECTs would make the log read miss the rows the (older) snapshot read does
    /// not cover.
    async fn read(&self, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
        let mut tx = self.pool.begin_with(READ_SNAPSHOT).await?;
        let doc = read_doc(&mut tx, room_id, upto).await?;
        tx.commit().await?;
        Ok(doc)
    }
}

/// The snapshot and log rows `<= upto` of a room, read with `conn` (which the caller
/// makes a consistent snapshot). Every log row still stored is outside the snapshot
/// (compaction deletes exactly what it folded), so none is filtered by the snapshot's
/// `upto_seq`: a row that committed after a compaction's read with a smaller seq than
/// the rows it folded is still read.
async fn read_doc(conn: &mut PgConnection, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
    let snapshot = sqlx::query("SELECT upto_seq, data FROM room_snapshots WHERE room_id = $1")
        .bind(room_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| -> StoreResult<(Seq, Bytes)> {
            Ok((
                row.try_get("upto_seq")?,
                Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
            ))
        })
        .transpose()?;
    let rows = sqlx::query(
        "SELECT seq, data FROM room_updates WHERE room_id = $1 AND seq <= $2 ORDER BY seq",
    )
    .bind(room_id)
    .bind(upto)
    .fetch_all(&mut *conn)
    .await?;
    let updates = rows
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get("seq")?,
                Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(StoredDoc {
        room_id,
        snapshot,
        updates,
    })
}

#[async_trait]
impl DocStore for PostgresStore {
    async fn load(&self, project_id: &str, room: &str) -> StoreResult<StoredDoc> {
        let room_id = self.room_id(project_id, room).await?;
        self.read(room_id, Seq::MAX).await
    }

    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<Seq>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let room_ids: Vec<RoomId> = batch.iter().map(|item| item.room_id).collect();
        let data: Vec<&[u8]> = batch.iter().map(|item| item.data.as_ref()).collect();
        // One statement is one transaction: all rows or none.
        let mut seqs = sqlx::query(APPEND_SQL)
            .bind(&room_ids)
            .bind(&data)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<Seq, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING order is unspecified; the seqs were assigned in batch order.
        seqs.sort_unstable();
        Ok(seqs)
    }

    async fn read_upto(&self, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
        self.read(room_id, upto).await
    }

    async fn replace_snapshot(
        &self,
        room_id: RoomId,
        expected_prev: Option<Seq>,
        upto: Seq,
        folded: &[Seq],
        data: &[u8],
    ) -> StoreResult<bool> {
        // READ COMMITTED is enough: a concurrent compaction's UPDATE (or INSERT) makes
        // this one wait for its row lock, then re-check the WHERE (or the conflict)
        // against the committed row and write nothing.
        let mut tx = self.pool.begin().await?;
        let written = match expected_prev {
            Some(prev) => sqlx::query(
                "UPDATE room_snapshots SET upto_seq = $1, data = $2, updated_at = $3
                 WHERE room_id = $4 AND upto_seq = $5",
            )
            .bind(upto)
            .bind(data)
            .bind(unix_ms())
            .bind(room_id)
            .bind(prev),
            None => sqlx::query(
                "INSERT INTO room_snapshots (room_id, upto_seq, data, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (room_id) DO NOTHING",
            )
            .bind(room_id)
            .bind(upto)
            .bind(data)
            .bind(unix_ms()),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Exactly the rows folded, not `seq <= upto`: a row below `upto` that committed
        // after the compaction's read is not in `data` and must stay.
        sqlx::query("DELETE FROM room_updates WHERE room_id = $1 AND seq = ANY($2::BIGINT[])")
            .bind(room_id)
            .bind(folded)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn room_version(&self, room_id: RoomId) -> StoreResult<Option<RoomVersion>> {
        // One statement, so one snapshot of the database; no row when the room does not
        // exist. SUM(BIGINT) is NUMERIC and cannot overflow; the cast back to BIGINT
        // could only fail past 2^63, far beyond the seqs of one room's log (bounded by
        // compaction).
        let row = sqlx::query(
            "SELECT s.upto_seq, COUNT(u.seq) AS log_rows, MAX(u.seq) AS log_max,
                    COALESCE(SUM(u.seq), 0)::BIGINT AS log_seq_sum
             FROM rooms r
             LEFT JOIN room_snapshots s ON s.room_id = r.id
             LEFT JOIN room_updates u ON u.room_id = r.id
             WHERE r.id = $1
             GROUP BY r.id, s.upto_seq",
        )
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(RoomVersion {
                snapshot_upto: row.try_get("upto_seq")?,
                log_rows: row.try_get("log_rows")?,
                log_max: row.try_get("log_max")?,
                log_seq_sum: row.try_get("log_seq_sum")?,
            })
        })
        .transpose()
    }

    async fn find_room(&self, project_id: &str, room: &str) -> StoreResult<Option<RoomId>> {
        let row = sqlx::query("SELECT id FROM rooms WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    async fn list_rooms(
        &self,
        project_id: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RoomRow>> {
        // As on SQLite: a range on the (project_id, name) index, then an exact prefix
        // test with `left` (no LIKE wildcards to escape). `name` is COLLATE "C", so the
        // order and the range are bytewise, like SQLite's.
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM rooms
             WHERE project_id = $1
               AND ($2::TEXT IS NULL OR (name >= $2 AND left(name, length($2)) = $2))
               AND ($3::TEXT IS NULL OR name > $3)
             ORDER BY name LIMIT $4",
        )
        .bind(project_id)
        .bind(prefix)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RoomRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn delete_room(&self, room_id: RoomId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM room_updates WHERE room_id = $1",
            "DELETE FROM room_snapshots WHERE room_id = $1",
            "DELETE FROM rooms WHERE id = $1",
        ] {
            sqlx::query(sql).bind(room_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
