//! HTTP rate limits. Per client IP on the routes anyone can call (signup, login, token
//! minting): tower-governor's layer with our own key extractor. Per API key / personal
//! access token on everything they authenticate: a keyed GCRA limiter per plan quota,
//! checked in the credential extractors once the key (and so the plan) is known.
//!
//! Over a limit: 429 `application/problem+json` with `Retry-After` and the IETF
//! `RateLimit-Policy` / `RateLimit` fields (tower-governor itself only emits
//! `x-ratelimit-*`); successful keyed requests carry the fields too, so clients can
//! pace themselves.
//!
//! tower-governor's sharp edges, handled here: `per_second(n)` means one token every
//! `n` seconds, so quotas are built from a period; keyed state grows until
//! `retain_recent()` runs, so a task prunes it every minute; its smart IP extractor
//! trusts a client-supplied `X-Forwarded-For`, so ours trusts that header only from
//! proxies the operator lists (`--trusted-proxies`); and on a WebSocket it would limit
//! only the upgrade request, which is why sockets have their own buckets (rooms::limits).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use super::error::ApiError;

/// What one policy allows: `quota` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name in the `RateLimit` fields.
    pub name: &'static str,
    /// Requests per window.
    pub quota: u32,
    /// The window.
    pub window: Duration,
}

/// Where a request stands against its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// The policy.
    pub policy: Policy,
    /// Requests left right now.
    pub remaining: u32,
    /// Seconds until the quota is whole again (or, when refused, until the next one).
    pub reset: u64,
}

impl RateState {
    /// Writes the IETF fields (`RateLimit-Policy`, `RateLimit`).
    pub fn write(&self, headers: &mut HeaderMap) {
        let p = self.policy;
        let policy = format!(
            "\"{}\";q={};w={}",
            p.name,
            p.quota,
            p.window.as_secs().max(1)
        );
        let state = format!("\"{}\";r={};t={}", p.name, self.remaining, self.reset);
        if let Ok(v) = HeaderValue::from_str(&policy) {
            headers.insert("ratelimit-policy", v);
        }
        if let Ok(v) = HeaderValue::from_str(&state) {
            headers.insert("ratelimit", v);
        }
    }
}

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Keyed limiters, one per distinct per-minute quota (plans share them).
#[derive(Default)]
pub struct KeyLimits {
    limiters: Mutex<HashMap<u32, Arc<KeyedLimiter>>>,
}

impl std::fmt::Debug for KeyLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLimits").finish_non_exhaustive()
    }
}

impl KeyLimits {
    fn limiter(&self, per_minute: u32) -> Arc<KeyedLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        limiters
            .entry(per_minute)
            .or_insert_with(|| {
                let quota =
                    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
                Arc::new(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
            })
            .clone()
    }

    /// Counts one request of `key` against `per_minute`, reported as policy `name`.
    pub fn check_policy(
        &self,
        key: &str,
        per_minute: u32,
        name: &'static str,
    ) -> Result<RateState, ApiError> {
        let policy = Policy {
            name,
            quota: per_minute.max(1),
            window: Duration::from_secs(60),
        };
        let per_token = 60.0 / f64::from(policy.quota);
        let limiter = self.limiter(per_minute);
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = (f64::from(policy.quota - remaining.min(policy.quota)) * per_token)
                    .ceil() as u64;
                Ok(RateState {
                    policy,
                    remaining,
                    reset,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let reset = wait.as_secs_f64().ceil().max(1.0) as u64;
                Err(ApiError::RateLimited(RateState {
                    policy,
                    remaining: 0,
                    reset,
                }))
            }
        }
    }

    /// [`Self::check_policy`] across a cluster: charged to Redis's shared cell for the
    /// key when `cluster` is given and Redis answers, else (no cluster, Redis down or
    /// slow) to this node's limiter, the same fail-open rule as the connection caps.
    pub async fn check_policy_in(
        &self,
        cluster: Option<&crate::rooms::cluster::Cluster>,
        key: &str,
        per_minute: u32,
        name: &'static str,
    ) -> Result<RateState, ApiError> {
        use crate::rooms::cluster::RateAnswer;
        let Some(cluster) = cluster else {
            return self.check_policy(key, per_minute, name);
        };
        let policy = Policy {
            name,
            quota: per_minute.max(1),
            window: Duration::from_secs(60),
        };
        let secs = |ms: u64| ms.div_ceil(1000);
        match cluster.charge_rate(key, per_minute).await {
            Some(RateAnswer::Allowed {
                remaining,
                reset_ms,
            }) => Ok(RateState {
                policy,
                remaining: remaining.min(policy.quota),
                reset: secs(reset_ms),
            }),
            Some(RateAnswer::Refused { wait_ms }) => Err(ApiError::RateLimited(RateState {
                policy,
                remaining: 0,
                reset: secs(wait_ms).max(1),
            })),
            None => self.check_policy(key, per_minute, name),
        }
    }

    /// Drops state of keys that are back to a full quota (bounded memory).
    pub fn retain_recent(&self) {
        let limiters: Vec<_> = self
            .limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for limiter in limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The client's address: the TCP peer, or, when the peer is a proxy the operator
/// trusts, the last address in `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone)]
pub struct PeerIp {
    trusted: Arc<[IpAddr]>,
}

impl PeerIp {
    /// Trusts `X-Forwarded-For` only from `trusted` peers.
    pub fn new(trusted: Vec<IpAddr>) -> Self {
        Self {
            trusted: trusted.into(),
        }
    }

    /// The client address of a request from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted.contains(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.trusted.contains(ip))
            .unwrap_or(peer)
    }
}

impl KeyExtractor for PeerIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<Self::Key, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(self.client(peer, req.headers()))
    }
}

/// The per-IP layer's type.
pub type IpLayer = GovernorLayer<
    PeerIp,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    axum::body::Body,
>;

/// A per-IP layer allowing `per_minute` requests a minute (bursts of as many), with
/// problem+json refusals, and a function that prunes its state.
pub fn per_ip_layer(
    per_minute: u32,
    peer: PeerIp,
) -> Option<(IpLayer, Arc<dyn Fn() + Send + Sync>)> {
    let per_minute = per_minute.max(1);
    // `period` is the time to earn one request back: per_second(n) would mean one
    // request every n seconds.
    let period = Duration::from_secs(60) / per_minute;
    let config = Arc::new(
        GovernorConfigBuilder::default()
            .period(period)
            .burst_size(per_minute)
            .key_extractor(peer)
            .finish()?,
    );
    let limiter = config.limiter().clone();
    let prune: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    });
    let policy = Policy {
        name: "per-ip",
        quota: per_minute,
        window: Duration::from_secs(60),
    };
    let layer = GovernorLayer::new(config).error_handler(move |error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited(RateState {
            policy,
            remaining: 0,
            reset: wait_time.max(1),
        })
        .into_response(),
        other => {
            tracing::warn!(error = %other, "rate limiting failed");
            ApiError::BadRequest("could not determine the client address".to_owned())
                .into_response()
        }
    });
    Some((layer, prune))
}

/// Where a keyed check leaves its state for [`rate_headers`] to put on the response.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(pub Arc<Mutex<Option<RateState>>>);

impl RateSlot {
    /// Records the state of this request.
    pub fn set(&self, state: RateState) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }
}

/// Middleware: gives each request a [`RateSlot`] and writes what a keyed check put there
/// onto the response.
pub async fn rate_headers(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let state = *slot.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(state) = state {
        if !response.headers().contains_key("ratelimit") {
            state.write(response.headers_mut());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_trusted_only_from_listed_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer = PeerIp::new(vec![proxy]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        // From the proxy: the last address it added.
        assert_eq!(
            peer.client(proxy, &headers),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // From anyone else: the header is ignored.
        let client: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(peer.client(client, &headers), client);
        // A chain through two trusted proxies.
        let peer = PeerIp::new(vec![proxy, "10.0.0.2".parse().unwrap()]);
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, 10.0.0.2"),
        );
        assert_eq!(
            peer.client(proxy, &headers),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_key_gets_its_quota_then_a_retry_time() {
        let limits = KeyLimits::default();
        for i in 0..3 {
            let state = limits.check_policy("key_a", 3, "per-key").unwrap();
            assert_eq!(state.remaining, 2 - i);
        }
        let Err(ApiError::RateLimited(state)) = limits.check_policy("key_a", 3, "per-key") else {
            panic!("the fourth request is refused")
        };
        assert_eq!((state.remaining, state.reset), (0, 20));
        assert!(
            limits.check_policy("key_b", 3, "per-key").is_ok(),
            "other keys are not affected"
        );
        let mut headers = HeaderMap::new();
        state.write(&mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=3;w=60");
        assert_eq!(headers["ratelimit"], "\"per-key\";r=0;t=20");
    }
}
