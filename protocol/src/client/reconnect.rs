//! The reconnect policy: what to do after a connection ends, as a pure decision
//! ([`Plan`]) from the close code, the reason and the session's recent history. It owns
//! the backoff, the jitter source and the two counters that stop loops (connections lost
//! since the last sync, tokens refused in a row).

use std::time::Duration;

use crate::close::{self, Retry};

use super::backoff::{Backoff, Jitter};
use super::config::SessionConfig;
use super::error::SessionError;

/// What the session does after a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Stop for good with this error.
    Stop(SessionError),
    /// Connect again after `delay_ms`, with a fresh token if asked; report `notice` (a
    /// non-fatal error) first, if any.
    Retry {
        delay_ms: u64,
        refresh_token: bool,
        notice: Option<SessionError>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Reconnect {
    backoff: Backoff,
    jitter: Jitter,
    /// Spread added on top of a `retry-after` hint.
    spread_ms: u64,
    max_retry_after_ms: u64,
    max_unauthorized: u32,
    /// Connections lost since the last sync.
    failures: u32,
    /// Consecutive 4401 refusals without a sync in between.
    unauthorized_streak: u32,
}

impl Reconnect {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        Self {
            backoff: Backoff::new(config.backoff_base_ms, config.backoff_cap_ms),
            jitter: Jitter::new(config.jitter_seed),
            spread_ms: config.backoff_base_ms,
            max_retry_after_ms: config.max_retry_after_ms,
            max_unauthorized: config.max_unauthorized,
            failures: 0,
            unauthorized_streak: 0,
        }
    }

    /// Connections lost since the last sync: the `attempt` of `Status::Reconnecting`.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A sync succeeded, or the app asked to start over: forget the history.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.unauthorized_streak = 0;
        self.backoff.reset();
    }

    /// The connection ended with a close code (`synced`: it had reached "synced").
    pub(crate) fn after_close(&mut self, code: u16, reason: &str, synced: bool) -> Plan {
        let plan = match close::retry_for(code) {
            Retry::Never => {
                return Plan::Stop(SessionError::from_close(code, reason).unwrap_or_else(|| {
                    SessionError::Malformed {
                        reason: reason.to_owned(),
                    }
                }))
            }
            Retry::RefreshToken => self.after_unauthorized(reason, synced),
            Retry::After => {
                let delay_ms = match close::retry_after(reason) {
                    // A little jitter on top, so clients limited together do not all
                    // come back in the same millisecond.
                    Some(after) => duration_ms(after)
                        .min(self.max_retry_after_ms)
                        .saturating_add(self.jitter.below(self.spread_ms)),
                    None => self.backoff.next_delay_ms(&mut self.jitter),
                };
                Plan::Retry {
                    delay_ms,
                    refresh_token: false,
                    notice: Some(SessionError::RateLimited {
                        reason: reason.to_owned(),
                        retry_after_ms: delay_ms,
                    }),
                }
            }
            Retry::Backoff => self.after_loss(),
        };
        if let Plan::Retry { .. } = plan {
            self.failures = self.failures.saturating_add(1);
        }
        plan
    }

    /// We gave up on a connection ourselves (it never opened, or went silent).
    pub(crate) fn after_timeout(&mut self) -> Plan {
        self.failures = self.failures.saturating_add(1);
        self.after_loss()
    }

    fn after_loss(&mut self) -> Plan {
        Plan::Retry {
            delay_ms: self.backoff.next_delay_ms(&mut self.jitter),
            refresh_token: false,
            notice: None,
        }
    }

    /// 4401: a token expiring on a synced connection is routine (fresh token, at once);
    /// refusals in a row without a sync between them mean the provider cannot help, so
    /// they back off and, at `max_unauthorized`, stop.
    fn after_unauthorized(&mut self, reason: &str, synced: bool) -> Plan {
        self.unauthorized_streak = if synced {
            1
        } else {
            self.unauthorized_streak.saturating_add(1)
        };
        if self.unauthorized_streak >= self.max_unauthorized {
            return Plan::Stop(SessionError::Unauthorized {
                attempts: self.unauthorized_streak,
                reason: reason.to_owned(),
            });
        }
        let delay_ms = if self.unauthorized_streak == 1 {
            0
        } else {
            self.backoff.next_delay_ms(&mut self.jitter)
        };
        Plan::Retry {
            delay_ms,
            refresh_token: true,
            notice: None,
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Reconnect {
        Reconnect::new(&SessionConfig {
            jitter_seed: 11,
            ..SessionConfig::default()
        })
    }

    #[test]
    fn the_close_code_table_as_plans() {
        let mut r = policy();
        assert!(matches!(
            r.after_close(close::FORBIDDEN, "x", true),
            Plan::Stop(SessionError::Forbidden { .. })
        ));
        assert!(matches!(
            r.after_close(close::TRY_AGAIN_LATER, "", true),
            Plan::Retry { delay_ms, refresh_token: false, notice: None } if delay_ms < 250
        ));
        assert!(matches!(
            r.after_close(close::UNAUTHORIZED, "", true),
            Plan::Retry {
                delay_ms: 0,
                refresh_token: true,
                notice: None
            }
        ));
        assert!(matches!(
            r.after_close(close::RATE_LIMITED, "retry-after=2", true),
            Plan::Retry { delay_ms, refresh_token: false, notice: Some(SessionError::RateLimited { .. }) }
                if (2_000..2_250).contains(&delay_ms)
        ));
        assert_eq!(r.failures(), 3);
        r.reset();
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn refusals_in_a_row_back_off_then_stop() {
        let mut r = policy();
        let first = r.after_close(close::UNAUTHORIZED, "no", false);
        assert!(matches!(first, Plan::Retry { delay_ms: 0, .. }));
        let second = r.after_close(close::UNAUTHORIZED, "no", false);
        assert!(matches!(
            second,
            Plan::Retry {
                refresh_token: true,
                ..
            }
        ));
        assert_eq!(
            r.after_close(close::UNAUTHORIZED, "no", false),
            Plan::Stop(SessionError::Unauthorized {
                attempts: 3,
                reason: "no".to_owned()
            })
        );
    }
}
