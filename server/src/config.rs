//! Configuration: flags, then `TANDEM_*` environment variables, then an optional TOML
//! file (`--config`), then defaults. One struct, [`ServeOptions`], is both the command
//! line (clap) and the file format (serde), so the two cannot drift; [`Config`] is the
//! validated result the server runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::control::ControlConfig;
use crate::rooms::RoomsConfig;

/// A duration written like `30s`, `500ms` or `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Options of `tandem serve`. Every field is optional here so that a flag or variable
/// that is not given falls through to the file, then to the default shown in `--help`.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeOptions {
    /// TOML file with any of these options (kebab-case keys, e.g. `listen = "0.0.0.0:8080"`).
    #[arg(long, env = "TANDEM_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "TANDEM_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Serve HTTPS and WSS on --listen with this certificate chain (PEM file, the
    /// server's certificate first); needs --tls-key. Read once at start [default: none:
    /// plain HTTP, e.g. behind a TLS-terminating proxy]
    #[arg(
        long,
        env = "TANDEM_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM file: PKCS#8, PKCS#1 or SEC1) [default: none]
    #[arg(
        long,
        env = "TANDEM_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Directory for the embedded SQLite database, created if missing [default: ./tandem-data]
    #[arg(long, env = "TANDEM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database to use instead of the embedded SQLite file: `postgres://user@host/db` (many
    /// nodes can share one) or `sqlite://path/to/tandem.db` [default: SQLite in --data-dir]
    #[arg(
        long,
        env = "TANDEM_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<crate::store::DatabaseUrl>,

    /// Run as one node of a cluster: `redis://host:port[/db]`. Every node must use the
    /// same Postgres --database-url and Redis; rooms' updates, presence and events travel
    /// between nodes over Redis pub/sub, and connection caps count every node
    /// [default: none, a single node]
    #[arg(
        long,
        env = "TANDEM_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel this cluster uses, so several clusters can
    /// share one Redis [default: tandem]
    #[arg(long, env = "TANDEM_CLUSTER_PREFIX", value_name = "NAME")]
    pub cluster_prefix: Option<String>,

    /// How often each node compares its loaded rooms with the database, to repair
    /// anything Redis failed to deliver (it also does after every Redis reconnect);
    /// each room's interval is randomised by up to half either way [default: 10s]
    #[arg(long, env = "TANDEM_CLUSTER_CATCHUP_INTERVAL", value_name = "DURATION")]
    pub cluster_catchup_interval: Option<HumanDuration>,

    /// Let anyone connect to any room without a token (development only; logged as a
    /// warning) [default: false]
    #[arg(long, env = "TANDEM_ALLOW_ANONYMOUS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_anonymous: Option<bool>,

    /// Count usage per project (GET /v1/usage). Turning it off is for measuring what it
    /// costs (scripts/bench-control.sh), not for production [default: true]
    #[arg(long, env = "TANDEM_METERING", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub metering: Option<bool>,

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection
    /// with 4413 [default: 4194304]
    #[arg(long, env = "TANDEM_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Largest presence (awareness) state one client may set, in bytes, with the
    /// server-attached user included; a larger one closes its sender with 4400 and is
    /// never stored or relayed [default: 16384]
    #[arg(long, env = "TANDEM_MAX_PRESENCE_BYTES", value_name = "BYTES")]
    pub max_presence_bytes: Option<usize>,

    /// Most presence (awareness) client ids one connection may hold at once (a stock
    /// client uses one per document); more closes it with 4400 [default: 8]
    #[arg(long, env = "TANDEM_MAX_PRESENCE_CLIENTS", value_name = "COUNT")]
    pub max_presence_clients: Option<usize>,

    /// Largest custom event (message type 100) a client may send, in bytes; a larger
    /// one closes it with 4400 [default: 65536]
    #[arg(long, env = "TANDEM_MAX_EVENT_BYTES", value_name = "BYTES")]
    pub max_event_bytes: Option<usize>,

    /// Frames queued for one connection before it counts as too slow and is closed
    /// with 1013 (it resyncs on reconnect) [default: 512]
    #[arg(long, env = "TANDEM_OUTBOUND_QUEUE", value_name = "FRAMES")]
    pub outbound_queue: Option<usize>,

    /// A send to a client that does not complete within this closes it [default: 10s]
    #[arg(long, env = "TANDEM_SEND_TIMEOUT", value_name = "DURATION")]
    pub send_timeout: Option<HumanDuration>,

    /// Unload a room from memory after it has had no connections for this long [default: 30s]
    #[arg(long, env = "TANDEM_ROOM_IDLE_TIMEOUT", value_name = "DURATION")]
    pub room_idle_timeout: Option<HumanDuration>,

    /// Remove a presence (awareness) state not renewed for this long [default: 30s]
    #[arg(long, env = "TANDEM_AWARENESS_TIMEOUT", value_name = "DURATION")]
    pub awareness_timeout: Option<HumanDuration>,

    /// How long relaying waits for storage before closing clients with 1013 [default: 10s]
    #[arg(long, env = "TANDEM_PERSIST_TIMEOUT", value_name = "DURATION")]
    pub persist_timeout: Option<HumanDuration>,

    /// Compact a room's update log into its snapshot past this many updates [default: 500]
    #[arg(long, env = "TANDEM_COMPACT_AFTER_UPDATES", value_name = "COUNT")]
    pub compact_after_updates: Option<usize>,

    /// …or past this many bytes of log [default: 1048576]
    #[arg(long, env = "TANDEM_COMPACT_AFTER_BYTES", value_name = "BYTES")]
    pub compact_after_bytes: Option<usize>,

    /// How often usage (messages, bytes, connection time, peaks, users, storage) is
    /// written to the store; it is also written at every UTC hour and at shutdown. A
    /// SIGKILL loses at most this much of it [default: 10s]
    #[arg(long, env = "TANDEM_USAGE_FLUSH_INTERVAL", value_name = "DURATION")]
    pub usage_flush_interval: Option<HumanDuration>,

    /// How long shutdown waits for rooms to flush and clients to be closed [default: 10s]
    #[arg(long, env = "TANDEM_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,

    /// The URL users reach this server at (e.g. behind a TLS proxy). With `https://`,
    /// session cookies are marked Secure [default: none]
    #[arg(long, env = "TANDEM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// File with the key-encryption key that seals the token-signing seeds at rest: 32
    /// random bytes as 64 hex digits or base64 (`tandem generate-kek`). The env var
    /// TANDEM_KEK may hold the key itself instead [default: none: seeds in clear]
    #[arg(long, env = "TANDEM_KEK_FILE", value_name = "FILE")]
    pub kek_file: Option<PathBuf>,

    /// File with the KEK being rotated out: seeds sealed under it are re-sealed under the
    /// new one at start (`tandem rotate-kek` does it without serving) [default: none]
    #[arg(long, env = "TANDEM_OLD_KEK_FILE", value_name = "FILE")]
    pub old_kek_file: Option<PathBuf>,

    /// Longest lifetime of a client token minted by POST /v1/tokens [default: 24h]
    #[arg(long, env = "TANDEM_TOKEN_MAX_TTL", value_name = "DURATION")]
    pub token_max_ttl: Option<HumanDuration>,

    /// How long a dashboard login session lasts [default: 14days]
    #[arg(long, env = "TANDEM_SESSION_TTL", value_name = "DURATION")]
    pub session_ttl: Option<HumanDuration>,

    /// Failed logins per account within 15 minutes before logins to it are refused
    /// with 429 for the rest of the window [default: 5]
    #[arg(long, env = "TANDEM_LOGIN_FAILURES_PER_ACCOUNT", value_name = "COUNT")]
    pub login_failures_per_account: Option<u32>,

    /// Requests per minute per client address on signup, login and token minting;
    /// more get 429 [default: 30]
    #[arg(long, env = "TANDEM_AUTH_REQUESTS_PER_MINUTE", value_name = "COUNT")]
    pub auth_requests_per_minute: Option<u32>,

    /// Proxies whose X-Forwarded-For is believed, comma-separated IP addresses (e.g.
    /// your load balancer's); from anyone else the header is ignored [default: none]
    #[arg(
        long,
        env = "TANDEM_TRUSTED_PROXIES",
        value_name = "IP,…",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,

    /// TOML file with plan limits: one table per plan (`[free]`, `[pro]`, …) with
    /// kebab-case fields (connections-per-project, connections-per-room,
    /// rooms-per-project, max-document-bytes, messages-per-second, message-burst,
    /// bytes-per-second, byte-burst, rest-requests-per-minute); missing ones keep the
    /// built-in values [default: built-in plans]
    #[arg(long, env = "TANDEM_PLANS", value_name = "FILE")]
    pub plans: Option<PathBuf>,

    /// Failed logins per client IP within 15 minutes before its logins are refused with
    /// 429 [default: 30]
    #[arg(long, env = "TANDEM_LOGIN_FAILURES_PER_IP", value_name = "COUNT")]
    pub login_failures_per_ip: Option<u32>,

    /// At most one document.updated event per room per this long (it carries the
    /// window's seq range and writers) [default: 2s]
    #[arg(long, env = "TANDEM_WEBHOOK_DEBOUNCE", value_name = "DURATION")]
    pub webhook_debounce: Option<HumanDuration>,

    /// Deliver webhooks to loopback, private, link-local and other internal addresses
    /// too (tests, on-premises receivers). Off, such targets are refused after DNS
    /// [default: false]
    #[arg(long, env = "TANDEM_WEBHOOK_ALLOW_PRIVATE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_private: Option<bool>,

    /// Allow plain http:// webhook URLs (otherwise https:// only) [default: false]
    #[arg(long, env = "TANDEM_WEBHOOK_ALLOW_HTTP", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_http: Option<bool>,

    /// The delay before a failed webhook delivery's first retry; it doubles (with
    /// jitter) up to 6 h [default: 5s]
    #[arg(long, env = "TANDEM_WEBHOOK_RETRY_BASE", value_name = "DURATION")]
    pub webhook_retry_base: Option<HumanDuration>,

    /// How long after an event its delivery is retried before it fails (and the
    /// endpoint, if it has not succeeded since, is disabled) [default: 3days]
    #[arg(long, env = "TANDEM_WEBHOOK_RETRY_FOR", value_name = "DURATION")]
    pub webhook_retry_for: Option<HumanDuration>,

    /// How long project events are kept for GET /v1/events (and deliveries)
    /// [default: 7days]
    #[arg(long, env = "TANDEM_EVENT_RETENTION", value_name = "DURATION")]
    pub event_retention: Option<HumanDuration>,

    /// Attach the document's JSON view to document.updated events when it is at most
    /// this many bytes (0: never; consumers fetch documentUrl) [default: 0]
    #[arg(long, env = "TANDEM_WEBHOOK_DOCUMENT_JSON_BYTES", value_name = "BYTES")]
    pub webhook_document_json_bytes: Option<usize>,

    /// Stripe secret API key: turns billing on (needs --stripe-webhook-secret and
    /// --stripe-plans) [default: none, no billing]
    #[arg(
        long,
        env = "TANDEM_STRIPE_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub stripe_secret_key: Option<String>,

    /// Signing secret(s) of the Stripe webhook endpoint (`whsec_…`), comma-separated
    /// while rolling: a delivery signed with any of them is accepted [default: none]
    #[arg(
        long,
        env = "TANDEM_STRIPE_WEBHOOK_SECRET",
        value_name = "SECRET,…",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<Vec<String>>,

    /// TOML file mapping plans to Stripe prices (`[prices]` pro = "price_…") and
    /// metered quantities to Stripe meter event names (`[meters]` connection-minutes,
    /// messages, messages-in, messages-out, bytes, bytes-in, bytes-out,
    /// peak-connections = "event_name") [default: none]
    #[arg(long, env = "TANDEM_STRIPE_PLANS", value_name = "FILE")]
    pub stripe_plans: Option<PathBuf>,

    /// How long a tenant whose payment failed keeps its paid plan before it drops to
    /// free [default: 7days]
    #[arg(long, env = "TANDEM_BILLING_GRACE_PERIOD", value_name = "DURATION")]
    pub billing_grace_period: Option<HumanDuration>,

    /// Stripe API base URL instead of https://api.stripe.com/ (tests: a local fake)
    #[arg(long, env = "TANDEM_STRIPE_API_BASE", value_name = "URL", hide = true)]
    pub stripe_api_base: Option<String>,

    /// How often the meter outbox is worked on [default: 10s]
    #[arg(
        long,
        env = "TANDEM_STRIPE_METER_INTERVAL",
        value_name = "DURATION",
        hide = true
    )]
    pub stripe_meter_interval: Option<HumanDuration>,

    /// How long after an hour ends its usage is final and reported [default: 5m]
    #[arg(
        long,
        env = "TANDEM_STRIPE_METER_SETTLE",
        value_name = "DURATION",
        hide = true
    )]
    pub stripe_meter_settle: Option<HumanDuration>,
}

/// The webhook settings from the options.
fn webhook_options(
    cli: &ServeOptions,
    file: &ServeOptions,
) -> Result<crate::control::webhooks::WebhookConfig, ConfigError> {
    let d = crate::control::webhooks::WebhookConfig::default();
    let pick = |a: Option<HumanDuration>, b: Option<HumanDuration>, default: Duration| {
        a.or(b).map_or(default, |h| h.0)
    };
    let flag = |a: Option<bool>, b: Option<bool>| a.or(b).unwrap_or(false);
    let config = crate::control::webhooks::WebhookConfig {
        debounce: pick(cli.webhook_debounce, file.webhook_debounce, d.debounce),
        policy: crate::control::webhooks::ssrf::TargetPolicy {
            allow_private: flag(cli.webhook_allow_private, file.webhook_allow_private),
            allow_http: flag(cli.webhook_allow_http, file.webhook_allow_http),
        },
        backoff: crate::control::webhooks::backoff::Backoff {
            base: pick(
                cli.webhook_retry_base,
                file.webhook_retry_base,
                d.backoff.base,
            ),
            retry_for: pick(
                cli.webhook_retry_for,
                file.webhook_retry_for,
                d.backoff.retry_for,
            ),
            ..d.backoff
        },
        retention: pick(cli.event_retention, file.event_retention, d.retention),
        document_json_bytes: cli
            .webhook_document_json_bytes
            .or(file.webhook_document_json_bytes)
            .unwrap_or(d.document_json_bytes),
        ..d
    };
    for (name, value) in [
        ("webhook-debounce", config.debounce),
        ("webhook-retry-base", config.backoff.base),
        ("webhook-retry-for", config.backoff.retry_for),
        ("event-retention", config.retention),
    ] {
        if value.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "{name} must be more than zero"
            )));
        }
    }
    Ok(config)
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these options.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// The validated configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// HTTPS/WSS on `listen` instead of plain HTTP (the certificate is loaded).
    pub tls: Option<crate::tls::ServerTls>,
    /// Where the embedded database lives.
    pub data_dir: PathBuf,
    /// The database, when not the embedded one (its password is redacted in `Debug`).
    pub database_url: Option<crate::store::DatabaseUrl>,
    /// Cluster membership, when running as one of many nodes.
    pub cluster: Option<crate::rooms::cluster::ClusterOptions>,
    /// Whether token-less connections are let in.
    pub allow_anonymous: bool,
    /// Whether usage is counted.
    pub metering: bool,
    /// Rooms engine tuning.
    pub rooms: RoomsConfig,
    /// Graceful shutdown budget.
    pub shutdown_timeout: Duration,
    /// Control-plane settings.
    pub control: ControlConfig,
    /// Requests per minute per client address on the public routes.
    pub auth_requests_per_minute: u32,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Stripe billing, when configured.
    pub billing: Option<crate::control::billing::BillingConfig>,
}

impl Config {
    /// Resolves options given on the command line / environment against the file they
    /// name (if any) and the defaults.
    pub fn resolve(cli: ServeOptions) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<ServeOptions>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
            None => ServeOptions::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(cli: ServeOptions, file: ServeOptions) -> Result<Self, ConfigError> {
        let webhooks = webhook_options(&cli, &file)?;
        let stripe = (StripeOptions::from(&cli), StripeOptions::from(&file));
        let d = RoomsConfig::default();
        let dur = |a: Option<HumanDuration>, b: Option<HumanDuration>, default: Duration| {
            a.or(b).map_or(default, |h| h.0)
        };
        let rooms = RoomsConfig {
            version_gap: d.version_gap,
            history_retention: d.history_retention,
            clock: d.clock.clone(),
            max_message_bytes: cli
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(d.max_message_bytes),
            outbound_queue: cli
                .outbound_queue
                .or(file.outbound_queue)
                .unwrap_or(d.outbound_queue),
            max_presence_bytes: cli
                .max_presence_bytes
                .or(file.max_presence_bytes)
                .unwrap_or(d.max_presence_bytes),
            max_presence_clients: cli
                .max_presence_clients
                .or(file.max_presence_clients)
                .unwrap_or(d.max_presence_clients),
            max_event_bytes: cli
                .max_event_bytes
                .or(file.max_event_bytes)
                .unwrap_or(d.max_event_bytes),
            send_timeout: dur(cli.send_timeout, file.send_timeout, d.send_timeout),
            room_idle_timeout: dur(
                cli.room_idle_timeout,
                file.room_idle_timeout,
                d.room_idle_timeout,
            ),
            awareness_timeout: dur(
                cli.awareness_timeout,
                file.awareness_timeout,
                d.awareness_timeout,
            ),
            persist_timeout: dur(cli.persist_timeout, file.persist_timeout, d.persist_timeout),
            compact_after_updates: cli
                .compact_after_updates
                .or(file.compact_after_updates)
                .unwrap_or(d.compact_after_updates),
            compact_after_bytes: cli
                .compact_after_bytes
                .or(file.compact_after_bytes)
                .unwrap_or(d.compact_after_bytes),
            usage_flush_interval: dur(
                cli.usage_flush_interval,
                file.usage_flush_interval,
                d.usage_flush_interval,
            ),
            ..d
        };
        if rooms.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max-message-bytes must be at least 1024".into(),
            ));
        }
        if rooms.max_presence_bytes < 256 || rooms.max_event_bytes < 256 {
            return Err(ConfigError::Invalid(
                "max-presence-bytes and max-event-bytes must be at least 256".into(),
            ));
        }
        if rooms.max_presence_clients == 0 {
            return Err(ConfigError::Invalid(
                "max-presence-clients must be at least 1".into(),
            ));
        }
        if rooms.outbound_queue < 4 {
            return Err(ConfigError::Invalid(
                "outbound-queue must be at least 4".into(),
            ));
        }
        if rooms.compact_after_updates == 0 {
            return Err(ConfigError::Invalid(
                "compact-after-updates must be at least 1".into(),
            ));
        }
        for (name, value) in [
            ("send-timeout", rooms.send_timeout),
            ("awareness-timeout", rooms.awareness_timeout),
            ("persist-timeout", rooms.persist_timeout),
            ("usage-flush-interval", rooms.usage_flush_interval),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be more than zero"
                )));
            }
        }
        let public_url = cli.public_url.or(file.public_url);
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(
                    "public-url must start with http:// or https://".into(),
                ));
            }
        }
        let c = ControlConfig::default();
        let plans = match cli.plans.or(file.plans) {
            Some(path) => crate::control::plans::Plans::load(&path)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            None => c.plans.clone(),
        };
        let keks = load_keks(
            cli.kek_file.or(file.kek_file).as_deref(),
            cli.old_kek_file.or(file.old_kek_file).as_deref(),
        )?;
        let control = ControlConfig {
            plans,
            kek: keks.current,
            old_kek: keks.old,
            secure_cookies: public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            public_url: public_url.clone(),
            token_max_ttl: dur(cli.token_max_ttl, file.token_max_ttl, c.token_max_ttl),
            session_ttl: dur(cli.session_ttl, file.session_ttl, c.session_ttl),
            login_failures_per_account: cli
                .login_failures_per_account
                .or(file.login_failures_per_account)
                .unwrap_or(c.login_failures_per_account),
            login_failures_per_ip: cli
                .login_failures_per_ip
                .or(file.login_failures_per_ip)
                .unwrap_or(c.login_failures_per_ip),
            webhooks,
            ..c
        };
        if control.token_max_ttl < Duration::from_secs(60) {
            return Err(ConfigError::Invalid(
                "token-max-ttl must be at least 1m".into(),
            ));
        }
        if control.login_failures_per_account == 0 || control.login_failures_per_ip == 0 {
            return Err(ConfigError::Invalid(
                "login failure limits must be at least 1".into(),
            ));
        }
        let control = ControlConfig {
            token_default_ttl: control.token_default_ttl.min(control.token_max_ttl),
            ..control
        };
        let auth_requests_per_minute = cli
            .auth_requests_per_minute
            .or(file.auth_requests_per_minute)
            .unwrap_or(30);
        if auth_requests_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "auth-requests-per-minute must be at least 1".into(),
            ));
        }
        let billing = billing_config(stripe.0, stripe.1, &control.plans)?;
        let database_url = cli.database_url.or(file.database_url);
        let cluster = match cli.redis_url.or(file.redis_url) {
            None => None,
            Some(redis_url) => {
                let shared = database_url
                    .as_ref()
                    .is_some_and(|url| matches!(url.backend(), crate::store::Backend::Postgres));
                if !shared {
                    return Err(ConfigError::Invalid(
                        "--redis-url needs a shared database: every node must use the same \
                         postgres:// --database-url (SQLite is one node's file)"
                            .into(),
                    ));
                }
                let prefix = cli
                    .cluster_prefix
                    .or(file.cluster_prefix)
                    .unwrap_or_else(|| "tandem".into());
                if prefix.is_empty() || prefix.contains(char::is_whitespace) {
                    return Err(ConfigError::Invalid(
                        "--cluster-prefix must be non-empty, without spaces".into(),
                    ));
                }
                let catchup_interval = dur(
                    cli.cluster_catchup_interval,
                    file.cluster_catchup_interval,
                    Duration::from_secs(10),
                );
                if catchup_interval.is_zero() {
                    return Err(ConfigError::Invalid(
                        "--cluster-catchup-interval must be positive".into(),
                    ));
                }
                Some(crate::rooms::cluster::ClusterOptions {
                    redis_url,
                    prefix,
                    catchup_interval,
                })
            }
        };
        let tls = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(
                crate::tls::ServerTls::load(&cert, &key)
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            ),
            _ => {
                return Err(ConfigError::Invalid(
                    "tls-cert and tls-key go together: give both or neither".into(),
                ))
            }
        };
        Ok(Self {
            tls,
            cluster,
            billing,
            auth_requests_per_minute,
            trusted_proxies: cli
                .trusted_proxies
                .or(file.trusted_proxies)
                .unwrap_or_default(),
            control,
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("tandem-data")),
            database_url,
            allow_anonymous: cli
                .allow_anonymous
                .or(file.allow_anonymous)
                .unwrap_or(false),
            metering: cli.metering.or(file.metering).unwrap_or(true),
            rooms,
            shutdown_timeout: dur(
                cli.shutdown_timeout,
                file.shutdown_timeout,
                Duration::from_secs(10),
            ),
        })
    }
}

/// Billing from the `--stripe-*` options: all of key, webhook secret and plans file, or
/// none of them.
struct StripeOptions {
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<Vec<String>>,
    stripe_plans: Option<PathBuf>,
    billing_grace_period: Option<HumanDuration>,
    stripe_api_base: Option<String>,
    stripe_meter_interval: Option<HumanDuration>,
    stripe_meter_settle: Option<HumanDuration>,
}

impl From<&ServeOptions> for StripeOptions {
    fn from(o: &ServeOptions) -> Self {
        Self {
            stripe_secret_key: o.stripe_secret_key.clone(),
            stripe_webhook_secret: o.stripe_webhook_secret.clone(),
            stripe_plans: o.stripe_plans.clone(),
            billing_grace_period: o.billing_grace_period,
            stripe_api_base: o.stripe_api_base.clone(),
            stripe_meter_interval: o.stripe_meter_interval,
            stripe_meter_settle: o.stripe_meter_settle,
        }
    }
}

fn billing_config(
    cli: StripeOptions,
    file: StripeOptions,
    plans: &crate::control::plans::Plans,
) -> Result<Option<crate::control::billing::BillingConfig>, ConfigError> {
    use crate::control::billing::{config, meter, webhook, BillingConfig, Secret};
    let key = cli.stripe_secret_key.or(file.stripe_secret_key);
    let secrets = cli
        .stripe_webhook_secret
        .or(file.stripe_webhook_secret)
        .unwrap_or_default();
    let secrets: Vec<Secret> = secrets
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect();
    let plans_file = cli.stripe_plans.or(file.stripe_plans);
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        if !secrets.is_empty() || plans_file.is_some() {
            return Err(ConfigError::Invalid(
                "--stripe-webhook-secret and --stripe-plans need --stripe-secret-key".into(),
            ));
        }
        return Ok(None);
    };
    if secrets.is_empty() {
        return Err(ConfigError::Invalid(
            "--stripe-secret-key needs --stripe-webhook-secret (the endpoint's signing secret)"
                .into(),
        ));
    }
    let Some(path) = plans_file else {
        return Err(ConfigError::Invalid(
            "--stripe-secret-key needs --stripe-plans (plans to prices, quantities to meters)"
                .into(),
        ));
    };
    let (prices, meters) = config::load_plans(&path, plans).map_err(ConfigError::Invalid)?;
    let dur = |a: Option<HumanDuration>, b: Option<HumanDuration>, default: Duration| {
        a.or(b).map_or(default, |h| h.0)
    };
    let config = BillingConfig {
        secret_key: Secret::new(key),
        webhook_secrets: secrets,
        prices,
        meters,
        api_base: cli.stripe_api_base.or(file.stripe_api_base),
        grace_period: dur(
            cli.billing_grace_period,
            file.billing_grace_period,
            webhook::DEFAULT_GRACE,
        ),
        meter_interval: dur(
            cli.stripe_meter_interval,
            file.stripe_meter_interval,
            meter::DEFAULT_INTERVAL,
        ),
        meter_settle: dur(
            cli.stripe_meter_settle,
            file.stripe_meter_settle,
            meter::DEFAULT_SETTLE,
        ),
    };
    if config.meter_interval.is_zero() {
        return Err(ConfigError::Invalid(
            "stripe-meter-interval must be more than zero".into(),
        ));
    }
    Ok(Some(config))
}

/// The KEKs from `--kek-file` (or the key itself in the env var `TANDEM_KEK`) and
/// `--old-kek-file`. An old KEK without a new one is refused: rotation needs both.
pub fn load_keks(
    kek_file: Option<&std::path::Path>,
    old_kek_file: Option<&std::path::Path>,
) -> Result<crate::control::signing::Keks, ConfigError> {
    use crate::control::kek::Kek;
    let read = |path: &std::path::Path| -> Result<std::sync::Arc<Kek>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Kek::parse(&text)
            .map(std::sync::Arc::new)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
    };
    let current = match (kek_file, std::env::var("TANDEM_KEK")) {
        (Some(path), _) => Some(read(path)?),
        (None, Ok(text)) if !text.trim().is_empty() => {
            Some(std::sync::Arc::new(Kek::parse(&text).map_err(|e| {
                ConfigError::Invalid(format!("TANDEM_KEK: {e}"))
            })?))
        }
        (None, _) => None,
    };
    let old = old_kek_file.map(read).transpose()?;
    if old.is_some() && current.is_none() {
        return Err(ConfigError::Invalid(
            "--old-kek-file needs the new KEK too (--kek-file or TANDEM_KEK)".into(),
        ));
    }
    Ok(crate::control::signing::Keks { current, old })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_embedded_setup() {
        let c = Config::merge(ServeOptions::default(), ServeOptions::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("tandem-data"));
        assert!(!c.allow_anonymous);
        assert_eq!(c.rooms.usage_flush_interval, Duration::from_secs(10));
    }

    #[test]
    fn the_usage_flush_interval_is_configurable_and_positive() {
        let file: ServeOptions = toml::from_str("usage-flush-interval = \"1s\"").unwrap();
        let c = Config::merge(ServeOptions::default(), file).unwrap();
        assert_eq!(c.rooms.usage_flush_interval, Duration::from_secs(1));
        let zero: ServeOptions = toml::from_str("usage-flush-interval = \"0s\"").unwrap();
        assert!(Config::merge(ServeOptions::default(), zero).is_err());
    }

    #[test]
    fn billing_needs_key_secret_and_plans_together() {
        let dir = tempfile::tempdir().unwrap();
        let plans = dir.path().join("stripe.toml");
        std::fs::write(
            &plans,
            "[prices]\npro = \"price_pro\"\n[meters]\nmessages = \"msgs\"\n",
        )
        .unwrap();
        let none = Config::merge(ServeOptions::default(), ServeOptions::default()).unwrap();
        assert!(none.billing.is_none(), "off unless configured");
        let all = ServeOptions {
            stripe_secret_key: Some("sk_test_1".into()),
            stripe_webhook_secret: Some(vec!["whsec_a".into(), "whsec_b".into()]),
            stripe_plans: Some(plans.clone()),
            ..Default::default()
        };
        let billing = Config::merge(all.clone(), ServeOptions::default())
            .unwrap()
            .billing
            .unwrap();
        assert_eq!(billing.webhook_secrets.len(), 2);
        assert_eq!(billing.prices["pro"], "price_pro");
        assert_eq!(billing.plan_of_price("price_pro"), Some("pro"));
        assert!(!format!("{billing:?}").contains("sk_test_1"));
        for missing in [
            ServeOptions {
                stripe_webhook_secret: None,
                ..all.clone()
            },
            ServeOptions {
                stripe_plans: None,
                ..all.clone()
            },
            ServeOptions {
                stripe_secret_key: None,
                ..all.clone()
            },
        ] {
            assert!(Config::merge(missing, ServeOptions::default()).is_err());
        }
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: ServeOptions = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nallow-anonymous = true\nroom-idle-timeout = \"2m\"\nmax-message-bytes = 2048\n",
        )
        .unwrap();
        let cli = ServeOptions {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::merge(cli, file).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert!(c.allow_anonymous);
        assert_eq!(c.rooms.room_idle_timeout, Duration::from_secs(120));
        assert_eq!(c.rooms.max_message_bytes, 2048);
    }

    #[test]
    fn an_https_public_url_makes_session_cookies_secure() {
        let c = Config::merge(ServeOptions::default(), ServeOptions::default()).unwrap();
        assert!(!c.control.secure_cookies);
        let https = ServeOptions {
            public_url: Some("https://collab.example.com".into()),
            ..Default::default()
        };
        assert!(
            Config::merge(https, ServeOptions::default())
                .unwrap()
                .control
                .secure_cookies
        );
        let http: ServeOptions = toml::from_str("public-url = \"http://10.0.0.1:8080\"").unwrap();
        assert!(
            !Config::merge(ServeOptions::default(), http)
                .unwrap()
                .control
                .secure_cookies
        );
        let bad = ServeOptions {
            public_url: Some("collab.example.com".into()),
            ..Default::default()
        };
        assert!(Config::merge(bad, ServeOptions::default()).is_err());
    }

    #[test]
    fn tls_needs_both_files_and_loads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::tests::write_self_signed(dir.path());
        let half: ServeOptions =
            toml::from_str(&format!("tls-cert = {:?}", cert.display().to_string())).unwrap();
        let error = Config::merge(ServeOptions::default(), half).unwrap_err();
        assert!(error.to_string().contains("give both"), "{error}");
        let both = ServeOptions {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..Default::default()
        };
        let c = Config::merge(both, ServeOptions::default()).unwrap();
        assert!(c.tls.is_some());
        assert!(
            Config::merge(ServeOptions::default(), ServeOptions::default())
                .unwrap()
                .tls
                .is_none()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<ServeOptions>("lisen = \"x\"").is_err());
        let bad = ServeOptions {
            max_message_bytes: Some(10),
            ..Default::default()
        };
        assert!(Config::merge(bad, ServeOptions::default()).is_err());
    }
}
