//! One simulated y-websocket client: connect, sync handshake, then a reader (counts and
//! times relayed updates, answers sync requests; tungstenite answers pings while we
//! read) and a sender (writes real Yjs updates at the configured rate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tandem_protocol::Message;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{self, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, Map, MapRef, ReadTxn, StateVector, Transact};

use crate::hist::Histogram;
use crate::marker::{self, Marker};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Settings and counters shared by every client of a run.
pub struct Shared {
    /// Every timestamp in a marker is nanoseconds since this instant.
    pub start: Instant,
    pub connect_timeout: Duration,
    pub update_size: usize,
    pub ws_config: WebSocketConfig,
    /// Bounds how many connections are in their connect + handshake phase at once.
    pub connect_slots: Semaphore,
    /// Number of base URLs (nodes) the clients are spread over.
    pub nodes: usize,
    /// The node (base URL index) of every client, by client index; a receiver looks a
    /// marker's writer up here to tell cross-node deliveries from same-node ones.
    pub node_of: Vec<u16>,
    /// Connections lost after their handshake completed.
    pub disconnects: AtomicU64,
    /// Frames that did not decode as y-websocket messages.
    pub decode_errors: AtomicU64,
    pub auth_denied: AtomicU64,
    /// Updates that failed to send (the connection broke).
    pub send_errors: AtomicU64,
}

impl Shared {
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// What the clients should be doing; published by the coordinator over a watch channel.
#[derive(Clone)]
pub enum Control {
    /// Connected, reading, not writing.
    Idle,
    /// Writers write at `step.rate` until `step.window_end_ns`; everyone records
    /// deliveries of updates sent inside the step's window into the step.
    Run(Arc<Step>),
    /// Close the connection and finish.
    Stop,
}

/// One measured window at one rate, and what was counted in it.
pub struct Step {
    /// Updates per second per writer.
    pub rate: f64,
    /// Writers start at the Run signal; only updates sent in
    /// `[window_start_ns, window_end_ns)` are counted (the time before is warm-up).
    pub window_start_ns: u64,
    pub window_end_ns: u64,
    /// Updates sent inside the window, per room and writer's node: index
    /// `room * nodes + node`.
    pub sent: Vec<AtomicU64>,
    pub nodes: usize,
    /// Deliveries (update arrived at a client other than its writer) of updates sent
    /// inside the window.
    pub delivered: AtomicU64,
    /// Those of `delivered` whose receiver is on another node than the writer.
    pub delivered_cross: AtomicU64,
    /// Deliveries of an update a receiver had already seen (or so much older than the
    /// newest it saw from that writer that it can't tell).
    pub duplicates: AtomicU64,
    /// Deliveries (counted in `delivered`) that arrived after a newer update of the same
    /// writer.
    pub reordered: AtomicU64,
    /// Relay latency of every counted delivery, nanoseconds.
    pub latency: Histogram,
    /// With several nodes: the latency of cross-node and of same-node deliveries.
    pub latency_cross: Histogram,
    pub latency_local: Histogram,
}

impl Step {
    pub fn new(
        rate: f64,
        window_start_ns: u64,
        window_end_ns: u64,
        rooms: usize,
        nodes: usize,
    ) -> Self {
        let nodes = nodes.max(1);
        Self {
            rate,
            window_start_ns,
            window_end_ns,
            sent: (0..rooms * nodes).map(|_| AtomicU64::new(0)).collect(),
            nodes,
            delivered: AtomicU64::new(0),
            delivered_cross: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            latency: Histogram::new(),
            latency_cross: Histogram::new(),
            latency_local: Histogram::new(),
        }
    }

    /// Updates sent inside the window by writers of `room` on `node`.
    pub fn sent_in(&self, room: usize, node: usize) -> u64 {
        self.sent[room * self.nodes + node].load(Ordering::Relaxed)
    }

    /// Updates sent inside the window, all rooms and nodes.
    pub fn sent_total(&self) -> u64 {
        self.sent.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start_ns && ns < self.window_end_ns
    }
}

pub struct ClientSpec {
    /// Unique per run; written into markers as the writer id.
    pub index: u32,
    pub room: usize,
    /// Index of the base URL this client connects to.
    pub node: usize,
    pub writer: bool,
    pub url: String,
    /// The Yjs client id of this client's document (fresh random per run, so a
    /// long-running server never sees a reused id with a restarted clock).
    pub client_id: u64,
}

/// Sent to the coordinator once per client when its handshake finished or failed.
pub struct Ready {
    pub room: usize,
    pub node: usize,
    pub writer: bool,
    pub result: Result<Duration, String>,
}

/// Runs one client to completion: connect, sync, read/write until `Control::Stop`, close.
pub async fn run(
    spec: ClientSpec,
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
    ready: mpsc::UnboundedSender<Ready>,
) {
    let doc = Doc::with_client_id(spec.client_id);
    let map = doc.get_or_insert_map("bench");

    let connected = {
        let _slot = shared.connect_slots.acquire().await;
        let started = Instant::now();
        time::timeout(
            shared.connect_timeout,
            connect_and_sync(&spec, &shared, &doc),
        )
        .await
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "no sync step 2 within {:?} (connect timeout)",
                shared.connect_timeout
            ))
        })
        .map(|ws| (ws, started.elapsed()))
    };
    let ws = match connected {
        Ok((ws, took)) => {
            let _ = ready.send(Ready {
                room: spec.room,
                node: spec.node,
                writer: spec.writer,
                result: Ok(took),
            });
            ws
        }
        Err(e) => {
            let _ = ready.send(Ready {
                room: spec.room,
                node: spec.node,
                writer: spec.writer,
                result: Err(format!("{e:#}")),
            });
            return;
        }
    };
    drop(ready);

    let (sink, stream) = ws.split();
    // Sync step 1 from the server after the handshake is answered by the sender, which
    // owns the document.
    let (sv_tx, sv_rx) = mpsc::channel::<Vec<u8>>(4);
    let sender = tokio::spawn(send_loop(
        sink,
        sv_rx,
        doc,
        map,
        spec.index,
        spec.room,
        spec.node,
        spec.writer,
        Arc::clone(&shared),
        control.clone(),
    ));
    let stream = read_loop(stream, sv_tx, spec.index, spec.node, &shared, &mut control).await;
    let sink = sender.await.ok().flatten();
    if let (Some(sink), Some(stream)) = (sink, stream) {
        if let Ok(mut ws) = sink.reunite(stream) {
            // Close politely, but never wait long for the server's close frame.
            let _ = time::timeout(Duration::from_secs(2), async {
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
    }
}

fn binary(frame: Vec<u8>) -> WsMessage {
    WsMessage::Binary(frame.into())
}

fn diff_for(doc: &Doc, state_vector: &[u8]) -> Result<Vec<u8>> {
    let sv = StateVector::decode_v1(state_vector).context("server sent a bad state vector")?;
    Ok(doc.transact().encode_diff_v1(&sv))
}

/// Connects and runs the y-websocket sync handshake: send our sync step 1, answer the
/// server's step 1 with our step 2, and return once the server's step 2 arrived.
async fn connect_and_sync(spec: &ClientSpec, shared: &Shared, doc: &Doc) -> Result<Ws> {
    let (mut ws, _response) = tokio_tungstenite::connect_async_with_config(
        spec.url.as_str(),
        Some(shared.ws_config),
        true,
    )
    .await
    .with_context(|| format!("connecting to {}", spec.url))?;
    let sv = doc.transact().state_vector().encode_v1();
    ws.send(binary(Message::SyncStep1(&sv).encode())).await?;
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("connection ended during the handshake"))?
            .context("reading during the handshake")?;
        match frame {
            WsMessage::Binary(bytes) => match Message::decode(&bytes) {
                Ok(Message::SyncStep1(sv)) => {
                    let diff = diff_for(doc, sv)?;
                    ws.send(binary(Message::SyncStep2(&diff).encode())).await?;
                }
                Ok(Message::SyncStep2(_)) => return Ok(ws),
                Ok(Message::AuthDenied(reason)) => {
                    shared.auth_denied.fetch_add(1, Ordering::Relaxed);
                    bail!("permission denied: {reason}")
                }
                Ok(_) => {}
                Err(e) => bail!("undecodable frame during the handshake: {e}"),
            },
            WsMessage::Close(frame) => bail!("server closed during the handshake: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until `Control::Stop` or the connection ends. Returns the stream for a polite
/// close when the connection is still up.
async fn read_loop(
    mut stream: SplitStream<Ws>,
    sv_tx: mpsc::Sender<Vec<u8>>,
    me: u32,
    my_node: usize,
    shared: &Shared,
    control: &mut watch::Receiver<Control>,
) -> Option<SplitStream<Ws>> {
    let mut step: Option<Arc<Step>> = None;
    // Which sequence numbers were seen per writer, to spot duplicates and late arrivals.
    let mut seen: std::collections::HashMap<u32, SeenSeqs> = Default::default();
    match &*control.borrow_and_update() {
        Control::Stop => return Some(stream),
        Control::Run(s) => step = Some(Arc::clone(s)),
        Control::Idle => {}
    }
    loop {
        tokio::select! {
            changed = control.changed() => {
                if changed.is_err() {
                    return Some(stream);
                }
                match &*control.borrow_and_update() {
                    Control::Stop => return Some(stream),
                    Control::Run(s) => step = Some(Arc::clone(s)),
                    Control::Idle => step = None,
                }
            }
            frame = stream.next() => {
                let bytes = match frame {
                    Some(Ok(WsMessage::Binary(bytes))) => bytes,
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => {
                        shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    Some(Ok(_)) => continue,
                };
                let now = shared.now_ns();
                match Message::decode(&bytes) {
                    Ok(Message::Update(update)) => {
                        let Some(step) = &step else { continue };
                        marker::scan(update, |m: Marker| {
                            if m.writer == me || !step.in_window(m.sent_ns) {
                                return;
                            }
                            match seen.entry(m.writer).or_default().see(m.seq) {
                                Seen::New => {}
                                Seen::Late => {
                                    step.reordered.fetch_add(1, Ordering::Relaxed);
                                }
                                Seen::Again => {
                                    step.duplicates.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                            let latency = now.saturating_sub(m.sent_ns);
                            step.delivered.fetch_add(1, Ordering::Relaxed);
                            step.latency.record(latency);
                            if shared.nodes > 1 {
                                let from = shared.node_of.get(m.writer as usize).copied();
                                if from.is_some_and(|n| usize::from(n) != my_node) {
                                    step.delivered_cross.fetch_add(1, Ordering::Relaxed);
                                    step.latency_cross.record(latency);
                                } else {
                                    step.latency_local.record(latency);
                                }
                            }
                        });
                    }
                    Ok(Message::SyncStep1(sv)) => {
                        let _ = sv_tx.try_send(sv.to_vec());
                    }
                    Ok(Message::AuthDenied(_)) => {
                        shared.auth_denied.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        shared.decode_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The sequence numbers (from 1) seen from one writer: the highest, and which of the
/// 128 below it.
#[derive(Default)]
struct SeenSeqs {
    max: u32,
    /// Bit d: `max - d` was seen (bit 0 is `max` itself).
    window: u128,
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Newer than every one seen so far.
    New,
    /// Not seen before, but older than the newest seen.
    Late,
    /// Seen before, or too old to tell.
    Again,
}

impl SeenSeqs {
    fn see(&mut self, seq: u32) -> Seen {
        if seq > self.max {
            let shift = seq - self.max;
            self.window = if shift >= 128 {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.max = seq;
            return Seen::New;
        }
        let back = self.max - seq;
        if back >= 128 || self.window & (1 << back) != 0 {
            return Seen::Again;
        }
        self.window |= 1 << back;
        Seen::Late
    }
}

/// Owns the write half and the document: answers sync step 1 requests and, for
/// writers, produces one Yjs update per tick while a step is running. Returns the sink
/// for a polite close unless sending failed.
#[allow(clippy::too_many_arguments)]
async fn send_loop(
    mut sink: SplitSink<Ws, WsMessage>,
    mut sv_rx: mpsc::Receiver<Vec<u8>>,
    doc: Doc,
    map: MapRef,
    me: u32,
    room: usize,
    node: usize,
    writer: bool,
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
) -> Option<SplitSink<Ws, WsMessage>> {
    let key = format!("w{me}");
    let mut seq: u32 = 0;
    let mut value = String::with_capacity(shared.update_size.max(marker::LEN));
    loop {
        let current = control.borrow_and_update().clone();
        let step = match current {
            Control::Stop => return Some(sink),
            Control::Run(step)
                if writer && step.rate > 0.0 && shared.now_ns() < step.window_end_ns =>
            {
                Some(step)
            }
            _ => None,
        };
        let Some(step) = step else {
            // Not writing: answer sync requests until the control changes.
            tokio::select! {
                changed = control.changed() => if changed.is_err() { return Some(sink) },
                sv = sv_rx.recv() => match sv {
                    Some(sv) => if answer_step1(&mut sink, &doc, &sv).await.is_err() { return None },
                    None => return Some(sink),
                },
            }
            continue;
        };

        let period = Duration::from_secs_f64(1.0 / step.rate).max(Duration::from_micros(1));
        // Spread writers over the period so they don't all fire together.
        let phase = (f64::from(me) * 0.618_033_988_75).fract();
        let mut ticker = time::interval_at(time::Instant::now() + period.mul_f64(phase), period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                changed = control.changed() => {
                    if changed.is_err() {
                        return Some(sink);
                    }
                    break;
                }
                sv = sv_rx.recv() => match sv {
                    Some(sv) => if answer_step1(&mut sink, &doc, &sv).await.is_err() { return None },
                    None => return Some(sink),
                },
                _ = ticker.tick() => {
                    let sent_ns = shared.now_ns();
                    if sent_ns >= step.window_end_ns {
                        // Done for this step: the outer loop idles until the next change.
                        break;
                    }
                    seq = seq.wrapping_add(1).max(1);
                    value.clear();
                    Marker { sent_ns, writer: me, seq }.write(&mut value);
                    while value.len() < shared.update_size {
                        value.push('x');
                    }
                    let update = {
                        let mut txn = doc.transact_mut();
                        map.insert(&mut txn, key.as_str(), value.as_str());
                        txn.encode_update_v1()
                    };
                    let frame = Message::Update(&update).encode();
                    if sink.send(binary(frame)).await.is_err() {
                        shared.send_errors.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    if step.in_window(sent_ns) {
                        step.sent[room * step.nodes + node].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

async fn answer_step1(sink: &mut SplitSink<Ws, WsMessage>, doc: &Doc, sv: &[u8]) -> Result<()> {
    let diff = diff_for(doc, sv)?;
    sink.send(binary(Message::SyncStep2(&diff).encode()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_seqs_tell_new_late_and_again() {
        let mut s = SeenSeqs::default();
        assert_eq!(s.see(1), Seen::New);
        assert_eq!(s.see(1), Seen::Again);
        assert_eq!(s.see(3), Seen::New);
        assert_eq!(s.see(2), Seen::Late);
        assert_eq!(s.see(2), Seen::Again);
        assert_eq!(s.see(300), Seen::New);
        assert_eq!(s.see(173), Seen::Late);
        assert_eq!(s.see(172), Seen::Again);
        assert_eq!(s.see(3), Seen::Again);
        assert_eq!(s.see(301), Seen::New);
        assert_eq!(s.see(300), Seen::Again);
        assert_eq!(s.see(173), Seen::Again);
    }
}
