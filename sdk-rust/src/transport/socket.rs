//! One WebSocket connection to a room: opening it, a writer task fed through a bounded
//! queue (so the room's loop never waits on a slow socket), reading frames, closing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames waiting for the socket. A connection this far behind is stalled: it is dropped
/// and the next one resynchronises by state vector, so nothing is lost.
const SEND_QUEUE: usize = 1024;

/// How long a closing socket may take to send its close frame before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The close code for "the connection ended without a close frame" (RFC 6455), which
/// the session retries with backoff.
pub(crate) const ABNORMAL: u16 = 1006;

/// Why a socket could not be opened.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// The TLS handshake failed (described for the app).
    Tls(String),
    /// Anything else: refused, reset, an HTTP error instead of the upgrade.
    Network(String),
}

/// Opens the socket (`TCP_NODELAY`: the frames are small and latency matters); `wss://`
/// through `tls`, the client's rustls configuration.
pub(crate) async fn open(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Ws, OpenFailure> {
    let connector = tls.map(Connector::Rustls);
    tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector)
        .await
        .map(|(ws, _response)| ws)
        .map_err(|e| match crate::tls::tls_failure(&e) {
            Some(detail) => OpenFailure::Tls(detail),
            None => OpenFailure::Network(e.to_string()),
        })
}

/// What the socket produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A binary frame.
    Frame(Vec<u8>),
    /// The connection ended: a close frame's code and reason, or [`ABNORMAL`] and what
    /// went wrong.
    Closed { code: u16, reason: String },
}

/// An open connection.
pub(crate) struct Socket {
    incoming: SplitStream<Ws>,
    outgoing: mpsc::Sender<WsMessage>,
    writer: JoinHandle<Result<(), String>>,
    writer_done: bool,
}

/// Why a frame could not be queued.
#[derive(Debug)]
pub(crate) struct QueueFull;

impl Socket {
    /// Takes over an open WebSocket and starts its writer task.
    pub(crate) fn new(ws: Ws) -> Self {
        let (sink, incoming) = ws.split();
        let (outgoing, queue) = mpsc::channel(SEND_QUEUE);
        Self {
            incoming,
            outgoing,
            writer: tokio::spawn(write(sink, queue)),
            writer_done: false,
        }
    }

    /// Queues a binary frame without waiting.
    pub(crate) fn send(&self, frame: Vec<u8>) -> Result<(), QueueFull> {
        self.outgoing
            .try_send(WsMessage::Binary(frame.into()))
            .map_err(|_| QueueFull)
    }

    /// The next frame, or how the connection ended. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Incoming {
        loop {
            tokio::select! {
                message = self.incoming.next() => match message {
                    Some(Ok(WsMessage::Binary(frame))) => return Incoming::Frame(frame.into()),
                    Some(Ok(WsMessage::Close(Some(frame)))) => {
                        return Incoming::Closed {
                            code: u16::from(frame.code),
                            reason: frame.reason.to_string(),
                        }
                    }
                    Some(Ok(WsMessage::Close(None))) => {
                        return Incoming::Closed {
                            code: u16::from(CloseCode::Status),
                            reason: String::new(),
                        }
                    }
                    // Text frames are not part of the protocol; pings are answered by
                    // tungstenite.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        return Incoming::Closed {
                            code: ABNORMAL,
                            reason: e.to_string(),
                        }
                    }
                    None => {
                        return Incoming::Closed {
                            code: ABNORMAL,
                            reason: "the connection ended".to_owned(),
                        }
                    }
                },
                result = &mut self.writer, if !self.writer_done => {
                    self.writer_done = true;
                    let reason = match result {
                        Ok(Err(e)) => format!("sending failed: {e}"),
                        Ok(Ok(())) => "the writer stopped".to_owned(),
                        Err(e) => format!("the writer task failed: {e}"),
                    };
                    return Incoming::Closed { code: ABNORMAL, reason };
                }
            }
        }
    }

    /// Sends a close frame after the queued frames and lets the socket go. The returned
    /// task ends once the close frame is written, or after a short grace period.
    pub(crate) fn close(self, code: u16, reason: String) -> JoinHandle<()> {
        let Self {
            incoming,
            outgoing,
            mut writer,
            writer_done,
        } = self;
        drop(incoming);
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let queued = outgoing.try_send(WsMessage::Close(Some(frame))).is_ok();
        drop(outgoing);
        tokio::spawn(async move {
            if writer_done {
                return;
            }
            if !queued
                || tokio::time::timeout(CLOSE_GRACE, &mut writer)
                    .await
                    .is_err()
            {
                writer.abort();
            }
        })
    }

    /// Drops the connection at once (it stalled, or the session abandoned it).
    pub(crate) fn abort(self) {
        self.writer.abort();
    }
}

/// The writer task: sends queued frames, as many per flush as are waiting, until a close
/// frame is sent or the queue's sender is gone.
async fn write(
    mut sink: SplitSink<Ws, WsMessage>,
    mut queue: mpsc::Receiver<WsMessage>,
) -> Result<(), String> {
    while let Some(first) = queue.recv().await {
        let mut closing = matches!(first, WsMessage::Close(_));
        sink.feed(first).await.map_err(|e| e.to_string())?;
        while !closing {
            let Ok(next) = queue.try_recv() else { break };
            closing = matches!(next, WsMessage::Close(_));
            sink.feed(next).await.map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
        if closing {
            return Ok(());
        }
    }
    Ok(())
}
