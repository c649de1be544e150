//! [`HistoryStore`], once for both backends (migration `0007_history.sql`); compiled
//! once per backend (see `store/sql/mod.rs`). Compaction's side of history (moving
//! folded rows into `room_history` and writing the checkpoint) is in `docs.rs`, inside
//! the snapshot swap's transaction.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row;

use super::{DbRow, Store};
use crate::store::history::{CheckpointRow, HistoryRow, HistoryStore, Pruned, VersionName};
use crate::store::{Attribution, RoomId, Seq, StoreResult, StoredDoc, Via};

/// The attribution columns, as both tables name them.
const META: &str = "seq, written_at, author, key_id, conn_id, via";

fn history_row(row: &DbRow) -> Result<HistoryRow, sqlx::Error> {
    Ok(HistoryRow {
        seq: row.try_get("seq")?,
        written_at: row.try_get("written_at")?,
        author: Attribution {
            user_id: row.try_get("author")?,
            key_id: row.try_get("key_id")?,
            conn_id: row.try_get("conn_id")?,
            via: Via::parse(
                row.try_get::<Option<String>, _>("via")?
                    .as_deref()
                    .unwrap_or(""),
            ),
        },
        bytes: row.try_get("bytes")?,
    })
}

fn seq_and_data(row: &DbRow) -> Result<(Seq, Bytes), sqlx::Error> {
    Ok((
        row.try_get("seq")?,
        Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
    ))
}

#[async_trait]
impl HistoryStore for Store {
    async fn read_at(&self, room_id: RoomId, at_ms: i64) -> StoreResult<Option<StoredDoc>> {
        let mut tx = self.begin_snapshot().await?;
        let floor: Option<i64> = sqlx::query(
            "SELECT MAX(max_at) AS floor FROM room_checkpoints WHERE room_id = $1 AND base = 1",
        )
        .bind(room_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("floor")?;
        if floor.is_some_and(|floor| at_ms < floor) {
            tx.commit().await?;
            return Ok(None);
        }
        // The newest checkpoint whose rows were all written by then.
        let checkpoint = sqlx::query(
            "SELECT upto_seq, low_seq, data FROM room_checkpoints
             WHERE room_id = $1 AND max_at <= $2 ORDER BY upto_seq DESC LIMIT 1",
        )
        .bind(room_id)
        .bind(at_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let (upto, low, snapshot) = match checkpoint {
            Some(row) => {
                let upto: Seq = row.try_get("upto_seq")?;
                let data = Bytes::from(row.try_get::<Vec<u8>, _>("data")?);
                (upto, row.try_get::<Seq, _>("low_seq")?, Some((upto, data)))
            }
            None => (0, 0, None),
        };
        // The rows it does not hold that were folded since: the next checkpoint's (at
        // most one compaction's worth), plus rows that committed late, which `low_seq`
        // reaches down to. Rows of checkpoints after the next were written after the
        // time (the next checkpoint holds a row written after it), except across nodes
        // whose clocks disagree.
        let next: Option<Seq> = sqlx::query(
            "SELECT MIN(upto_seq) AS next FROM room_checkpoints WHERE room_id = $1 AND upto_seq > $2",
        )
        .bind(room_id)
        .bind(upto)
        .fetch_one(&mut *tx)
        .await?
        .try_get("next")?;
        let folded = sqlx::query(
            "SELECT seq, data FROM room_history
             WHERE room_id = $1 AND seq >= $2 AND seq <= $3 AND checkpoint > $4
               AND written_at <= $5
             ORDER BY seq",
        )
        .bind(room_id)
        .bind(low)
        .bind(next.unwrap_or(Seq::MAX))
        .bind(upto)
        .bind(at_ms)
        .fetch_all(&mut *tx)
        .await?;
        // The live log is bounded by the compaction threshold.
        let live = sqlx::query(
            "SELECT seq, data FROM room_updates WHERE room_id = $1 AND written_at <= $2
             ORDER BY seq",
        )
        .bind(room_id)
        .bind(at_ms)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut updates = folded
            .iter()
            .chain(live.iter())
            .map(seq_and_data)
            .collect::<Result<Vec<_>, _>>()?;
        updates.sort_by_key(|(seq, _)| *seq);
        Ok(Some(StoredDoc {
            room_id,
            snapshot,
            updates,
            // A document as it was: not a load, so no setting and nothing created.
            read_only: false,
            created: false,
        }))
    }

    async fn history_rows(
        &self,
        room_id: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> StoreResult<Vec<HistoryRow>> {
        // Two index scans (room_id, seq) backwards, merged: a UNION's ORDER BY would sort
        // the whole history of the room first.
        let before = before.unwrap_or(Seq::MAX);
        let mut rows = Vec::new();
        for table in ["room_history", "room_updates"] {
            let sql = format!(
                "SELECT {META}, CAST(length(data) AS BIGINT) AS bytes FROM {table}
                 WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            );
            let found = sqlx::query(&sql)
                .bind(room_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            for row in &found {
                rows.push(history_row(row)?);
            }
        }
        rows.sort_by_key(|row| std::cmp::Reverse(row.seq));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn rows_between(
        &self,
        room_id: RoomId,
        after_ms: i64,
        upto_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<(HistoryRow, Bytes)>> {
        let mut tx = self.begin_snapshot().await?;
        let mut rows = Vec::new();
        for table in ["room_history", "room_updates"] {
            let sql = format!(
                "SELECT {META}, CAST(length(data) AS BIGINT) AS bytes, data FROM {table}
                 WHERE room_id = $1 AND written_at > $2 AND written_at <= $3
                 ORDER BY seq LIMIT $4"
            );
            let found = sqlx::query(&sql)
                .bind(room_id)
                .bind(after_ms)
                .bind(upto_ms)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            for row in &found {
                let data = Bytes::from(row.try_get::<Vec<u8>, _>("data")?);
                rows.push((history_row(row)?, data));
            }
        }
        tx.commit().await?;
        rows.sort_by_key(|(row, _)| (row.written_at, row.seq));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn row_time(&self, room_id: RoomId, seq: Seq) -> StoreResult<Option<i64>> {
        for table in ["room_history", "room_updates"] {
            let sql = format!("SELECT written_at FROM {table} WHERE room_id = $1 AND seq = $2");
            if let Some(row) = sqlx::query(&sql)
                .bind(room_id)
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?
            {
                return Ok(Some(row.try_get("written_at")?));
            }
        }
        Ok(None)
    }

    async fn checkpoints(&self, room_id: RoomId) -> StoreResult<Vec<CheckpointRow>> {
        let rows = sqlx::query(
            "SELECT upto_seq, max_at, base, CAST(length(data) AS BIGINT) AS bytes
             FROM room_checkpoints WHERE room_id = $1 ORDER BY upto_seq",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CheckpointRow {
                    upto_seq: row.try_get("upto_seq")?,
                    max_at: row.try_get("max_at")?,
                    base: row.try_get::<i64, _>("base")? != 0,
                    bytes: row.try_get("bytes")?,
                })
            })
            .collect()
    }

    async fn prune_history(&self, room_id: RoomId, cutoff_ms: i64) -> StoreResult<Pruned> {
        let mut tx = self.pool.begin().await?;
        // Writes first, so SQLite takes its write lock at once; a no-op when there is
        // nothing to prune.
        let names = "DELETE FROM room_version_names WHERE room_id = $1 AND at_ms < $2";
        sqlx::query(names)
            .bind(room_id)
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?;
        let base: Option<Seq> = sqlx::query(
            "SELECT MAX(upto_seq) AS base FROM room_checkpoints WHERE room_id = $1 AND max_at < $2",
        )
        .bind(room_id)
        .bind(cutoff_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get("base")?;
        let Some(base) = base else {
            tx.commit().await?;
            return Ok(Pruned::default());
        };
        let rows = sqlx::query("DELETE FROM room_history WHERE room_id = $1 AND checkpoint <= $2")
            .bind(room_id)
            .bind(base)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let checkpoints =
            sqlx::query("DELETE FROM room_checkpoints WHERE room_id = $1 AND upto_seq < $2")
                .bind(room_id)
                .bind(base)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("UPDATE room_checkpoints SET base = 1 WHERE room_id = $1 AND upto_seq = $2")
            .bind(room_id)
            .bind(base)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Pruned { rows, checkpoints })
    }

    async fn history_bytes(&self, room_id: RoomId) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE((SELECT SUM(length(data)) FROM room_history WHERE room_id = $1), 0)
                       + COALESCE((SELECT SUM(length(data)) FROM room_checkpoints WHERE room_id = $1), 0)
                     AS BIGINT) AS bytes",
        )
        .bind(room_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("bytes")?)
    }

    async fn name_version(&self, room_id: RoomId, name: &VersionName) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO room_version_names (room_id, at_ms, name, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(room_id)
        .bind(name.at_ms)
        .bind(&name.name)
        .bind(name.created_at)
        .bind(&name.created_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn version_names(&self, room_id: RoomId) -> StoreResult<Vec<VersionName>> {
        let rows = sqlx::query(
            "SELECT at_ms, name, created_at, created_by FROM room_version_names
             WHERE room_id = $1 ORDER BY at_ms, name",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VersionName {
                    at_ms: row.try_get("at_ms")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    created_by: row.try_get("created_by")?,
                })
            })
            .collect()
    }
}
