//! Usage → Stripe billing meter events, exactly once. Every round (`meter_interval`):
//! each metered tenant's settled hours (ended `meter_settle` ago) are queued into the
//! durable outbox with their cursor moved in the same transaction
//! (`BillingStore::queue_meter_hours`), then the due rows are claimed (a conditional
//! update, so two nodes never send one row at once) and sent. Each row's identifier is
//! derived from its project, hour and quantity and sent as the meter event's
//! `identifier` (and `Idempotency-Key`): a row sent again after a crash between Stripe's
//! answer and our "sent" mark is counted once by Stripe. A failure backs off
//! exponentially (1 s to 10 min, stored, so a restart keeps it) and shows in `/metrics`
//! and on the plan page. Rows Stripe refuses for good (a 4xx other than 409/429) keep
//! being retried at the longest backoff and stay visible: usage is never dropped
//! silently.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tandem_billing::MeterEvent;

use super::Billing;
use crate::store::billing::MeterRow;
use crate::store::usage::hour_start;

const HOUR_MS: i64 = 3_600_000;
/// First retry after this…
const BACKOFF_MIN_MS: i64 = 1_000;
/// … doubling up to this.
const BACKOFF_MAX_MS: i64 = 600_000;
/// A claimed row is not due for others for this long (one send's timeout and more).
const LEASE_MS: i64 = 60_000;
/// Rows sent per round at most.
const BATCH: u32 = 200;

/// The wait before the next attempt after `attempts` failed ones.
pub fn backoff_ms(attempts: i64) -> i64 {
    let shift = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    BACKOFF_MIN_MS
        .saturating_mul(1_i64 << shift)
        .min(BACKOFF_MAX_MS)
}

impl Billing {
    /// Runs the outbox (and the grace-period check) until the process ends.
    pub async fn run(self) {
        let mut every = tokio::time::interval(self.inner.config.meter_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.expire_grace().await;
            self.queue_settled_hours().await;
            self.send_due().await;
            self.refresh_gauges().await;
        }
    }

    /// Queues every metered tenant's settled hours; returns how many rows were queued.
    pub async fn queue_settled_hours(&self) -> usize {
        let config = &self.inner.config;
        if config.meters.is_empty() {
            return 0;
        }
        let now = self.inner.control.now_ms();
        let settle = i64::try_from(config.meter_settle.as_millis()).unwrap_or(i64::MAX);
        // Hours that ended `settle` ago are final.
        let through = hour_start(now.saturating_sub(settle));
        let store = &self.inner.store;
        let accounts = match store.accounts_to_meter(through).await {
            Ok(accounts) => accounts,
            Err(error) => {
                tracing::warn!(%error, "reading metered accounts failed");
                return 0;
            }
        };
        let mut queued = 0;
        for account in accounts {
            let Some(from) = account.metered_through else {
                continue;
            };
            // At most a day per round, so one transaction stays small after downtime.
            let to = through.min(from.saturating_add(24 * HOUR_MS));
            match store
                .queue_meter_hours(&account.tenant_id, from, to, &config.meters, now)
                .await
            {
                Ok(Some(n)) => queued += n,
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, tenant = %account.tenant_id, "queueing meter events failed")
                }
            }
        }
        queued
    }

    /// Sends the due rows; returns how many Stripe accepted.
    pub async fn send_due(&self) -> usize {
        let store = &self.inner.store;
        let now = self.inner.control.now_ms();
        let due = match store.due_meter_events(now, BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "reading the meter outbox failed");
                return 0;
            }
        };
        let mut sent = 0;
        for row in due {
            match store
                .claim_meter_event(&row.identifier, row.next_attempt_at, now + LEASE_MS)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "claiming a meter event failed");
                    return sent;
                }
            }
            if self.send_one(&row).await {
                sent += 1;
            }
        }
        sent
    }

    async fn send_one(&self, row: &MeterRow) -> bool {
        let store = &self.inner.store;
        let metrics = &self.inner.metrics;
        let event = MeterEvent {
            event_name: row.event_name.clone(),
            customer_id: row.customer_id.clone(),
            value: row.value,
            // The hour's last second: inside the hour it bills.
            timestamp: (row.hour_start + HOUR_MS - 1).div_euclid(1000),
            identifier: row.identifier.clone(),
        };
        match self.inner.stripe.send_meter_event(&event).await {
            Ok(()) => {
                metrics.meter_sent.fetch_add(1, Ordering::Relaxed);
                let at = self.inner.control.now_ms();
                if let Err(error) = store.meter_event_sent(&row.identifier, at).await {
                    // Sent again after the lease: Stripe counts the identifier once.
                    tracing::warn!(%error, "marking a meter event sent failed");
                }
                true
            }
            Err(error) => {
                metrics.meter_failures.fetch_add(1, Ordering::Relaxed);
                let wait = if error.is_retryable() {
                    backoff_ms(row.attempts)
                } else {
                    BACKOFF_MAX_MS
                };
                tracing::warn!(%error, identifier = %row.identifier, attempts = row.attempts + 1, "sending a meter event failed; retrying in {} ms", wait);
                let next = self.inner.control.now_ms().saturating_add(wait);
                if let Err(error) = store
                    .meter_event_failed(&row.identifier, next, &error.to_string())
                    .await
                {
                    tracing::warn!(%error, "recording a meter event failure failed");
                }
                false
            }
        }
    }

    async fn refresh_gauges(&self) {
        if let Ok(stats) = self.inner.store.meter_stats(None).await {
            let metrics = &self.inner.metrics;
            metrics
                .meter_pending
                .store(stats.pending, Ordering::Relaxed);
            metrics
                .meter_failing
                .store(stats.failing, Ordering::Relaxed);
        }
    }
}

/// How often the outbox runs by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// How long after an hour ends its usage counts as final by default: flushes of the
/// hour's last seconds (every node's, every `--usage-flush-interval`) are in by then.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff_ms(0), 1_000);
        assert_eq!(backoff_ms(1), 2_000);
        assert_eq!(backoff_ms(3), 8_000);
        assert_eq!(backoff_ms(30), BACKOFF_MAX_MS);
    }
}
