//! Usage metering's storage: hourly counters per project × room, peak connections per
//! project × hour, and the distinct users per project × month. The engine's meter
//! (`rooms::meter`) hands over one [`UsageBatch`] per flush; [`UsageStore::apply_usage`]
//! applies it exactly once, however often it is retried, by recording its flush id in
//! the same transaction. Times are unix milliseconds; hours and months are UTC.

use async_trait::async_trait;

use super::StoreResult;

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// One day, in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// How long applied flush ids are remembered. A flush is only ever retried by the
/// process that made it, within minutes; a week is a wide margin.
pub const FLUSH_ID_RETENTION_MS: i64 = 7 * DAY_MS;

/// The start of the UTC hour holding `ms`.
pub fn hour_start(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// The start of the UTC calendar month holding `ms`.
pub fn month_start(ms: i64) -> i64 {
    let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
    days_from_civil(year, month, 1) * DAY_MS
}

/// The start of the month after the one starting at (or holding) `ms`.
pub fn next_month(ms: i64) -> i64 {
    let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(year, month, 1) * DAY_MS
}

/// `YYYY-MM` of the month holding `ms`.
pub fn month_label(ms: i64) -> String {
    let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{year:04}-{month:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One room's usage in one hour: counters to add, a peak to keep the maximum of and a
/// storage reading to keep the latest of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomHour {
    pub project_id: String,
    pub room: String,
    /// Start of the UTC hour, unix milliseconds.
    pub hour_start: i64,
    /// Binary WebSocket messages received from clients.
    pub messages_in: i64,
    /// Binary WebSocket messages sent to clients.
    pub messages_out: i64,
    /// Their payload bytes.
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// Connection time in this hour, milliseconds.
    pub connection_ms: i64,
    /// Most connections open at once in the room during the hour.
    pub peak_connections: i64,
    /// Whether a connection was open in the room during the hour.
    pub active: bool,
    /// The room's stored size (snapshot + log) as last measured in the hour; `None`
    /// when it was not measured (the room was not loaded).
    pub storage_bytes: Option<i64>,
}

/// One project's peak of concurrent connections in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectHour {
    pub project_id: String,
    pub hour_start: i64,
    pub peak_connections: i64,
}

/// A user (a token's `sub`) seen in a project in a month.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthlyUser {
    pub project_id: String,
    /// Start of the UTC month, unix milliseconds.
    pub month_start: i64,
    pub user_id: String,
}

/// What one flush hands to the store. Each `(project, room, hour)` and `(project,
/// hour)` appears at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    pub rooms: Vec<RoomHour>,
    pub projects: Vec<ProjectHour>,
    pub users: Vec<MonthlyUser>,
}

impl UsageBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty() && self.projects.is_empty() && self.users.is_empty()
    }

    /// Rows this batch writes (for logs).
    pub fn len(&self) -> usize {
        self.rooms.len() + self.projects.len() + self.users.len()
    }
}

/// Distinct users of a project in one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthUsers {
    /// Start of the UTC month, unix milliseconds.
    pub month_start: i64,
    pub users: i64,
}

/// Usage rows: written by the engine's flusher, read by the usage API.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Applies `batch` unless a batch with `flush_id` was applied before, in one
    /// transaction: the id is recorded, counters added, peaks maxed, storage readings
    /// replaced, users inserted once. `Ok(false)`: already applied, nothing written.
    /// Forgets ids older than [`FLUSH_ID_RETENTION_MS`] (relative to `now_ms`).
    async fn apply_usage(
        &self,
        flush_id: &str,
        batch: &UsageBatch,
        now_ms: i64,
    ) -> StoreResult<bool>;

    /// The project's room rows with `from <= hour_start < to`, by hour then room.
    async fn room_hours(&self, project_id: &str, from: i64, to: i64) -> StoreResult<Vec<RoomHour>>;

    /// The project's peaks with `from <= hour_start < to`, by hour.
    async fn project_hours(
        &self,
        project_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<ProjectHour>>;

    /// Distinct users per month with `from <= month_start < to`, by month (months with
    /// none are absent).
    async fn monthly_users(
        &self,
        project_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<MonthUsers>>;
}

/// A shared handle to the configured usage store.
pub type SharedUsageStore = std::sync::Arc<dyn UsageStore>;

/// A count for a signed 64-bit column (saturating: no counter gets near it).
pub fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29T13:45:00Z.
    const LEAP_DAY: i64 = 1_709_214_300_000;

    #[test]
    fn hours_days_and_months_are_utc_boundaries() {
        assert_eq!(hour_start(LEAP_DAY), 1_709_211_600_000); // 13:00
        assert_eq!(day_start(LEAP_DAY), 1_709_164_800_000); // 2024-02-29T00:00Z
        assert_eq!(month_start(LEAP_DAY), 1_706_745_600_000); // 2024-02-01
        assert_eq!(next_month(LEAP_DAY), 1_709_251_200_000); // 2024-03-01
        assert_eq!(month_label(LEAP_DAY), "2024-02");
        // December rolls into the next year.
        let dec = 1_735_603_200_000; // 2024-12-31T00:00Z
        assert_eq!(month_start(dec), 1_733_011_200_000); // 2024-12-01
        assert_eq!(next_month(dec), 1_735_689_600_000); // 2025-01-01
        assert_eq!(month_label(next_month(dec)), "2025-01");
        assert_eq!(month_start(0), 0);
        assert_eq!(hour_start(HOUR_MS - 1), 0);
        assert_eq!(hour_start(HOUR_MS), HOUR_MS);
    }

    #[test]
    fn the_calendar_round_trips_over_four_centuries() {
        let mut days = days_from_civil(1900, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        let mut last = (1899, 12, 31);
        while days < end {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((y, m, d) > last);
            last = (y, m, d);
            days += 1;
        }
    }
}
