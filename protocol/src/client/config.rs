//! The session's tunables, with defaults that match the stock y-websocket client where it
//! has an equivalent.

/// How a [`ClientSession`](super::ClientSession) times, retries and renews. Build it with
/// [`SessionConfig::default`] and change the fields you need:
///
/// ```
/// use tandem_protocol::client::SessionConfig;
///
/// let config = SessionConfig {
///     jitter_seed: 0x5eed, // from the platform's randomness in a real transport
///     ..SessionConfig::default()
/// };
/// assert_eq!(config.awareness_renew_ms, 15_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Width of the first reconnect window (full jitter: the delay is uniform in
    /// `[0, window)`). Default 250 ms.
    pub backoff_base_ms: u64,
    /// The widest reconnect window. Default 30 s.
    pub backoff_cap_ms: u64,
    /// Seed of the jitter source. Transports pass platform randomness so that clients
    /// do not reconnect in lockstep; tests pass a constant.
    pub jitter_seed: u64,
    /// How often the local presence is renewed while unchanged (y-protocols: 15 s).
    pub awareness_renew_ms: u64,
    /// How long another client's presence lives without a renewal (y-protocols: 30 s).
    pub awareness_timeout_ms: u64,
    /// With a live local presence, the server echoes every renewal, so a connection
    /// that hears nothing for this long is dead and is replaced (y-websocket: 30 s).
    pub silence_timeout_ms: u64,
    /// How long a requested connection may take to open before it is abandoned and
    /// retried with backoff. Default 10 s.
    pub connect_timeout_ms: u64,
    /// The session gives up with
    /// [`SessionError::Unauthorized`](super::SessionError::Unauthorized) when this many
    /// connections in a row are refused with 4401 without reaching "synced" in between.
    /// Each refusal asks the transport for a fresh token, so the default 3 means "the
    /// token in hand and two fresh ones were all refused". A 4401 on a synced
    /// connection (a token expiring mid-session) starts the count at 1 again.
    pub max_unauthorized: u32,
    /// Upper bound on a 4429 `retry-after` hint, so a wrong server value cannot park
    /// the client for days. Default 10 minutes.
    pub max_retry_after_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            backoff_base_ms: 250,
            backoff_cap_ms: 30_000,
            jitter_seed: 0,
            awareness_renew_ms: 15_000,
            awareness_timeout_ms: 30_000,
            silence_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            max_unauthorized: 3,
            max_retry_after_ms: 600_000,
        }
    }
}
