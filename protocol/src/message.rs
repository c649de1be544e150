//! The y-websocket envelope: one message per binary WebSocket frame, a lib0 varuint
//! message type and then its payload.
//!
//! | type | meaning | payload |
//! | --- | --- | --- |
//! | 0 | sync | varuint sub-type (0 step 1, 1 step 2, 2 update) + var bytes |
//! | 1 | awareness | var bytes (an awareness update) |
//! | 2 | auth | varuint 0 (permission denied) + var string reason |
//! | 3 | query awareness | nothing |
//! | 100 | Tandem event | var string: a JSON document (see [`Message::Event`]) |
//! | 101 | Tandem session | varuint sub-type + payload (see below) |
//!
//! Types 100 and 101 are Tandem's extensions. Stock y-websocket clients log and ignore
//! types they do not know, so the server may send them type 100; type 101 goes only to
//! connections that opted in (`?tandem=1` on the connect URL), so a stock client's
//! console stays clean.
//!
//! Type 101 sub-types ([`crate::session`] owns the JSON):
//!
//! | sub-type | direction | meaning | payload |
//! | --- | --- | --- | --- |
//! | 0 | server → client | hello: who the connection is | var string JSON ([`crate::session::Hello`]) |
//! | 1 | client → server | a fresh token for this connection | var string (the token) |
//! | 2 | server → client | the answer to a fresh token | var string JSON ([`crate::session::Refreshed`]) |
//! | 3 | server → client | saved: the first `n` updates received on this connection are on disk | varuint `n` |
//!
//! Decoding borrows from the frame and checks every length against what is left, so the
//! payloads handed to yrs are already bounded by the frame size.

use crate::lib0::{Reader, Writer};
use crate::DecodeError;

/// Message type: document sync.
pub const MSG_SYNC: u64 = 0;
/// Message type: awareness (presence).
pub const MSG_AWARENESS: u64 = 1;
/// Message type: auth (the server tells a client it may not write).
pub const MSG_AUTH: u64 = 2;
/// Message type: a request for the full awareness state.
pub const MSG_QUERY_AWARENESS: u64 = 3;

/// Message type: a Tandem custom event (an extension; stock clients ignore it).
pub const MSG_EVENT: u64 = 100;
/// Message type: Tandem session control (hello, in-band token refresh, saved
/// acknowledgements), only for connections that opted in.
pub const MSG_SESSION: u64 = 101;

/// Session sub-type: the server's hello.
pub const SESSION_HELLO: u64 = 0;
/// Session sub-type: a client's fresh token.
pub const SESSION_REFRESH: u64 = 1;
/// Session sub-type: the server's answer to a fresh token.
pub const SESSION_REFRESHED: u64 = 2;
/// Session sub-type: the server's durability acknowledgement.
pub const SESSION_SAVED: u64 = 3;

/// Sync sub-type: a state vector, asking for what the peer lacks.
pub const SYNC_STEP1: u64 = 0;
/// Sync sub-type: the answer to step 1, an update with what the asker lacked.
pub const SYNC_STEP2: u64 = 1;
/// Sync sub-type: an incremental update.
pub const SYNC_UPDATE: u64 = 2;

/// One decoded y-websocket message, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Sync step 1: the sender's encoded state vector.
    SyncStep1(&'a [u8]),
    /// Sync step 2: a v1 update with everything the receiver lacked.
    SyncStep2(&'a [u8]),
    /// An incremental v1 update.
    Update(&'a [u8]),
    /// An encoded awareness update.
    Awareness(&'a [u8]),
    /// Permission denied, with a reason (server to client only).
    AuthDenied(&'a str),
    /// A request for every known awareness state.
    QueryAwareness,
    /// A custom event, as JSON text. Client to server: the event itself (any JSON
    /// value), relayed to the room's other connections. Server to client: an object
    /// `{"event": <value>, "connectionId": <number|null>, "userId": <string|null>}`
    /// where a null connection id means the server (REST) sent it. The JSON is checked
    /// by whoever interprets it, not by the codec.
    Event(&'a str),
    /// Server to client, once on joining (opted-in connections only): who this
    /// connection is, as JSON ([`crate::session::Hello`]).
    Hello(&'a str),
    /// Client to server: a fresh token for the open connection. The server checks it
    /// like a connect and answers with [`Message::Refreshed`].
    RefreshToken(&'a str),
    /// Server to client: the answer to [`Message::RefreshToken`], as JSON
    /// ([`crate::session::Refreshed`]).
    Refreshed(&'a str),
    /// Server to client (opted-in connections only): the first `n` document updates
    /// (sync step 2 and update messages) this connection sent are durable. Sent after
    /// the group commit that stored them, at most once per commit.
    Saved(u64),
}

impl<'a> Message<'a> {
    /// Decodes exactly one message from a whole frame. Unknown types, unknown sub-types
    /// and trailing bytes are errors.
    pub fn decode(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame);
        let message = match r.read_var_u64()? {
            MSG_SYNC => match r.read_var_u64()? {
                SYNC_STEP1 => Message::SyncStep1(r.read_var_bytes()?),
                SYNC_STEP2 => Message::SyncStep2(r.read_var_bytes()?),
                SYNC_UPDATE => Message::Update(r.read_var_bytes()?),
                other => return Err(DecodeError::UnknownSyncType(other)),
            },
            MSG_AWARENESS => Message::Awareness(r.read_var_bytes()?),
            MSG_AUTH => match r.read_var_u64()? {
                0 => Message::AuthDenied(r.read_var_str()?),
                other => return Err(DecodeError::UnknownAuthType(other)),
            },
            MSG_QUERY_AWARENESS => Message::QueryAwareness,
            MSG_EVENT => Message::Event(r.read_var_str()?),
            MSG_SESSION => match r.read_var_u64()? {
                SESSION_HELLO => Message::Hello(r.read_var_str()?),
                SESSION_REFRESH => Message::RefreshToken(r.read_var_str()?),
                SESSION_REFRESHED => Message::Refreshed(r.read_var_str()?),
                SESSION_SAVED => Message::Saved(r.read_var_u64()?),
                other => return Err(DecodeError::UnknownSessionType(other)),
            },
            other => return Err(DecodeError::UnknownMessageType(other)),
        };
        r.finish()?;
        Ok(message)
    }

    /// Encodes the message as one frame.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Message::SyncStep1(sv) => encode_sync(SYNC_STEP1, sv),
            Message::SyncStep2(update) => encode_sync(SYNC_STEP2, update),
            Message::Update(update) => encode_sync(SYNC_UPDATE, update),
            Message::Awareness(update) => {
                let mut w = Writer::with_capacity(update.len() + 6);
                w.write_var_u64(MSG_AWARENESS).write_var_bytes(update);
                w.into_inner()
            }
            Message::AuthDenied(reason) => {
                let mut w = Writer::with_capacity(reason.len() + 7);
                w.write_var_u64(MSG_AUTH)
                    .write_var_u64(0)
                    .write_var_str(reason);
                w.into_inner()
            }
            Message::QueryAwareness => vec![MSG_QUERY_AWARENESS as u8],
            Message::Event(json) => {
                let mut w = Writer::with_capacity(json.len() + 7);
                w.write_var_u64(MSG_EVENT).write_var_str(json);
                w.into_inner()
            }
            Message::Hello(json) => encode_session_str(SESSION_HELLO, json),
            Message::RefreshToken(token) => encode_session_str(SESSION_REFRESH, token),
            Message::Refreshed(json) => encode_session_str(SESSION_REFRESHED, json),
            Message::Saved(n) => {
                let mut w = Writer::with_capacity(12);
                w.write_var_u64(MSG_SESSION)
                    .write_var_u64(SESSION_SAVED)
                    .write_var_u64(n);
                w.into_inner()
            }
        }
    }
}

fn encode_session_str(sub_type: u64, text: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(text.len() + 8);
    w.write_var_u64(MSG_SESSION)
        .write_var_u64(sub_type)
        .write_var_str(text);
    w.into_inner()
}

fn encode_sync(sub_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(payload.len() + 7);
    w.write_var_u64(MSG_SYNC)
        .write_var_u64(sub_type)
        .write_var_bytes(payload);
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_from_the_stock_client_decode() {
        // Sync step 1 with an empty state vector, exactly as y-websocket sends it first.
        assert_eq!(Message::decode(&[0, 0, 1, 0]), Ok(Message::SyncStep1(&[0])));
        assert_eq!(
            Message::decode(&[0, 2, 2, 7, 9]),
            Ok(Message::Update(&[7, 9]))
        );
        assert_eq!(Message::decode(&[3]), Ok(Message::QueryAwareness));
        assert_eq!(
            Message::decode(&[2, 0, 2, b'n', b'o']),
            Ok(Message::AuthDenied("no"))
        );
    }

    #[test]
    fn malformed_frames_are_rejected() {
        assert_eq!(Message::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(Message::decode(&[0]), Err(DecodeError::Truncated));
        assert_eq!(
            Message::decode(&[9]),
            Err(DecodeError::UnknownMessageType(9))
        );
        assert_eq!(
            Message::decode(&[0, 5, 0]),
            Err(DecodeError::UnknownSyncType(5))
        );
        assert_eq!(
            Message::decode(&[0, 2, 3, 1]),
            Err(DecodeError::LengthTooLarge {
                claimed: 3,
                remaining: 1
            })
        );
        assert_eq!(Message::decode(&[3, 0]), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(
            Message::decode(&[101, 9, 0]),
            Err(DecodeError::UnknownSessionType(9))
        );
        assert_eq!(Message::decode(&[101, 3]), Err(DecodeError::Truncated));
        assert_eq!(
            Message::decode(&[0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(DecodeError::LengthTooLarge {
                claimed: 0xffff_ffff,
                remaining: 0
            })
        );
    }

    #[test]
    fn session_frames_have_a_fixed_layout() {
        // What the JS client writes and reads byte by byte.
        assert_eq!(Message::Saved(300).encode(), vec![101, 3, 0xac, 0x02]);
        assert_eq!(Message::decode(&[101, 3, 5]), Ok(Message::Saved(5)));
        assert_eq!(
            Message::RefreshToken("ab").encode(),
            vec![101, 1, 2, b'a', b'b']
        );
        assert_eq!(
            Message::decode(&[101, 0, 2, b'{', b'}']),
            Ok(Message::Hello("{}"))
        );
        assert_eq!(
            Message::decode(&[101, 2, 2, b'{', b'}']),
            Ok(Message::Refreshed("{}"))
        );
    }

    fn any_message() -> impl Strategy<Value = (u8, Vec<u8>, u64)> {
        (
            0u8..11,
            proptest::collection::vec(any::<u8>(), 0..32),
            any::<u64>(),
        )
    }

    proptest! {
        #[test]
        fn encode_then_decode_roundtrips((kind, payload, n) in any_message()) {
            let text = String::from_utf8_lossy(&payload).into_owned();
            let message = match kind {
                0 => Message::SyncStep1(&payload),
                1 => Message::SyncStep2(&payload),
                2 => Message::Update(&payload),
                3 => Message::Awareness(&payload),
                4 => Message::AuthDenied(&text),
                5 => Message::Event(&text),
                6 => Message::Hello(&text),
                7 => Message::RefreshToken(&text),
                8 => Message::Refreshed(&text),
                9 => Message::Saved(n),
                _ => Message::QueryAwareness,
            };
            let frame = message.encode();
            prop_assert_eq!(Message::decode(&frame), Ok(message));
        }

        #[test]
        fn decoding_arbitrary_frames_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Message::decode(&frame);
        }
    }
}
