//! The JSON of Tandem's session extension (message type 101, see [`crate::message`]):
//! the server's hello ([`Hello`]) and its answer to an in-band token refresh
//! ([`Refreshed`]). Only connections that opted in (`?tandem=1`) receive them; the
//! field names are camelCase because JavaScript reads them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The query parameter by which a client opts in to the session extension.
pub const OPT_IN_PARAM: &str = "tandem";

/// Sent once, first, to an opted-in connection: who the server says it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The server's id for this connection (the `connectionId` of its events).
    pub connection_id: u64,
    /// The token's subject, if any.
    pub user_id: Option<String>,
    /// What the server attaches as `user` to this connection's presence: the token's
    /// user info with `"id"` added. `None` for a connection without a user.
    pub user: Option<Value>,
    /// Whether the server applies this connection's document updates.
    pub can_write: bool,
    /// Whether the server accepts this connection's presence and events.
    pub can_presence: bool,
    /// When the connection's token expires (milliseconds since the Unix epoch); the
    /// server closes with 4401 then unless a fresh token arrived in band.
    pub expires_at: Option<u64>,
    /// The same expiry as milliseconds from now, for clients whose clock is monotonic
    /// (the Rust session) or may be off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

/// The answer to a [`Message::RefreshToken`](crate::Message::RefreshToken).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refreshed {
    /// Whether the token was accepted. A refused token changes nothing: the connection
    /// keeps its old rights until the old expiry.
    pub ok: bool,
    /// The new expiry (milliseconds since the Unix epoch), when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The new expiry as milliseconds from now, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// The rights under the new token, when accepted (scopes may change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_write: Option<bool>,
    /// See `can_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_presence: Option<bool>,
    /// When refused: the close code a connect with this token would have got (4401,
    /// 4403…), or 4403 when the token is for another project, room or user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// When refused: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Refreshed {
    /// A refusal with a close code and a reason.
    pub fn refused(code: u16, reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            expires_at: None,
            expires_in_ms: None,
            can_write: None,
            can_presence: None,
            code: Some(code),
            reason: Some(reason.into()),
        }
    }

    /// JSON text, the payload of [`Message::Refreshed`](crate::Message::Refreshed).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false}"#.to_owned())
    }
}

impl Hello {
    /// JSON text, the payload of [`Message::Hello`](crate::Message::Hello).
    pub fn to_json(&self) -> String {
        // Serializing plain fields and a JSON value cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use serde_json::json;

    #[test]
    fn hello_is_camel_case_json_through_a_frame() {
        let hello = Hello {
            connection_id: 7,
            user_id: Some("usr_1".to_owned()),
            user: Some(json!({"id": "usr_1", "name": "Ada"})),
            can_write: true,
            can_presence: false,
            expires_at: Some(1_700_000_000_000),
            expires_in_ms: None,
        };
        let frame = Message::Hello(&hello.to_json()).encode();
        let Ok(Message::Hello(text)) = Message::decode(&frame) else {
            panic!("not a hello frame");
        };
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            value,
            json!({"connectionId": 7, "userId": "usr_1", "user": {"id": "usr_1", "name": "Ada"},
                   "canWrite": true, "canPresence": false, "expiresAt": 1_700_000_000_000u64})
        );
        assert_eq!(serde_json::from_str::<Hello>(text).unwrap(), hello);
    }

    #[test]
    fn a_refusal_carries_only_code_and_reason() {
        let refused = Refreshed::refused(4403, "token is for another room");
        assert_eq!(
            serde_json::from_str::<Value>(&refused.to_json()).unwrap(),
            json!({"ok": false, "code": 4403, "reason": "token is for another room"})
        );
        let accepted: Refreshed =
            serde_json::from_str(r#"{"ok":true,"expiresAt":5,"canWrite":false}"#).unwrap();
        assert_eq!(accepted.expires_at, Some(5));
        assert_eq!(accepted.can_write, Some(false));
        assert_eq!(accepted.can_presence, None);
    }
}
