//! Delivering the outbox: every node runs one worker that claims due deliveries (a lease
//! in the row, so each attempt is made by one node), sends each signed event to its
//! endpoint, and records the outcome: 2xx delivered; otherwise retried on the backoff
//! schedule (later if a 429/503 says `Retry-After`) until it runs out, then failed and,
//! if the endpoint has not succeeded since the event, the endpoint disabled (audit log,
//! dashboard notice). The HTTP client resolves names itself and connects only to
//! addresses the SSRF guard allows, follows no redirect, ignores proxy variables, and
//! gives each attempt 15 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::backoff::{parse_retry_after, Backoff};
use super::signing;
use super::ssrf::{self, TargetPolicy};
use crate::control::plane::{AuditEvent, RequestMeta};
use crate::control::ControlPlane;
use crate::store::webhooks::{AttemptOutcome, ClaimedDelivery};

/// How long a claim lasts: far more than one attempt (the timeout), so a live node
/// always finishes before another may take over; a dead node's claims free up after it.
const LEASE: Duration = Duration::from_secs(60);
/// Deliveries claimed (and attempted concurrently) per round.
const BATCH: u32 = 32;
/// The longest a worker sleeps without looking (other nodes' events wake nobody here).
const POLL: Duration = Duration::from_secs(1);

/// A unix-ms time as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(crate::control::plane::from_ms(ms)).to_string()
}

/// The resolver: the system's (getaddrinfo, off the executor), keeping only allowed
/// addresses.
struct GuardedResolver {
    policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match ssrf::allowed_ip(addr.ip(), policy) {
                    Ok(()) => true,
                    Err(why) => {
                        refused = Some(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| format!("{host} has no address"));
                return Err(why.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The endpoint answered.
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: refused by the guard, DNS, connection, TLS, timeout.
    Failed(String),
}

/// The webhook HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    policy: TargetPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client under `policy` with a per-attempt `timeout`.
    pub fn new(policy: TargetPolicy, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Tandem-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the webhook HTTP client: {e}"))?;
        Ok(Self { http, policy })
    }

    /// POSTs `body`, signed with every key in `keys`, to `url`.
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        keys: &[Vec<u8>],
    ) -> Attempt {
        // Checked again now (the operator's flags may have changed since it was saved);
        // an IP literal never reaches the resolver, so this is its check.
        if let Err(why) = ssrf::check_url(url, self.policy) {
            return Attempt::Failed(why);
        }
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let signature = signing::signature_header(&keys, msg_id, timestamp, body);
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                Attempt::Answered {
                    status,
                    retry_after,
                }
            }
            Err(error) => Attempt::Failed(describe(&error)),
        }
    }
}

/// The error with its causes (reqwest's own message is only the outermost).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

/// What a delivery's body is: the event as the feed shows it.
pub fn body(event: &crate::store::webhooks::EventRow) -> String {
    let data: serde_json::Value =
        serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": event.id,
        "type": event.event_type,
        "timestamp": rfc3339(event.created_at),
        "projectId": event.project_id,
        "seq": event.seq,
        "data": data,
    })
    .to_string()
}

/// Decides what an attempt means for the delivery.
pub fn outcome(
    attempt: &Attempt,
    backoff: &Backoff,
    created_at: i64,
    now: i64,
    attempts_before: i64,
    jitter: f64,
) -> AttemptOutcome {
    let attempts = u32::try_from(attempts_before + 1).unwrap_or(u32::MAX);
    let (status, error, retry_after) = match attempt {
        Attempt::Answered { status, .. } if (200..300).contains(status) => {
            return AttemptOutcome::Delivered {
                status: i64::from(*status),
            }
        }
        Attempt::Answered {
            status,
            retry_after,
        } => {
            // Retry-After only means something on 429 and 503.
            let honoured = matches!(status, 429 | 503)
                .then_some(*retry_after)
                .flatten();
            (
                Some(i64::from(*status)),
                format!("the endpoint answered {status}"),
                honoured,
            )
        }
        Attempt::Failed(error) => (None, error.clone(), None),
    };
    match backoff.next_attempt(created_at, now, attempts, retry_after, jitter) {
        Some(next_attempt_at) => AttemptOutcome::Retry {
            status,
            error,
            next_attempt_at,
        },
        None => AttemptOutcome::Failed { status, error },
    }
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if crate::control::fill_random(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl ControlPlane {
    /// Runs this node's delivery worker until `stop`.
    pub async fn run_deliveries(self, stop: tokio_util::sync::CancellationToken) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let now = self.now_ms();
            let lease_until = now + i64::try_from(LEASE.as_millis()).unwrap_or(60_000);
            let claimed = match self
                .inner
                .store
                .claim_deliveries(now, lease_until, BATCH)
                .await
            {
                Ok(claimed) => {
                    failures = 0;
                    claimed
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(%error, "claiming webhook deliveries failed");
                    }
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                let recorded = self.events().recorded();
                tokio::select! {
                    () = recorded.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
            let attempts = claimed.into_iter().map(|c| {
                let plane = self.clone();
                async move { plane.attempt(c).await }
            });
            futures_util::future::join_all(attempts).await;
        }
    }

    async fn attempt(&self, claimed: ClaimedDelivery) {
        let ClaimedDelivery {
            delivery,
            event,
            webhook,
        } = claimed;
        let now = self.now_ms();
        let attempt = match self.signing_keys(&webhook, now) {
            Ok(keys) => {
                let body = body(&event);
                self.delivery_client()
                    .send(
                        &webhook.url,
                        event.id.as_str(),
                        now / 1000,
                        body.as_bytes(),
                        &keys,
                    )
                    .await
            }
            Err(error) => Attempt::Failed(error.to_string()),
        };
        let done = self.now_ms();
        let outcome = outcome(
            &attempt,
            &self.inner.config.webhooks.backoff,
            delivery.created_at,
            done,
            delivery.attempts,
            jitter(),
        );
        tracing::debug!(delivery = %delivery.id, webhook = %webhook.id, ?outcome, "webhook attempt");
        if let Err(error) = self
            .inner
            .store
            .finish_attempt(&delivery.id, &outcome, done)
            .await
        {
            // The lease runs out and the attempt is made again: at least once.
            tracing::warn!(%error, delivery = %delivery.id, "recording a webhook attempt failed");
            return;
        }
        if let AttemptOutcome::Failed { error, .. } = &outcome {
            let succeeded_since = webhook
                .last_success_at
                .is_some_and(|at| at >= delivery.created_at);
            if !succeeded_since {
                self.disable_failing(&webhook, error).await;
            }
        }
    }

    /// Disables an endpoint whose retries ran out without any success since.
    async fn disable_failing(&self, webhook: &crate::store::webhooks::WebhookRow, error: &str) {
        let reason = format!(
            "disabled after failing for {} (last error: {error})",
            humantime::format_duration(self.inner.config.webhooks.backoff.retry_for)
        );
        let store = &self.inner.store;
        match store
            .disable_webhook(&webhook.id, &reason, self.now_ms())
            .await
        {
            Ok(Some(row)) => {
                tracing::warn!(webhook = %row.id, "webhook disabled after sustained failure");
                if let Ok(Some(tenant)) = store.project_tenant(&row.project_id).await {
                    self.audit(AuditEvent {
                        tenant_id: &tenant,
                        project_id: Some(&row.project_id),
                        actor: "system",
                        action: "webhook.disabled",
                        target: Some(row.id.as_str()),
                        meta: &RequestMeta::default(),
                        details: serde_json::json!({ "reason": reason }),
                    })
                    .await;
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "disabling a failing webhook failed"),
        }
    }

    /// Deletes events past the retention period, every hour until `stop`.
    pub async fn run_event_pruning(self, stop: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => return,
            }
            let retention = self.inner.config.webhooks.retention;
            let before = self
                .now_ms()
                .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            match self.inner.store.prune_events(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old events deleted"),
                Err(error) => tracing::warn!(%error, "pruning old events failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_status() {
        let b = Backoff::default();
        let ok = Attempt::Answered {
            status: 204,
            retry_after: None,
        };
        assert_eq!(
            outcome(&ok, &b, 0, 10, 0, 0.0),
            AttemptOutcome::Delivered { status: 204 }
        );
        let error = Attempt::Answered {
            status: 500,
            retry_after: Some(Duration::from_secs(600)),
        };
        // Retry-After is ignored on a 500.
        assert_eq!(
            outcome(&error, &b, 0, 10, 0, 0.0),
            AttemptOutcome::Retry {
                status: Some(500),
                error: "the endpoint answered 500".into(),
                next_attempt_at: 2510,
            }
        );
        let busy = Attempt::Answered {
            status: 429,
            retry_after: Some(Duration::from_secs(600)),
        };
        assert!(matches!(
            outcome(&busy, &b, 0, 10, 0, 0.0),
            AttemptOutcome::Retry {
                next_attempt_at: 600_010,
                ..
            }
        ));
        let redirect = Attempt::Answered {
            status: 302,
            retry_after: None,
        };
        assert!(matches!(
            outcome(&redirect, &b, 0, 10, 0, 0.0),
            AttemptOutcome::Retry {
                status: Some(302),
                ..
            }
        ));
        let down = Attempt::Failed("connection refused".into());
        let late = i64::try_from(b.retry_for.as_millis()).unwrap();
        assert_eq!(
            outcome(&down, &b, 0, late, 20, 0.0),
            AttemptOutcome::Failed {
                status: None,
                error: "connection refused".into()
            }
        );
    }

    /// The check after DNS: a name that resolves to loopback is refused by the strict
    /// resolver and allowed by the permissive one; an IP literal (which never reaches the
    /// resolver) is refused before any connection.
    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_dropped() {
        let name = |n: &str| n.parse::<Name>().unwrap();
        let strict = GuardedResolver {
            policy: TargetPolicy::default(),
        };
        let refused = strict.resolve(name("localhost")).await.err().unwrap();
        assert!(refused.to_string().contains("loopback"), "{refused}");
        let open = GuardedResolver {
            policy: TargetPolicy {
                allow_private: true,
                allow_http: true,
            },
        };
        let addrs: Vec<SocketAddr> = open.resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));

        let client = Client::new(
            TargetPolicy {
                allow_private: false,
                allow_http: true,
            },
            Duration::from_secs(2),
        )
        .unwrap();
        let attempt = client
            .send("http://127.0.0.1:9/x", "evt_1", 0, b"{}", &[vec![1; 32]])
            .await;
        assert!(
            matches!(&attempt, Attempt::Failed(why) if why.contains("loopback")),
            "{attempt:?}"
        );
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
