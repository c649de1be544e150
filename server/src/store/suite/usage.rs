//! Stories of the `UsageStore`: a flush applied exactly once however often it is
//! retried (also when two attempts race), counters added, peaks maxed, storage readings
//! replaced by the latest, users counted once per month, and reads bounded by project
//! and time.

use super::TestStore;
use crate::store::usage::{
    MonthUsers, MonthlyUser, ProjectHour, RoomHour, UsageBatch, DAY_MS, HOUR_MS,
};

/// 2025-01-31T23:00:00Z: the last hour of a month.
pub(super) const H0: i64 = 1_738_364_400_000;
/// 2025-01-01 and 2025-02-01.
pub(super) const JAN: i64 = 1_735_689_600_000;
pub(super) const FEB: i64 = 1_738_368_000_000;

pub(super) fn room(project: &str, name: &str, hour: i64, n: i64) -> RoomHour {
    RoomHour {
        project_id: project.to_owned(),
        room: name.to_owned(),
        hour_start: hour,
        messages_in: n,
        messages_out: 2 * n,
        bytes_in: 10 * n,
        bytes_out: 20 * n,
        connection_ms: 1000 * n,
        peak_connections: n,
        active: true,
        storage_bytes: Some(100 * n),
    }
}

pub(super) fn user(project: &str, month: i64, id: &str) -> MonthlyUser {
    MonthlyUser {
        project_id: project.to_owned(),
        month_start: month,
        user_id: id.to_owned(),
    }
}

pub(super) fn peak(project: &str, hour: i64, peak: i64) -> ProjectHour {
    ProjectHour {
        project_id: project.to_owned(),
        hour_start: hour,
        peak_connections: peak,
    }
}

pub(super) async fn usage_story(store: TestStore) {
    let usage = store.usage();
    let now = H0 + 2 * HOUR_MS;
    let first = UsageBatch {
        rooms: vec![
            room("prj_a", "doc", H0, 3),
            room("prj_a", "b", H0, 1),
            room("prj_b", "doc", H0, 7),
        ],
        projects: vec![peak("prj_a", H0, 3), peak("prj_b", H0, 7)],
        users: vec![user("prj_a", JAN, "ada"), user("prj_a", JAN, "bob")],
    };
    assert!(usage.apply_usage("f1", &first, now).await.unwrap());
    // The same flush again (a retry after a lost answer) changes nothing.
    assert!(!usage.apply_usage("f1", &first, now).await.unwrap());
    let rows = usage.room_hours("prj_a", H0, H0 + HOUR_MS).await.unwrap();
    assert_eq!(
        rows,
        vec![room("prj_a", "b", H0, 1), room("prj_a", "doc", H0, 3)]
    );

    // A second flush adds counters, keeps the larger peak, the latest storage reading
    // (a missing reading keeps the stored one) and `active` once set.
    let second = UsageBatch {
        rooms: vec![
            RoomHour {
                peak_connections: 2,
                active: false,
                storage_bytes: Some(5),
                ..room("prj_a", "doc", H0, 2)
            },
            RoomHour {
                storage_bytes: None,
                ..room("prj_a", "b", H0, 1)
            },
            room("prj_a", "doc", H0 + HOUR_MS, 4),
        ],
        projects: vec![peak("prj_a", H0, 2), peak("prj_a", H0 + HOUR_MS, 4)],
        users: vec![user("prj_a", JAN, "ada"), user("prj_a", FEB, "ada")],
    };
    assert!(usage.apply_usage("f2", &second, now).await.unwrap());
    let rows = usage
        .room_hours("prj_a", H0, H0 + 2 * HOUR_MS)
        .await
        .unwrap();
    let doc = RoomHour {
        messages_in: 5,
        messages_out: 10,
        bytes_in: 50,
        bytes_out: 100,
        connection_ms: 5000,
        peak_connections: 3,
        active: true,
        storage_bytes: Some(5),
        ..room("prj_a", "doc", H0, 0)
    };
    let b = RoomHour {
        peak_connections: 1,
        storage_bytes: Some(100),
        ..room("prj_a", "b", H0, 2)
    };
    assert_eq!(rows, vec![b, doc, room("prj_a", "doc", H0 + HOUR_MS, 4)]);
    // `to` is exclusive; other projects' rows never show.
    assert_eq!(
        usage.room_hours("prj_a", H0, H0 + 1).await.unwrap().len(),
        2
    );
    assert!(usage
        .room_hours("prj_c", 0, i64::MAX)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        usage.project_hours("prj_a", H0, H0 + DAY_MS).await.unwrap(),
        vec![peak("prj_a", H0, 3), peak("prj_a", H0 + HOUR_MS, 4)]
    );
    assert_eq!(
        usage
            .monthly_users("prj_a", JAN, FEB + 31 * DAY_MS)
            .await
            .unwrap(),
        vec![
            MonthUsers {
                month_start: JAN,
                users: 2
            },
            MonthUsers {
                month_start: FEB,
                users: 1
            }
        ]
    );
    assert_eq!(
        usage
            .monthly_users("prj_a", FEB, FEB + 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(usage
        .monthly_users("prj_b", JAN, FEB)
        .await
        .unwrap()
        .is_empty());

    // Flush ids survive a restart.
    let store = store.reopen().await;
    let usage = store.usage();
    assert!(!usage.apply_usage("f2", &second, now).await.unwrap());
    assert_eq!(
        usage.room_hours("prj_b", H0, H0 + HOUR_MS).await.unwrap(),
        vec![room("prj_b", "doc", H0, 7)]
    );

    // Two attempts of one flush racing: exactly one applies it.
    let third = UsageBatch {
        rooms: vec![room("prj_b", "doc", H0, 1)],
        ..UsageBatch::default()
    };
    let (x, y) = tokio::join!(
        usage.apply_usage("f3", &third, now),
        usage.apply_usage("f3", &third, now)
    );
    assert!(x.unwrap() ^ y.unwrap(), "one of the two applies it");
    let rows = usage.room_hours("prj_b", H0, H0 + HOUR_MS).await.unwrap();
    assert_eq!(rows[0].messages_in, 8);

    // Large flushes (many rows per statement), applied twice under two ids: every row
    // is there and adds up.
    let many = UsageBatch {
        rooms: (0..131)
            .map(|i| room("prj_many", &format!("r{i:03}"), H0, 1))
            .collect(),
        projects: (0..67)
            .map(|i| peak("prj_many", H0 + i * HOUR_MS, 2))
            .collect(),
        users: (0..70)
            .map(|i| user("prj_many", JAN, &format!("u{i}")))
            .collect(),
    };
    assert!(usage.apply_usage("m1", &many, now).await.unwrap());
    assert!(usage.apply_usage("m2", &many, now).await.unwrap());
    let rows = usage.room_hours("prj_many", H0, H0 + 1).await.unwrap();
    assert_eq!(rows.len(), 131);
    assert!(rows
        .iter()
        .all(|r| r.messages_in == 2 && r.peak_connections == 1));
    let peaks = usage.project_hours("prj_many", 0, i64::MAX).await.unwrap();
    assert_eq!(peaks.len(), 67);
    let users = usage.monthly_users("prj_many", JAN, FEB).await.unwrap();
    assert_eq!(users[0].users, 70);

    // Ids are forgotten after the retention window (a week): only then would the same
    // id apply again.
    let later = now + 8 * DAY_MS;
    assert!(usage
        .apply_usage("f4", &UsageBatch::default(), later)
        .await
        .unwrap());
    assert!(usage
        .apply_usage("f1", &UsageBatch::default(), later)
        .await
        .unwrap());
    store.stores.close().await;
}
