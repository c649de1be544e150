//! What nodes say to each other over Redis. Every payload starts with a version byte and
//! the sending node's id (so a node ignores its own messages); room messages then carry a
//! kind byte and the y-websocket frame exactly as local clients get it, control messages
//! a JSON [`ControlEvent`].

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8;

/// What a room message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A durable update (the frame is a y-websocket update message).
    Update,
    /// Awareness changes made on the sending node (an awareness message).
    Awareness,
    /// A custom event (a type-100 message), relayed to every connection.
    Event,
    /// "Send me the presence of your connections": a node that just loaded the room.
    AwarenessQuery,
    /// The room was deleted: close its connections with 4404 and unload.
    Deleted,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Update => 1,
            Kind::Awareness => 2,
            Kind::Event => 3,
            Kind::AwarenessQuery => 4,
            Kind::Deleted => 5,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Kind::Update,
            2 => Kind::Awareness,
            3 => Kind::Event,
            4 => Kind::AwarenessQuery,
            5 => Kind::Deleted,
            _ => return None,
        })
    }
}

/// A room message from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomPayload {
    pub(crate) node: u64,
    pub(crate) kind: Kind,
    pub(crate) frame: Bytes,
}

pub(crate) fn encode_room(node: u64, kind: Kind, frame: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(HEADER + 1 + frame.len());
    out.put_u8(VERSION);
    out.put_u64(node);
    out.put_u8(kind.byte());
    out.put_slice(frame);
    out.to_vec()
}

pub(crate) fn decode_room(payload: &[u8]) -> Option<RoomPayload> {
    let node = header(payload)?;
    let kind = Kind::from_byte(*payload.get(HEADER)?)?;
    let frame = Bytes::copy_from_slice(&payload[HEADER + 1..]);
    Some(RoomPayload { node, kind, frame })
}

/// Which connections a [`ControlEvent::Close`] closes (mirrors
/// [`crate::rooms::CloseFilter`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "id", rename_all = "snake_case")]
pub enum WireFilter {
    /// Every connection of the project.
    All,
    /// Connections whose grant descends from this API key.
    Key(String),
    /// Connections whose grant names this user.
    User(String),
    /// One connection of one node (connection ids are per node).
    Connection {
        /// The node's id.
        node: u64,
        /// The connection's id on that node.
        conn: u64,
    },
}

/// A cluster-wide instruction, acted on by every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlEvent {
    /// Close the project's matching connections (a key was revoked, a project deleted).
    Close {
        /// The project.
        project_id: String,
        /// Which connections.
        filter: WireFilter,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The token signing keys changed: reload them now.
    SigningKeysChanged,
    /// The room was deleted: a node that has it loaded compares it with the database
    /// (which finds it gone: its connections get 4404 and it unloads). The durable twin
    /// of the room channel's [`Kind::Deleted`].
    RoomDeleted {
        /// The project.
        project_id: String,
        /// The room's name.
        room: String,
    },
    /// A room's settings (read-only) changed in the database: a node that has it
    /// loaded reads them again (the database holds the value, so reordered or
    /// repeated messages end in the same state).
    RoomSettingsChanged {
        /// The project.
        project_id: String,
        /// The room's name.
        room: String,
    },
    /// The project's plan changed: its live connections and rooms enforce these
    /// limits from now on.
    Limits {
        /// The project.
        project_id: String,
        /// The new plan's limits.
        limits: crate::rooms::limits::Limits,
    },
}

/// A control message: the event, and its id in the durable event log when it was
/// recorded there (so a node applies it once, whichever way it arrives first).
#[derive(Serialize, Deserialize)]
struct Envelope<E> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(flatten)]
    event: E,
}

pub(crate) fn encode_control(node: u64, seq: Option<i64>, event: &ControlEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.extend_from_slice(&node.to_be_bytes());
    // Serializing plain enums of strings and numbers cannot fail.
    let envelope = Envelope { seq, event };
    out.extend_from_slice(
        serde_json::to_string(&envelope)
            .unwrap_or_default()
            .as_bytes(),
    );
    out
}

pub(crate) fn decode_control(payload: &[u8]) -> Option<(u64, Option<i64>, ControlEvent)> {
    let node = header(payload)?;
    let envelope: Envelope<ControlEvent> = serde_json::from_slice(&payload[HEADER..]).ok()?;
    Some((node, envelope.seq, envelope.event))
}

/// An event as the durable log stores it: JSON with the origin node's id (so the node
/// that recorded it does not apply it twice).
#[derive(Serialize, Deserialize)]
struct Recorded<E> {
    origin: String,
    #[serde(flatten)]
    event: E,
}

pub(crate) fn encode_record(node: u64, event: &ControlEvent) -> String {
    let recorded = Recorded {
        origin: format!("{node:016x}"),
        event,
    };
    serde_json::to_string(&recorded).unwrap_or_default()
}

pub(crate) fn decode_record(text: &str) -> Option<(u64, ControlEvent)> {
    let recorded: Recorded<ControlEvent> = serde_json::from_str(text).ok()?;
    let node = u64::from_str_radix(&recorded.origin, 16).ok()?;
    Some((node, recorded.event))
}

fn header(payload: &[u8]) -> Option<u64> {
    if payload.len() < HEADER || payload[0] != VERSION {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&payload[1..HEADER]);
    Some(u64::from_be_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_messages_round_trip() {
        for kind in [
            Kind::Update,
            Kind::Awareness,
            Kind::Event,
            Kind::AwarenessQuery,
            Kind::Deleted,
        ] {
            let bytes = encode_room(0xdead_beef_0102_0304, kind, b"\x00\x02\x01x");
            let decoded = decode_room(&bytes).unwrap();
            assert_eq!(decoded.node, 0xdead_beef_0102_0304);
            assert_eq!(decoded.kind, kind);
            assert_eq!(&decoded.frame[..], b"\x00\x02\x01x");
        }
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        assert!(decode_room(b"").is_none());
        assert!(decode_room(&[VERSION, 0, 0]).is_none());
        let mut bytes = encode_room(1, Kind::Update, b"x");
        bytes[0] = 9;
        assert!(decode_room(&bytes).is_none(), "unknown version");
        let mut bytes = encode_room(1, Kind::Update, b"x");
        bytes[HEADER] = 77;
        assert!(decode_room(&bytes).is_none(), "unknown kind");
        assert!(decode_control(&encode_room(1, Kind::Update, b"x")).is_none());
    }

    #[test]
    fn control_events_round_trip() {
        let event = ControlEvent::Close {
            project_id: "prj_1".into(),
            filter: WireFilter::Key("key_1".into()),
            code: 4401,
            reason: "key revoked".into(),
        };
        let (node, seq, back) = decode_control(&encode_control(7, None, &event)).unwrap();
        assert_eq!((node, seq, back), (7, None, event.clone()));
        let (_, seq, back) = decode_control(&encode_control(
            7,
            Some(42),
            &ControlEvent::SigningKeysChanged,
        ))
        .unwrap();
        assert_eq!((seq, back), (Some(42), ControlEvent::SigningKeysChanged));
        // A message without a seq (an older node, `tandem rotate-signing-key`) reads.
        let mut old = vec![VERSION];
        old.extend_from_slice(&9u64.to_be_bytes());
        old.extend_from_slice(br#"{"type":"signing_keys_changed"}"#);
        assert_eq!(
            decode_control(&old),
            Some((9, None, ControlEvent::SigningKeysChanged))
        );
        // The durable log's form keeps the origin.
        let deleted = ControlEvent::RoomDeleted {
            project_id: "prj_1".into(),
            room: "doc".into(),
        };
        let text = encode_record(u64::MAX - 1, &deleted);
        assert_eq!(decode_record(&text), Some((u64::MAX - 1, deleted)));
        assert_eq!(decode_record(&encode_record(3, &event)), Some((3, event)));
        assert!(decode_record(r#"{"type":"close"}"#).is_none());
        for event in [
            ControlEvent::Close {
                project_id: "prj_1".into(),
                filter: WireFilter::Connection { node: 9, conn: 12 },
                code: 4403,
                reason: "closed by an administrator".into(),
            },
            ControlEvent::RoomSettingsChanged {
                project_id: "prj_1".into(),
                room: "a/b".into(),
            },
        ] {
            let (_, _, back) = decode_control(&encode_control(7, None, &event)).unwrap();
            assert_eq!(back, event);
        }
        let limits = ControlEvent::Limits {
            project_id: "prj_1".into(),
            limits: crate::control::plans::Plans::default().limits("pro"),
        };
        let (_, _, back) = decode_control(&encode_control(7, None, &limits)).unwrap();
        assert_eq!(back, limits);
    }
}
