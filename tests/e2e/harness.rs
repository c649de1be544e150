//! Test harness: the real `tandem` binary on 127.0.0.1 port 0 in a temporary data
//! directory (with `--allow-anonymous`, or strict as deployed), a minimal y-websocket
//! client built on yrs, runners for the npm clients in `tests/js` (`driver`), a raw
//! HTTP/1.1 client that checks responses against the served OpenAPI spec (`http`), and
//! control-plane steps (`api`: signup, login, keys, tokens). Every wait has a deadline;
//! every process is killed by PID on drop. Server logs go to stderr only when
//! `TEST_LOG` is set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tandem_protocol::awareness;
use tandem_protocol::Message;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update};

mod api;
mod driver;
mod http;

pub use api::{enc, session_cookie, Account, Project};
pub use driver::{js_dir, node, Driver};
pub use http::{Cred, HttpResponse};

/// A running `tandem serve`.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// Started with `--allow-anonymous` (kept across restarts).
    anonymous: bool,
    /// Where stderr (the log) goes when started with [`Server::start_logged`] (kept
    /// across restarts).
    log: Option<PathBuf>,
    /// Every stdout line after `listening on …` (the first-start message, for one).
    stdout: Arc<Mutex<Vec<String>>>,
    /// The served OpenAPI spec, once fetched; with it, every response to a documented
    /// route is checked against the spec (see [`Server::request`]).
    spec: Mutex<Option<Arc<serde_json::Value>>>,
    /// Whether [`Server::request`] checks responses (fetching the spec on first use):
    /// on for strict servers.
    check_spec: bool,
}

impl Server {
    /// Starts a server with a fresh data directory (kept in `dir`), letting token-less
    /// connections in (`--allow-anonymous`).
    pub fn start(dir: &tempfile::TempDir, extra: &[&str]) -> Server {
        Self::start_in(dir.path(), extra)
    }

    /// Starts an anonymous-access server on an existing data directory (a restart).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with(data_dir, extra, true)
    }

    /// Starts a server as deployed: every socket needs a token, every REST call a
    /// credential. Responses of documented routes are checked against the served spec.
    pub fn start_strict(dir: &tempfile::TempDir, extra: &[&str]) -> Server {
        Self::start_with(dir.path(), extra, false)
    }

    fn start_with(data_dir: &Path, extra: &[&str], anonymous: bool) -> Server {
        Self::spawn(data_dir, extra, anonymous, None)
    }

    /// Starts a server (anonymous access or strict) whose log (stderr, at `TEST_LOG` or
    /// the server's default level) is appended to `log`, for tests that show the logs
    /// of several servers when they fail.
    pub fn start_logged(data_dir: &Path, extra: &[&str], anonymous: bool, log: &Path) -> Server {
        Self::spawn(data_dir, extra, anonymous, Some(log.to_owned()))
    }

    /// A strict server whose log at `RUST_LOG=level` (ignoring `TEST_LOG`) goes to `log`.
    pub fn start_logged_at(data_dir: &Path, extra: &[&str], log: &Path, level: &str) -> Server {
        let mut server = Self::spawn_at(data_dir, extra, false, Some(log.to_owned()), Some(level));
        server.check_spec = true;
        server
    }

    /// The file the log goes to, if started with [`Server::start_logged`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    fn spawn(data_dir: &Path, extra: &[&str], anonymous: bool, log: Option<PathBuf>) -> Server {
        Self::spawn_at(data_dir, extra, anonymous, log, None)
    }

    fn spawn_at(
        data_dir: &Path,
        extra: &[&str],
        anonymous: bool,
        log: Option<PathBuf>,
        level_override: Option<&str>,
    ) -> Server {
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        if anonymous {
            args.push("--allow-anonymous".to_owned());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (level, stderr) = match &log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the server log");
                let level = std::env::var("TEST_LOG")
                    .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into());
                (level, Stdio::from(file))
            }
            None => (
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
                if std::env::var_os("TEST_LOG").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                },
            ),
        };
        let level = level_override.map_or(level, str::to_owned);
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        if log.is_some() {
            // A log file is read by people: no colour codes.
            command.env("NO_COLOR", "1");
        }
        let mut child = command
            .args(&args)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tandem");
        let stdout = child.stdout.take().expect("stdout");
        let rest = Arc::new(Mutex::new(Vec::new()));
        // The first stdout line names the bound address; read it on a thread so a
        // server that never prints cannot hang the test past its deadline. Later lines
        // are kept for tests that read them.
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = rest.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("tandem did not report its address within 30 s")
            });
        // `https://` when started with --tls-cert/--tls-key.
        let addr = line
            .strip_prefix("listening on http://")
            .or_else(|| line.strip_prefix("listening on https://"))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Server {
            child: Some(child),
            addr,
            data_dir: data_dir.to_owned(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            anonymous,
            log,
            stdout: rest,
            spec: Mutex::new(None),
            check_spec: !anonymous,
        }
    }

    /// The stdout lines printed after `listening on …` so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    pub fn ws_base(&self) -> String {
        format!("ws://{}/v1/connect", self.addr)
    }

    pub fn ws_url(&self, room: &str) -> String {
        format!("{}/{room}", self.ws_base())
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns whether it exited 0.
    pub fn sigterm(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        unsafe_kill(child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same server again on the same data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let spec = self.spec.lock().unwrap_or_else(|e| e.into_inner()).take();
        *self = Server::spawn(
            &self.data_dir.clone(),
            &args,
            self.anonymous,
            self.log.clone(),
        );
        *self.spec.lock().unwrap_or_else(|e| e.into_inner()) = spec;
    }

    /// The server's resident memory in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// GET a path; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(&self.addr).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            stream.read_to_string(&mut response),
        )
        .await
        .expect("response in time")
        .expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        (status, body)
    }

    /// Loaded rooms as reported by `/readyz`.
    pub async fn loaded_rooms(&self) -> u64 {
        let (_, body) = self.get("/readyz").await;
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["loaded_rooms"].as_u64())
            .unwrap_or(u64::MAX)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a child PID we own and have not reaped yet.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Waits for `cond` with a deadline, polling (no fixed sleeps as synchronisation).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code and reason.
    Code(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

/// A minimal y-websocket client on yrs: enough to edit, observe and misbehave.
pub struct Client {
    ws: Ws,
    pub doc: Doc,
    pub synced: bool,
    /// Number of update/step-2 messages applied from the server.
    pub updates_received: usize,
    /// Other clients' awareness states by client id.
    pub others: std::collections::HashMap<u64, String>,
    /// Every awareness entry received, in order (`None` = removal).
    pub awareness_log: Vec<(u64, Option<String>)>,
    pub closed: Option<Closed>,
    pub auth_denied: Option<String>,
    /// Custom events (message type 100) received, as their JSON text.
    pub events: Vec<String>,
    /// Sync step 2 messages received (one per handshake or [`Client::round_trip`]).
    pub step2_received: usize,
    /// Binary frames received, of any type, and their bytes.
    pub frames_received: usize,
    pub bytes_received: usize,
    /// Binary frames written to the socket, and their bytes.
    pub frames_sent: usize,
    pub bytes_sent: usize,
    /// Replies produced while handling a frame (sync step 2 answers), sent after it.
    pending: Vec<Vec<u8>>,
}

impl Client {
    /// Connects without doing anything else.
    pub async fn connect_raw(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        Client {
            ws,
            doc: Doc::new(),
            synced: false,
            updates_received: 0,
            others: Default::default(),
            awareness_log: Vec::new(),
            closed: None,
            auth_denied: None,
            events: Vec::new(),
            step2_received: 0,
            frames_received: 0,
            bytes_received: 0,
            frames_sent: 0,
            bytes_sent: 0,
            pending: Vec::new(),
        }
    }

    /// Connects and completes the sync handshake.
    pub async fn connect(url: &str) -> Client {
        Self::connect_raw(url).await.handshake().await
    }

    /// Reconnects keeping the document, as a client that lost its connection does:
    /// the handshake uploads whatever the server lacks.
    pub async fn reconnect(self, url: &str) -> Client {
        let mut c = Self::connect_raw(url).await;
        c.doc = self.doc;
        c.handshake().await
    }

    async fn handshake(mut self) -> Client {
        let c = &mut self;
        let sv = c.doc.transact().state_vector().encode_v1();
        c.send(Message::SyncStep1(&sv).encode()).await;
        c.pump_until("synced", Duration::from_secs(10), |c| c.synced)
            .await;
        self
    }

    pub async fn send(&mut self, frame: Vec<u8>) {
        assert!(self.try_send(frame).await, "send");
    }

    /// Sends a binary frame; whether it was written (counted only then).
    pub async fn try_send(&mut self, frame: Vec<u8>) -> bool {
        let len = frame.len();
        let sent = self.ws.send(WsMessage::Binary(frame.into())).await.is_ok();
        if sent {
            self.frames_sent += 1;
            self.bytes_sent += len;
        }
        sent
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(WsMessage::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends the update a local transaction produced.
    async fn send_update(&mut self, update: Vec<u8>) {
        self.send(Message::Update(&update).encode()).await;
    }

    // Roots are resolved before a transaction opens: with yrs's `sync` feature,
    // `get_or_insert_*` takes its own write lock and would deadlock inside one.
    pub async fn map_set(&mut self, key: &str, value: &str) {
        assert!(self.try_map_set(key, value).await, "send");
    }

    /// Sets a map entry without panicking when the server is gone: whether the update
    /// was written.
    pub async fn try_map_set(&mut self, key: &str, value: &str) -> bool {
        let map = self.doc.get_or_insert_map("map");
        let update = {
            let mut txn = self.doc.transact_mut();
            map.insert(&mut txn, key.to_owned(), value.to_owned());
            txn.encode_update_v1()
        };
        self.try_send(Message::Update(&update).encode()).await
    }

    /// Appends to the text without panicking when the server has closed: whether the
    /// frame was written (for floods that expect to be cut off).
    pub async fn try_text_push(&mut self, s: &str) -> bool {
        let text = self.doc.get_or_insert_text("text");
        let update = {
            let mut txn = self.doc.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len, s);
            txn.encode_update_v1()
        };
        self.try_send(Message::Update(&update).encode()).await
    }

    pub async fn text_push(&mut self, s: &str) {
        let text = self.doc.get_or_insert_text("text");
        let update = {
            let mut txn = self.doc.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len, s);
            txn.encode_update_v1()
        };
        self.send_update(update).await;
    }

    pub async fn set_awareness(&mut self, client_id: u64, clock: u64, state: &str) {
        let update = awareness::encode_update([awareness::AwarenessEntry {
            client_id,
            clock,
            state,
        }]);
        self.send(Message::Awareness(&update).encode()).await;
    }

    pub fn map_len(&self) -> u32 {
        let map = self.doc.get_or_insert_map("map");
        map.len(&self.doc.transact())
    }

    pub fn text(&self) -> String {
        let text = self.doc.get_or_insert_text("text");
        text.get_string(&self.doc.transact())
    }

    fn handle(&mut self, frame: &[u8]) {
        match Message::decode(frame).expect("server sends valid frames") {
            Message::SyncStep1(sv) => {
                let sv = StateVector::decode_v1(sv).expect("sv");
                let diff = self.doc.transact().encode_diff_v1(&sv);
                self.pending.push(Message::SyncStep2(&diff).encode());
            }
            Message::SyncStep2(update) => {
                self.synced = true;
                self.step2_received += 1;
                let update = Update::decode_v1(update).expect("update");
                self.doc.transact_mut().apply_update(update).expect("apply");
            }
            Message::Update(update) => {
                let update = Update::decode_v1(update).expect("update");
                self.doc.transact_mut().apply_update(update).expect("apply");
                self.updates_received += 1;
            }
            Message::Awareness(bytes) => {
                for e in awareness::decode_update(bytes).expect("awareness") {
                    let state = (!e.is_removal()).then(|| e.state.to_owned());
                    self.awareness_log.push((e.client_id, state));
                    if e.is_removal() {
                        self.others.remove(&e.client_id);
                    } else {
                        self.others.insert(e.client_id, e.state.to_owned());
                    }
                }
            }
            Message::AuthDenied(reason) => self.auth_denied = Some(reason.to_owned()),
            Message::QueryAwareness => {}
            Message::Event(json) => self.events.push(json.to_owned()),
            // Session messages (type 101) go only to clients that opt in; this one does not.
            Message::Hello(_)
            | Message::RefreshToken(_)
            | Message::Refreshed(_)
            | Message::Saved(_) => panic!("type 101 message sent to a client that did not opt in"),
        }
    }

    /// Reads and handles frames until `done` holds; panics at the deadline.
    pub async fn pump_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Client) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(self) {
            assert!(
                self.closed.is_none(),
                "connection closed ({:?}) while waiting for: {what}",
                self.closed
            );
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("timed out waiting for: {what}"),
                Ok(next) => self.on_next(next).await,
            }
        }
    }

    async fn on_next(
        &mut self,
        next: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
    ) {
        match next {
            Some(Ok(WsMessage::Binary(frame))) => {
                self.frames_received += 1;
                self.bytes_received += frame.len();
                self.handle(&frame);
                for reply in std::mem::take(&mut self.pending) {
                    self.send(reply).await;
                }
            }
            Some(Ok(WsMessage::Close(frame))) => {
                self.closed = Some(match frame {
                    Some(f) => Closed::Code(u16::from(f.code), f.reason.to_string()),
                    None => Closed::Code(u16::from(CloseCode::Status), String::new()),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => self.closed = Some(Closed::Dropped),
        }
    }

    /// Reads until the server closes; returns how. Panics at the deadline.
    pub async fn closed_within(&mut self, timeout: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.closed.is_none() {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("server did not close the connection in time"),
                Ok(next) => {
                    if let Some(Ok(WsMessage::Binary(frame))) = &next {
                        self.frames_received += 1;
                        self.bytes_received += frame.len();
                        // Keep state current but do not answer: the peer may be hostile.
                        if let Ok(Message::Update(u) | Message::SyncStep2(u)) =
                            Message::decode(frame)
                        {
                            if let Ok(update) = Update::decode_v1(u) {
                                let _ = self.doc.transact_mut().apply_update(update);
                                self.updates_received += 1;
                            }
                        }
                        continue;
                    }
                    self.on_next(next).await;
                }
            }
        }
        self.closed.clone().unwrap_or(Closed::Dropped)
    }

    /// A barrier: sends sync step 1 and waits for the room's step 2 answer. The room
    /// handles a connection's messages in order, so when this returns it has handled
    /// everything this client sent before (and its answer carries the room's state).
    pub async fn round_trip(&mut self) {
        let before = self.step2_received;
        let sv = self.doc.transact().state_vector().encode_v1();
        self.send(Message::SyncStep1(&sv).encode()).await;
        self.pump_until("sync step 2 answer", Duration::from_secs(10), |c| {
            c.step2_received > before
        })
        .await;
    }

    /// The value of `key` in the root map `map`, as a string, if set.
    pub fn map_get(&self, key: &str) -> Option<String> {
        let map = self.doc.get_or_insert_map("map");
        let txn = self.doc.transact();
        map.get(&txn, key).map(|v| v.to_string(&txn))
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
