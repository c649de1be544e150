//! The run report: serialized as JSON for scripts, or rendered as a table for people.

use std::fmt::Write;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    /// The base URL; with several, all of them joined by commas.
    pub url: String,
    /// With several base URLs: how the connections were spread over them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeReport>,
    /// "load", "ramp" or "idle".
    pub mode: &'static str,
    pub rooms: usize,
    /// Connections attempted.
    pub connections: usize,
    /// Writers among the attempted connections.
    pub writers: usize,
    pub update_size: usize,
    /// The --server-pid when exactly one was given.
    pub server_pid: Option<u32>,
    /// Every --server-pid when several were given; RSS and server CPU are their sums.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_pids: Vec<u32>,
    pub connect: ConnectReport,
    /// Present when --server-pid was given (summed over the pids when several).
    pub rss: Option<RssReport>,
    pub steps: Vec<StepReport>,
    /// Ramp only: the last step that met the criteria.
    pub max_passing: Option<StepReport>,
    /// Ramp only: why the ramp stopped before its last step.
    pub ramp_stop: Option<String>,
    /// Connections lost after their handshake.
    pub disconnects: u64,
    pub decode_errors: u64,
    pub auth_denied: u64,
    pub send_errors: u64,
    pub bench_rss_bytes: u64,
    pub bench_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub url: String,
    /// Connections attempted to this URL.
    pub connections: usize,
    pub connected: u64,
    /// Writers among the connected.
    pub writers: u64,
}

#[derive(Debug, Serialize)]
pub struct ConnectReport {
    pub connected: u64,
    pub failed: u64,
    /// Wall time until every connection was synced or had failed.
    pub seconds: f64,
    /// Connect + handshake time per connection (TCP + WebSocket upgrade + sync, not
    /// counting the wait for a --concurrency slot).
    pub handshake_ms_p50: f64,
    pub handshake_ms_p99: f64,
    /// Up to five distinct errors, "count x message".
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RssReport {
    /// Server VmRSS before the first connection.
    pub before_bytes: u64,
    /// After every client connected, synced and --settle passed.
    pub idle_bytes: u64,
    /// After the last load step (absent in idle mode).
    pub after_load_bytes: Option<u64>,
    /// (idle - before) / connected.
    pub per_connection_bytes: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub rate_per_writer: f64,
    /// rate_per_writer x connected writers.
    pub target_updates_per_sec: f64,
    /// Updates sent inside the measured window.
    pub sent: u64,
    pub sent_per_sec: f64,
    /// sent_per_sec / target, percent: below ~90 the bench itself could not keep up.
    pub achieved_pct: f64,
    /// Sum over rooms of sent x (connected clients in the room - 1).
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    /// Deliveries (counted in `delivered`) that arrived after a newer update of the same
    /// writer; absent when none did.
    #[serde(skip_serializing_if = "is_zero")]
    pub reordered: u64,
    pub delivery_pct: f64,
    pub loss_pct: f64,
    /// Delivered updates per second over the measured window.
    pub delivered_per_sec: f64,
    /// Relay latency (writer's send to a receiver's read), milliseconds.
    pub latency_ms: Latency,
    /// With several base URLs: deliveries whose receiver is on another node than the
    /// writer, against those on the writer's own node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_node: Option<CrossNodeReport>,
    /// CPU use during the window, percent of one core (server: summed over the pids).
    pub bench_cpu_pct: f64,
    pub server_cpu_pct: Option<f64>,
    /// Met --min-delivery and --max-p99, and the bench sent at least 90 % of the target
    /// rate (a ramp stops at the first step that did not).
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrossNodeReport {
    /// Sum over rooms and writers' nodes of sent x (connected clients of the room on
    /// other nodes).
    pub expected: u64,
    pub delivered: u64,
    /// delivered / all deliveries, percent.
    pub share_pct: f64,
    /// expected / all expected deliveries, percent: what `share_pct` is when nothing
    /// is lost.
    pub expected_share_pct: f64,
    pub loss_pct: f64,
    /// Deliveries on the writer's own node (receiver on the same URL).
    pub same_node_expected: u64,
    pub same_node_delivered: u64,
    pub same_node_loss_pct: f64,
    pub latency_ms: Latency,
    pub same_node_latency_ms: Latency,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub fn pct(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64 * 100.0
    } else {
        0.0
    }
}

pub fn loss_pct(expected: u64, delivered: u64) -> f64 {
    pct(expected.saturating_sub(delivered), expected)
}

pub fn bytes(b: f64) -> String {
    let a = b.abs();
    if a >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if a >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

impl Report {
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let _ = self.write_table(&mut o);
        o
    }

    fn write_table(&self, o: &mut String) -> std::fmt::Result {
        let target = if self.nodes.is_empty() {
            self.url.clone()
        } else {
            format!("{} URLs", self.nodes.len())
        };
        writeln!(
            o,
            "tandem-bench {} against {}: {} rooms, {} connections, {} writers, {}-byte values",
            self.mode, target, self.rooms, self.connections, self.writers, self.update_size
        )?;
        for (i, n) in self.nodes.iter().enumerate() {
            writeln!(
                o,
                "node {i:<7} {}: {} connections, {} connected, {} writers",
                n.url, n.connections, n.connected, n.writers
            )?;
        }
        let c = &self.connect;
        writeln!(
            o,
            "connect      {} connected, {} failed in {:.2} s (handshake p50 {:.1} ms, p99 {:.1} ms)",
            c.connected, c.failed, c.seconds, c.handshake_ms_p50, c.handshake_ms_p99
        )?;
        for e in &c.errors {
            writeln!(o, "  error      {e}")?;
        }
        let pid_count = self.server_pid.map_or(self.server_pids.len(), |_| 1);
        if pid_count > 0 && !self.nodes.is_empty() && pid_count != self.nodes.len() {
            writeln!(
                o,
                "note         {pid_count} server pid(s) for {} URLs: RSS and server CPU cover only the given pid(s)",
                self.nodes.len()
            )?;
        }
        if let Some(r) = &self.rss {
            if self.server_pids.len() > 1 {
                writeln!(
                    o,
                    "server RSS and CPU below are sums over the {} pids {:?}",
                    self.server_pids.len(),
                    self.server_pids
                )?;
            }
            write!(
                o,
                "server RSS   before {}, idle {}",
                bytes(r.before_bytes as f64),
                bytes(r.idle_bytes as f64)
            )?;
            if let Some(after) = r.after_load_bytes {
                write!(o, ", after load {}", bytes(after as f64))?;
            }
            writeln!(o, "  =>  {} per connection", bytes(r.per_connection_bytes))?;
        }
        if !self.steps.is_empty() {
            writeln!(
                o,
                "{:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>10} {:>8} {:>8} {:>8} {:>6} {:>6} {:>4}",
                "rate/wr",
                "sent/s",
                "sent",
                "expected",
                "delivered",
                "loss%",
                "deliv/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "bench%",
                "srv%",
                "ok"
            )?;
            for s in &self.steps {
                writeln!(
                    o,
                    "{:>9.1} {:>9.1} {:>9} {:>10} {:>10} {:>7.2} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>6.0} {:>6} {:>4}",
                    s.rate_per_writer,
                    s.sent_per_sec,
                    s.sent,
                    s.expected,
                    s.delivered,
                    s.loss_pct,
                    s.delivered_per_sec,
                    s.latency_ms.p50,
                    s.latency_ms.p99,
                    s.latency_ms.max,
                    s.bench_cpu_pct,
                    s.server_cpu_pct
                        .map(|p| format!("{p:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    if s.passed { "yes" } else { "no" }
                )?;
            }
            writeln!(
                o,
                "(CPU columns are percent of one core during the window; 2 cores = 200)"
            )?;
            for s in &self.steps {
                let Some(x) = &s.cross_node else { continue };
                writeln!(
                    o,
                    "cross-node   at {:.1}/s per writer: {:.1}% of deliveries crossed nodes (expected share {:.1}%); loss cross {:.2}%, same-node {:.2}%",
                    s.rate_per_writer, x.share_pct, x.expected_share_pct, x.loss_pct, x.same_node_loss_pct
                )?;
                writeln!(
                    o,
                    "             latency p50/p99/max cross {:.2} / {:.2} / {:.2} ms, same-node {:.2} / {:.2} / {:.2} ms",
                    x.latency_ms.p50,
                    x.latency_ms.p99,
                    x.latency_ms.max,
                    x.same_node_latency_ms.p50,
                    x.same_node_latency_ms.p99,
                    x.same_node_latency_ms.max
                )?;
            }
        }
        if self.mode == "ramp" {
            match &self.max_passing {
                Some(s) => writeln!(
                    o,
                    "max passing  {:.1} updates/s per writer: {:.0} sent/s, {:.0} delivered/s, p99 {:.2} ms",
                    s.rate_per_writer, s.sent_per_sec, s.delivered_per_sec, s.latency_ms.p99
                )?,
                None => writeln!(o, "max passing  none")?,
            }
            if let Some(why) = &self.ramp_stop {
                writeln!(o, "ramp stopped {why}")?;
            }
        }
        let issues = [
            ("disconnects", self.disconnects),
            ("undecodable frames", self.decode_errors),
            ("permission denied", self.auth_denied),
            ("send errors", self.send_errors),
        ];
        for (what, n) in issues {
            if n > 0 {
                writeln!(o, "WARNING      {n} {what}")?;
            }
        }
        for s in &self.steps {
            if s.duplicates > 0 || s.reordered > 0 {
                writeln!(
                    o,
                    "WARNING      at {:.1}/s per writer: {} duplicate deliveries, {} delivered after a newer update of the same writer",
                    s.rate_per_writer, s.duplicates, s.reordered
                )?;
            }
            if s.achieved_pct < 90.0 {
                writeln!(
                    o,
                    "WARNING      at {:.1}/s per writer the bench sent only {:.0}% of the target: the bench, not the server, limited that step",
                    s.rate_per_writer, s.achieved_pct
                )?;
            }
        }
        writeln!(
            o,
            "bench        {} RSS, {:.2} s CPU",
            bytes(self.bench_rss_bytes as f64),
            self.bench_cpu_seconds
        )
    }
}
