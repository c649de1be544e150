//! SQLite's side of [`Dialect`]: the group commit on the append connection, and the
//! multi-row statements that stand in for Postgres's array binds. Every statement is a
//! round trip to sqlx's SQLite worker thread, so rows go many to a statement, in
//! power-of-two chunks so that only a few distinct statements are ever prepared and
//! cached.

use bytes::Bytes;
use sqlx::{Connection, Row, SqliteConnection};

use super::SqliteStore;
use crate::store::dialect::Dialect;
use crate::store::export::{UsageFlushRow, UsageRows};
use crate::store::usage::{MonthlyUser, ProjectHour, RoomHour, UsageBatch};
use crate::store::{Append, RoomId, Seq, StoreResult};

/// Most rows in one log INSERT or DELETE (a power of two; SQLite allows 32766 bound
/// values).
const MAX_LOG_ROWS: usize = 256;

/// Most rows per usage statement. While a flush holds SQLite's write lock the
/// group-commit writer waits, so rows go many to a statement.
const MAX_USAGE_ROWS: usize = 64;

/// `rows` split into chunks of `max` (a power of two), then halving sizes.
fn chunks<T>(mut rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = 1 << rows.len().min(max).ilog2();
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// One statement text per power-of-two size up to [`MAX_LOG_ROWS`], built on first use.
type BySize = std::sync::OnceLock<[String; MAX_LOG_ROWS.ilog2() as usize + 1]>;

/// The statement for `rows` rows (a power of two up to [`MAX_LOG_ROWS`]) from `all`,
/// which `build` fills on first use with the text for each size.
fn by_size(all: &'static BySize, rows: usize, build: fn(usize) -> String) -> &'static str {
    let all = all.get_or_init(|| std::array::from_fn(|i| build(1 << i)));
    &all[rows.ilog2() as usize]
}

/// `INSERT ... VALUES (?, ?, ...), ... RETURNING seq` for `rows` rows: the update and its
/// attribution, in the one statement.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: BySize = BySize::new();
    by_size(&SQL, rows, |n| {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; n].join(", ");
        format!(
            "INSERT INTO room_updates (room_id, data, written_at, author, key_id, conn_id, via) \
             VALUES {values} RETURNING seq"
        )
    })
}

/// Copies `rows` folded log rows into the history.
fn archive_sql(rows: usize) -> &'static str {
    static SQL: BySize = BySize::new();
    by_size(&SQL, rows, |n| {
        let seqs = vec!["?"; n].join(", ");
        format!(
            "INSERT INTO room_history \
                 (seq, room_id, checkpoint, written_at, author, key_id, conn_id, via, data) \
             SELECT seq, room_id, ?, written_at, author, key_id, conn_id, via, data \
             FROM room_updates WHERE room_id = ? AND seq IN ({seqs})"
        )
    })
}

/// `DELETE ... WHERE room_id = ? AND seq IN (?, ...)` for `rows` seqs.
fn delete_sql(rows: usize) -> &'static str {
    static SQL: BySize = BySize::new();
    by_size(&SQL, rows, |n| {
        let seqs = vec!["?"; n].join(", ");
        format!("DELETE FROM room_updates WHERE room_id = ? AND seq IN ({seqs})")
    })
}

const ROOM_INSERT: &str = "INSERT INTO usage_hourly (project_id, room, hour_start,
    messages_in, messages_out, bytes_in, bytes_out, connection_ms, peak_connections,
    active, storage_bytes) VALUES ";
const ROOM_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const ROOM_CONFLICT: &str = "
    ON CONFLICT (project_id, hour_start, room) DO UPDATE SET
        messages_in = messages_in + excluded.messages_in,
        messages_out = messages_out + excluded.messages_out,
        bytes_in = bytes_in + excluded.bytes_in,
        bytes_out = bytes_out + excluded.bytes_out,
        connection_ms = connection_ms + excluded.connection_ms,
        peak_connections = max(peak_connections, excluded.peak_connections),
        active = max(active, excluded.active),
        storage_bytes = coalesce(excluded.storage_bytes, storage_bytes)";

const PROJECT_INSERT: &str =
    "INSERT INTO usage_project_hourly (project_id, hour_start, peak_connections) VALUES ";
const PROJECT_CONFLICT: &str = "
    ON CONFLICT (project_id, hour_start) DO UPDATE SET
        peak_connections = max(peak_connections, excluded.peak_connections)";

const USER_INSERT: &str = "INSERT INTO usage_users (project_id, month_start, user_id) VALUES ";

const FLUSH_INSERT: &str = "INSERT INTO usage_flushes (flush_id, applied_at) VALUES ";

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Inserts `rows` with `insert`, then `row` (its placeholders) once per row, then
/// `tail`, [`MAX_USAGE_ROWS`] rows to a statement; `bind` binds one row's values.
async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    rows: &[T],
    insert: &str,
    row: &str,
    tail: &str,
    bind: for<'q> fn(Query<'q>, &'q T) -> Query<'q>,
) -> StoreResult<()> {
    for chunk in chunks(rows, MAX_USAGE_ROWS) {
        let sql = format!("{insert}{}{tail}", vec![row; chunk.len()].join(", "));
        let query = chunk.iter().fold(sqlx::query(&sql), bind);
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn bind_room<'q>(query: Query<'q>, r: &'q RoomHour) -> Query<'q> {
    query
        .bind(&r.project_id)
        .bind(&r.room)
        .bind(r.hour_start)
        .bind(r.messages_in)
        .bind(r.messages_out)
        .bind(r.bytes_in)
        .bind(r.bytes_out)
        .bind(r.connection_ms)
        .bind(r.peak_connections)
        .bind(r.active)
        .bind(r.storage_bytes)
}

fn bind_project<'q>(query: Query<'q>, p: &'q ProjectHour) -> Query<'q> {
    query
        .bind(&p.project_id)
        .bind(p.hour_start)
        .bind(p.peak_connections)
}

fn bind_user<'q>(query: Query<'q>, u: &'q MonthlyUser) -> Query<'q> {
    query
        .bind(&u.project_id)
        .bind(u.month_start)
        .bind(&u.user_id)
}

fn bind_flush<'q>(query: Query<'q>, f: &'q UsageFlushRow) -> Query<'q> {
    query.bind(&f.flush_id).bind(f.applied_at)
}

impl Dialect for SqliteStore {
    type Db = sqlx::Sqlite;

    const BEGIN_SNAPSHOT: Option<&'static str> = None;

    const BEGIN_IMPORT: Option<&'static str> = Some("BEGIN IMMEDIATE");

    async fn append_log(&self, batch: &[Append]) -> StoreResult<Vec<Seq>> {
        let mut writer = self.writer.lock().await;
        let writer = writer.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        let mut tx = writer.begin().await?;
        let mut seqs = Vec::with_capacity(batch.len());
        // Many rows per INSERT: every statement is a round trip to sqlx's SQLite worker
        // thread, and one per update made this the busiest thread under load.
        for chunk in chunks(batch, MAX_LOG_ROWS) {
            let mut query = sqlx::query(insert_sql(chunk.len()));
            for item in chunk {
                let author = &*item.author;
                query = query
                    .bind(item.room_id)
                    .bind(item.data.as_ref())
                    .bind(item.written_at)
                    .bind(author.user_id.as_deref())
                    .bind(author.key_id.as_deref())
                    .bind(author.conn_id)
                    .bind(author.via.as_str());
            }
            let mut chunk_seqs = query
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<Seq, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING yields rows in no guaranteed order, but AUTOINCREMENT gives the
            // rows of one statement increasing seqs in VALUES order.
            chunk_seqs.sort_unstable();
            seqs.extend(chunk_seqs);
        }
        tx.commit().await?;
        self.appended.notify_one();
        Ok(seqs)
    }

    async fn delete_log_rows(
        conn: &mut SqliteConnection,
        room_id: RoomId,
        seqs: &[Seq],
    ) -> StoreResult<()> {
        for chunk in chunks(seqs, MAX_LOG_ROWS) {
            let mut query = sqlx::query(delete_sql(chunk.len())).bind(room_id);
            for seq in chunk {
                query = query.bind(seq);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn archive_log_rows(
        conn: &mut SqliteConnection,
        room_id: RoomId,
        seqs: &[Seq],
        checkpoint: Seq,
    ) -> StoreResult<()> {
        for chunk in chunks(seqs, MAX_LOG_ROWS) {
            let mut query = sqlx::query(archive_sql(chunk.len()))
                .bind(checkpoint)
                .bind(room_id);
            for seq in chunk {
                query = query.bind(seq);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn upsert_usage(conn: &mut SqliteConnection, batch: &UsageBatch) -> StoreResult<()> {
        insert_rows(
            conn,
            &batch.rooms,
            ROOM_INSERT,
            ROOM_ROW,
            ROOM_CONFLICT,
            bind_room,
        )
        .await?;
        insert_rows(
            conn,
            &batch.projects,
            PROJECT_INSERT,
            "(?, ?, ?)",
            PROJECT_CONFLICT,
            bind_project,
        )
        .await?;
        insert_rows(
            conn,
            &batch.users,
            USER_INSERT,
            "(?, ?, ?)",
            " ON CONFLICT DO NOTHING",
            bind_user,
        )
        .await
    }

    async fn import_usage(conn: &mut SqliteConnection, rows: &UsageRows) -> StoreResult<()> {
        insert_rows(conn, &rows.flushes, FLUSH_INSERT, "(?, ?)", "", bind_flush).await?;
        insert_rows(conn, &rows.rooms, ROOM_INSERT, ROOM_ROW, "", bind_room).await?;
        insert_rows(
            conn,
            &rows.projects,
            PROJECT_INSERT,
            "(?, ?, ?)",
            "",
            bind_project,
        )
        .await?;
        insert_rows(conn, &rows.users, USER_INSERT, "(?, ?, ?)", "", bind_user).await
    }

    async fn import_log(
        conn: &mut SqliteConnection,
        room_id: RoomId,
        updates: &[(Seq, Bytes)],
    ) -> StoreResult<()> {
        for (seq, data) in updates {
            sqlx::query("INSERT INTO room_updates (seq, room_id, data) VALUES (?, ?, ?)")
                .bind(seq)
                .bind(room_id)
                .bind(data.as_ref())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn advance_sequences(conn: &mut SqliteConnection) -> StoreResult<()> {
        // Explicit ids already moved `sqlite_sequence` past every inserted seq and audit
        // id (and rooms, without AUTOINCREMENT, continue after the largest id). What is
        // left is a snapshot covering seqs whose rows were compacted away: the counter
        // must pass its `upto_seq` too: that is the snapshot's version, which every
        // compaction must raise with a newer seq than it (new updates sorting before it
        // would never be compacted).
        let high: i64 = sqlx::query(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM room_updates), 0),
                        COALESCE((SELECT MAX(upto_seq) FROM room_snapshots), 0))",
        )
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        let raised =
            sqlx::query("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'room_updates'")
                .bind(high)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        if raised == 0 && high > 0 {
            sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ('room_updates', ?)")
                .bind(high)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn close_store(&self) {
        self.pool.close().await;
        self.appended.notify_one(); // the checkpointer sees the closed pool and stops
        if let Some(writer) = self.writer.lock().await.take() {
            if let Err(error) = writer.close().await {
                tracing::debug!(%error, "closing the append connection failed");
            }
        }
    }
}
