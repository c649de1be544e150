//! Tandem server: the rooms engine (`rooms`), durable storage (`store`), the HTTP
//! adapters (`http`), configuration (`config`) and the command line (`cli`).
//!
//! The binary is a thin wrapper: [`cli::main`]. Tests and tools build the same app with
//! [`http::build_app`] and run it with [`serve`].

pub mod cli;
pub mod config;
pub mod control;
pub mod http;
pub mod ids;
pub mod rooms;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{build_app, AppState};
use crate::rooms::auth::{AllowAnonymous, Authorizer, RequireToken};
use crate::rooms::Rooms;
use crate::store::sqlite::SqliteStore;

/// Runs a server with `config` until `shutdown` resolves, then shuts down gracefully:
/// stop accepting, let every room flush, close every client with 1012.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = SqliteStore::open_dir(&config.data_dir).await?;
    let rooms = Rooms::new(Arc::new(store), config.rooms.clone());
    let authorizer: Arc<dyn Authorizer> = if config.allow_anonymous {
        tracing::warn!("--allow-anonymous: anyone can read and write any room without a token");
        Arc::new(AllowAnonymous)
    } else {
        Arc::new(RequireToken)
    };
    let app = build_app(AppState {
        rooms: rooms.clone(),
        authorizer,
    });

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    // TCP_NODELAY: relayed updates are small writes, and with Nagle on, one written
    // while an earlier one is unacknowledged waits for the peer's delayed ACK (up to
    // 40 ms on Linux). The session already coalesces bursts into one write.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
    });
    let http = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    let engine = async {
        stop.cancelled().await;
        tracing::info!("shutting down: flushing rooms and closing connections");
        rooms.shutdown(config.shutdown_timeout).await;
    };
    let (served, ()) = tokio::join!(async { http.await }, engine);
    served?;
    tracing::info!("stopped");
    Ok(())
}
