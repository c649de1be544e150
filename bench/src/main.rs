//! `tandem-bench`: drives R rooms x C clients over the y-websocket protocol against any
//! y-websocket server (Tandem, the stock Node server, ...) and reports relay latency,
//! delivered updates/s and the server's memory per connection.
//!
//! Each client opens `{url}/{room}[?{query}]` (exactly what y-websocket's
//! `WebsocketProvider(url, room, doc)` opens), runs the sync handshake with its own yrs
//! document, and writers then send real Yjs updates (a Y.Map value) that embed their
//! send time. Receivers find that timestamp in the raw update bytes, so the measurement
//! works whatever the server does with an update as long as it relays its content.
//!
//! With several base URLs (the nodes of a cluster) each room's clients are spread over
//! them, so an update written on one node is timed at receivers on the others, and
//! deliveries are split into cross-node and same-node ones.

mod client;
mod hist;
mod marker;
mod procfs;
mod report;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use client::{ClientSpec, Control, Ready, Shared, Step};
use report::{ConnectReport, CrossNodeReport, NodeReport, Report, RssReport, StepReport};

/// Load tool for y-websocket servers: R rooms x C clients, relay latency p50/p99/max,
/// delivered updates/s, server RSS per connection.
#[derive(Parser, Debug)]
#[command(name = "tandem-bench", version, about, long_about = None)]
struct Args {
    /// WebSocket base URL; each client opens `{url}/{room}` (plus `?{query}`), like
    /// y-websocket's `WebsocketProvider(url, room, doc)`. Tandem:
    /// ws://127.0.0.1:PORT/v1/connect, the Node server: ws://127.0.0.1:PORT. Several
    /// (repeat --url or separate with commas), e.g. one per node of a cluster: the
    /// clients of each room are spread round-robin over them (client k of room r uses
    /// URL (r + k) mod n), and deliveries are also reported as cross-node / same-node.
    #[arg(long, env = "TANDEM_BENCH_URL", value_delimiter = ',', required = true)]
    url: Vec<String>,

    /// Number of rooms (documents).
    #[arg(long, default_value_t = 1)]
    rooms: usize,

    /// Clients per room.
    #[arg(long, default_value_t = 2)]
    clients: usize,

    /// Total connections, spread round-robin over the rooms (overrides --clients).
    #[arg(long)]
    connections: Option<usize>,

    /// Writers per room (the first W clients of each room write); default all.
    #[arg(long)]
    writers: Option<usize>,

    /// Updates per second per writer (the starting rate with --ramp).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,

    /// Length of each measured window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Writing before each measured window; updates sent then are not counted.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,

    /// After a window, how long to wait at most for late deliveries.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,

    /// Wait this long after every client connected before sampling idle RSS.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: Duration,

    /// PID of the server process: report its RSS (VmRSS) per connection and its CPU use.
    /// Several (repeat or separate with commas), e.g. one per node: RSS and CPU are
    /// summed over them.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,

    /// Query string appended to every room URL, e.g. 'token=abc'.
    #[arg(long)]
    query: Option<String>,

    /// Rooms are named `{prefix}-{n}`; use a fresh prefix per run against a long-lived
    /// server.
    #[arg(long, default_value = "bench")]
    room_prefix: String,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// Idle mode: connect and sync every client, wait --settle, sample server RSS,
    /// report RSS per idle connection. Nothing is written.
    #[arg(long, conflicts_with = "ramp")]
    idle: bool,

    /// Throughput ramp: run steps at rate, rate*factor, ... and report the highest rate
    /// per writer where delivered/expected >= --min-delivery and p99 <= --max-p99.
    #[arg(long, visible_alias = "max-throughput")]
    ramp: bool,

    /// Rate multiplier between ramp steps.
    #[arg(long, default_value_t = 2.0)]
    ramp_factor: f64,

    /// Maximum number of ramp steps.
    #[arg(long, default_value_t = 8)]
    ramp_steps: usize,

    /// Ramp pass criterion: minimum delivered/expected, percent.
    #[arg(long, default_value_t = 99.0)]
    min_delivery: f64,

    /// Ramp pass criterion: maximum p99 relay latency.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    max_p99: Duration,

    /// Size of the string value in each update, bytes (at least the 35-byte marker).
    #[arg(long, default_value_t = 64)]
    update_size: usize,

    /// Connections in their connect + handshake phase at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,

    /// Per-connection limit for connect + handshake.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,

    /// Allow a URL whose host is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(&args))?;
    // Clients that did not close in time are abandoned here rather than waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    if report.connect.connected == 0 {
        bail!("no client connected");
    }
    Ok(())
}

fn validate(args: &Args) -> Result<()> {
    if args.rooms == 0 {
        bail!("--rooms must be at least 1");
    }
    if args.connections.unwrap_or(args.rooms * args.clients) == 0 {
        bail!("no connections to open");
    }
    let rate_ok = args.rate.is_finite() && args.rate > 0.0;
    if !args.idle && !rate_ok {
        bail!("--rate must be a positive number");
    }
    if args.ramp && !(args.ramp_factor.is_finite() && args.ramp_factor > 1.0) {
        bail!("--ramp-factor must be above 1");
    }
    if args.duration.is_zero() && !args.idle {
        bail!("--duration must be positive");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.url.is_empty() {
        bail!("--url is required");
    }
    if args.url.len() > usize::from(u16::MAX) {
        bail!("too many URLs");
    }
    for url in &args.url {
        check_target(url, args.allow_remote).with_context(|| format!("--url {url:?}"))?;
    }
    Ok(())
}

/// Only ws:// (this build has no TLS), and only loopback unless --allow-remote.
fn check_target(url: &str, allow_remote: bool) -> Result<()> {
    if url.starts_with("wss://") {
        bail!("wss:// is not supported (no TLS in this build); use ws://");
    }
    let Some(rest) = url.strip_prefix("ws://") else {
        bail!("--url must start with ws://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        bail!("--url has no host");
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        bail!("refusing non-loopback host {host:?}; pass --allow-remote if that is intended");
    }
    Ok(())
}

/// `{url}/{room}` plus `?{query}`, like y-websocket's WebsocketProvider.
fn room_url(base: &str, room: &str, query: Option<&str>) -> String {
    let mut url = format!("{}/{}", base.trim_end_matches('/'), room);
    if let Some(q) = query
        .map(|q| q.trim_start_matches('?'))
        .filter(|q| !q.is_empty())
    {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Where one client goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    room: usize,
    /// Index into the base URLs.
    node: usize,
    writer: bool,
}

/// Which room each client joins, over which base URL, and whether it writes. The k-th
/// client of room r uses URL (r + k) mod n: every room is spread over all URLs, and its
/// writers (its first clients) land on different URLs in different rooms.
fn plan(args: &Args) -> Vec<Slot> {
    let total = args.connections.unwrap_or(args.rooms * args.clients);
    let writers = args.writers.unwrap_or(usize::MAX);
    let nodes = args.url.len().max(1);
    (0..total)
        .map(|i| {
            let room = i % args.rooms;
            let position = i / args.rooms;
            Slot {
                room,
                node: (room + position) % nodes,
                writer: !args.idle && position < writers,
            }
        })
        .collect()
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// Connected clients per room and node: `[room][node]`.
struct Connected(Vec<Vec<u64>>);

impl Connected {
    fn in_room(&self, room: usize) -> u64 {
        self.0[room].iter().sum()
    }

    fn total(&self) -> u64 {
        self.0.iter().flatten().sum()
    }
}

async fn run(args: &Args) -> Result<Report> {
    let server_pids = args.server_pid.as_slice();
    for &pid in server_pids {
        procfs::rss_bytes(Some(pid)).with_context(|| format!("--server-pid {pid}"))?;
    }
    let sample_rss = || procfs::rss_sum(server_pids);
    let nodes = args.url.len();
    let plan = plan(args);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        connect_timeout: args.connect_timeout,
        update_size: args.update_size.max(marker::LEN),
        ws_config: WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0),
        connect_slots: Semaphore::new(args.concurrency),
        nodes,
        // validate() caps the number of URLs at u16::MAX.
        node_of: plan.iter().map(|s| s.node as u16).collect(),
        disconnects: AtomicU64::new(0),
        decode_errors: AtomicU64::new(0),
        auth_denied: AtomicU64::new(0),
        send_errors: AtomicU64::new(0),
    });

    let writers_total = plan.iter().filter(|s| s.writer).count();
    let rss_before = sample_rss();

    // Connect everyone (bounded concurrency inside the clients).
    let (control_tx, control_rx) = watch::channel(Control::Idle);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Ready>();
    let id_base = random_u64();
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(plan.len());
    for (i, &Slot { room, node, writer }) in plan.iter().enumerate() {
        let index = u32::try_from(i).context("too many connections")?;
        let spec = ClientSpec {
            index,
            room,
            node,
            writer,
            url: room_url(
                &args.url[node],
                &format!("{}-{}", args.room_prefix, room),
                args.query.as_deref(),
            ),
            // Yjs client ids are uint32 in practice; keep them there.
            client_id: id_base.wrapping_add(i as u64) & 0xffff_ffff,
        };
        tasks.push(tokio::spawn(client::run(
            spec,
            Arc::clone(&shared),
            control_rx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    drop(control_rx);

    let mut connected = Connected(vec![vec![0u64; nodes]; args.rooms]);
    let mut writers_per_node = vec![0u64; nodes];
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let handshake = hist::Histogram::new();
    while let Some(ready) = ready_rx.recv().await {
        match ready.result {
            Ok(took) => {
                connected.0[ready.room][ready.node] += 1;
                writers_per_node[ready.node] += u64::from(ready.writer);
                handshake.record(took.as_nanos() as u64);
            }
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let connected_writers: u64 = writers_per_node.iter().sum();
    let connected_total = connected.total();
    let failed = plan.len() as u64 - connected_total;

    time::sleep(args.settle).await;
    let rss_idle = sample_rss();

    let mut steps = Vec::new();
    let mut ramp_stop = None;
    if !args.idle && connected_total > 0 {
        let n_steps = if args.ramp { args.ramp_steps.max(1) } else { 1 };
        for n in 0..n_steps {
            let rate = args.rate * args.ramp_factor.powi(n as i32);
            let step = run_step(
                args,
                &shared,
                &control_tx,
                rate,
                &connected,
                connected_writers,
            )
            .await;
            let ok_delivery = step.delivery_pct >= args.min_delivery;
            let ok_latency = step.latency_ms.p99 <= args.max_p99.as_secs_f64() * 1000.0;
            let ok_bench = step.achieved_pct >= 90.0;
            let mut step = step;
            step.passed = ok_delivery && ok_latency && ok_bench;
            let stop = if !ok_bench {
                Some(format!(
                    "the bench sent only {:.0}% of the target rate (bench-limited; the server was not saturated by this step)",
                    step.achieved_pct
                ))
            } else if !ok_delivery {
                Some(format!(
                    "delivered {:.2}% < {}%",
                    step.delivery_pct, args.min_delivery
                ))
            } else if !ok_latency {
                Some(format!(
                    "p99 {:.1} ms > {} ms",
                    step.latency_ms.p99,
                    args.max_p99.as_millis()
                ))
            } else {
                None
            };
            steps.push(step);
            if args.ramp && stop.is_some() {
                ramp_stop = stop;
                break;
            }
        }
    }
    let rss_after = if steps.is_empty() { None } else { sample_rss() };

    // Close everything, bounded.
    let _ = control_tx.send(Control::Stop);
    let close_deadline = time::Instant::now() + Duration::from_secs(10);
    for task in tasks {
        let abort = task.abort_handle();
        if time::timeout_at(close_deadline, task).await.is_err() {
            abort.abort();
        }
    }

    let rss = match (rss_before, rss_idle) {
        (Some(before), Some(idle)) => Some(RssReport {
            before_bytes: before,
            idle_bytes: idle,
            after_load_bytes: rss_after,
            per_connection_bytes: if connected_total > 0 {
                (idle as f64 - before as f64) / connected_total as f64
            } else {
                0.0
            },
        }),
        _ => None,
    };
    let max_passing = if args.ramp {
        steps.iter().rev().find(|s| s.passed).cloned()
    } else {
        None
    };
    let node_reports = if nodes > 1 {
        (0..nodes)
            .map(|n| NodeReport {
                url: args.url[n].clone(),
                connections: plan.iter().filter(|s| s.node == n).count(),
                connected: connected.0.iter().map(|r| r[n]).sum(),
                writers: writers_per_node[n],
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Report {
        url: args.url.join(","),
        nodes: node_reports,
        mode: if args.idle {
            "idle"
        } else if args.ramp {
            "ramp"
        } else {
            "load"
        },
        rooms: args.rooms,
        connections: plan.len(),
        writers: writers_total,
        update_size: shared.update_size,
        server_pid: match server_pids {
            [pid] => Some(*pid),
            _ => None,
        },
        server_pids: if server_pids.len() > 1 {
            server_pids.to_vec()
        } else {
            Vec::new()
        },
        connect: ConnectReport {
            connected: connected_total,
            failed,
            seconds: connect_secs,
            handshake_ms_p50: handshake.quantile(0.5) as f64 / 1e6,
            handshake_ms_p99: handshake.quantile(0.99) as f64 / 1e6,
            errors: errors
                .into_iter()
                .take(5)
                .map(|(e, n)| format!("{n} x {e}"))
                .collect(),
        },
        rss,
        steps,
        max_passing,
        ramp_stop,
        disconnects: shared.disconnects.load(Ordering::Relaxed),
        decode_errors: shared.decode_errors.load(Ordering::Relaxed),
        auth_denied: shared.auth_denied.load(Ordering::Relaxed),
        send_errors: shared.send_errors.load(Ordering::Relaxed),
        bench_rss_bytes: procfs::rss_bytes(None).unwrap_or(0),
        bench_cpu_seconds: procfs::cpu_seconds(None).unwrap_or(0.0),
    })
}

/// One warm-up + measured window at `rate` updates/s per writer, then a bounded drain.
async fn run_step(
    args: &Args,
    shared: &Shared,
    control: &watch::Sender<Control>,
    rate: f64,
    connected: &Connected,
    writers: u64,
) -> StepReport {
    let now = shared.now_ns();
    let window_start = now + args.warmup.as_nanos() as u64;
    let window_end = window_start + args.duration.as_nanos() as u64;
    let nodes = shared.nodes;
    let step = Arc::new(Step::new(rate, window_start, window_end, args.rooms, nodes));
    let _ = control.send(Control::Run(Arc::clone(&step)));

    let at = |ns: u64| time::Instant::from_std(shared.start + Duration::from_nanos(ns));
    time::sleep_until(at(window_start)).await;
    let cpu_start = procfs::CpuSample::take(&args.server_pid);
    time::sleep_until(at(window_end)).await;
    let cpu_end = procfs::CpuSample::take(&args.server_pid);

    // (all, cross-node) expected deliveries: every update sent in the window reaches
    // every other connected client of its room; those on other nodes are cross-node.
    let expected_split = |step: &Step| -> (u64, u64) {
        let mut all = 0;
        let mut cross = 0;
        for (room, per_node) in connected.0.iter().enumerate() {
            let in_room = connected.in_room(room);
            for (node, &here) in per_node.iter().enumerate() {
                let sent = step.sent_in(room, node);
                all += sent * in_room.saturating_sub(1);
                cross += sent * (in_room - here);
            }
        }
        (all, cross)
    };
    let expected = |step: &Step| expected_split(step).0;
    // Let in-flight sends of the last tick land, then wait for stragglers.
    time::sleep(Duration::from_millis(20)).await;
    let drain_deadline = time::Instant::now() + args.drain;
    while step.delivered.load(Ordering::Relaxed) < expected(&step)
        && time::Instant::now() < drain_deadline
    {
        time::sleep(Duration::from_millis(20)).await;
    }

    let secs = args.duration.as_secs_f64();
    let sent = step.sent_total();
    let (expected, expected_cross) = expected_split(&step);
    let delivered = step.delivered.load(Ordering::Relaxed);
    let cross_node = (nodes > 1).then(|| {
        let delivered_cross = step.delivered_cross.load(Ordering::Relaxed);
        let same_expected = expected - expected_cross;
        let same_delivered = delivered.saturating_sub(delivered_cross);
        CrossNodeReport {
            expected: expected_cross,
            delivered: delivered_cross,
            share_pct: report::pct(delivered_cross, delivered),
            expected_share_pct: report::pct(expected_cross, expected),
            loss_pct: report::loss_pct(expected_cross, delivered_cross),
            same_node_expected: same_expected,
            same_node_delivered: same_delivered,
            same_node_loss_pct: report::loss_pct(same_expected, same_delivered),
            latency_ms: latency_of(&step.latency_cross),
            same_node_latency_ms: latency_of(&step.latency_local),
        }
    });
    let target = rate * writers as f64;
    let (bench_cpu, server_cpu) = cpu_start.percent_until(&cpu_end);
    StepReport {
        rate_per_writer: rate,
        target_updates_per_sec: target,
        sent,
        sent_per_sec: sent as f64 / secs,
        achieved_pct: if target > 0.0 {
            sent as f64 / secs / target * 100.0
        } else {
            0.0
        },
        expected,
        delivered,
        duplicates: step.duplicates.load(Ordering::Relaxed),
        reordered: step.reordered.load(Ordering::Relaxed),
        delivery_pct: if expected > 0 {
            delivered as f64 / expected as f64 * 100.0
        } else {
            100.0
        },
        loss_pct: if expected > 0 {
            expected.saturating_sub(delivered) as f64 / expected as f64 * 100.0
        } else {
            0.0
        },
        delivered_per_sec: delivered as f64 / secs,
        latency_ms: latency_of(&step.latency),
        cross_node,
        bench_cpu_pct: bench_cpu,
        server_cpu_pct: server_cpu,
        passed: true,
    }
}

/// Latency percentiles of `h` in milliseconds.
fn latency_of(h: &hist::Histogram) -> report::Latency {
    let ms = |ns: u64| ns as f64 / 1e6;
    report::Latency {
        p50: ms(h.quantile(0.50)),
        p90: ms(h.quantile(0.90)),
        p99: ms(h.quantile(0.99)),
        max: ms(h.max()),
        mean: h.mean() / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_urls_match_y_websocket() {
        assert_eq!(
            room_url("ws://127.0.0.1:1234", "r-1", None),
            "ws://127.0.0.1:1234/r-1"
        );
        assert_eq!(
            room_url("ws://127.0.0.1:9/v1/connect/", "r", Some("token=a&b=c")),
            "ws://127.0.0.1:9/v1/connect/r?token=a&b=c"
        );
        assert_eq!(room_url("ws://h:1", "r", Some("")), "ws://h:1/r");
    }

    #[test]
    fn only_loopback_by_default() {
        assert!(check_target("ws://127.0.0.1:1/v1", false).is_ok());
        assert!(check_target("ws://localhost:1", false).is_ok());
        assert!(check_target("ws://[::1]:1/x", false).is_ok());
        assert!(check_target("ws://127.8.0.1", false).is_ok());
        assert!(check_target("ws://10.0.0.1:1", false).is_err());
        assert!(check_target("ws://example.com/", false).is_err());
        assert!(check_target("ws://example.com/", true).is_ok());
        assert!(check_target("wss://127.0.0.1:1", false).is_err());
        assert!(check_target("http://127.0.0.1:1", false).is_err());
    }

    #[test]
    fn plan_spreads_connections_and_writers() {
        let args = Args::parse_from([
            "tandem-bench",
            "--url",
            "ws://127.0.0.1:1",
            "--rooms",
            "3",
            "--connections",
            "7",
            "--writers",
            "1",
        ]);
        let p = plan(&args);
        assert_eq!(p.len(), 7);
        assert_eq!(p.iter().filter(|s| s.room == 0).count(), 3);
        assert_eq!(p.iter().filter(|s| s.writer).count(), 3);
        assert!(p.iter().all(|s| s.node == 0));
        let idle = Args::parse_from(["tandem-bench", "--url", "ws://127.0.0.1:1", "--idle"]);
        assert!(plan(&idle).iter().all(|s| !s.writer));
    }

    #[test]
    fn several_urls_spread_every_room_over_every_node() {
        let args = Args::parse_from([
            "tandem-bench",
            "--url",
            "ws://127.0.0.1:1/v1/connect,ws://127.0.0.1:2/v1/connect",
            "--url",
            "ws://127.0.0.1:3/v1/connect",
            "--rooms",
            "5",
            "--clients",
            "6",
            "--writers",
            "2",
            "--server-pid",
            "10,11",
            "--server-pid",
            "12",
        ]);
        assert!(validate(&args).is_ok());
        assert_eq!(args.url.len(), 3);
        assert_eq!(args.server_pid, vec![10, 11, 12]);
        let p = plan(&args);
        assert_eq!(p.len(), 30);
        for room in 0..5 {
            let mut per_node = [0; 3];
            let mut writer_nodes = Vec::new();
            for s in p.iter().filter(|s| s.room == room) {
                per_node[s.node] += 1;
                if s.writer {
                    writer_nodes.push(s.node);
                }
            }
            assert_eq!(per_node, [2, 2, 2], "room {room}");
            assert_eq!(writer_nodes, vec![room % 3, (room + 1) % 3], "room {room}");
        }
        // Writers are spread over every node across rooms.
        for node in 0..3 {
            assert!(p.iter().any(|s| s.writer && s.node == node));
        }
        let bad = Args::parse_from(["tandem-bench", "--url", "ws://127.0.0.1:1,ws://10.0.0.1:2"]);
        assert!(validate(&bad).is_err());
        let empty = Args::parse_from(["tandem-bench", "--url", "ws://127.0.0.1:1,"]);
        assert!(validate(&empty).is_err());
    }
}
