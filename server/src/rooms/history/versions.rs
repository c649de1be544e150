//! The version listing: a room's stored updates grouped into bursts (updates less than
//! the engine's `version_gap` apart), newest first, with who wrote them and the names
//! given to them, ending at the checkpoint history starts from once retention pruned
//! what came before it.

use std::collections::BTreeSet;

use super::{At, Author};
use crate::store::history::{HistoryRow, VersionName};
use crate::store::{RoomId, Seq, SharedDocStore, StoreResult};

/// Rows read per store call while grouping.
const CHUNK: u32 = 1_000;

/// Most rows one listing reads (a page then ends early, with a cursor).
const MAX_ROWS: usize = 100_000;

/// What a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKind {
    /// A burst of updates.
    Updates,
    /// The checkpoint the history starts from (what came before it was pruned).
    Checkpoint,
}

/// One version.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// Its id (`v<first seq>-<last seq>`, or `c<upto>` for a checkpoint), usable as `at`.
    pub id: String,
    /// What it is.
    pub kind: VersionKind,
    /// When its first update was written, unix milliseconds.
    pub from_ms: i64,
    /// When its last update was written: the document "at this version" is the one at
    /// this time.
    pub at_ms: i64,
    /// How many updates it holds.
    pub updates: u64,
    /// Their bytes (a checkpoint's: its size).
    pub bytes: u64,
    /// Who wrote them, each once.
    pub authors: Vec<Author>,
    /// How they came (socket, rest, restore, fork), each once.
    pub via: Vec<&'static str>,
    /// Names given to times from this version up to the next.
    pub names: Vec<String>,
    /// The seq of its first update (the cursor for the next page).
    first_seq: Seq,
}

/// A page of versions.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionPage {
    /// Newest first.
    pub versions: Vec<Version>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next_before: Option<String>,
}

struct Burst {
    first: Seq,
    last: Seq,
    from_ms: i64,
    at_ms: i64,
    updates: u64,
    bytes: u64,
    authors: BTreeSet<Author>,
    via: BTreeSet<&'static str>,
}

impl Burst {
    fn new(row: &HistoryRow) -> Self {
        let mut burst = Self {
            first: row.seq,
            last: row.seq,
            from_ms: row.written_at,
            at_ms: row.written_at,
            updates: 0,
            bytes: 0,
            authors: BTreeSet::new(),
            via: BTreeSet::new(),
        };
        burst.add(row);
        burst
    }

    /// Rows arrive newest first.
    fn add(&mut self, row: &HistoryRow) {
        self.first = self.first.min(row.seq);
        self.last = self.last.max(row.seq);
        self.from_ms = self.from_ms.min(row.written_at);
        self.at_ms = self.at_ms.max(row.written_at);
        self.updates += 1;
        self.bytes += u64::try_from(row.bytes).unwrap_or(0);
        self.authors.insert(Author::from(&row.author));
        self.via.insert(row.author.via.as_str());
    }

    fn version(self) -> Version {
        Version {
            id: format!("v{}-{}", self.first, self.last),
            kind: VersionKind::Updates,
            from_ms: self.from_ms,
            at_ms: self.at_ms,
            updates: self.updates,
            bytes: self.bytes,
            authors: self.authors.into_iter().collect(),
            via: self.via.into_iter().collect(),
            names: Vec::new(),
            first_seq: self.first,
        }
    }
}

pub(super) async fn list(
    store: &SharedDocStore,
    room_id: RoomId,
    before: Option<At>,
    limit: usize,
    gap_ms: i64,
    window_start: Option<i64>,
) -> StoreResult<VersionPage> {
    let (mut cursor, before_ms) = match before {
        Some(At::Version(seq)) | Some(At::Checkpoint(seq)) => (Some(seq), None),
        Some(At::Time(ms)) => (None, Some(ms)),
        None => (None, None),
    };
    let start = window_start.unwrap_or(i64::MIN);
    let mut done: Vec<Version> = Vec::new();
    let mut open: Option<Burst> = None;
    let mut read = 0;
    let mut exhausted = false;
    'scan: while done.len() < limit && read < MAX_ROWS {
        let rows = store.history_rows(room_id, cursor, CHUNK).await?;
        if rows.is_empty() {
            exhausted = true;
            break;
        }
        read += rows.len();
        cursor = rows.last().map(|r| r.seq);
        for row in &rows {
            if before_ms.is_some_and(|before| row.written_at >= before) {
                continue;
            }
            if row.written_at < start {
                exhausted = true;
                break 'scan;
            }
            match &mut open {
                Some(burst) if burst.from_ms - row.written_at <= gap_ms => burst.add(row),
                _ => {
                    if let Some(burst) = open.replace(Burst::new(row)) {
                        done.push(burst.version());
                        if done.len() >= limit {
                            // `open` starts the next page: not listed now.
                            open = None;
                            break 'scan;
                        }
                    }
                }
            }
        }
    }
    // A burst still open at the end of the history is complete.
    if let Some(burst) = open.take() {
        if exhausted || read >= MAX_ROWS {
            done.push(burst.version());
        }
    }
    let mut next_before = done
        .last()
        .map(|v| format!("v{}-{}", v.first_seq, v.first_seq));
    if exhausted && done.len() < limit {
        // The end of the history: the checkpoint it starts from, if what came before it
        // was pruned (else it begins with the room's first update).
        if let Some(base) = store
            .checkpoints(room_id)
            .await?
            .into_iter()
            .find(|c| c.base && c.max_at >= start)
        {
            done.push(Version {
                id: format!("c{}", base.upto_seq),
                kind: VersionKind::Checkpoint,
                from_ms: base.max_at,
                at_ms: base.max_at,
                updates: 0,
                bytes: u64::try_from(base.bytes).unwrap_or(0),
                authors: Vec::new(),
                via: Vec::new(),
                names: Vec::new(),
                first_seq: base.upto_seq,
            });
        }
        next_before = None;
    }
    attach_names(&mut done, &store.version_names(room_id).await?);
    Ok(VersionPage {
        versions: done,
        next_before,
    })
}

/// Each name goes to the version its time falls in: the newest that began at or before
/// it (names before the oldest listed version are on a later page).
fn attach_names(versions: &mut [Version], names: &[VersionName]) {
    for name in names {
        if let Some(version) = versions.iter_mut().find(|v| v.from_ms <= name.at_ms) {
            version.names.push(name.name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Via;

    fn version(first: Seq, from_ms: i64, at_ms: i64) -> Version {
        Burst {
            first,
            last: first,
            from_ms,
            at_ms,
            updates: 1,
            bytes: 1,
            authors: BTreeSet::new(),
            via: BTreeSet::from([Via::Socket.as_str()]),
        }
        .version()
    }

    #[test]
    fn names_attach_to_the_version_they_follow() {
        let mut versions = vec![
            version(3, 300, 310),
            version(2, 200, 210),
            version(1, 100, 110),
        ];
        let name = |at_ms: i64, name: &str| VersionName {
            at_ms,
            name: name.to_owned(),
            created_at: 0,
            created_by: "key".to_owned(),
        };
        attach_names(
            &mut versions,
            &[
                name(110, "a"),
                name(250, "b"),
                name(400, "c"),
                name(50, "too early"),
            ],
        );
        assert_eq!(versions[2].names, ["a"]);
        assert_eq!(versions[1].names, ["b"]);
        assert_eq!(versions[0].names, ["c"]);
    }
}
