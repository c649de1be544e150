//! The `tandem` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ServeOptions};
use crate::store::{DatabaseUrl, Stores};

/// Tandem: a Yjs-compatible collaboration server.
///
/// Logs go to stderr; filter them with RUST_LOG (e.g. RUST_LOG=tandem_server=debug).
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object a line) for log
    /// collectors
    #[arg(
        long,
        global = true,
        env = "TANDEM_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. With no options: 127.0.0.1:8080, SQLite under ./tandem-data.
    Serve(Box<ServeOptions>),
    /// Print the REST API's OpenAPI document (JSON) to stdout.
    Openapi,
    /// Start signing client tokens with a new key. Tokens signed by the old key keep
    /// working until they expire; running servers pick the new key up on their own.
    RotateSigningKey {
        /// Directory of the embedded SQLite database [default: ./tandem-data]
        #[arg(long, env = "TANDEM_DATA_DIR", value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
        /// The database, when not the embedded one (as `serve --database-url`)
        #[arg(
            long,
            env = "TANDEM_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        database_url: Option<DatabaseUrl>,
        /// The cluster's Redis (as `serve --redis-url`): its nodes are told to load the
        /// new key at once instead of within 30 s
        #[arg(
            long,
            env = "TANDEM_REDIS_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        redis_url: Option<String>,
        /// The cluster's prefix (as `serve --cluster-prefix`)
        #[arg(
            long,
            env = "TANDEM_CLUSTER_PREFIX",
            value_name = "NAME",
            default_value = "tandem"
        )]
        cluster_prefix: String,
        #[command(flatten)]
        keks: KekArgs,
    },
    /// Print a new random key-encryption key (64 hex digits) for `--kek-file`.
    GenerateKek,
    /// Re-seal every token-signing seed under a new KEK (`--kek-file` or TANDEM_KEK),
    /// opening those sealed under the old one (`--old-kek-file`) and sealing plaintext
    /// ones. Then restart the servers with the new KEK only.
    RotateKek {
        /// Directory of the embedded SQLite database [default: ./tandem-data]
        #[arg(long, env = "TANDEM_DATA_DIR", value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
        /// The database, when not the embedded one (as `serve --database-url`)
        #[arg(
            long,
            env = "TANDEM_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        database_url: Option<DatabaseUrl>,
        #[command(flatten)]
        keks: KekArgs,
    },
    /// Operations on a whole store.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a whole installation (accounts, tenants, projects, keys, signing keys, audit
    /// log, rooms and their documents, usage) into an empty database, keeping every id, then
    /// verify the copy. Stop the servers using the source first: what they write after
    /// the copy starts is not copied.
    ///
    /// Example: tandem store copy --from sqlite://tandem-data/tandem.db --to postgres://tandem@127.0.0.1/tandem
    Copy {
        /// The installation to copy: `sqlite://path/to/tandem.db` or `postgres://…` (must exist)
        #[arg(long, value_name = "URL")]
        from: DatabaseUrl,
        /// Where to: an empty (or new) database, `postgres://…` or `sqlite://…`
        #[arg(long, value_name = "URL")]
        to: DatabaseUrl,
        /// Leave dashboard login sessions behind (everyone signs in again)
        #[arg(long)]
        without_sessions: bool,
    },
}

/// The key-encryption keys of a one-off command (as `serve --kek-file`, `--old-kek-file`).
#[derive(Debug, clap::Args)]
struct KekArgs {
    /// File with the KEK sealing the signing seeds (or the key itself in TANDEM_KEK)
    #[arg(long, env = "TANDEM_KEK_FILE", value_name = "FILE")]
    kek_file: Option<std::path::PathBuf>,
    /// File with the KEK being rotated out
    #[arg(long, env = "TANDEM_OLD_KEK_FILE", value_name = "FILE")]
    old_kek_file: Option<std::path::PathBuf>,
}

impl KekArgs {
    fn load(&self) -> anyhow::Result<crate::control::signing::Keks> {
        Ok(crate::config::load_keks(
            self.kek_file.as_deref(),
            self.old_kek_file.as_deref(),
        )?)
    }
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(options) => serve(*options),
        Command::Openapi => {
            print!("{}", crate::http::api::openapi_json());
            ExitCode::SUCCESS
        }
        Command::RotateSigningKey {
            data_dir,
            database_url,
            redis_url,
            cluster_prefix,
            keks,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| std::path::PathBuf::from("tandem-data"));
            run_once(async move {
                use crate::control::signing::KeyRing;
                let url = database_url.as_ref().map(DatabaseUrl::expose);
                let store = Stores::open(url, &data_dir).await?;
                let ring = KeyRing::load(
                    store.control.clone(),
                    std::sync::Arc::new(crate::control::clock::SystemClock),
                    crate::control::ControlConfig::default().token_max_ttl,
                    keks.load()?,
                )
                .await?;
                let kid = ring.rotate().await?;
                store.close().await;
                println!("signing client tokens with key {kid} from now on");
                if let Some(redis_url) = redis_url {
                    let event = crate::rooms::cluster::ControlEvent::SigningKeysChanged;
                    let nodes =
                        crate::rooms::cluster::announce(&redis_url, &cluster_prefix, &event)
                            .await?;
                    println!("told {nodes} running node(s) to load it");
                }
                Ok(())
            })
        }
        Command::GenerateKek => match crate::control::kek::Kek::generate_hex() {
            Ok(hex) => {
                println!("{hex}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tandem: {error}");
                ExitCode::FAILURE
            }
        },
        Command::RotateKek {
            data_dir,
            database_url,
            keks,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| std::path::PathBuf::from("tandem-data"));
            run_once(async move {
                let keks = keks.load()?;
                anyhow::ensure!(
                    keks.current.is_some(),
                    "rotate-kek needs the new KEK: --kek-file or TANDEM_KEK"
                );
                let url = database_url.as_ref().map(DatabaseUrl::expose);
                let store = Stores::open(url, &data_dir).await?;
                // Loading the ring seals and re-seals every stored seed, and proves each
                // opens under the new KEK.
                crate::control::signing::KeyRing::load(
                    store.control.clone(),
                    std::sync::Arc::new(crate::control::clock::SystemClock),
                    crate::control::ControlConfig::default().token_max_ttl,
                    keks,
                )
                .await?;
                store.close().await;
                println!("every token signing key is sealed under the new KEK; restart the servers with it (and without --old-kek-file)");
                Ok(())
            })
        }
        Command::Store(StoreCommand::Copy {
            from,
            to,
            without_sessions,
        }) => run_once(copy_store(from, to, !without_sessions)),
    }
}

/// Runs a one-off command on a single-threaded runtime; errors go to stderr.
fn run_once(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandem: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tandem: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn copy_store(from: DatabaseUrl, to: DatabaseUrl, sessions: bool) -> anyhow::Result<()> {
    use crate::store::copy::{copy, CopyOptions};
    use anyhow::Context;
    let source = Stores::open_existing(from.expose())
        .await
        .with_context(|| format!("opening the source {from:?}"))?;
    let destination = Stores::open(Some(to.expose()), std::path::Path::new(""))
        .await
        .with_context(|| format!("opening the destination {to:?}"))?;
    let copied = copy(&source, &destination, &CopyOptions { sessions }).await;
    source.close().await;
    destination.close().await;
    let report = copied?;
    println!("copied {from:?} to {to:?} and verified it:");
    for (table, rows) in report.rows {
        println!("  {:<16} {rows:>10} rows", table.name());
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Scrubbed: no token, key or bearer credential reaches a log line.
        .with_writer(crate::http::redact::RedactingStderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

fn serve(options: ServeOptions) -> ExitCode {
    let config = match Config::resolve(options) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tandem: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandem: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = bind(config.listen)?;
        // Machine-readable: scripts and tests that pass port 0 read the port from here.
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("listening on {scheme}://{}", listener.local_addr()?);
        crate::serve(config, listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("tandem: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Accept-queue length. `TcpListener::bind` uses 128, which a burst of connections
/// overflows (every client reconnecting after a restart, a load test); the kernel then
/// drops the SYN and the client retries only after a second. The kernel caps this at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can rebind at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
