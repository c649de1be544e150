//! [`DocStore`], once for both backends: rooms, snapshots and the update log (migration
//! `0001_rooms.sql`); compiled once per backend (see `store/sql/mod.rs`). What
//! differs is behind [`Dialect`]: the group commit ([`Dialect::append_log`]), deleting a
//! compaction's folded rows, the snapshot read's `BEGIN`, closing.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{Row, Transaction};

use super::{Db, Store};
use crate::store::dialect::{Conn, Dialect};
use crate::store::{
    unix_ms, Append, DocStore, LogTail, RoomId, RoomRow, RoomVersion, Seq, StoreResult, StoredDoc,
};

impl Store {
    /// Begins a transaction that sees one snapshot of the database throughout
    /// ([`Dialect::BEGIN_SNAPSHOT`]).
    pub(super) async fn begin_snapshot(&self) -> StoreResult<Transaction<'static, Db>> {
        Ok(match Self::BEGIN_SNAPSHOT {
            Some(begin) => self.pool.begin_with(begin).await?,
            None => self.pool.begin().await?,
        })
    }

    /// The room's id and read-only setting, creating its row if new; whether this call
    /// created it.
    async fn room_id(&self, project_id: &str, room: &str) -> StoreResult<(RoomId, bool, bool)> {
        let select = "SELECT id, read_only FROM rooms WHERE project_id = $1 AND name = $2";
        if let Some(row) = sqlx::query(select)
            .bind(project_id)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok((row.try_get("id")?, row.try_get("read_only")?, false));
        }
        // A concurrent insert of the same room makes this wait for it (SQLite's write
        // lock, Postgres's unique index) and do nothing; the SELECT after it then finds
        // the row (on Postgres a new snapshot under READ COMMITTED).
        let created = sqlx::query(
            "INSERT INTO rooms (project_id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO NOTHING",
        )
        .bind(project_id)
        .bind(room)
        .bind(unix_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(select)
            .bind(project_id)
            .bind(room)
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("id")?, row.try_get("read_only")?, created))
    }

    /// Reads the snapshot and the log rows `<= upto` from one snapshot of the database:
    /// on Postgres REPEATABLE READ, because under READ COMMITTED a compaction committing
    /// between the two SELECTs would make the log read miss the rows the (older)
    /// snapshot read does not cover.
    async fn read(&self, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
        let mut tx = self.begin_snapshot().await?;
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
async fn read_doc(conn: &mut Conn<Store>, room_id: RoomId, upto: Seq) -> StoreResult<StoredDoc> {
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
        read_only: false,
        created: false,
    })
}

/// Keeps the snapshot just written as a checkpoint of the room's history (inside the
/// swap's transaction, after the folded rows moved to `room_history` with `checkpoint =
/// upto`). It holds exactly the rows with `checkpoint <= upto`; `low_seq` bounds the seqs
/// of the rows it does not hold (the live log's, and `upto + 1`); `max_at` is the newest
/// write it holds. Rows folded now below an earlier checkpoint's `upto_seq` committed
/// late (Postgres): those earlier checkpoints do not hold them, so their `low_seq` moves
/// down to reach them.
async fn write_checkpoint(
    tx: &mut Transaction<'static, Db>,
    room_id: RoomId,
    upto: Seq,
    folded: &[Seq],
    data: &[u8],
) -> StoreResult<()> {
    if let Some(&lowest) = folded.iter().min() {
        sqlx::query(
            "UPDATE room_checkpoints SET low_seq = $2
             WHERE room_id = $1 AND upto_seq > $2 AND low_seq > $2",
        )
        .bind(room_id)
        .bind(lowest)
        .execute(&mut **tx)
        .await?;
    }
    let row = sqlx::query(
        "SELECT
            (SELECT MAX(written_at) FROM room_history WHERE room_id = $1 AND checkpoint = $2)
                AS folded_at,
            (SELECT MAX(max_at) FROM room_checkpoints WHERE room_id = $1) AS prev_at,
            (SELECT MIN(seq) FROM room_updates WHERE room_id = $1) AS live_low",
    )
    .bind(room_id)
    .bind(upto)
    .fetch_one(&mut **tx)
    .await?;
    let max_at = row
        .try_get::<Option<i64>, _>("folded_at")?
        .max(row.try_get::<Option<i64>, _>("prev_at")?)
        .unwrap_or(0);
    let low = row
        .try_get::<Option<Seq>, _>("live_low")?
        .map_or(upto + 1, |live| live.min(upto + 1));
    sqlx::query(
        "INSERT INTO room_checkpoints (room_id, upto_seq, low_seq, max_at, base, data, created_at)
         VALUES ($1, $2, $3, $4, 0, $5, $6)",
    )
    .bind(room_id)
    .bind(upto)
    .bind(low)
    .bind(max_at)
    .bind(data)
    .bind(unix_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A catch-up's read ([`DocStore::read_unseen`]) with `conn` (which the caller makes a
/// consistent snapshot): sizes and seqs first (no data), then the data of the rows from
/// the lowest seq `seen` lacks.
async fn read_tail(
    conn: &mut Conn<Store>,
    room_id: RoomId,
    seen: &std::collections::BTreeSet<Seq>,
) -> StoreResult<LogTail> {
    let snapshot = sqlx::query(
        "SELECT upto_seq, CAST(LENGTH(data) AS BIGINT) AS bytes
         FROM room_snapshots WHERE room_id = $1",
    )
    .bind(room_id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| -> StoreResult<(Seq, usize)> {
        Ok((row.try_get("upto_seq")?, size(row.try_get("bytes")?)))
    })
    .transpose()?;
    let rows = sqlx::query(
        "SELECT seq, CAST(LENGTH(data) AS BIGINT) AS bytes
         FROM room_updates WHERE room_id = $1 ORDER BY seq",
    )
    .bind(room_id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| Ok((row.try_get("seq")?, size(row.try_get("bytes")?))))
    .collect::<StoreResult<Vec<(Seq, usize)>>>()?;
    let mut updates = Vec::new();
    if let Some(&(from, _)) = rows.iter().find(|(seq, _)| !seen.contains(seq)) {
        let read = sqlx::query(
            "SELECT seq, data FROM room_updates WHERE room_id = $1 AND seq >= $2 ORDER BY seq",
        )
        .bind(room_id)
        .bind(from)
        .fetch_all(&mut *conn)
        .await?;
        for row in read {
            let seq: Seq = row.try_get("seq")?;
            if !seen.contains(&seq) {
                updates.push((seq, Bytes::from(row.try_get::<Vec<u8>, _>("data")?)));
            }
        }
    }
    Ok(LogTail {
        snapshot,
        rows,
        updates,
    })
}

fn size(bytes: i64) -> usize {
    usize::try_from(bytes).unwrap_or(0)
}

#[async_trait]
impl DocStore for Store {
    async fn load(&self, project_id: &str, room: &str) -> StoreResult<StoredDoc> {
        let (room_id, read_only, created) = self.room_id(project_id, room).await?;
        let doc = self.read(room_id, Seq::MAX).await?;
        Ok(StoredDoc {
            read_only,
            created,
            ..doc
        })
    }

    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<Seq>> {
        self.append_log(batch).await
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
        // The first statement writes: SQLite takes its write lock at once (waiting on
        // busy_timeout) instead of failing on a late upgrade. On Postgres READ COMMITTED
        // is enough: a concurrent compaction's UPDATE (or INSERT) makes this one wait
        // for its row lock, then re-check the WHERE (or the conflict) against the
        // committed row and write nothing.
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
        // after the compaction's read is not in `data` and must stay. They move to the
        // history (kept for the retention window) rather than vanish.
        Store::archive_log_rows(&mut *tx, room_id, folded, upto).await?;
        Store::delete_log_rows(&mut *tx, room_id, folded).await?;
        write_checkpoint(&mut tx, room_id, upto, folded, data).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn read_unseen(
        &self,
        room_id: RoomId,
        seen: &std::collections::BTreeSet<Seq>,
    ) -> StoreResult<LogTail> {
        let mut tx = self.begin_snapshot().await?;
        let tail = read_tail(&mut tx, room_id, seen).await?;
        tx.commit().await?;
        Ok(tail)
    }

    async fn room_version(&self, room_id: RoomId) -> StoreResult<Option<RoomVersion>> {
        // One statement, so one snapshot of the database; no row when the room does not
        // exist. The seqs of one room's log (bounded by compaction) add up to far less
        // than 2^63: SQLite's SUM of integers fails on overflow, Postgres's SUM(BIGINT)
        // is NUMERIC and cannot, and its cast back to BIGINT could only fail past 2^63.
        let row = sqlx::query(
            "SELECT s.upto_seq, COUNT(u.seq) AS log_rows, MAX(u.seq) AS log_max,
                    CAST(COALESCE(SUM(u.seq), 0) AS BIGINT) AS log_seq_sum
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

    async fn set_read_only(
        &self,
        project_id: &str,
        room: &str,
        read_only: bool,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE rooms SET read_only = $1 WHERE project_id = $2 AND name = $3")
                .bind(read_only)
                .bind(project_id)
                .bind(room)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn read_only(&self, project_id: &str, room: &str) -> StoreResult<Option<bool>> {
        let row = sqlx::query("SELECT read_only FROM rooms WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("read_only")).transpose()?)
    }

    async fn list_rooms(
        &self,
        project_id: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RoomRow>> {
        // A prefix match as a range on the (project_id, name) index: names `>= prefix`
        // that start with it. `substr` keeps it exact for any characters (no LIKE
        // wildcards to escape). On Postgres `name` is COLLATE "C", so the order and the
        // range are bytewise, like SQLite's; the casts type a NULL cursor there.
        let rows = sqlx::query(
            "SELECT id, name, created_at, read_only FROM rooms
             WHERE project_id = $1
               AND (CAST($2 AS TEXT) IS NULL
                    OR (name >= $2 AND substr(name, 1, length($2)) = $2))
               AND (CAST($3 AS TEXT) IS NULL OR name > $3)
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
                    read_only: r.try_get("read_only")?,
                })
            })
            .collect()
    }

    async fn delete_room(&self, room_id: RoomId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM room_updates WHERE room_id = $1",
            "DELETE FROM room_history WHERE room_id = $1",
            "DELETE FROM room_checkpoints WHERE room_id = $1",
            "DELETE FROM room_version_names WHERE room_id = $1",
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
        self.close_store().await;
    }
}
