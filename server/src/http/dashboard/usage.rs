//! Usage (charts per hour or per day, per room, per project or for the whole tenant,
//! with the plan's limits drawn on them and a table under each) and the plan page.
//!
//! The limits drawn: per project, the connections cap on the peak chart; per room, the
//! per-room connections cap on the peak chart and the document-size cap on the storage
//! chart. The other charts have no plan limit of the same unit (message and byte rates
//! are capped per connection per second, not per hour or day; active users are not
//! capped), so they have no line.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Form;
use serde::Deserialize;

use super::chart::{bars, ChartSpec, Series};
use super::error::{render, DashResult};
use super::render::{bytes, query_value, when};
use super::session::{Chrome, Ctx, DashUser};
use crate::control::usage::{Figures, Granularity, UsageRange, UsageReport};
use crate::control::ControlError;
use crate::http::extract::Meta;
use crate::http::AppState;
use crate::store::control::Role;
use crate::store::usage::{DAY_MS, HOUR_MS};

struct Tab {
    label: String,
    href: String,
    current: bool,
}

struct Chart {
    id: &'static str,
    title: &'static str,
    series: String,
    names: Vec<String>,
    total: String,
    limit: Option<String>,
    svg: String,
    rows: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    chrome: Chrome,
    scope_label: String,
    range_label: String,
    project_tabs: Vec<Tab>,
    by_hour: bool,
    hour_href: String,
    day_href: String,
    charts: Vec<Chart>,
    /// With a project selected: its rooms with usage in the range, and the one shown.
    room_picker: Option<RoomPicker>,
}

struct RoomPicker {
    project: String,
    by: &'static str,
    rooms: Vec<(String, bool)>,
    room: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct UsageQuery {
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    room: Option<String>,
}

fn label(ms: i64, by_hour: bool) -> String {
    let text = crate::http::api::views::time(ms);
    if by_hour {
        format!(
            "{} {}",
            text.get(5..10).unwrap_or(""),
            text.get(11..16).unwrap_or("")
        )
    } else {
        text.get(0..10).unwrap_or("").to_owned()
    }
}

fn count(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn byte_count(v: f64) -> String {
    bytes(v as i64)
}

/// Every bucket of the range for one room of the report's project.
fn dense_room(report: &UsageReport, range: &UsageRange, room: &str) -> Vec<(i64, Figures)> {
    dense(report, range)
        .into_iter()
        .map(|(at, _)| {
            let figures = report
                .buckets
                .iter()
                .find(|b| b.start == at)
                .and_then(|b| b.rooms.iter().find(|r| r.room == room))
                .map(|r| Figures {
                    messages_in: r.messages_in,
                    messages_out: r.messages_out,
                    bytes_in: r.bytes_in,
                    bytes_out: r.bytes_out,
                    connection_ms: r.connection_ms,
                    peak_connections: r.peak_connections,
                    active_rooms: i64::from(r.active),
                    storage_bytes: r.storage_bytes.unwrap_or(0),
                })
                .unwrap_or_default();
            (at, figures)
        })
        .collect()
}

/// Every bucket of the range (the report lists only buckets with data).
fn dense(report: &UsageReport, range: &UsageRange) -> Vec<(i64, Figures)> {
    let step = match range.granularity {
        Granularity::Hour => HOUR_MS,
        Granularity::Day => DAY_MS,
    };
    let mut out = Vec::new();
    let mut at = range.from;
    while at < range.to {
        let figures = report
            .buckets
            .iter()
            .find(|b| b.start == at)
            .map(|b| b.totals.clone())
            .unwrap_or_default();
        out.push((at, figures));
        at += step;
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn chart(
    id: &'static str,
    title: &'static str,
    labels: &[String],
    series: &[Series<'_>],
    limit: Option<f64>,
    format: &dyn Fn(f64) -> String,
    total: String,
) -> Chart {
    let (svg, drawn) = bars(&ChartSpec {
        title,
        labels,
        series,
        limit,
        format,
    });
    let limit = limit.map(|l| {
        if drawn {
            format!("plan limit {}", format(l))
        } else {
            format!("plan limit {} (above this range)", format(l))
        }
    });
    let rows = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let cells: Vec<String> = series.iter().map(|s| format(s.values[i])).collect();
            (label.clone(), cells.join(" / "))
        })
        .collect();
    Chart {
        id,
        title,
        series: series
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(" / "),
        names: series.iter().map(|s| s.name.to_owned()).collect(),
        total,
        limit,
        svg,
        rows,
    }
}

/// The usage charts.
pub(super) async fn page(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
    Query(query): Query<UsageQuery>,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, None, "usage").await?;
    ctx.crumb("Usage");
    let by_hour = query.by.as_deref() != Some("day");
    let now = state.control.now_ms();
    let range = if by_hour {
        UsageRange::new(now - 47 * HOUR_MS, now, Granularity::Hour)?
    } else {
        UsageRange::new(now - 29 * DAY_MS, now, Granularity::Day)?
    };
    let usage = state
        .control
        .tenant_usage(&*state.usage, &ctx.access, &range)
        .await?;
    let limits = state.control.tenant_limits(&ctx.access.tenant_id).await?;
    // Default to the first project: the limits apply per project.
    let selected = match query.project.as_deref() {
        Some("all") => None,
        Some(id) => usage.projects.iter().position(|(p, _)| p.id.as_str() == id),
        None => (!usage.projects.is_empty()).then_some(0),
    };
    let (scope_label, report) = match selected {
        Some(i) => (
            format!("Project {}", usage.projects[i].0.name),
            &usage.projects[i].1,
        ),
        None => ("All projects".to_owned(), &usage.totals),
    };
    let by = if by_hour { "hour" } else { "day" };
    let base = format!("{}/usage", ctx.base());
    let mut project_tabs: Vec<Tab> = usage
        .projects
        .iter()
        .enumerate()
        .map(|(i, (p, _))| Tab {
            label: p.name.clone(),
            href: format!("{base}?project={}&by={by}", query_value(p.id.as_str())),
            current: selected == Some(i),
        })
        .collect();
    project_tabs.push(Tab {
        label: "All".to_owned(),
        href: format!("{base}?project=all&by={by}"),
        current: selected.is_none(),
    });
    let project_param = match selected {
        Some(i) => usage.projects[i].0.id.to_string(),
        None => "all".to_owned(),
    };
    // One room of the selected project, if asked for (and it has usage in the range).
    let mut room_names: Vec<String> = report
        .buckets
        .iter()
        .flat_map(|b| b.rooms.iter().map(|r| r.room.clone()))
        .collect();
    room_names.sort();
    room_names.dedup();
    let room = selected
        .and(query.room.as_deref())
        .filter(|r| room_names.iter().any(|n| n == r))
        .map(str::to_owned);
    let buckets = match &room {
        Some(room) => dense_room(report, &range, room),
        None => dense(report, &range),
    };
    let scope_label = match &room {
        Some(room) => format!("{scope_label}, room {room}"),
        None => scope_label,
    };
    let room_picker = selected.map(|_| RoomPicker {
        project: project_param.clone(),
        by,
        rooms: room_names
            .iter()
            .map(|n| (n.clone(), Some(n) == room.as_ref()))
            .collect(),
        room: room.clone(),
    });
    let labels: Vec<String> = buckets.iter().map(|(at, _)| label(*at, by_hour)).collect();
    let values = |f: &dyn Fn(&Figures) -> i64| -> Vec<f64> {
        buckets.iter().map(|(_, b)| f(b) as f64).collect()
    };
    let sum = |f: &dyn Fn(&Figures) -> i64| -> i64 { buckets.iter().map(|(_, b)| f(b)).sum() };
    let peak_limit = match (&room, selected) {
        (Some(_), _) => Some(f64::from(limits.connections_per_room)),
        (None, Some(_)) => Some(f64::from(limits.connections_per_project)),
        (None, None) => None,
    };
    // A room's stored size is what the document cap holds to.
    let storage_limit = room.as_ref().map(|_| limits.max_document_bytes as f64);
    let peak_max = buckets
        .iter()
        .map(|(_, b)| b.peak_connections)
        .max()
        .unwrap_or(0);
    let minutes = |ms: i64| ms as f64 / 60_000.0;
    let conn_minutes: Vec<f64> = buckets
        .iter()
        .map(|(_, b)| minutes(b.connection_ms))
        .collect();
    let total_minutes = minutes(sum(&|b| b.connection_ms));
    let storage = values(&|b| b.storage_bytes);
    let last_storage = storage
        .iter()
        .rev()
        .find(|v| **v > 0.0)
        .copied()
        .unwrap_or(0.0);
    let mut charts = vec![
        chart(
            "peak",
            "Peak connections",
            &labels,
            &[Series {
                name: "peak connections",
                values: values(&|b| b.peak_connections),
            }],
            peak_limit,
            &count,
            format!("max {peak_max}"),
        ),
        chart(
            "minutes",
            "Connection-minutes",
            &labels,
            &[Series {
                name: "connection-minutes",
                values: conn_minutes,
            }],
            None,
            &count,
            format!("total {}", count(total_minutes)),
        ),
        chart(
            "messages",
            "Messages in / out",
            &labels,
            &[
                Series {
                    name: "messages in",
                    values: values(&|b| b.messages_in),
                },
                Series {
                    name: "messages out",
                    values: values(&|b| b.messages_out),
                },
            ],
            None,
            &count,
            format!(
                "total {} in / {} out",
                sum(&|b| b.messages_in),
                sum(&|b| b.messages_out)
            ),
        ),
        chart(
            "bytes",
            "Bytes in / out",
            &labels,
            &[
                Series {
                    name: "bytes in",
                    values: values(&|b| b.bytes_in),
                },
                Series {
                    name: "bytes out",
                    values: values(&|b| b.bytes_out),
                },
            ],
            None,
            &byte_count,
            format!(
                "total {} in / {} out",
                bytes(sum(&|b| b.bytes_in)),
                bytes(sum(&|b| b.bytes_out))
            ),
        ),
        chart(
            "storage",
            "Storage",
            &labels,
            &[Series {
                name: "stored bytes",
                values: storage,
            }],
            storage_limit,
            &byte_count,
            format!("latest {}", bytes(last_storage as i64)),
        ),
        {
            let month_labels: Vec<String> = report
                .monthly_active_users
                .iter()
                .map(|m| {
                    crate::http::api::views::time(m.month_start)
                        .get(0..7)
                        .unwrap_or("")
                        .to_owned()
                })
                .collect();
            let users: Vec<f64> = report
                .monthly_active_users
                .iter()
                .map(|m| m.users as f64)
                .collect();
            let latest = users.last().copied().unwrap_or(0.0);
            chart(
                "mau",
                "Monthly active users",
                &month_labels,
                &[Series {
                    name: "users",
                    values: users,
                }],
                None,
                &count,
                format!("this month {}", count(latest)),
            )
        },
    ];
    if room.is_some() {
        // Active users are counted per project and month, not per room.
        charts.retain(|c| c.id != "mau");
    }
    let range_label = if by_hour {
        "the last 48 hours"
    } else {
        "the last 30 days"
    };
    let room_param = room
        .as_deref()
        .map(|r| format!("&room={}", query_value(r)))
        .unwrap_or_default();
    Ok(render(&UsagePage {
        chrome: ctx.chrome,
        room_picker,
        scope_label,
        range_label: range_label.to_owned(),
        project_tabs,
        by_hour,
        hour_href: format!("{base}?project={project_param}&by=hour{room_param}"),
        day_href: format!("{base}?project={project_param}&by=day{room_param}"),
        charts,
    }))
}

struct LimitRow {
    label: &'static str,
    limit: String,
    now: String,
    percent: Option<u32>,
    /// Where it is enforced, for the limits without a live reading here.
    hint: &'static str,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    chrome: Chrome,
    plan: String,
    limits: Vec<LimitRow>,
    /// `None`: billing is not configured on this server.
    billing: Option<BillingView>,
    base: String,
}

/// The billing part of the plan page.
struct BillingView {
    owner: bool,
    /// Plans that can be bought (not the current one).
    buy: Vec<String>,
    has_customer: bool,
    subscription: String,
    renewal: String,
    payment: String,
    pending: i64,
    pending_value: i64,
    failing: i64,
    sent: i64,
    last_error: String,
    next_attempt: String,
    recent: Vec<MeterLine>,
}

struct MeterLine {
    hour: String,
    project: String,
    event: String,
    value: i64,
    state: String,
}

async fn billing_view(state: &AppState, ctx: &Ctx) -> DashResult<Option<BillingView>> {
    let Some(billing) = &state.billing else {
        return Ok(None);
    };
    let status = billing.status(&ctx.access).await?;
    let account = status.account.as_ref();
    let subscription = match account.and_then(|a| a.subscription_status.as_deref()) {
        Some(s) => {
            let cancelling = account.is_some_and(|a| a.cancel_at_period_end);
            format!(
                "{s}{}",
                if cancelling {
                    " (cancels at the period's end)"
                } else {
                    ""
                }
            )
        }
        None => "none".to_owned(),
    };
    let renewal = account
        .and_then(|a| a.current_period_end)
        .map_or_else(|| "—".to_owned(), when);
    let payment = match account.and_then(|a| a.grace_until) {
        Some(until) => format!(
            "payment failed; the plan drops to free on {} unless it is paid",
            when(until)
        ),
        None if account.is_some_and(|a| a.subscription_id.is_some()) => "paid".to_owned(),
        None => "—".to_owned(),
    };
    let recent = status
        .recent
        .iter()
        .map(|r| MeterLine {
            hour: when(r.hour_start),
            project: r.project_id.clone(),
            event: r.event_name.clone(),
            value: r.value,
            state: match (r.sent_at, &r.last_error) {
                (Some(at), _) => format!("reported {}", when(at)),
                (None, Some(error)) => format!(
                    "failed {} time(s), next try {}: {error}",
                    r.attempts,
                    when(r.next_attempt_at)
                ),
                (None, None) => "waiting".to_owned(),
            },
        })
        .collect();
    Ok(Some(BillingView {
        owner: ctx.access.role == Role::Owner,
        buy: status
            .purchasable
            .into_iter()
            .filter(|p| *p != status.plan)
            .collect(),
        has_customer: account.is_some(),
        subscription,
        renewal,
        payment,
        pending: status.meter.pending,
        pending_value: status.meter.pending_value,
        failing: status.meter.failing,
        sent: status.meter.sent,
        last_error: status.meter.last_error.unwrap_or_default(),
        next_attempt: status.meter.next_attempt_at.map(when).unwrap_or_default(),
        recent,
    }))
}

#[derive(Template)]
#[template(path = "stripe_redirect.html")]
struct StripeRedirect {
    chrome: Chrome,
    url: String,
}

/// Which plan to buy.
#[derive(Debug, Deserialize)]
pub(super) struct CheckoutForm {
    plan: String,
}

/// Opens a Stripe Checkout session and sends the owner there (a page that moves on at
/// once: the pages' CSP keeps form posts on this origin, redirects included).
pub(super) async fn plan_checkout(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CheckoutForm>,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "plan").await?;
    let billing = state.billing.as_ref().ok_or(ControlError::NotFound)?;
    let base = crate::http::api::billing::base_url(&state, &headers);
    let session = billing
        .checkout(&ctx.access, &form.plan, &base, &meta)
        .await?;
    Ok(render(&StripeRedirect {
        chrome: ctx.chrome,
        url: session.url,
    }))
}

/// Opens a Stripe customer-portal session and sends the owner there.
pub(super) async fn plan_portal(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> DashResult {
    let ctx = Ctx::load(&state, auth, &tenant, None, "plan").await?;
    let billing = state.billing.as_ref().ok_or(ControlError::NotFound)?;
    let base = crate::http::api::billing::base_url(&state, &headers);
    let session = billing.portal(&ctx.access, &base, &meta).await?;
    Ok(render(&StripeRedirect {
        chrome: ctx.chrome,
        url: session.url,
    }))
}

/// The plan, its limits, and current use against them.
pub(super) async fn plan(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path(tenant): Path<String>,
) -> DashResult {
    let mut ctx = Ctx::load(&state, auth, &tenant, None, "plan").await?;
    ctx.crumb("Plan");
    let limits = state.control.tenant_limits(&ctx.access.tenant_id).await?;
    let busiest = ctx
        .projects
        .iter()
        .map(|p| state.rooms.project_connections(p.id.as_str()))
        .max()
        .unwrap_or(0);
    let percent = |now: u64, limit: u64| {
        (limit > 0).then(|| u32::try_from((now * 100 / limit).min(100)).unwrap_or(100))
    };
    let rows = vec![
        LimitRow {
            label: "Connections per project (busiest project now)",
            limit: limits.connections_per_project.to_string(),
            now: busiest.to_string(),
            percent: percent(
                u64::from(busiest),
                u64::from(limits.connections_per_project),
            ),
            hint: "",
        },
        LimitRow {
            label: "Connections per room",
            limit: limits.connections_per_room.to_string(),
            now: "—".to_owned(),
            percent: None,
            hint: "a new connection past it is refused (4429)",
        },
        LimitRow {
            label: "Rooms per project",
            limit: limits.rooms_per_project.to_string(),
            now: "—".to_owned(),
            percent: None,
            hint: "a new room past it is refused",
        },
        LimitRow {
            label: "Document size",
            limit: bytes(i64::try_from(limits.max_document_bytes).unwrap_or(i64::MAX)),
            now: "—".to_owned(),
            percent: None,
            hint: "a write past it is refused (4413)",
        },
        LimitRow {
            label: "Messages per second per connection (burst)",
            limit: format!("{} ({})", limits.messages_per_second, limits.message_burst),
            now: "—".to_owned(),
            percent: None,
            hint: "enforced per connection (4429)",
        },
        LimitRow {
            label: "Bytes per second per connection (burst)",
            limit: format!(
                "{} ({})",
                bytes(i64::try_from(limits.bytes_per_second).unwrap_or(i64::MAX)),
                bytes(i64::try_from(limits.byte_burst).unwrap_or(i64::MAX))
            ),
            now: "—".to_owned(),
            percent: None,
            hint: "enforced per connection (4429)",
        },
        LimitRow {
            label: "REST requests per minute per key",
            limit: limits.rest_requests_per_minute.to_string(),
            now: "—".to_owned(),
            percent: None,
            hint: "enforced per key (429)",
        },
    ];
    let billing = billing_view(&state, &ctx).await?;
    Ok(render(&PlanPage {
        plan: ctx.tenant.plan.clone(),
        base: format!("/dashboard/t/{}", ctx.access.tenant_id),
        chrome: ctx.chrome,
        limits: rows,
        billing,
    }))
}
