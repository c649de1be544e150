//! The `tandem` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ServeOptions};

/// Tandem: a Yjs-compatible collaboration server.
///
/// Logs go to stderr; filter them with RUST_LOG (e.g. RUST_LOG=tandem_server=debug).
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(options) => serve(*options),
        Command::Openapi => {
            print!("{}", crate::http::api::openapi_json());
            ExitCode::SUCCESS
        }
        Command::RotateSigningKey { data_dir } => {
            rotate_signing_key(data_dir.unwrap_or_else(|| std::path::PathBuf::from("tandem-data")))
        }
    }
}

fn rotate_signing_key(data_dir: std::path::PathBuf) -> ExitCode {
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
    let result: anyhow::Result<String> = runtime.block_on(async move {
        use crate::control::signing::KeyRing;
        let store =
            std::sync::Arc::new(crate::store::sqlite::SqliteStore::open_dir(&data_dir).await?);
        let ring = KeyRing::load(
            store.clone(),
            std::sync::Arc::new(crate::control::clock::SystemClock),
            crate::control::ControlConfig::default().token_max_ttl,
        )
        .await?;
        let kid = ring.rotate().await?;
        crate::store::DocStore::close(&*store).await;
        Ok(kid)
    });
    match result {
        Ok(kid) => {
            println!("signing client tokens with key {kid} from now on");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tandem: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
        println!("listening on http://{}", listener.local_addr()?);
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
