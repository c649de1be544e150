//! The management routes of one tenant (`/v1/tenants/{id}/…`), with a personal access
//! token (`pat_…`, created in the dashboard), and usage ranges.

use std::time::SystemTime;

use futures_util::stream::{self, Stream};
use reqwest::Method;

use super::http::{seg, Body, Http};
use super::types::{AuditEntry, AuditPage, Granularity, List, Project, Tenant, TenantUsage};
use crate::error::Result;

/// A time range of usage: whole UTC hours or days, at most 93 days; `to` is exclusive.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tandem_sdk::admin::{Granularity, UsageRange};
///
/// let now = SystemTime::now();
/// let last_day = UsageRange::new(now - Duration::from_secs(86_400), now);
/// let january = UsageRange::rfc3339("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
///     .granularity(Granularity::Day);
/// # let _ = (last_day, january);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRange {
    from: String,
    to: String,
    granularity: Option<Granularity>,
}

impl UsageRange {
    /// From `from` to `to` (rounded out to whole buckets by the server).
    pub fn new(from: SystemTime, to: SystemTime) -> Self {
        Self::rfc3339(
            humantime::format_rfc3339_seconds(from).to_string(),
            humantime::format_rfc3339_seconds(to).to_string(),
        )
    }

    /// From and to as RFC 3339 UTC strings (`2026-01-31T00:00:00Z`).
    pub fn rfc3339(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            granularity: None,
        }
    }

    /// Hourly (the server's default) or daily buckets.
    pub fn granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = Some(granularity);
        self
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("from", self.from.clone()), ("to", self.to.clone())];
        if let Some(granularity) = self.granularity {
            query.push(("granularity", granularity.as_str().to_owned()));
        }
        query
    }
}

/// One tenant's routes ([`AdminClient::tenant`](super::AdminClient::tenant)).
#[derive(Debug, Clone)]
pub struct TenantClient {
    http: Http,
    id: String,
}

impl TenantClient {
    pub(crate) fn new(http: Http, id: String) -> Self {
        Self { http, id }
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/tenants/{}{rest}", seg(&self.id))
    }

    /// The tenant (name, plan, your role).
    pub async fn get(&self) -> Result<Tenant> {
        self.http
            .json(Method::GET, &self.path(""), &[], Body::None)
            .await
    }

    /// The tenant's projects.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        let list: List<Project> = self
            .http
            .json(Method::GET, &self.path("/projects"), &[], Body::None)
            .await?;
        Ok(list.data)
    }

    /// Every project's usage and their sums (any member).
    pub async fn usage(&self, range: &UsageRange) -> Result<TenantUsage> {
        self.http
            .json(
                Method::GET,
                &self.path("/usage"),
                &range.query(),
                Body::None,
            )
            .await
    }

    /// The audit log (admins), newest first, in pages of `page_size` (1 to 200; the
    /// server's default 50 when `None`).
    pub fn audit_log(&self, page_size: Option<u32>) -> AuditLog {
        AuditLog {
            tenant: self.clone(),
            page_size,
        }
    }
}

/// A tenant's audit log, newest first: read [`page`](Self::page)s or
/// [`stream`](Self::stream) the entries.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tenant: TenantClient,
    page_size: Option<u32>,
}

impl AuditLog {
    /// Entries older than `before` (the previous page's `next_cursor`).
    pub async fn page(&self, before: Option<i64>) -> Result<AuditPage> {
        let mut query = Vec::new();
        if let Some(limit) = self.page_size {
            query.push(("limit", limit.to_string()));
        }
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        let path = self.tenant.path("/audit-log");
        self.tenant
            .http
            .json(Method::GET, &path, &query, Body::None)
            .await
    }

    /// Every entry, newest first; the next page is fetched when the stream reaches it.
    pub fn stream(&self) -> impl Stream<Item = Result<AuditEntry>> + Send + Unpin + 'static {
        use futures_util::StreamExt as _;
        let log = self.clone();
        let pages = Box::pin(stream::unfold(Some(None::<i64>), move |next| {
            let log = log.clone();
            async move {
                let before = next?;
                match log.page(before).await {
                    Ok(page) => {
                        let next = page.next_cursor.map(Some);
                        Some((Ok(page), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        }));
        pages.flat_map(|page| {
            let items: Vec<Result<AuditEntry>> = match page {
                Ok(page) => page.data.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(items)
        })
    }
}
