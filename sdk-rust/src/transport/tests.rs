//! The transport loop against a scripted in-process WebSocket peer (no Tandem server):
//! tokens in the URL, refresh on 4401, no retry on 4403, 4429 waited out, prompt local
//! edits, offline edits in the next sync step 2, reconnect after a dropped socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_protocol::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

use crate::{Client, Error, Room, Status};

const WAIT: Duration = Duration::from_secs(10);

/// Accepts WebSockets and hands each (with its request URI) to the test.
struct Peer {
    addr: String,
    accepted: mpsc::UnboundedReceiver<(String, WebSocketStream<TcpStream>)>,
}

impl Peer {
    async fn start() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let uri = Arc::new(Mutex::new(String::new()));
                let seen = Arc::clone(&uri);
                // The handshake library's own signature.
                #[allow(clippy::result_large_err)]
                let callback = move |request: &Request, response: Response| {
                    *seen.lock().unwrap() = request.uri().to_string();
                    Ok(response)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    continue;
                };
                let uri = uri.lock().unwrap().clone();
                if tx.send((uri, ws)).is_err() {
                    break;
                }
            }
        });
        Peer { addr, accepted }
    }

    async fn next(&mut self) -> (String, WebSocketStream<TcpStream>) {
        tokio::time::timeout(WAIT, self.accepted.recv())
            .await
            .expect("a connection in time")
            .expect("listener running")
    }

    /// Whether a connection arrives within `window`.
    async fn connects_within(&mut self, window: Duration) -> bool {
        tokio::time::timeout(window, self.accepted.recv())
            .await
            .is_ok()
    }
}

/// The next binary frame from the client.
async fn frame(ws: &mut WebSocketStream<TcpStream>) -> Vec<u8> {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        if let WsMessage::Binary(bytes) = message {
            return bytes.into();
        }
    }
}

/// Reads frames until the client's sync step 2 answer; returns its update.
async fn step2(ws: &mut WebSocketStream<TcpStream>) -> Vec<u8> {
    loop {
        let bytes = frame(ws).await;
        if let Ok(Message::SyncStep2(update)) = Message::decode(&bytes) {
            return update.to_vec();
        }
    }
}

/// Plays the server's side of the handshake with an empty document.
async fn handshake(ws: &mut WebSocketStream<TcpStream>) -> Vec<u8> {
    let empty_sv = StateVector::default().encode_v1();
    let empty_update = Doc::new()
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    send(ws, Message::SyncStep1(&empty_sv).encode()).await;
    send(ws, Message::SyncStep2(&empty_update).encode()).await;
    step2(ws).await
}

async fn send(ws: &mut WebSocketStream<TcpStream>, frame: Vec<u8>) {
    ws.send(WsMessage::Binary(frame.into())).await.unwrap();
}

async fn close(ws: &mut WebSocketStream<TcpStream>, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = ws.close(Some(frame)).await;
}

async fn wait_status(room: &Room, what: &str, pred: impl Fn(&Status) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pred(&room.status()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; status {:?}",
            room.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client whose provider returns `t1`, `t2`… and counts its calls.
fn counting_client(addr: &str) -> (Client, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let client = Client::builder(format!("http://{addr}"))
        .token_provider(move |_room: String| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, Error>(format!("t{n}")) }
        })
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    (client, calls)
}

#[tokio::test]
async fn an_expired_token_is_refreshed_through_the_provider() {
    let mut peer = Peer::start().await;
    let (client, calls) = counting_client(&peer.addr);
    let room = client.enter("team/doc 1").await.unwrap();

    let (uri, mut ws) = peer.next().await;
    assert_eq!(uri, "/v1/connect/team/doc%201?token=t1&tandem=1");
    handshake(&mut ws).await;
    room.wait_synced().await.unwrap();

    close(&mut ws, 4401, "token expired").await;
    let (uri, mut ws) = peer.next().await;
    assert_eq!(uri, "/v1/connect/team/doc%201?token=t2&tandem=1");
    handshake(&mut ws).await;
    wait_status(&room, "synced again", |s| matches!(s, Status::Synced)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A lost connection reuses the token in hand.
    drop(ws);
    let (uri, mut ws) = peer.next().await;
    assert!(uri.ends_with("token=t2&tandem=1"), "{uri}");
    handshake(&mut ws).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    room.leave().await;
}

#[tokio::test]
async fn a_forbidden_room_stops_with_a_typed_error_and_no_retry() {
    let mut peer = Peer::start().await;
    let (client, calls) = counting_client(&peer.addr);
    let room = client.enter("secret").await.unwrap();
    let mut events = room.events();

    let (_, mut ws) = peer.next().await;
    close(&mut ws, 4403, "not allowed in this room").await;
    let error = room.wait_synced().await.unwrap_err();
    assert!(
        matches!(&error, Error::Forbidden { reason } if reason == "not allowed in this room"),
        "{error:?}"
    );
    assert!(error.is_fatal());
    assert!(!peer.connects_within(Duration::from_millis(500)).await);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut saw_error = false;
    while let Some(event) = events.try_recv() {
        saw_error |= matches!(event, crate::RoomEvent::Error(Error::Forbidden { .. }));
    }
    assert!(saw_error, "the fatal error is also an event");

    // The app may try again explicitly.
    room.reconnect().await.unwrap();
    let (_, mut ws) = peer.next().await;
    handshake(&mut ws).await;
    room.wait_synced().await.unwrap();
}

#[tokio::test]
async fn offline_edits_go_out_in_the_next_sync() {
    let mut peer = Peer::start().await;
    let (client, _) = counting_client(&peer.addr);
    let room = client.enter("doc").await.unwrap();
    let text = room.text("text");

    let (_, mut ws) = peer.next().await;
    handshake(&mut ws).await;
    room.wait_synced().await.unwrap();

    // Online: the edit arrives as an update, promptly, although the peer is silent (the
    // document's change notifier wakes the room's task; the next timer is 15 s away).
    text.push("on").unwrap();
    let server = Doc::new();
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let bytes = frame(&mut ws).await;
            if let Ok(Message::Update(update)) = Message::decode(&bytes) {
                server
                    .transact_mut()
                    .apply_update(Update::decode_v1(update).unwrap())
                    .unwrap();
                break;
            }
        }
    })
    .await
    .expect("the local edit is sent at once");

    // Offline: the socket drops, edits continue, the next sync step 2 carries them.
    drop(ws);
    // (The reconnect may already be open, but it is not synced: the edit can only
    // travel in the step 2 answer.)
    wait_status(&room, "the loss noticed", |s| !matches!(s, Status::Synced)).await;
    text.push("-off").unwrap();
    let (_, mut ws) = peer.next().await;
    let sv = server.transact().state_vector().encode_v1();
    send(&mut ws, Message::SyncStep1(&sv).encode()).await;
    let diff = step2(&mut ws).await;
    server
        .transact_mut()
        .apply_update(Update::decode_v1(&diff).unwrap())
        .unwrap();
    let server_text = server.get_or_insert_text("text");
    assert_eq!(server_text.get_string(&server.transact()), "on-off");
    room.leave().await;
}

#[tokio::test]
async fn an_unreachable_server_is_retried_and_reported() {
    // Bind then drop: nothing listens on this port any more.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let (client, calls) = counting_client(&addr);
    let room = client.enter("doc").await.unwrap();
    let mut events = room.events();
    let mut connection_errors = 0;
    while connection_errors < 3 {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            Some(crate::RoomEvent::Error(Error::Connection { .. })) => connection_errors += 1,
            Some(_) => {}
            None => panic!("room ended"),
        }
    }
    let status = room.status();
    assert!(matches!(status, Status::Reconnecting { .. }), "{status:?}");
    // The token in hand is kept across network failures.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Edits work offline.
    let text = room.doc().get_or_insert_text("t");
    text.push(&mut room.doc().transact_mut(), "x");
    room.leave().await;
}

#[tokio::test]
async fn a_rate_limit_is_reported_and_waited_out() {
    let mut peer = Peer::start().await;
    let (client, calls) = counting_client(&peer.addr);
    let room = client.enter("busy").await.unwrap();
    let mut events = room.events();

    let (_, mut ws) = peer.next().await;
    handshake(&mut ws).await;
    room.wait_synced().await.unwrap();
    close(&mut ws, 4429, "message rate limit; retry-after=1").await;
    let closed_at = tokio::time::Instant::now();

    let (_, mut ws) = peer.next().await;
    let waited = closed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "came back after {waited:?}"
    );
    handshake(&mut ws).await;
    room.wait_synced().await.unwrap();
    // Not a token problem: the token in hand is reused.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut limited = None;
    while let Some(event) = events.try_recv() {
        if let crate::RoomEvent::Error(error @ Error::RateLimited { .. }) = event {
            limited = Some(error);
        }
    }
    let Some(Error::RateLimited { retry_after, .. }) = limited else {
        panic!("no rate-limit event");
    };
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
    room.leave().await;
}
