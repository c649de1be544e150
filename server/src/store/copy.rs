//! `tandem store copy`: moves a whole installation from one store to another (typically
//! the embedded SQLite file to Postgres) and proves the copy.
//!
//! The copy keeps every id (users, tenants, projects, keys, room ids, log seqs, audit
//! ids), every byte of every document and every usage row, applied flush ids included
//! (a flush retried against the destination after the move is still applied once), reads the source from one consistent snapshot,
//! and writes the destination in one transaction, so a failed copy leaves it empty. The
//! destination must be empty to begin with. Then it verifies, reading the destination
//! afresh: row counts per table, every control-plane and usage row, and for every room its stored
//! rows, the document as the server would load it (snapshot and log through
//! [`DocStore::load`](super::DocStore::load)) and the merged yrs document's encoded state,
//! against the source's.

use std::panic::{catch_unwind, AssertUnwindSafe};

use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::export::{ControlRows, ExportTx, RoomContents, RoomEntry, Table, UsageRows};
use super::{StoreError, StoredDoc, Stores};

/// What to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Copy dashboard login sessions too (users stay signed in); without them every
    /// user signs in again.
    pub sessions: bool,
}

/// What was copied: rows per table in the destination, all verified.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    pub rows: Vec<(Table, i64)>,
}

/// Why a copy did not happen or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading or writing a store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination already holds data; nothing was written.
    #[error(
        "the destination is not empty ({table} has {rows} rows); copy only into a new database"
    )]
    NotEmpty {
        /// The first non-empty table.
        table: &'static str,
        /// Its rows.
        rows: i64,
    },
    /// The destination, read back after the copy, differs from the source.
    #[error("verification failed: {0}")]
    Mismatch(String),
}

/// Copies everything in `from` into the empty `to`, then verifies the copy.
pub async fn copy(
    from: &Stores,
    to: &Stores,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let mut source = from.export.export().await?;
    let mut control = source.control().await?;
    if !options.sessions {
        control.sessions.clear();
    }
    let usage = source.usage().await?;
    let rooms = source.rooms().await?;

    let mut dest = to.export.import().await?;
    for table in Table::ALL {
        let rows = dest.count(table).await?;
        if rows > 0 {
            return Err(CopyError::NotEmpty {
                table: table.name(),
                rows,
            });
        }
    }
    dest.control(&control).await?;
    dest.usage(&usage).await?;
    for (done, room) in rooms.iter().enumerate() {
        let contents = source.room(room.id).await?;
        dest.room(room, &contents).await?;
        if (done + 1) % 1000 == 0 {
            tracing::info!(rooms = done + 1, of = rooms.len(), "copying rooms");
        }
    }
    dest.commit().await?;
    tracing::info!(rooms = rooms.len(), "copied; verifying");

    verify_against(&mut *source, to, &control, &usage, &rooms, options).await
}

/// Compares `to` with `from` as [`copy`] does after copying: for checking a copy again
/// later (both stores still unchanged).
pub async fn verify(
    from: &Stores,
    to: &Stores,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let mut source = from.export.export().await?;
    let mut control = source.control().await?;
    if !options.sessions {
        control.sessions.clear();
    }
    let usage = source.usage().await?;
    let rooms = source.rooms().await?;
    verify_against(&mut *source, to, &control, &usage, &rooms, options).await
}

/// Reads the destination back and compares it with the source's snapshot.
async fn verify_against(
    source: &mut dyn ExportTx,
    to: &Stores,
    control: &ControlRows,
    usage: &UsageRows,
    rooms: &[RoomEntry],
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let mut copied = to.export.export().await?;
    let mut report = Vec::new();
    for table in Table::ALL {
        let expected = match table {
            Table::Sessions if !options.sessions => 0,
            _ => source.count(table).await?,
        };
        let found = copied.count(table).await?;
        if found != expected {
            return Err(CopyError::Mismatch(format!(
                "{} has {found} rows, the source {expected}",
                table.name()
            )));
        }
        report.push((table, found));
    }
    if let Some(table) = differing_table(control, &copied.control().await?) {
        return Err(CopyError::Mismatch(format!("rows of {table} differ")));
    }
    if let Some(table) = differing_usage_table(usage, &copied.usage().await?) {
        return Err(CopyError::Mismatch(format!("rows of {table} differ")));
    }
    if copied.rooms().await? != rooms {
        return Err(CopyError::Mismatch("rows of rooms differ".into()));
    }
    for room in rooms {
        let expected = source.room(room.id).await?;
        if copied.room(room.id).await? != expected {
            return Err(mismatch(room, "its stored rows differ"));
        }
        // As the server will read it: through the runtime trait, by project and name.
        let loaded = to.docs.load(&room.project_id, &room.name).await?;
        if loaded.room_id != room.id || !same_doc(&loaded, &expected) {
            return Err(mismatch(room, "it loads differently"));
        }
        match (merged(&expected), merged_stored(&loaded)) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(a), Err(b)) if a == b => {
                // Broken in the source already (the server skips such updates); the
                // rows are identical, which is all a copy can promise.
                tracing::warn!(room = %room.name, project = %room.project_id, error = %a,
                    "a stored update of this room does not apply, in the source too");
            }
            _ => return Err(mismatch(room, "its merged document differs")),
        }
    }
    Ok(CopyReport { rows: report })
}

fn mismatch(room: &RoomEntry, what: &str) -> CopyError {
    CopyError::Mismatch(format!(
        "room {:?} of project {} (id {}): {what}",
        room.name, room.project_id, room.id
    ))
}

/// The first table whose rows differ between `a` and `b`.
fn differing_table(a: &ControlRows, b: &ControlRows) -> Option<&'static str> {
    [
        (a.users != b.users, "users"),
        (a.sessions != b.sessions, "sessions"),
        (a.tenants != b.tenants, "tenants"),
        (a.members != b.members, "members"),
        (a.projects != b.projects, "projects"),
        (a.keys != b.keys, "api_keys"),
        (a.signing_keys != b.signing_keys, "signing_keys"),
        (a.audit != b.audit, "audit_log"),
        (a.invitations != b.invitations, "invitations"),
        (a.security_log != b.security_log, "security_log"),
        (a.outbox != b.outbox, "email_outbox"),
    ]
    .into_iter()
    .find_map(|(differs, table)| differs.then_some(table))
}

/// The first usage table whose rows differ between `a` and `b`.
fn differing_usage_table(a: &UsageRows, b: &UsageRows) -> Option<&'static str> {
    [
        (a.flushes != b.flushes, Table::UsageFlushes),
        (a.rooms != b.rooms, Table::UsageHourly),
        (a.projects != b.projects, Table::UsageProjectHourly),
        (a.users != b.users, Table::UsageUsers),
    ]
    .into_iter()
    .find_map(|(differs, table)| differs.then_some(table.name()))
}

/// Whether a loaded document is exactly the stored rows' (the snapshot and every log
/// row: compaction deletes exactly the rows it folds, so none left is in the snapshot,
/// even one below its `upto_seq`).
fn same_doc(loaded: &StoredDoc, stored: &RoomContents) -> bool {
    let snapshot = stored
        .snapshot
        .as_ref()
        .map(|s| (s.upto_seq, s.data.clone()));
    loaded.snapshot == snapshot && loaded.updates == stored.updates
}

fn merged(stored: &RoomContents) -> Result<Vec<u8>, String> {
    merge(
        stored.snapshot.as_ref().map(|s| s.data.as_ref()),
        stored.updates.iter().map(|(_, data)| data.as_ref()),
    )
}

fn merged_stored(loaded: &StoredDoc) -> Result<Vec<u8>, String> {
    merge(
        loaded.snapshot.as_ref().map(|(_, data)| data.as_ref()),
        loaded.updates.iter().map(|(_, data)| data.as_ref()),
    )
}

/// The document's full state after the snapshot and updates, encoded (deterministic for
/// the same input: yrs orders clients and deletions). Panics in yrs are contained.
fn merge<'a>(
    snapshot: Option<&'a [u8]>,
    updates: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            for data in snapshot.into_iter().chain(updates) {
                let update = Update::decode_v1(data).map_err(|e| e.to_string())?;
                txn.apply_update(update).map_err(|e| e.to_string())?;
            }
        }
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Ok(state)
    }))
    .unwrap_or_else(|_| Err("yrs panicked".to_owned()))
}
