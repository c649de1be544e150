//! The JSON carried by Tandem's custom events ([`Message::Event`], type 100).
//!
//! Client to server, the payload is the event itself: any JSON value, which the server
//! relays to the room's other connections. Server to client, the server wraps it in an
//! envelope naming the sender:
//!
//! ```json
//! {"event": <value>, "connectionId": <number|null>, "userId": <string|null>}
//! ```
//!
//! A null `connectionId` means the server itself (the REST API) sent the event. This
//! module owns that envelope ([`ServerEvent`]) so the server and both SDKs write and read
//! the same thing.
//!
//! [`Message::Event`]: crate::Message::Event

use serde_json::{Map, Value};

/// A custom event as a client receives it: the event and who sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    /// The event, exactly as the sender broadcast it.
    pub event: Value,
    /// The sending connection, or `None` when the server (REST API) sent it.
    pub connection_id: Option<u64>,
    /// The sender's user id (its token's subject), when it has one.
    pub user_id: Option<String>,
}

/// Why a server-to-client event envelope could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The text is not JSON.
    #[error("event is not valid JSON: {0}")]
    NotJson(String),
    /// The JSON is not an object with an `event` member.
    #[error("event envelope must be an object with an \"event\" member")]
    NotAnEnvelope,
    /// `connectionId` is neither a non-negative integer nor null.
    #[error("\"connectionId\" must be a non-negative integer or null")]
    BadConnectionId,
    /// `userId` is neither a string nor null.
    #[error("\"userId\" must be a string or null")]
    BadUserId,
}

impl ServerEvent {
    /// Encodes the envelope as JSON text, the payload of a [`crate::Message::Event`].
    pub fn to_json(&self) -> String {
        let mut envelope = Map::with_capacity(3);
        envelope.insert("event".to_owned(), self.event.clone());
        envelope.insert(
            "connectionId".to_owned(),
            self.connection_id.map_or(Value::Null, Value::from),
        );
        envelope.insert(
            "userId".to_owned(),
            self.user_id.clone().map_or(Value::Null, Value::String),
        );
        Value::Object(envelope).to_string()
    }

    /// Reads an envelope sent by the server. Missing `connectionId`/`userId` members read
    /// as null; unknown members are ignored so the server may add some later.
    pub fn parse(json: &str) -> Result<Self, EventError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| EventError::NotJson(e.to_string()))?;
        let Value::Object(mut envelope) = value else {
            return Err(EventError::NotAnEnvelope);
        };
        let event = envelope.remove("event").ok_or(EventError::NotAnEnvelope)?;
        let connection_id = match envelope.remove("connectionId") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or(EventError::BadConnectionId)?),
        };
        let user_id = match envelope.remove("userId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(EventError::BadUserId),
        };
        Ok(Self {
            event,
            connection_id,
            user_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use serde_json::json;

    #[test]
    fn envelope_roundtrips_through_a_frame() {
        let sent = ServerEvent {
            event: json!({"type": "emoji", "value": "🎉"}),
            connection_id: Some(42),
            user_id: Some("usr_1".to_owned()),
        };
        let frame = Message::Event(&sent.to_json()).encode();
        let Ok(Message::Event(text)) = Message::decode(&frame) else {
            panic!("not an event frame");
        };
        assert_eq!(ServerEvent::parse(text), Ok(sent));
    }

    #[test]
    fn server_sent_events_have_null_sender() {
        let parsed = ServerEvent::parse(r#"{"event":[1,2],"connectionId":null,"userId":null}"#);
        assert_eq!(
            parsed,
            Ok(ServerEvent {
                event: json!([1, 2]),
                connection_id: None,
                user_id: None,
            })
        );
        // Members may be absent, and unknown ones are ignored.
        assert_eq!(
            ServerEvent::parse(r#"{"event":null,"extra":1}"#).map(|e| e.event),
            Ok(Value::Null)
        );
    }

    #[test]
    fn malformed_envelopes_are_typed_errors() {
        assert!(matches!(
            ServerEvent::parse("{"),
            Err(EventError::NotJson(_))
        ));
        assert_eq!(ServerEvent::parse("[]"), Err(EventError::NotAnEnvelope));
        assert_eq!(
            ServerEvent::parse(r#"{"connectionId":1}"#),
            Err(EventError::NotAnEnvelope)
        );
        assert_eq!(
            ServerEvent::parse(r#"{"event":1,"connectionId":-1}"#),
            Err(EventError::BadConnectionId)
        );
        assert_eq!(
            ServerEvent::parse(r#"{"event":1,"userId":7}"#),
            Err(EventError::BadUserId)
        );
    }
}
