//! Helpers for the Rust SDK's end-to-end tests (`sdk.rs`): a TCP proxy in front of the
//! server (a stable address across restarts, a connection counter, and a switch that
//! cuts every connection like a network failure), a token provider that counts its
//! calls, SDK clients minting tokens with the project's secret key, and waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tandem_sdk::dev::SecretKeyTokenProvider;
use tandem_sdk::{Client, Room, Status, TokenFuture, TokenProvider};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A TCP proxy on 127.0.0.1 forwarding to a target that can change (the server after a
/// restart on a new port). [`Proxy::cut`] drops every live connection at once.
pub struct Proxy {
    pub addr: String,
    target: Arc<Mutex<String>>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(target.to_owned()));
        let conns = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = {
            let (target, conns, accepted) = (target.clone(), conns.clone(), accepted.clone());
            tokio::spawn(async move {
                while let Ok((mut down, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let upstream = target.lock().unwrap().clone();
                    let conn = tokio::spawn(async move {
                        // Server down: dropping `down` fails the client's handshake.
                        if let Ok(mut up) = TcpStream::connect(&upstream).await {
                            let _ = up.set_nodelay(true);
                            let _ = down.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        }
                    });
                    let mut conns = conns.lock().unwrap();
                    conns.retain(|c| !c.is_finished());
                    conns.push(conn.abort_handle());
                }
            })
        };
        Proxy {
            addr,
            target,
            conns,
            accepted,
            task,
        }
    }

    /// The base URL SDK clients use to reach the server through the proxy.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends new connections to `target` from now on.
    pub fn retarget(&self, target: &str) {
        *self.target.lock().unwrap() = target.to_owned();
    }

    /// Drops every live connection (both sides see the TCP connection end, without a
    /// WebSocket close frame).
    pub fn cut(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// Wraps a token provider and counts its calls.
pub struct Counting<P> {
    inner: P,
    calls: Arc<AtomicUsize>,
}

impl<P> Counting<P> {
    pub fn new(inner: P) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            Self {
                inner,
                calls: calls.clone(),
            },
            calls,
        )
    }
}

impl<P: TokenProvider> TokenProvider for Counting<P> {
    fn token<'a>(&'a self, room: &'a str) -> TokenFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.token(room)
    }
}

/// A token provider minting for `user` (with `{"name": <user capitalised>}` as user
/// info) at `mint_base` with `secret_key`.
pub fn provider(mint_base: &str, secret_key: &str, user: &str) -> SecretKeyTokenProvider {
    let mut name = user.to_owned();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    SecretKeyTokenProvider::new(mint_base, secret_key, user)
        .unwrap()
        .user_info(json!({ "name": name }))
}

/// A client at `base` (reconnecting quickly, so tests stay short) with `provider`.
pub fn client(base: &str, provider: impl TokenProvider) -> Client {
    Client::builder(base)
        .token_provider(provider)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(1_000))
        .build()
        .unwrap()
}

/// Polls `cond` every 20 ms until it holds; panics with `what` and `detail()` at the
/// deadline.
pub async fn until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    detail: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            detail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) for the room to be synced.
pub async fn synced(room: &Room) {
    tokio::time::timeout(Duration::from_secs(20), room.wait_synced())
        .await
        .unwrap_or_else(|_| panic!("{} not synced in time: {:?}", room.name(), room.status()))
        .unwrap_or_else(|e| panic!("{} stopped: {e}", room.name()));
}

pub fn is_synced(room: &Room) -> bool {
    matches!(room.status(), Status::Synced)
}

/// The others' user ids and names as `(id, name)`, sorted.
pub fn others_users(room: &Room) -> Vec<(String, String)> {
    let mut users: Vec<(String, String)> = room
        .others()
        .iter()
        .map(|o| {
            let user = o.user.clone().unwrap_or(Value::Null);
            (
                user["id"].as_str().unwrap_or("?").to_owned(),
                user["name"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    users.sort();
    users
}
