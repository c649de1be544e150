//! Stories of the `EventLog`: appended events read back in id order after a cursor,
//! kept across a restart, pruned by age.

use super::TestStore;

pub(super) async fn event_log_story(test: TestStore) {
    let log = test.docs();
    assert_eq!(log.last_event_id().await.unwrap(), 0);
    assert!(log.events_after(0, 10).await.unwrap().is_empty());
    let a = log.append_event(r#"{"type":"a"}"#, 1_000).await.unwrap();
    let b = log.append_event(r#"{"type":"b"}"#, 2_000).await.unwrap();
    let c = log.append_event(r#"{"type":"c"}"#, 3_000).await.unwrap();
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(log.last_event_id().await.unwrap(), c);

    let all = log.events_after(0, 10).await.unwrap();
    let seen: Vec<(i64, &str, i64)> = all.iter().map(|e| (e.id, e.event.as_str(), e.at)).collect();
    assert_eq!(
        seen,
        vec![
            (a, r#"{"type":"a"}"#, 1_000),
            (b, r#"{"type":"b"}"#, 2_000),
            (c, r#"{"type":"c"}"#, 3_000),
        ]
    );
    // A cursor and a limit.
    let after_a: Vec<i64> = log
        .events_after(a, 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(after_a, vec![b]);
    assert!(log.events_after(c, 10).await.unwrap().is_empty());

    // Kept across a restart.
    let test = test.reopen().await;
    let log = test.docs();
    assert_eq!(log.last_event_id().await.unwrap(), c);

    // Pruning by age: before 2 500 removes a and b; ids never go back.
    assert_eq!(log.prune_events(2_500).await.unwrap(), 2);
    let left: Vec<i64> = log
        .events_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![c]);
    let d = log.append_event(r#"{"type":"d"}"#, 4_000).await.unwrap();
    assert!(d > c, "{d} after {c}");
}
