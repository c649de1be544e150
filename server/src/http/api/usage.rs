//! Usage: a project's metered usage with its secret key (`GET /v1/usage`), and every
//! project's in a tenant through the management API (`GET /v1/tenants/{tenantId}/usage`).
//! The figures and their rules are the control plane's ([`crate::control::usage`]);
//! here they get their JSON shape.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::management::access;
use super::views::time;
use crate::control::usage::{
    Bucket, Figures, Granularity, MonthUsage, RoomFigures, UsageRange, UsageReport,
};
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiPath, ApiQuery, SecretKey, SignedIn};
use crate::http::AppState;
use crate::ids::{ProjectId, TenantId};
use crate::store::control::Role;
use crate::store::usage::month_label;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(project_usage))
        .routes(routes!(tenant_usage))
}

/// Bucket size.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GranularityView {
    /// UTC hours.
    #[default]
    Hour,
    /// UTC days.
    Day,
}

/// The range and bucket size of a usage request.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start, RFC 3339 in UTC (e.g. `2025-01-31T00:00:00Z`); rounded down to a bucket.
    from: String,
    /// End, exclusive, RFC 3339 in UTC; rounded up to a bucket. At most 93 days after
    /// `from`.
    to: String,
    /// `hour` (default) or `day` (UTC days).
    #[serde(default)]
    #[param(inline)]
    granularity: Option<GranularityView>,
}

impl UsageQuery {
    fn range(&self) -> ApiResult<UsageRange> {
        let granularity = match self.granularity.unwrap_or_default() {
            GranularityView::Hour => Granularity::Hour,
            GranularityView::Day => Granularity::Day,
        };
        Ok(UsageRange::new(
            parse_time("from", &self.from)?,
            parse_time("to", &self.to)?,
            granularity,
        )?)
    }
}

fn parse_time(name: &str, value: &str) -> ApiResult<i64> {
    humantime::parse_rfc3339_weak(value)
        .ok()
        // Before 1970 would read as 0: refused, not silently moved.
        .filter(|t| *t >= std::time::UNIX_EPOCH)
        .map(crate::control::plane::to_ms)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time in UTC, e.g. 2025-01-31T00:00:00Z"
            ))
        })
}

/// Totals of one bucket. Peaks are the most connections open at once; storage is the
/// sum over rooms of each room's latest stored size (snapshot + log) measured in the
/// bucket, which happens only while a room is loaded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    /// Binary WebSocket messages received from clients.
    messages_in: i64,
    /// Binary WebSocket messages sent to clients.
    messages_out: i64,
    /// Payload bytes of the messages received.
    bytes_in: i64,
    /// Payload bytes of the messages sent.
    bytes_out: i64,
    /// Connection time, milliseconds.
    connection_ms: i64,
    /// Most connections open at once (per project; for a tenant, the sum of its
    /// projects' peaks).
    peak_connections: i64,
    /// Rooms with at least one connection.
    active_rooms: i64,
    storage_bytes: i64,
}

impl From<&Figures> for UsageTotals {
    fn from(f: &Figures) -> Self {
        Self {
            messages_in: f.messages_in,
            messages_out: f.messages_out,
            bytes_in: f.bytes_in,
            bytes_out: f.bytes_out,
            connection_ms: f.connection_ms,
            peak_connections: f.peak_connections,
            active_rooms: f.active_rooms,
            storage_bytes: f.storage_bytes,
        }
    }
}

/// One room's usage in a bucket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomUsage {
    room: String,
    messages_in: i64,
    messages_out: i64,
    bytes_in: i64,
    bytes_out: i64,
    connection_ms: i64,
    /// Most connections open at once in the room.
    peak_connections: i64,
    /// Whether it had a connection.
    active: bool,
    /// Its latest stored size in the bucket; null when it was not loaded then.
    storage_bytes: Option<i64>,
}

impl From<&RoomFigures> for RoomUsage {
    fn from(r: &RoomFigures) -> Self {
        Self {
            room: r.room.clone(),
            messages_in: r.messages_in,
            messages_out: r.messages_out,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            connection_ms: r.connection_ms,
            peak_connections: r.peak_connections,
            active: r.active,
            storage_bytes: r.storage_bytes,
        }
    }
}

/// A bucket of a project's usage, with its rooms.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    /// The bucket's first instant.
    start: String,
    totals: UsageTotals,
    /// By name.
    rooms: Vec<RoomUsage>,
}

/// A bucket of a tenant's totals.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotalsBucket {
    /// The bucket's first instant.
    start: String,
    totals: UsageTotals,
}

/// Distinct users (token `sub`) in a calendar month (UTC).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyActiveUsers {
    /// `YYYY-MM`.
    month: String,
    users: i64,
}

fn months(months: &[MonthUsage]) -> Vec<MonthlyActiveUsers> {
    months
        .iter()
        .map(|m| MonthlyActiveUsers {
            month: month_label(m.month_start),
            users: m.users,
        })
        .collect()
}

fn buckets(buckets: &[Bucket]) -> Vec<UsageBucket> {
    buckets
        .iter()
        .map(|b| UsageBucket {
            start: time(b.start),
            totals: (&b.totals).into(),
            rooms: b.rooms.iter().map(RoomUsage::from).collect(),
        })
        .collect()
}

/// A project's usage.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectUsage {
    project_id: ProjectId,
    /// The range covered (whole buckets).
    from: String,
    to: String,
    granularity: GranularityView,
    /// Buckets with any usage, oldest first (buckets without any are left out).
    buckets: Vec<UsageBucket>,
    /// Every month the range touches.
    monthly_active_users: Vec<MonthlyActiveUsers>,
}

impl ProjectUsage {
    fn new(project_id: ProjectId, query: &UsageQuery, report: &UsageReport) -> Self {
        Self {
            project_id,
            from: time(report.range.from),
            to: time(report.range.to),
            granularity: query.granularity.unwrap_or_default(),
            buckets: buckets(&report.buckets),
            monthly_active_users: months(&report.monthly_active_users),
        }
    }
}

/// One project's usage within a tenant's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantProjectUsage {
    project_id: ProjectId,
    name: String,
    buckets: Vec<UsageBucket>,
    monthly_active_users: Vec<MonthlyActiveUsers>,
}

/// A tenant's usage: its totals (the sums of its projects') and each project's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUsage {
    tenant_id: TenantId,
    from: String,
    to: String,
    granularity: GranularityView,
    /// Sums over the projects, bucket by bucket.
    buckets: Vec<TotalsBucket>,
    /// Sums over the projects (user ids are per project).
    monthly_active_users: Vec<MonthlyActiveUsers>,
    /// The tenant's current projects, oldest first.
    projects: Vec<TenantProjectUsage>,
}

/// The project's usage (secret key): hourly or daily buckets with a per-room breakdown,
/// and the monthly active users of every month the range touches. Usage is written
/// every few seconds (`--usage-flush-interval`), so the last seconds may be missing.
#[utoipa::path(
    get, path = "/v1/usage", tag = "project", operation_id = "getUsage",
    params(UsageQuery),
    security(("secret_key" = [])),
    responses(
        (status = 200, description = "The project's usage", body = ProjectUsage),
        (status = 400, description = "Invalid range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn project_usage(
    State(state): State<AppState>,
    SecretKey(auth): SecretKey,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult<Json<ProjectUsage>> {
    let range = query.range()?;
    let report = state
        .control
        .project_usage(&*state.usage, &auth, &range)
        .await?;
    Ok(Json(ProjectUsage::new(auth.project_id, &query, &report)))
}

/// The usage of every project of the tenant and their sums (any member).
#[utoipa::path(
    get, path = "/v1/tenants/{tenantId}/usage", tag = "management", operation_id = "getTenantUsage",
    params(("tenantId" = String, Path, description = "The tenant"), UsageQuery),
    security(("session" = []), ("personal_access_token" = [])),
    responses(
        (status = 200, description = "The tenant's usage", body = TenantUsage),
        (status = 400, description = "Invalid range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant (or not yours)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn tenant_usage(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult<Json<TenantUsage>> {
    let access = access(&state, &auth, &tenant, Role::Member).await?;
    let range = query.range()?;
    let usage = state
        .control
        .tenant_usage(&*state.usage, &access, &range)
        .await?;
    Ok(Json(TenantUsage {
        tenant_id: access.tenant_id.clone(),
        from: time(range.from),
        to: time(range.to),
        granularity: query.granularity.unwrap_or_default(),
        buckets: usage
            .totals
            .buckets
            .iter()
            .map(|b| TotalsBucket {
                start: time(b.start),
                totals: (&b.totals).into(),
            })
            .collect(),
        monthly_active_users: months(&usage.totals.monthly_active_users),
        projects: usage
            .projects
            .iter()
            .map(|(project, report)| TenantProjectUsage {
                project_id: project.id.clone(),
                name: project.name.clone(),
                buckets: buckets(&report.buckets),
                monthly_active_users: months(&report.monthly_active_users),
            })
            .collect(),
    }))
}
