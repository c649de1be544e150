//! The request layer every admin call goes through: base URL, bearer credential, JSON
//! and binary bodies, problem+json errors, and the opt-in 429 retry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::Problem;
use crate::error::{ApiError, Error, Result};
use crate::url::{encode_component, BaseUrl};

/// How 429 answers are retried, when the app opts in with
/// [`AdminClientBuilder::retry_on_429`](super::AdminClientBuilder::retry_on_429).
///
/// ```
/// use std::time::Duration;
/// use tandem_sdk::admin::RetryOn429;
///
/// let patient = RetryOn429 { max_attempts: 5, ..RetryOn429::default() };
/// assert_eq!(patient.max_delay, Duration::from_secs(60));
/// ```
#[derive(Clone)]
pub struct RetryOn429 {
    /// Attempts in all, the first included (default 3; at least 1).
    pub max_attempts: u32,
    /// A `Retry-After` longer than this is not waited for: the 429 is returned
    /// (default 60 s).
    pub max_delay: Duration,
    /// Called before each wait, e.g. to log it.
    pub on_retry: Option<OnRetry>,
}

/// A callback told about each 429 before its wait.
pub type OnRetry = Arc<dyn Fn(&RetryInfo) + Send + Sync>;

impl Default for RetryOn429 {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_delay: Duration::from_secs(60),
            on_retry: None,
        }
    }
}

impl std::fmt::Debug for RetryOn429 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryOn429")
            .field("max_attempts", &self.max_attempts)
            .field("max_delay", &self.max_delay)
            .field("on_retry", &self.on_retry.is_some())
            .finish()
    }
}

impl RetryOn429 {
    /// Calls `callback` before each wait.
    pub fn on_retry(mut self, callback: impl Fn(&RetryInfo) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(callback));
        self
    }
}

/// What [`RetryOn429::on_retry`] is told before a wait.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryInfo {
    /// The attempt that was refused (1 for the first).
    pub attempt: u32,
    /// How long the client waits now (the answer's `Retry-After`, 1 s without one).
    pub delay: Duration,
    /// The 429.
    pub error: ApiError,
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    None,
    Json(Bytes),
    Bytes(Bytes),
}

impl Body {
    pub(crate) fn json(value: &impl Serialize) -> Result<Self> {
        serde_json::to_vec(value)
            .map(|v| Self::Json(v.into()))
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}

/// One credential's connection to the server (a secret key for the project routes, a
/// PAT for the tenant routes); cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) base: BaseUrl,
    pub(crate) credential: Option<Arc<str>>,
    pub(crate) retry: Option<RetryOn429>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

/// A path segment, percent-encoded (room names may hold `/`, spaces, `%`…).
pub(crate) fn seg(value: &str) -> String {
    encode_component(value)
}

impl Http {
    /// A call answering JSON.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<T> {
        let operation = format!("{method} {path}");
        let response = self
            .send(method, path, query, body, "application/json")
            .await?;
        let bytes = response.bytes().await.map_err(|e| Error::Connection {
            detail: format!("{operation}: reading the answer: {e}"),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
            detail: format!("{operation}: {e}"),
        })
    }

    /// A call answering bytes (a Yjs update).
    pub(crate) async fn bytes(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>> {
        let operation = format!("{method} {path}");
        let response = self
            .send(method, path, query, Body::None, "application/octet-stream")
            .await?;
        let bytes = response.bytes().await.map_err(|e| Error::Connection {
            detail: format!("{operation}: reading the answer: {e}"),
        })?;
        Ok(bytes.to_vec())
    }

    /// A call answering nothing (204).
    pub(crate) async fn none(&self, method: Method, path: &str, body: Body) -> Result<()> {
        self.send(method, path, &[], body, "application/json")
            .await
            .map(drop)
    }

    /// Sends until an answer is final: a 2xx is returned, anything else becomes
    /// [`Error::Api`]; a 429 is retried when the client opted in, within its bounds.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
        accept: &str,
    ) -> Result<reqwest::Response> {
        let operation = format!("{method} {path}");
        let mut attempt = 1;
        loop {
            let result = self
                .once(
                    method.clone(),
                    path,
                    query,
                    body.clone(),
                    accept,
                    &operation,
                )
                .await;
            let Err(Error::Api(error)) = result else {
                return result;
            };
            let Some(retry) = &self.retry else {
                return Err(Error::Api(error));
            };
            if error.status != 429 || attempt >= retry.max_attempts.max(1) {
                return Err(Error::Api(error));
            }
            let delay = error.retry_after.unwrap_or(Duration::from_secs(1));
            if delay > retry.max_delay {
                return Err(Error::Api(error));
            }
            if let Some(callback) = &retry.on_retry {
                callback(&RetryInfo {
                    attempt,
                    delay,
                    error: (*error).clone(),
                });
            }
            tracing::debug!(%operation, attempt, ?delay, "429: retrying after Retry-After");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
        accept: &str,
        operation: &str,
    ) -> Result<reqwest::Response> {
        let mut request = self
            .client
            .request(method, self.base.http_url(path))
            .header(ACCEPT, format!("{accept}, application/problem+json"));
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(credential) = &self.credential {
            request = request.header(AUTHORIZATION, format!("Bearer {credential}"));
        }
        request = match body {
            Body::None => request,
            Body::Json(bytes) => request.header(CONTENT_TYPE, "application/json").body(bytes),
            Body::Bytes(bytes) => request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(bytes),
        };
        let response = request
            .send()
            .await
            .map_err(|e| network_error(operation, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Err(Error::Api(Box::new(api_error(
            operation,
            status,
            &headers,
            &text,
            SystemTime::now(),
        ))))
    }
}

/// A failure before any answer: TLS (described), a timeout, anything else.
fn network_error(operation: &str, error: &reqwest::Error) -> Error {
    if let Some(detail) = crate::tls::tls_failure(error) {
        return Error::Tls {
            detail: format!("{operation}: {detail}"),
        };
    }
    let what = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        // reqwest's own message is generic ("error sending request"); the cause says
        // what happened.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    };
    Error::Connection {
        detail: format!("{operation}: {what}"),
    }
}

/// The typed error of a non-2xx answer, from its problem document when it has one.
pub(crate) fn api_error(
    operation: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: SystemTime,
) -> ApiError {
    let problem = serde_json::from_str::<Problem>(body).ok();
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let detail = match &problem {
        Some(problem) => problem.detail.clone(),
        None if body.trim().is_empty() => {
            status.canonical_reason().unwrap_or("no detail").to_owned()
        }
        None => body.chars().take(200).collect(),
    };
    ApiError {
        status: status.as_u16(),
        code: problem
            .as_ref()
            .map_or_else(|| format!("http_{}", status.as_u16()), |p| p.code.clone()),
        detail,
        retry_after,
        request_id,
        problem,
        operation: operation.to_owned(),
    }
}

/// `Retry-After` (RFC 9110): delta-seconds or an HTTP date; `None` when absent or bad.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
