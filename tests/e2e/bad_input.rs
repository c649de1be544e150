//! Hostile and malformed input: each case closes only its own connection with the
//! documented code while two other clients in the same room keep editing.

use std::time::Duration;

use tandem_protocol::awareness;
use tandem_protocol::lib0::Writer;
use tandem_protocol::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Client, Closed, Server};

const MAX: usize = 64 * 1024;

fn varint(v: u64) -> Vec<u8> {
    let mut w = Writer::default();
    w.write_var_u64(v);
    w.into_inner()
}

enum Bad {
    Text(&'static str),
    Binary(Vec<u8>),
}

fn cases() -> Vec<(&'static str, Bad, u16)> {
    let four_gib = [vec![0, 2], varint(4 << 30), vec![1, 2, 3]].concat();
    let bad_json = [vec![1], {
        let u = awareness::encode_update([awareness::AwarenessEntry {
            client_id: 1,
            clock: 1,
            state: "{not json",
        }]);
        [varint(u.len() as u64), u].concat()
    }]
    .concat();
    let many_entries = {
        let inner = varint(1 << 40);
        [vec![1], varint(inner.len() as u64), inner].concat()
    };
    let oversized = {
        let payload = vec![0u8; MAX + 1];
        [vec![0, 2], varint(payload.len() as u64), payload].concat()
    };
    vec![
        ("text frame", Bad::Text("hello"), 4400),
        ("empty frame", Bad::Binary(vec![]), 4400),
        ("unknown message type", Bad::Binary(vec![9]), 4400),
        ("truncated varint", Bad::Binary(vec![0x80]), 4400),
        ("varint past 64 bits", Bad::Binary(vec![0xff; 11]), 4400),
        ("unknown sync type", Bad::Binary(vec![0, 7, 0]), 4400),
        ("length prefix claiming 4 GiB", Bad::Binary(four_gib), 4400),
        (
            "garbage update",
            Bad::Binary(vec![0, 2, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            4400,
        ),
        (
            "garbage step 2",
            Bad::Binary(vec![0, 1, 3, 0xff, 0xff, 0x7f]),
            4400,
        ),
        (
            "garbage state vector",
            Bad::Binary(vec![0, 0, 2, 5, 1]),
            4400,
        ),
        (
            "awareness state that is not JSON",
            Bad::Binary(bad_json),
            4400,
        ),
        (
            "awareness claiming 2^40 entries",
            Bad::Binary(many_entries),
            4400,
        ),
        ("trailing bytes", Bad::Binary(vec![3, 0]), 4400),
        (
            "auth message from a client",
            Bad::Binary(vec![2, 0, 1, b'x']),
            4400,
        ),
        ("message over the size limit", Bad::Binary(oversized), 4413),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_malformed_frame_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let max = MAX.to_string();
    let server = Server::start(&dir, &["--max-message-bytes", &max]);
    let url = server.ws_url("hostile");
    let mut a = Client::connect(&url).await;
    let mut b = Client::connect(&url).await;
    for (i, (name, bad, code)) in cases().into_iter().enumerate() {
        let mut attacker = Client::connect_raw(&url).await;
        match bad {
            Bad::Text(t) => attacker.send_text(t).await,
            Bad::Binary(frame) => attacker.send(frame).await,
        }
        match attacker.closed_within(Duration::from_secs(10)).await {
            Closed::Code(got, reason) => {
                assert_eq!(got, code, "{name}: closed with {got} ({reason})")
            }
            Closed::Dropped => panic!("{name}: dropped without a close frame"),
        }
        // The room and its other clients are unaffected.
        a.map_set(&format!("after-{i}"), name).await;
        b.pump_until(name, Duration::from_secs(10), |c| {
            c.map_len() == i as u32 + 1
        })
        .await;
    }
    assert!(a.closed.is_none() && b.closed.is_none());
}

/// A WebSocket frame header that claims 4 GiB is refused from the header alone: the
/// connection is closed with 4413 and the server's memory does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_frame_claiming_4_gib_is_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let mut a = Client::connect(&server.ws_url("big")).await;
    let mut b = Client::connect(&server.ws_url("big")).await;
    let rss_before = server.rss_bytes();

    let (mut tcp, leftover) = upgrade(&server, "big").await;
    // FIN + binary, masked, 64-bit length = 2^32, mask key, then a few bytes.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 32).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0u8; 1024]);
    tcp.write_all(&frame).await.unwrap();
    let code = close_code(&mut tcp, leftover).await;
    assert_eq!(code, 4413);
    let grown = server.rss_bytes().saturating_sub(rss_before);
    assert!(grown < 64 * 1024 * 1024, "RSS grew by {grown} bytes");

    a.map_set("still", "alive").await;
    b.pump_until("room unaffected", Duration::from_secs(10), |c| {
        c.map_len() == 1
    })
    .await;
}

/// Invalid UTF-8 in a text frame: tungstenite refuses it before the session sees it,
/// and the socket still gets a close frame (4400), not a dropped connection (1006).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_frame_gets_a_close_frame() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let mut a = Client::connect(&server.ws_url("utf8")).await;
    let (mut tcp, leftover) = upgrade(&server, "utf8").await;
    // FIN + text, masked, 3 bytes that are not UTF-8.
    let mask = [9u8, 8, 7, 6];
    let payload = [0xffu8, 0xfe, 0xc3];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(close_code(&mut tcp, leftover).await, 4400);
    a.map_set("still", "alive").await;
    a.round_trip().await;
    assert!(a.closed.is_none());
}

/// Opens a WebSocket to `room` by hand; returns the socket and any bytes read past the
/// handshake.
async fn upgrade(server: &Server, room: &str) -> (TcpStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /v1/connect/{room} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let header_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let leftover = buf[header_end..].to_vec();
    (tcp, leftover)
}

/// Reads server frames (unmasked) until the close frame; returns its code. Panics if
/// the connection ends without one or none comes within 10 s.
async fn close_code(tcp: &mut TcpStream, mut frames: Vec<u8>) -> u16 {
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((opcode, payload, used)) = parse_frame(&frames) {
            frames.drain(..used);
            if opcode == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
            continue;
        }
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .expect("close frame in time")
            .unwrap();
        assert!(n > 0, "connection dropped without a close frame");
        frames.extend_from_slice(&chunk[..n]);
    }
}

/// Parses one unmasked server frame: (opcode, payload, bytes used).
fn parse_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < start + len {
        return None;
    }
    Some((opcode, buf[start..start + len].to_vec(), start + len))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Update sequences found by fuzzing yrs 0.28.1 (the second update makes yrs misbehave
/// once the first is integrated). Each must stay contained to its sender: the room keeps
/// serving the others and reloads cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzer_found_update_sequences_are_contained() {
    let sequences = [
        [
            "0103ffffffff0f0100010a012601000005f09f988001046e756c6c00",
            "0401000100010001010101000101000101ffffffff0f00810100800100",
        ],
        [
            "0103ffffffff0f0000010a01000100",
            "0401010000010000000100010101000001ffffffff0f01810100800100",
        ],
        [
            "010105030001020001010000010000",
            "0203000046000006f48fbfbfc3a90b7b2261223a5b312c325d7d0001000102050100018805010275027b0000000000000000740075017f00",
        ],
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir, &[]);
    for (i, seq) in sequences.iter().enumerate() {
        let url = server.ws_url(&format!("fuzzed-{i}"));
        let mut a = Client::connect(&url).await;
        let mut b = Client::connect(&url).await;
        let mut attacker = Client::connect(&url).await;
        for update in seq {
            attacker.send(Message::Update(&hex(update)).encode()).await;
        }
        // Whatever yrs made of it, the room keeps relaying between the others.
        a.map_set("ok", "1").await;
        b.pump_until("room still relays", Duration::from_secs(10), |c| {
            c.map_len() >= 1
        })
        .await;
        drop(attacker);
    }
    // And every room loads again from disk.
    assert!(server.sigterm(), "clean shutdown");
    server.restart();
    for i in 0..sequences.len() {
        let fresh = Client::connect(&server.ws_url(&format!("fuzzed-{i}"))).await;
        assert!(fresh.map_len() >= 1);
    }
}
