//! Usage reports: a project's metered usage in hour or UTC-day buckets with a per-room
//! breakdown and its monthly active users, and the same for every project of a tenant.
//! The rows come from the engine's meter (`rooms::meter`) through the [`UsageStore`];
//! here they are bucketed and scoped (a project key sees its project, a member its
//! tenant's projects, nothing else).
//!
//! Within a bucket: counters are sums; a room's peak and the project's peak are maxima
//! of their hourly peaks; a room is active if it had a connection in any hour; a room's
//! storage is its latest reading in the bucket, and the bucket's storage the sum of
//! those. A tenant's figures are the sums of its projects' (peaks and monthly users
//! included: each project counts its own, user ids are per project).

use std::collections::BTreeMap;

use super::error::{ControlError, ControlResult};
use super::plane::{ControlPlane, ProjectAuth, TenantAccess};
use crate::store::control::ProjectRow;
use crate::store::usage::{
    day_start, hour_start, month_start, next_month, ProjectHour, RoomHour, UsageStore, DAY_MS,
    HOUR_MS,
};

/// The longest range one request may cover.
pub const MAX_RANGE_DAYS: i64 = 93;

/// Bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// UTC hours.
    Hour,
    /// UTC days.
    Day,
}

impl Granularity {
    fn floor(self, ms: i64) -> i64 {
        match self {
            Granularity::Hour => hour_start(ms),
            Granularity::Day => day_start(ms),
        }
    }

    fn len(self) -> i64 {
        match self {
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }
}

/// A validated request range: whole buckets, `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    /// Start of the first bucket (unix ms).
    pub from: i64,
    /// End of the last bucket (unix ms, exclusive).
    pub to: i64,
    pub granularity: Granularity,
}

impl UsageRange {
    /// The buckets covering `[from, to)`: `from` is rounded down and `to` up to a bucket
    /// boundary. At most [`MAX_RANGE_DAYS`] days.
    pub fn new(from: i64, to: i64, granularity: Granularity) -> ControlResult<Self> {
        if from >= to {
            return Err(ControlError::Invalid("`from` must be before `to`".into()));
        }
        let start = granularity.floor(from);
        let end = granularity
            .floor(to.saturating_sub(1))
            .saturating_add(granularity.len());
        if from < 0 || end > super::clock::MAX_TIME_MS {
            return Err(ControlError::Invalid(
                "times must be between 1970-01-01 and 9999-12-31".into(),
            ));
        }
        if end - start > MAX_RANGE_DAYS * DAY_MS {
            return Err(ControlError::Invalid(format!(
                "the range may cover at most {MAX_RANGE_DAYS} days"
            )));
        }
        Ok(Self {
            from: start,
            to: end,
            granularity,
        })
    }

    /// The calendar months the range touches: `[first start, end)`.
    fn months(&self) -> (i64, i64) {
        (month_start(self.from), next_month(self.to - 1))
    }
}

/// Figures of one room in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomFigures {
    pub room: String,
    pub messages_in: i64,
    pub messages_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub connection_ms: i64,
    pub peak_connections: i64,
    pub active: bool,
    /// Latest stored size measured in the bucket (`None`: not loaded then).
    pub storage_bytes: Option<i64>,
}

/// Totals of one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub messages_in: i64,
    pub messages_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub connection_ms: i64,
    pub peak_connections: i64,
    pub active_rooms: i64,
    pub storage_bytes: i64,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.connection_ms += other.connection_ms;
        self.peak_connections += other.peak_connections;
        self.active_rooms += other.active_rooms;
        self.storage_bytes += other.storage_bytes;
    }
}

/// One bucket: its start, totals and (for a project) the rooms, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub start: i64,
    pub totals: Figures,
    pub rooms: Vec<RoomFigures>,
}

/// Distinct users in one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthUsage {
    pub month_start: i64,
    pub users: i64,
}

/// Usage of one project (or a tenant's totals, without rooms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub range: UsageRange,
    /// Buckets with any usage, oldest first.
    pub buckets: Vec<Bucket>,
    /// Every month the range touches, oldest first.
    pub monthly_active_users: Vec<MonthUsage>,
}

/// A tenant's usage: its totals and each project's report.
#[derive(Debug, Clone)]
pub struct TenantUsage {
    pub totals: UsageReport,
    pub projects: Vec<(ProjectRow, UsageReport)>,
}

impl ControlPlane {
    /// The usage of the key's project.
    pub async fn project_usage(
        &self,
        usage: &dyn UsageStore,
        auth: &ProjectAuth,
        range: &UsageRange,
    ) -> ControlResult<UsageReport> {
        report(usage, auth.project_id.as_str(), range).await
    }

    /// The usage of every project of the tenant, and their sums.
    pub async fn tenant_usage(
        &self,
        usage: &dyn UsageStore,
        access: &TenantAccess,
        range: &UsageRange,
    ) -> ControlResult<TenantUsage> {
        let projects = self.list_projects(access).await?;
        let mut reports = Vec::with_capacity(projects.len());
        for project in projects {
            let report = report(usage, project.id.as_str(), range).await?;
            reports.push((project, report));
        }
        Ok(TenantUsage {
            totals: sum(range, reports.iter().map(|(_, r)| r)),
            projects: reports,
        })
    }
}

async fn report(
    usage: &dyn UsageStore,
    project_id: &str,
    range: &UsageRange,
) -> ControlResult<UsageReport> {
    let rooms = usage.room_hours(project_id, range.from, range.to).await?;
    let peaks = usage
        .project_hours(project_id, range.from, range.to)
        .await?;
    let (first, end) = range.months();
    let users = usage.monthly_users(project_id, first, end).await?;
    let mut months = Vec::new();
    let mut month = first;
    while month < end {
        let users = users
            .iter()
            .find(|m| m.month_start == month)
            .map_or(0, |m| m.users);
        months.push(MonthUsage {
            month_start: month,
            users,
        });
        month = next_month(month);
    }
    Ok(UsageReport {
        range: *range,
        buckets: buckets(range.granularity, &rooms, &peaks),
        monthly_active_users: months,
    })
}

/// Buckets hourly rows (ordered by hour, as the store returns them).
pub(crate) fn buckets(
    granularity: Granularity,
    rooms: &[RoomHour],
    peaks: &[ProjectHour],
) -> Vec<Bucket> {
    let mut by_start: BTreeMap<i64, (BTreeMap<&str, RoomFigures>, i64)> = BTreeMap::new();
    for row in rooms {
        let (bucket, _) = by_start
            .entry(granularity.floor(row.hour_start))
            .or_default();
        let room = bucket.entry(&row.room).or_insert_with(|| RoomFigures {
            room: row.room.clone(),
            ..RoomFigures::default()
        });
        room.messages_in += row.messages_in;
        room.messages_out += row.messages_out;
        room.bytes_in += row.bytes_in;
        room.bytes_out += row.bytes_out;
        room.connection_ms += row.connection_ms;
        room.peak_connections = room.peak_connections.max(row.peak_connections);
        room.active |= row.active;
        // Rows come oldest first: a later reading replaces an earlier one.
        if row.storage_bytes.is_some() {
            room.storage_bytes = row.storage_bytes;
        }
    }
    for peak in peaks {
        let (_, max) = by_start
            .entry(granularity.floor(peak.hour_start))
            .or_default();
        *max = (*max).max(peak.peak_connections);
    }
    by_start
        .into_iter()
        .map(|(start, (rooms, peak))| {
            let rooms: Vec<RoomFigures> = rooms.into_values().collect();
            let mut totals = Figures {
                peak_connections: peak,
                ..Figures::default()
            };
            for r in &rooms {
                totals.messages_in += r.messages_in;
                totals.messages_out += r.messages_out;
                totals.bytes_in += r.bytes_in;
                totals.bytes_out += r.bytes_out;
                totals.connection_ms += r.connection_ms;
                totals.active_rooms += i64::from(r.active);
                totals.storage_bytes += r.storage_bytes.unwrap_or(0);
            }
            Bucket {
                start,
                totals,
                rooms,
            }
        })
        .collect()
}

/// The sum of several projects' reports (bucket by bucket, month by month), without
/// rooms.
fn sum<'a>(range: &UsageRange, reports: impl Iterator<Item = &'a UsageReport>) -> UsageReport {
    let mut buckets: BTreeMap<i64, Figures> = BTreeMap::new();
    let mut months: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut first, end) = range.months();
    while first < end {
        months.insert(first, 0);
        first = next_month(first);
    }
    for report in reports {
        for bucket in &report.buckets {
            buckets.entry(bucket.start).or_default().add(&bucket.totals);
        }
        for month in &report.monthly_active_users {
            *months.entry(month.month_start).or_default() += month.users;
        }
    }
    UsageReport {
        range: *range,
        buckets: buckets
            .into_iter()
            .map(|(start, totals)| Bucket {
                start,
                totals,
                rooms: Vec::new(),
            })
            .collect(),
        monthly_active_users: months
            .into_iter()
            .map(|(month_start, users)| MonthUsage { month_start, users })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-31T00:00:00Z.
    const DAY: i64 = 1_738_281_600_000;

    fn row(room: &str, hour: i64, n: i64, active: bool, storage: Option<i64>) -> RoomHour {
        RoomHour {
            project_id: "prj_a".into(),
            room: room.into(),
            hour_start: hour,
            messages_in: n,
            messages_out: n,
            bytes_in: n,
            bytes_out: n,
            connection_ms: n,
            peak_connections: n,
            active,
            storage_bytes: storage,
        }
    }

    fn peak(hour: i64, n: i64) -> ProjectHour {
        ProjectHour {
            project_id: "prj_a".into(),
            hour_start: hour,
            peak_connections: n,
        }
    }

    #[test]
    fn ranges_are_whole_buckets_and_bounded() {
        let r =
            UsageRange::new(DAY + 90 * 60_000, DAY + 3 * HOUR_MS + 1, Granularity::Hour).unwrap();
        assert_eq!((r.from, r.to), (DAY + HOUR_MS, DAY + 4 * HOUR_MS));
        let r = UsageRange::new(DAY + 5, DAY + 6, Granularity::Day).unwrap();
        assert_eq!((r.from, r.to), (DAY, DAY + DAY_MS));
        assert_eq!(r.months(), (1_735_689_600_000, 1_738_368_000_000)); // Jan
        assert!(UsageRange::new(DAY, DAY, Granularity::Hour).is_err());
        assert!(UsageRange::new(DAY, DAY - 1, Granularity::Hour).is_err());
        assert!(UsageRange::new(DAY, DAY + 93 * DAY_MS, Granularity::Day).is_ok());
        assert!(UsageRange::new(DAY, DAY + 93 * DAY_MS + 1, Granularity::Day).is_err());
    }

    #[test]
    fn days_sum_counters_max_peaks_and_keep_each_rooms_latest_storage() {
        let h = |n: i64| DAY + n * HOUR_MS;
        let rooms = [
            row("a", h(1), 1, true, Some(100)),
            row("b", h(1), 2, false, Some(7)),
            row("a", h(5), 3, false, None),
            row("a", h(9), 4, false, Some(50)),
            row("a", h(25), 5, true, Some(60)),
        ];
        let peaks = [peak(h(1), 2), peak(h(9), 4), peak(h(25), 5)];
        let days = buckets(Granularity::Day, &rooms, &peaks);
        assert_eq!(days.len(), 2);
        let first = &days[0];
        assert_eq!(first.start, DAY);
        assert_eq!(first.rooms.len(), 2);
        let a = &first.rooms[0];
        assert_eq!(
            (a.room.as_str(), a.messages_in, a.peak_connections),
            ("a", 8, 4)
        );
        assert_eq!((a.active, a.storage_bytes), (true, Some(50)));
        assert_eq!(
            first.totals,
            Figures {
                messages_in: 10,
                messages_out: 10,
                bytes_in: 10,
                bytes_out: 10,
                connection_ms: 10,
                peak_connections: 4,
                active_rooms: 1,
                storage_bytes: 57,
            }
        );
        assert_eq!(days[1].start, DAY + DAY_MS);
        assert_eq!(days[1].totals.storage_bytes, 60);
        let hours = buckets(Granularity::Hour, &rooms, &peaks);
        assert_eq!(hours.len(), 4);
        assert_eq!(hours[0].totals.storage_bytes, 107);
        assert_eq!(hours[1].totals.storage_bytes, 0, "not measured that hour");
    }

    #[test]
    fn a_tenant_is_the_sum_of_its_projects() {
        let range = UsageRange::new(DAY, DAY + DAY_MS, Granularity::Hour).unwrap();
        let project = |n: i64| UsageReport {
            range,
            buckets: buckets(
                Granularity::Hour,
                &[row("a", DAY, n, true, Some(n))],
                &[peak(DAY, n)],
            ),
            monthly_active_users: vec![MonthUsage {
                month_start: month_start(DAY),
                users: n,
            }],
        };
        let (one, two) = (project(1), project(2));
        let total = sum(&range, [&one, &two].into_iter());
        assert_eq!(total.buckets.len(), 1);
        let t = &total.buckets[0].totals;
        assert_eq!(
            (t.messages_in, t.peak_connections, t.active_rooms),
            (3, 3, 2)
        );
        assert_eq!(t.storage_bytes, 3);
        assert_eq!(total.monthly_active_users[0].users, 3);
    }
}
