//! Reconnect delays: exponential backoff with full jitter, and the small seeded random
//! source behind the jitter (the session has no randomness of its own).
//!
//! Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the delay before
//! attempt `n` is uniform in `[0, min(cap, base · 2^n))`. Spreading reconnects over the
//! whole window is what stops a restarted server from being hit by every client at once.

/// Exponential backoff with full jitter. The attempt count grows with every delay drawn
/// and goes back to zero after a successful sync.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// A backoff whose first window is `base_ms` wide and whose windows never exceed
    /// `cap_ms`.
    pub fn new(base_ms: u64, cap_ms: u64) -> Self {
        Self {
            base_ms: base_ms.max(1),
            cap_ms: cap_ms.max(1),
            attempt: 0,
        }
    }

    /// How many delays were drawn since the last [`reset`](Self::reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the current window: `min(cap, base · 2^attempt)`.
    pub fn window_ms(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt.min(63)).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.cap_ms)
    }

    /// Draws the next delay, uniform in `[0, window)`, and widens the window.
    pub fn next_delay_ms(&mut self, jitter: &mut Jitter) -> u64 {
        let delay = jitter.below(self.window_ms());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Starts over from the smallest window (after a successful sync).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A seeded pseudo-random source (SplitMix64). Not for secrets: it only spreads
/// reconnects. Transports seed it from the platform's randomness (`getrandom`,
/// `Math.random`) so that clients do not share a sequence; tests seed it with a constant.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A source starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniform in `[0, bound)`, or 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift keeps the bias below 2^-64 · bound, far under a millisecond.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_growing_windows_up_to_the_cap() {
        let mut backoff = Backoff::new(100, 3_000);
        let mut jitter = Jitter::new(7);
        let windows: Vec<u64> = (0..8)
            .map(|_| {
                let window = backoff.window_ms();
                let delay = backoff.next_delay_ms(&mut jitter);
                assert!(delay < window, "{delay} >= {window}");
                window
            })
            .collect();
        assert_eq!(windows, [100, 200, 400, 800, 1600, 3000, 3000, 3000]);
        backoff.reset();
        assert_eq!(backoff.window_ms(), 100);
        assert_eq!(backoff.attempt(), 0);
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_cap() {
        let mut backoff = Backoff::new(250, 30_000);
        let mut jitter = Jitter::new(1);
        for _ in 0..200 {
            backoff.next_delay_ms(&mut jitter);
        }
        assert_eq!(backoff.window_ms(), 30_000);
    }

    #[test]
    fn jitter_covers_the_window_and_depends_on_the_seed() {
        let mut jitter = Jitter::new(3);
        let draws: Vec<u64> = (0..2_000).map(|_| jitter.below(1_000)).collect();
        assert!(draws.iter().all(|d| *d < 1_000));
        // Full jitter: both ends of the window are used, not just the top.
        assert!(draws.iter().any(|d| *d < 100));
        assert!(draws.iter().any(|d| *d >= 900));
        let mut other = Jitter::new(4);
        assert_ne!(
            draws[..8],
            (0..8).map(|_| other.below(1_000)).collect::<Vec<_>>()[..]
        );
        assert_eq!(Jitter::new(9).below(0), 0);
    }
}
