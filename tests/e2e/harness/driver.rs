//! A stock y-websocket client (`tests/js/driver.mjs`: npm `yjs` + `y-websocket`)
//! driven from a test: one JSON command per line on its stdin, replies and events as
//! JSON lines on its stdout. Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// One running `driver.mjs`.
pub struct Driver {
    _child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every event line seen so far (`{"event": …}`), in order.
    pub events: Vec<Value>,
    next_id: u64,
    room: String,
}

impl Driver {
    /// Starts a stock client for `room` at `ws_base` (`ws://…/v1/connect`), with
    /// `params: { token }` when a token is given; returns once it reports `ready`.
    pub async fn start(ws_base: &str, room: &str, token: Option<&str>) -> Driver {
        let mut args = vec!["driver.mjs".to_owned(), ws_base.to_owned(), room.to_owned()];
        if let Some(token) = token {
            args.push("--token".to_owned());
            args.push(token.to_owned());
        }
        let mut child = tokio::process::Command::new("node")
            .args(&args)
            .current_dir(js_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("node (Node 20) is needed for the stock-client tests");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "unparsed", "line": line}));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut driver = Driver {
            _child: child,
            stdin,
            lines,
            events: Vec::new(),
            next_id: 0,
            room: room.to_owned(),
        };
        driver
            .wait_event("ready", Duration::from_secs(30), |e| e["event"] == "ready")
            .await;
        driver
    }

    async fn next_line(&mut self, what: &str, deadline: tokio::time::Instant) -> Value {
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "driver for {} exited while waiting for {what}; events: {:?}",
                self.room, self.events
            ),
            Err(_) => panic!(
                "driver for {}: timed out waiting for {what}; events: {:?}",
                self.room, self.events
            ),
        }
    }

    /// Sends `command` (an id is added) and returns its reply, whatever it says.
    pub async fn cmd(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let wait_ms = command["timeout_ms"].as_u64().unwrap_or(10_000);
        let mut line = serde_json::to_string(&command).unwrap();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to driver");
        self.stdin.flush().await.expect("flush driver stdin");
        let what = format!("the reply to {command}");
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(wait_ms) + Duration::from_secs(10);
        loop {
            let line = self.next_line(&what, deadline).await;
            if line.get("event").is_some() {
                self.events.push(line);
            } else if line["id"] == json!(id) {
                return line;
            }
        }
    }

    /// Sends `command` and panics unless the reply is `ok`; returns the reply.
    pub async fn ok(&mut self, command: Value) -> Value {
        let reply = self.cmd(command.clone()).await;
        assert_eq!(
            reply["ok"], true,
            "driver for {}: {command} failed: {reply}; events: {:?}",
            self.room, self.events
        );
        reply
    }

    /// Waits until an event satisfying `pred` arrives (or has arrived); returns it.
    pub async fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(seen) = self.events.iter().find(|e| pred(e)) {
            return seen.clone();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = self.next_line(what, deadline).await;
            if line.get("event").is_some() {
                self.events.push(line.clone());
                if pred(&line) {
                    return line;
                }
            }
        }
    }

    /// The close code of the first `connection-close` event from the server.
    pub async fn close_code(&mut self, timeout: Duration) -> u64 {
        let event = self
            .wait_event("a close from the server", timeout, |e| {
                e["event"] == "connection-close" && e["local"] == false
            })
            .await;
        event["code"].as_u64().expect("close code")
    }
}

/// Path of the npm client scripts, with `npm ci` run once per test process when
/// `node_modules` is missing (the test script normally does it first).
pub fn js_dir() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js");
        if !dir.join("node_modules/y-websocket").exists()
            || !dir.join("node_modules/standardwebhooks").exists()
        {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("npm is needed for the interop tests (Node 20)");
            assert!(status.success(), "npm ci in tests/js failed");
        }
        dir
    })
}

/// Runs `node <script> args…` from tests/js with a deadline; returns (success, stdout, stderr).
pub async fn node(script: &str, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let dir = js_dir();
    let child = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within {timeout:?}"))
        .expect("node output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
