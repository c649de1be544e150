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
    /// The project's plan changed: its live connections and rooms enforce these
    /// limits from now on.
    Limits {
        /// The project.
        project_id: String,
        /// The new plan's limits.
        limits: crate::rooms::limits::Limits,
    },
}

pub(crate) fn encode_control(node: u64, event: &ControlEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.extend_from_slice(&node.to_be_bytes());
    // Serializing plain enums of strings and numbers cannot fail.
    out.extend_from_slice(serde_json::to_string(event).unwrap_or_default().as_bytes());
    out
}

pub(crate) fn decode_control(payload: &[u8]) -> Option<(u64, ControlEvent)> {
    let node = header(payload)?;
    let event = serde_json::from_slice(&payload[HEADER..]).ok()?;
    Some((node, event))
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
        let (node, back) = decode_control(&encode_control(7, &event)).unwrap();
        assert_eq!((node, back), (7, event));
        let (_, back) =
            decode_control(&encode_control(7, &ControlEvent::SigningKeysChanged)).unwrap();
        assert_eq!(back, ControlEvent::SigningKeysChanged);
        let limits = ControlEvent::Limits {
            project_id: "prj_1".into(),
            limits: crate::control::plans::Plans::default().limits("pro"),
        };
        let (_, back) = decode_control(&encode_control(7, &limits)).unwrap();
        assert_eq!(back, limits);
    }
}
