//! Cluster-wide HTTP rate limits per API key: one GCRA cell per key and quota in Redis,
//! `{prefix}:rl:{per_minute}:{key}`, holding the key's theoretical arrival time (unix
//! ms), checked and advanced by one Lua script (atomic in Redis, on Redis's clock, so the
//! nodes' clocks do not matter). Every node charges the same cell, so a key gets its
//! plan's quota across the cluster, not per node.
//!
//! The fallback is the project cap's: if Redis does not answer within
//! [`RATE_TIMEOUT`] (or the node's subscription is down, or a call failed less than
//! [`RETRY_AFTER_FAILURE`] ago, so that an outage costs no wait per request), the caller
//! charges its own per-node limiter instead (fail open to the per-node budget).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a check waits for Redis before the node's own limiter decides.
pub const RATE_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed call, how long checks go straight to the node's own limiter.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local limit = interval * burst
if new_tat - now > limit then
  return {0, 0, new_tat - now - limit}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return {1, math.floor((limit - (new_tat - now)) / interval), new_tat - now}
";

/// What Redis said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAnswer {
    /// Within the quota: `remaining` requests left now, the quota whole again in
    /// `reset_ms`.
    Allowed {
        /// Requests left.
        remaining: u32,
        /// Milliseconds until the quota is whole.
        reset_ms: u64,
    },
    /// Over it: the next request fits in `wait_ms`.
    Refused {
        /// Milliseconds until one more fits.
        wait_ms: u64,
    },
}

pub(crate) struct Rates {
    client: redis::Client,
    prefix: String,
    script: redis::Script,
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
    failed_at: Mutex<Option<Instant>>,
}

impl Rates {
    pub(crate) fn new(client: redis::Client, prefix: String) -> Self {
        Self {
            client,
            prefix,
            script: redis::Script::new(SCRIPT),
            conn: Mutex::default(),
            failed_at: Mutex::default(),
        }
    }

    /// Charges one request of `key` to `per_minute`; `None` when Redis did not answer.
    pub(crate) async fn charge(&self, key: &str, per_minute: u32) -> Option<RateAnswer> {
        if lock(&self.failed_at).is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return None;
        }
        let answer = tokio::time::timeout(RATE_TIMEOUT, self.call(key, per_minute)).await;
        match answer {
            Ok(Some(answer)) => Some(answer),
            _ => {
                *lock(&self.conn) = None;
                *lock(&self.failed_at) = Some(Instant::now());
                None
            }
        }
    }

    async fn call(&self, key: &str, per_minute: u32) -> Option<RateAnswer> {
        let existing = lock(&self.conn).clone();
        let mut conn = match existing {
            Some(conn) => conn,
            None => {
                let conn = self.client.get_multiplexed_async_connection().await.ok()?;
                *lock(&self.conn) = Some(conn.clone());
                conn
            }
        };
        let quota = per_minute.max(1);
        let interval = (60_000 / u64::from(quota)).max(1);
        let (allowed, remaining, ms): (i64, i64, i64) = self
            .script
            .key(format!("{}:rl:{quota}:{key}", self.prefix))
            .arg(interval)
            .arg(quota)
            .invoke_async(&mut conn)
            .await
            .map_err(|error| tracing::warn!(%error, "cluster rate limit failed"))
            .ok()?;
        let ms = u64::try_from(ms.max(0)).unwrap_or(0);
        Some(if allowed == 1 {
            RateAnswer::Allowed {
                remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
                reset_ms: ms,
            }
        } else {
            RateAnswer::Refused { wait_ms: ms }
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
