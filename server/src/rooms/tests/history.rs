//! Version history through the engine with a clock the test moves (the store is the
//! real SQLite store): compactions keep checkpoints, retention prunes exactly what no
//! time inside the window needs, and the API refuses times outside it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::harness::{key, Author};
use crate::rooms::history::At;
use crate::rooms::{Clock, RoomError, Rooms, RoomsConfig};
use crate::store::sqlite::SqliteStore;
use crate::store::{Attribution, SharedDocStore, Via};

const WINDOW: Duration = Duration::from_secs(10);

async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn retention_prunes_exactly_what_is_older_than_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedDocStore = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let rooms = Rooms::new(
        store.clone(),
        RoomsConfig {
            compact_after_updates: 2,
            room_idle_timeout: Duration::from_secs(600),
            history_retention: Some(WINDOW),
            clock,
            ..RoomsConfig::default()
        },
    );
    let room = key("prj_h", "doc");
    let writer = Author::new(9);
    let by = |user: &str| Attribution {
        user_id: Some(user.to_owned()),
        key_id: None,
        conn_id: None,
        via: Via::Rest,
    };
    // Two updates at each of three times; each pair is folded into a checkpoint.
    for (at, text) in [(1_000_000, "ab"), (1_005_000, "cd"), (1_020_000, "ef")] {
        now.store(at, Ordering::SeqCst);
        for (i, c) in text.chars().enumerate() {
            let user = if i == 0 { "alice" } else { "bob" };
            let update = writer.type_text("t", &c.to_string());
            rooms
                .apply_update_as(&room, update, None, by(user))
                .await
                .unwrap();
        }
        let room_id = store.find_room("prj_h", "doc").await.unwrap().unwrap();
        eventually("a checkpoint per pair", async || {
            let all = store.checkpoints(room_id).await.unwrap();
            all.iter().any(|c| c.max_at == at)
        })
        .await;
    }
    let room_id = store.find_room("prj_h", "doc").await.unwrap().unwrap();
    // The third compaction pruned with the window starting at 1_010_000: the newest
    // checkpoint all older than it (max_at 1_005_000) is the base, what it folded and the
    // checkpoint before it are gone; the rows inside the window stay.
    eventually("the third compaction's prune", async || {
        store.checkpoints(room_id).await.unwrap().len() == 2
    })
    .await;
    let left = store.checkpoints(room_id).await.unwrap();
    assert_eq!(
        left.iter().map(|c| (c.max_at, c.base)).collect::<Vec<_>>(),
        [(1_005_000, true), (1_020_000, false)]
    );
    let rows = store.history_rows(room_id, None, 100).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.written_at).collect::<Vec<_>>(),
        [1_020_000, 1_020_000],
        "only the rows inside the window"
    );
    assert_eq!(
        rows.iter()
            .map(|r| r.author.user_id.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["bob", "alice"]
    );
    // Times inside the window are exact; older ones are refused.
    let text_at = async |ms: i64| -> Result<String, RoomError> {
        let past = rooms.document_at(&room, At::Time(ms), Some(WINDOW)).await?;
        Ok(past.unwrap().to_json()["t"]
            .as_str()
            .unwrap_or("")
            .to_owned())
    };
    assert_eq!(text_at(1_010_000).await.unwrap(), "abcd");
    assert_eq!(text_at(1_019_999).await.unwrap(), "abcd");
    assert_eq!(text_at(1_020_000).await.unwrap(), "abcdef");
    assert!(matches!(
        text_at(1_009_999).await,
        Err(RoomError::OutsideHistory(_))
    ));
    // Physically too: before the base, nothing can be rebuilt.
    assert!(store.read_at(room_id, 1_004_999).await.unwrap().is_none());
    // The listing shows only what is inside the window.
    let page = rooms
        .versions(&room, None, 10, Some(WINDOW))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        page.versions.iter().map(|v| v.at_ms).collect::<Vec<_>>(),
        [1_020_000]
    );
    rooms.shutdown(Duration::from_secs(10)).await;
}
