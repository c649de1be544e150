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
pub mod tls;

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::clock::SystemClock;
use crate::control::tokens::{AnonymousFallback, TokenAuthorizer};
use crate::control::ControlPlane;
use crate::http::{build_app, AppState};
use crate::rooms::auth::Authorizer;
use crate::rooms::Rooms;
use crate::store::{DatabaseUrl, Stores};

/// Runs a server with `config` until `shutdown` resolves, then shuts down gracefully:
/// stop accepting, let every room flush, close every client with 1012.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let url = config.database_url.as_ref().map(DatabaseUrl::expose);
    let store = Stores::open(url, &config.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
    if !config.metering {
        tracing::warn!("--metering false: usage is not counted");
    }
    let usage = config.metering.then(|| store.usage.clone());
    let rooms = match &config.cluster {
        Some(cluster) => Rooms::clustered(store.docs.clone(), usage, cluster, config.rooms.clone())
            .map_err(|e| anyhow::anyhow!("joining the cluster: {e}"))?,
        None => match usage {
            Some(usage) => Rooms::metered(store.docs.clone(), usage, config.rooms.clone()),
            None => Rooms::new(store.docs.clone(), config.rooms.clone()),
        },
    };
    if config.control.kek.is_none() {
        tracing::warn!(
            "NO KEY-ENCRYPTION KEY: token signing keys are stored in clear in the database, \
             so a copy of it can forge client tokens. Set --kek-file or TANDEM_KEK \
             (tandem generate-kek makes one); see docs/security.md"
        );
    }
    let control = ControlPlane::new(
        store.control.clone(),
        Arc::new(SystemClock),
        config.control.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the control plane: {e}"))?;
    if let Some(boot) = control
        .bootstrap_if_empty()
        .await
        .map_err(|e| anyhow::anyhow!("creating the first account: {e}"))?
    {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", listener.local_addr()?);
        // stdout, once: this is the only time the password and key exist in clear.
        println!(
            "first start: created tenant \"{}\" with project \"{}\" ({}) and an admin user\n  \
             sign in:    POST {base}/v1/auth/login  email {}  password {}\n  \
             secret key: {}  (shown once; mint client tokens with POST {base}/v1/tokens)",
            boot.account.tenant.name,
            boot.account.project.name,
            boot.account.project.id,
            boot.email,
            boot.password,
            boot.secret_key.plaintext.expose(),
        );
    }
    // Pick up signing keys rotated by `tandem rotate-signing-key` or another node.
    let ring = control.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(error) = ring.key_ring().reload().await {
                tracing::warn!(%error, "reloading token signing keys failed");
            }
        }
    });
    // Close the connections whose API key stopped vouching for their tokens (a roll's
    // grace ended, a revoke this node missed, public access switched off): every node
    // re-reads the keys its own connections descend from.
    let (sweeper, sweep_rooms) = (control.clone(), rooms.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::control::keywatch::SWEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            for stopped in sweeper.sweep_keys().await {
                sweep_rooms
                    .close_where(
                        &stopped.project_id,
                        crate::rooms::CloseFilter::Key(stopped.key_id),
                        crate::rooms::CloseReason::new(
                            tandem_protocol::close::UNAUTHORIZED,
                            stopped.reason,
                        ),
                    )
                    .await;
            }
        }
    });
    if let Some(cluster) = rooms.cluster() {
        // Another node rotated the signing keys: reload now, not at the next poll.
        let ring = control.clone();
        cluster.on_control(move |event| {
            if *event == crate::rooms::cluster::ControlEvent::SigningKeysChanged {
                let ring = ring.clone();
                tokio::spawn(async move {
                    if let Err(error) = ring.key_ring().reload().await {
                        tracing::warn!(%error, "reloading token signing keys failed");
                    }
                });
            }
        });
    }
    // Room events become project events (webhooks, GET /v1/events): the engine tells
    // the hub, which records them off the rooms' path; every node delivers the outbox.
    rooms.set_events(Arc::new(control.events().clone()));
    control.events().set_documents(Arc::new(rooms.clone()));
    let background = CancellationToken::new();
    tokio::spawn(control.events().clone().run(background.clone()));
    tokio::spawn(control.clone().run_deliveries(background.clone()));
    tokio::spawn(control.clone().run_event_pruning(background.clone()));
    let tokens = TokenAuthorizer::new(control.clone());
    let authorizer: Arc<dyn Authorizer> = if config.allow_anonymous {
        tracing::warn!(
            "--allow-anonymous: connections without a token may read and write any room"
        );
        Arc::new(AnonymousFallback::new(tokens))
    } else {
        Arc::new(tokens)
    };
    let billing = match &config.billing {
        Some(billing) => Some(start_billing(billing, &store, &control, &rooms)?),
        None => None,
    };
    let app = build_app(AppState {
        rooms: rooms.clone(),
        docs: store.docs.clone(),
        usage: store.usage.clone(),
        control,
        authorizer,
        billing,
        key_limits: Arc::default(),
        ip_limits: Some(crate::http::IpLimits {
            per_minute: config.auth_requests_per_minute,
            peer: crate::http::limits::PeerIp::new(config.trusted_proxies.clone()),
        }),
    });

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let make_service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let http: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        match &config.tls {
            None => {
                // TCP_NODELAY: relayed updates are small writes, and with Nagle on, one
                // written while an earlier one is unacknowledged waits for the peer's
                // delayed ACK (up to 40 ms on Linux). The session already coalesces
                // bursts into one write.
                let listener = listener.tap_io(|tcp| {
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%error, "setting TCP_NODELAY failed");
                    }
                });
                Box::pin(
                    axum::serve(listener, make_service)
                        .with_graceful_shutdown(stop.clone().cancelled_owned())
                        .into_future(),
                )
            }
            Some(tls) => {
                // The TLS listener sets TCP_NODELAY itself. `tap_io` with nothing to do:
                // axum provides `ConnectInfo<SocketAddr>` for tapped listeners.
                let listener = crate::tls::TlsListener::new(listener, tls)?.tap_io(|_| {});
                Box::pin(
                    axum::serve(listener, make_service)
                        .with_graceful_shutdown(stop.clone().cancelled_owned())
                        .into_future(),
                )
            }
        };
    let engine = async {
        stop.cancelled().await;
        tracing::info!("shutting down: flushing rooms and closing connections");
        background.cancel();
        rooms.shutdown(config.shutdown_timeout).await;
    };
    let (served, ()) = tokio::join!(http, engine);
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts Stripe billing: the real client, plan changes applied to live connections on
/// every node, and the meter outbox worker.
fn start_billing(
    config: &crate::control::billing::BillingConfig,
    store: &Stores,
    control: &ControlPlane,
    rooms: &Rooms,
) -> anyhow::Result<crate::control::billing::Billing> {
    let client =
        tandem_billing::StripeClient::new(config.secret_key.expose(), config.api_base.as_deref())
            .map_err(|e| anyhow::anyhow!("the Stripe client: {e}"))?;
    let billing = crate::control::billing::Billing::new(
        config.clone(),
        Arc::new(client),
        store.billing.clone(),
        control.clone(),
    );
    let live = rooms.clone();
    billing.on_plan_change(Arc::new(move |projects, limits| {
        for project in projects {
            let live = live.clone();
            let project = project.as_str().to_owned();
            tokio::spawn(async move { live.set_project_limits(&project, limits).await });
        }
    }));
    tracing::info!(
        plans = ?config.prices.keys().collect::<Vec<_>>(),
        meters = config.meters.len(),
        "Stripe billing on (API version {})",
        tandem_billing::API_VERSION
    );
    tokio::spawn(billing.clone().run());
    Ok(billing)
}
