//! Fixtures for the cluster tests (`cluster.rs`): several `tandem serve` processes on
//! one Postgres database of the test's own and one Redis, with a random key prefix per
//! test; optional cuttable TCP proxies in front of Redis and Postgres (a cut closes
//! every live connection and refuses new ones until restored), which also serve as a
//! "load balancer" in front of a node; and waits on stock clients and metrics.
//!
//! Needs Postgres on 127.0.0.1:5432 (user `postgres`, trust auth; or
//! `TANDEM_TEST_POSTGRES`) and Redis on 127.0.0.1:6379 (or `TANDEM_TEST_REDIS`,
//! `redis://host:port`). When either is unreachable the tests print a message and
//! return, except in CI (`CI=true`), where they fail.

use std::io::{BufRead, BufReader, Write};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use tandem_protocol::Message;
use tokio::task::AbortHandle;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

use crate::harness::{Client, Closed, Driver, Server};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// `host:port` of a `scheme://[user@]host[:port][/path]` URL and the URL with that
/// part replaced by `{}` (so it can be pointed at a proxy).
fn split_authority(url: &str, default_port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    };
    (host, format!("{scheme}://{user}{{}}{path}"))
}

// ------------------------------------------------------------------ the services

/// Postgres and Redis as the tests reach them.
pub struct Services {
    /// An admin connection URL (to `CREATE DATABASE`).
    pub pg_admin_url: String,
    /// Redis as `host:port`, and its URL with `{}` for the authority.
    pub redis_addr: String,
    redis_url_template: String,
}

impl Services {
    /// Checks both services; `None` (with a message) when one is unreachable, which is
    /// a failure in CI.
    pub async fn require(test: &str) -> Option<Services> {
        let pg_admin_url = std::env::var("TANDEM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let redis_url =
            std::env::var("TANDEM_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let (redis_addr, redis_url_template) = split_authority(&redis_url, 6379);
        let mut problems = Vec::new();
        let connected =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&pg_admin_url))
                .await;
        match connected {
            Ok(Ok(admin)) => {
                let _ = admin.close().await;
            }
            _ => problems.push(format!("Postgres is not reachable at {pg_admin_url}")),
        }
        let addr = redis_addr.clone();
        let pong = tokio::task::spawn_blocking(move || redis_command(&addr, &["PING"]))
            .await
            .unwrap();
        if !matches!(&pong, Ok(Resp::Simple(s)) if s == "PONG") {
            problems.push(format!("Redis is not reachable at {redis_addr} ({pong:?})"));
        }
        if problems.is_empty() {
            return Some(Services {
                pg_admin_url,
                redis_addr,
                redis_url_template,
            });
        }
        let message = problems.join("; ");
        assert!(!in_ci(), "{message} (CI=true: {test} must run)");
        eprintln!("skipping {test}: {message}");
        None
    }

    fn redis_url(&self, addr: &str) -> String {
        self.redis_url_template.replace("{}", addr)
    }
}

/// A database of this test's own, dropped (best effort, `WITH (FORCE)`) on drop.
pub struct PgDb {
    /// The URL with `{}` for the authority, and the server's `host:port`.
    url_template: String,
    pub addr: String,
    admin_url: String,
    pub name: String,
}

impl PgDb {
    pub async fn create(admin_url: &str) -> PgDb {
        let mut admin = PgConnection::connect(admin_url).await.unwrap();
        let name = format!("tandem_test_{}", random_hex(8));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let (addr, url_template) = split_authority(&format!("{base}/{name}"), 5432);
        PgDb {
            url_template,
            addr,
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The database's URL, reached at `addr` (the server itself or a proxy).
    pub fn url_via(&self, addr: &str) -> String {
        self.url_template.replace("{}", addr)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin.execute(sql.as_str()).await.ok()
            })
        })
        .join();
    }
}

// ------------------------------------------------------------------ Redis, raw

/// A RESP reply (errors and integers are only shown, in messages).
#[derive(Debug)]
#[allow(dead_code)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// Sends one command to Redis at `addr` on a fresh connection (5 s deadlines).
pub fn redis_command(addr: &str, args: &[&str]) -> std::io::Result<Resp> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    redis_command_bytes(addr, &args)
}

/// [`redis_command`] with binary arguments.
pub fn redis_command_bytes(addr: &str, args: &[&[u8]]) -> std::io::Result<Resp> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out)?;
    read_resp(&mut BufReader::new(stream))
}

fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let bad = || std::io::Error::other(format!("bad RESP line {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                Resp::Bulk(None)
            } else {
                let mut data = vec![0u8; len as usize + 2];
                r.read_exact(&mut data)?;
                data.truncate(len as usize);
                Resp::Bulk(Some(data))
            }
        }
        "*" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                Resp::Array(None)
            } else {
                let mut items = Vec::new();
                for _ in 0..len {
                    items.push(read_resp(r)?);
                }
                Resp::Array(Some(items))
            }
        }
        _ => return Err(bad()),
    })
}

/// Every key starting with `prefix:` (SCAN).
pub fn redis_keys(addr: &str, prefix: &str) -> std::io::Result<Vec<String>> {
    let pattern = format!("{prefix}:*");
    let mut cursor = "0".to_owned();
    let mut keys = Vec::new();
    loop {
        let reply = redis_command(addr, &["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])?;
        let Resp::Array(Some(mut parts)) = reply else {
            return Err(std::io::Error::other(format!("SCAN: {reply:?}")));
        };
        if let (Some(Resp::Array(Some(found))), Some(Resp::Bulk(Some(next)))) =
            (parts.pop(), parts.pop())
        {
            keys.extend(found.into_iter().filter_map(|k| match k {
                Resp::Bulk(Some(k)) => String::from_utf8(k).ok(),
                _ => None,
            }));
            cursor = String::from_utf8_lossy(&next).into_owned();
        } else {
            return Err(std::io::Error::other("SCAN: unexpected reply"));
        }
        if cursor == "0" {
            return Ok(keys);
        }
    }
}

// ------------------------------------------------------------------ a cuttable proxy

/// A TCP proxy on 127.0.0.1 to a target that can change, on a runtime of its own (so
/// it keeps forwarding while a test thread blocks, e.g. while nodes start).
/// [`CutProxy::cut`] closes every live connection and closes new ones at once until
/// [`CutProxy::restore`]: for the clients behind it the service is unreachable.
pub struct CutProxy {
    pub addr: String,
    target: Arc<Mutex<String>>,
    state: Arc<ProxyState>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct ProxyState {
    /// The live connections; `cut` is checked and connections registered under this
    /// lock, so none slips past a cut.
    conns: Mutex<Vec<AbortHandle>>,
    cut: AtomicBool,
}

impl CutProxy {
    pub fn start(target: &str) -> CutProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(target.to_owned()));
        let state = Arc::new(ProxyState {
            conns: Mutex::new(Vec::new()),
            cut: AtomicBool::new(false),
        });
        let (t, s) = (target.clone(), state.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((mut down, _)) = listener.accept().await {
                let mut conns = s.conns.lock().unwrap();
                if s.cut.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let upstream = t.lock().unwrap().clone();
                let conn = tokio::spawn(async move {
                    // Target down: dropping `down` fails the client's attempt.
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = up.set_nodelay(true);
                        let _ = down.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns.retain(|c| !c.is_finished());
                conns.push(conn.abort_handle());
            }
        });
        CutProxy {
            addr,
            target,
            state,
            runtime: Some(runtime),
        }
    }

    /// Sends new connections to `target` from now on (live ones stay where they are).
    pub fn retarget(&self, target: &str) {
        *self.target.lock().unwrap() = target.to_owned();
    }

    /// Makes the service unreachable: every live connection is closed and new ones are
    /// closed as soon as they are accepted.
    pub fn cut(&self) {
        let mut conns = self.state.conns.lock().unwrap();
        self.state.cut.store(true, Ordering::SeqCst);
        for conn in conns.drain(..) {
            conn.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        let _conns = self.state.conns.lock().unwrap();
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// `ws://…/v1/connect` through this proxy (when it is in front of a node).
    pub fn ws_base(&self) -> String {
        format!("ws://{}/v1/connect", self.addr)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

// ------------------------------------------------------------------ the cluster

/// How to start a [`Cluster`].
pub struct Options {
    pub nodes: usize,
    /// Without `--allow-anonymous` (tokens and keys, responses checked against the
    /// spec), as deployed.
    pub strict: bool,
    /// Redis reached through a [`CutProxy`] (`Cluster::redis`).
    pub proxy_redis: bool,
    /// Postgres reached through a [`CutProxy`] (`Cluster::postgres`).
    pub proxy_postgres: bool,
    /// More arguments for every node (after the cluster's own).
    pub extra: Vec<String>,
    /// Start every node at once on the empty database. By default the first node
    /// starts alone and the others once it has printed its first-start message (the
    /// bootstrap account is committed), as an operator rolling out would.
    pub together: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            strict: false,
            proxy_redis: false,
            proxy_postgres: false,
            extra: Vec::new(),
            together: false,
        }
    }
}

/// N `tandem serve` nodes on one fresh Postgres database and one Redis with a random
/// prefix. On drop every node is killed (by PID), the prefix's Redis keys deleted and
/// the database dropped; when the test failed (or `CLUSTER_LOGS` is set), the tail of
/// every node's log is printed.
pub struct Cluster {
    /// The nodes, by index (a killed node stays, not running).
    pub nodes: Vec<Server>,
    pub prefix: String,
    pub redis: Option<CutProxy>,
    pub postgres: Option<CutProxy>,
    /// The arguments every node gets after the data directory.
    args: Vec<String>,
    strict: bool,
    redis_addr: String,
    /// One data directory (and log) per node; dropped after the nodes.
    dirs: Vec<tempfile::TempDir>,
    _db: PgDb,
}

impl Cluster {
    /// Starts the cluster, or returns `None` (after a message) when Postgres or Redis
    /// is unreachable outside CI.
    pub async fn start(test: &str, options: Options) -> Option<Cluster> {
        let services = Services::require(test).await?;
        let db = PgDb::create(&services.pg_admin_url).await;
        let prefix = format!("t{}", random_hex(6));
        let redis = options
            .proxy_redis
            .then(|| CutProxy::start(&services.redis_addr));
        let postgres = options.proxy_postgres.then(|| CutProxy::start(&db.addr));
        let redis_url = services.redis_url(
            redis
                .as_ref()
                .map_or(services.redis_addr.as_str(), |p| p.addr.as_str()),
        );
        let database_url = db.url_via(postgres.as_ref().map_or(db.addr.as_str(), |p| &p.addr));
        let mut args = vec![
            "--database-url".to_owned(),
            database_url,
            "--redis-url".to_owned(),
            redis_url,
            "--cluster-prefix".to_owned(),
            prefix.clone(),
        ];
        args.extend(options.extra);
        let mut cluster = Cluster {
            nodes: Vec::new(),
            prefix,
            redis,
            postgres,
            args,
            strict: options.strict,
            redis_addr: services.redis_addr,
            dirs: Vec::new(),
            _db: db,
        };
        if options.together {
            cluster.add_nodes(options.nodes);
            return Some(cluster);
        }
        // The first node alone: it migrates the empty database and creates the
        // bootstrap account (after printing `listening on`), then the others at once.
        cluster.add_nodes(1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.nodes[0]
            .stdout_lines()
            .iter()
            .any(|l| l.starts_with("first start:"))
        {
            if Instant::now() >= deadline {
                cluster.dump_logs();
                panic!("node 0 did not print its first-start message within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.add_nodes(options.nodes.saturating_sub(1));
        Some(cluster)
    }

    /// Starts `n` more nodes at once (blocking; the proxies run on their own threads).
    pub fn add_nodes(&mut self, n: usize) {
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let anonymous = !self.strict;
        let started: Vec<std::thread::Result<Server>> = tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = dirs
                    .iter()
                    .map(|dir| {
                        let args = &args;
                        scope.spawn(move || {
                            let log = dir.path().join("tandem.log");
                            Server::start_logged(dir.path(), args, anonymous, &log)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            })
        });
        let mut failed = Vec::new();
        for (dir, result) in dirs.iter().zip(started) {
            match result {
                Ok(server) => self.nodes.push(server),
                Err(_) => failed.push(log_tail(&dir.path().join("tandem.log"), 80)),
            }
        }
        self.dirs.extend(dirs);
        assert!(
            failed.is_empty(),
            "a node did not start; its log:\n{}",
            failed.join("\n----\n")
        );
    }

    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// Publishes `payload` on this cluster's channel `{prefix}:{channel}` straight into
    /// Redis (as a hostile or broken node would); returns how many subscribers got it.
    pub fn redis_publish(&self, channel: &str, payload: &[u8]) -> i64 {
        let channel = format!("{}:{channel}", self.prefix);
        match redis_command_bytes(&self.redis_addr, &[b"PUBLISH", channel.as_bytes(), payload]) {
            Ok(Resp::Int(n)) => n,
            other => panic!("PUBLISH {channel}: {other:?}"),
        }
    }

    /// Redis keys under this cluster's prefix.
    pub fn redis_keys(&self) -> Vec<String> {
        redis_keys(&self.redis_addr, &self.prefix).unwrap_or_default()
    }

    fn dump_logs(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(path) = node.log_path() {
                eprintln!(
                    "==== node {i} ({}) log, last lines ({}):\n{}",
                    node.addr,
                    path.display(),
                    log_tail(path, 60)
                );
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CLUSTER_LOGS").is_some() {
            self.dump_logs();
        }
        // Kill every node before the database is dropped (field order does the rest).
        self.nodes.clear();
        if let Ok(keys) = redis_keys(&self.redis_addr, &self.prefix) {
            for chunk in keys.chunks(500) {
                let mut args = vec!["DEL"];
                args.extend(chunk.iter().map(String::as_str));
                let _ = redis_command(&self.redis_addr, &args);
            }
        }
    }
}

fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ------------------------------------------------------------------ waits and probes

/// Polls `cond` every 50 ms until it holds; panics with `what` and `detail()` at the
/// deadline.
pub async fn until<F, Fut, D, DFut>(what: &str, timeout: Duration, mut cond: F, detail: D)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
    D: FnOnce() -> DFut,
    DFut: std::future::Future<Output = String>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}: {}", detail().await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the Prometheus sample `name` (a line `name value`), if present.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A node's `/metrics` sample `name` (None if absent or the node does not answer).
pub async fn metric(server: &Server, name: &str) -> Option<f64> {
    let (status, text) = get_quietly(server, "/metrics").await?;
    (status == 200).then(|| sample(&text, name)).flatten()
}

/// The status of a node's `/readyz` (None if it does not answer in time).
pub async fn readyz(server: &Server) -> Option<u16> {
    get_quietly(server, "/readyz")
        .await
        .map(|(status, _)| status)
}

/// `Server::get` with a 10 s deadline that fails with `None` instead of panicking.
async fn get_quietly(server: &Server, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&server.addr).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// Connects and either completes the handshake (admitted) or is closed first
/// (refused: its code and reason). Panics if neither happens within 10 s.
pub async fn admit(url: &str) -> Result<Client, (u16, String)> {
    let mut c = Client::connect_raw(url).await;
    let sv = c.doc.transact().state_vector().encode_v1();
    let _ = c.try_send(Message::SyncStep1(&sv).encode()).await;
    c.pump_until("admitted or refused", Duration::from_secs(10), |c| {
        c.synced || c.closed.is_some()
    })
    .await;
    match c.closed.clone() {
        None => Ok(c),
        Some(Closed::Code(code, reason)) => Err((code, reason)),
        Some(Closed::Dropped) => Err((0, "dropped without a close frame".into())),
    }
}

/// Starts a stock client and waits until it is synced.
pub async fn stock(ws_base: &str, room: &str, token: Option<&str>) -> Driver {
    let mut d = Driver::start(ws_base, room, token).await;
    d.ok(json!({"cmd": "wait_synced", "timeout_ms": 20_000}))
        .await;
    d
}

/// The text of a stock client's document.
pub async fn text(d: &mut Driver) -> String {
    d.ok(json!({"cmd": "get"})).await["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until every stock client has the same text and it contains every token;
/// returns that text.
pub async fn converge(drivers: &mut [&mut Driver], tokens: &[String], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let mut texts = Vec::new();
        for d in drivers.iter_mut() {
            texts.push(text(d).await);
        }
        let same = texts.windows(2).all(|w| w[0] == w[1]);
        let complete = texts
            .iter()
            .all(|t| tokens.iter().all(|tok| t.contains(tok.as_str())));
        if same && complete {
            return texts.swap_remove(0);
        }
        if Instant::now() >= deadline {
            let missing: Vec<Vec<&String>> = texts
                .iter()
                .map(|t| {
                    tokens
                        .iter()
                        .filter(|tok| !t.contains(tok.as_str()))
                        .collect()
                })
                .collect();
            panic!(
                "stock clients did not converge within {timeout:?}\ntexts: {texts:#?}\nmissing per client: {missing:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Inserts `token` at the start of a stock client's text.
pub async fn insert(d: &mut Driver, token: &str) {
    d.ok(json!({"cmd": "text_insert", "index": 0, "text": token}))
        .await;
}

/// Reads the driver's pending output (a `get` round trip), so `events` is current.
pub async fn drain_events(d: &mut Driver) {
    d.ok(json!({"cmd": "get"})).await;
}

/// How often the stock client reported `status: connected`.
pub fn connected_count(d: &Driver) -> usize {
    d.events
        .iter()
        .filter(|e| e["event"] == "status" && e["status"] == "connected")
        .count()
}

/// The close codes the server sent this stock client, in order.
pub fn server_close_codes(d: &Driver) -> Vec<u64> {
    d.events
        .iter()
        .filter(|e| e["event"] == "connection-close" && e["local"] == false)
        .filter_map(|e| e["code"].as_u64())
        .collect()
}

/// The other clients' awareness states a stock client holds.
pub async fn awareness_states(d: &mut Driver) -> Value {
    d.ok(json!({"cmd": "awareness"})).await["states"].clone()
}

/// Whether any of those states has `user.name == name`.
pub fn has_user(states: &Value, name: &str) -> bool {
    states
        .as_object()
        .is_some_and(|m| m.values().any(|s| s["user"]["name"] == name))
}

/// Tokens `[tag]` found in `text`.
pub fn tokens_in(text: &str) -> Vec<String> {
    text.split('[')
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(t, _)| format!("[{t}]")))
        .collect()
}
