//! Who a connection is, as its verified grant says, and what the server attaches on its
//! behalf: the `user` field of its presence states and the sender of its custom events.
//! Both come from the grant, never from what the client sends, so nobody can pose as
//! another user.
//!
//! Stock Yjs editor bindings (y-prosemirror, y-codemirror, y-monaco…) draw remote
//! cursors from `state.user.name` and `state.user.color`; putting the token's user info
//! there makes cursors show the real name without any client code.

use bytes::Bytes;
use serde_json::{Map, Value};
use tandem_protocol::json::{self, JsonLimits};
use tandem_protocol::{DecodeError, Message};

use super::ConnId;

/// A connection's identity from its grant, shared by its session and its room.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    /// The app's id for the user (the token's `sub`).
    pub(crate) user_id: Option<String>,
    /// The token's user info (a JSON object).
    pub(crate) user_info: Option<Value>,
    /// The API key the grant descends from.
    pub(crate) key_id: Option<String>,
    /// What goes into the `user` field of this connection's presence states: the user
    /// info object with `"id": user_id` added. `None` when the grant names no user, and
    /// then states pass through untouched.
    presence_user: Option<Value>,
}

/// Why an awareness state from a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StateError {
    #[error("awareness state is not valid JSON")]
    NotJson,
    #[error("awareness state nested more than {} levels deep", json::MAX_DEPTH)]
    TooDeep,
    /// Measured with the server's `user` field in (what the others receive).
    #[error("awareness state larger than {max} bytes (with the user the server attaches)")]
    TooLarge { max: usize },
    /// The server cannot attach the user to a string or a number; stock clients only
    /// ever send objects (or `null` to leave), so this is refused rather than reshaped
    /// into something the sender's own code would not recognise.
    #[error("awareness state must be a JSON object or null (the server attaches your user to it)")]
    NotAnObject,
}

impl Identity {
    pub(crate) fn new(
        user_id: Option<String>,
        user_info: Option<Value>,
        key_id: Option<String>,
    ) -> Self {
        let presence_user = presence_user(user_id.as_deref(), user_info.as_ref());
        Self {
            user_id,
            user_info,
            key_id,
            presence_user,
        }
    }

    /// What the server attaches as `user` to this connection's presence (`None`
    /// without a user).
    pub(crate) fn presence_user(&self) -> Option<&Value> {
        self.presence_user.as_ref()
    }

    /// Checks one awareness state (JSON text, at most `max_bytes` and
    /// [`json::MAX_DEPTH`] deep) and, for a connection with a user, sets its `user` field
    /// to the server's value, overwriting whatever the client put there; the result is
    /// held to the same bounds. `null` (the client leaving) passes through. Nothing is
    /// copied or parsed into a tree before the size and depth are known to be in bounds.
    pub(crate) fn stamp_state(&self, state: &str, max_bytes: usize) -> Result<String, StateError> {
        let limits = JsonLimits::new(max_bytes);
        json::check(state, limits).map_err(StateError::from)?;
        let Some(user) = &self.presence_user else {
            return Ok(state.to_owned());
        };
        match serde_json::from_str::<Value>(state).map_err(|_| StateError::NotJson)? {
            Value::Null => Ok(state.to_owned()),
            Value::Object(mut fields) => {
                fields.insert("user".to_owned(), user.clone());
                let stamped = Value::Object(fields).to_string();
                json::check(&stamped, limits).map_err(StateError::from)?;
                Ok(stamped)
            }
            _ => Err(StateError::NotAnObject),
        }
    }
}

fn presence_user(user_id: Option<&str>, user_info: Option<&Value>) -> Option<Value> {
    // The grant promises an object; anything else carries no fields we could show.
    let info = match user_info {
        Some(Value::Object(fields)) => Some(fields),
        _ => None,
    };
    if user_id.is_none() && info.is_none() {
        return None;
    }
    let mut user = info.cloned().unwrap_or_else(Map::new);
    if let Some(id) = user_id {
        user.insert("id".to_owned(), Value::from(id));
    }
    Some(Value::Object(user))
}

impl From<DecodeError> for StateError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::JsonTooDeep { .. } => Self::TooDeep,
            DecodeError::JsonTooLarge { max, .. } => Self::TooLarge { max },
            _ => Self::NotJson,
        }
    }
}

/// The server-to-client event frame relaying a client's event: the envelope of
/// [`tandem_protocol::event::ServerEvent`], `{"event": …, "connectionId": …, "userId": …}`.
/// `event` must already be valid JSON text; it is embedded as it is, without parsing it
/// into a tree and encoding it again (an event may be as large as a message).
pub(crate) fn event_frame(event: &str, conn: Option<ConnId>, user_id: Option<&str>) -> Bytes {
    let conn = conn.map_or_else(|| "null".to_owned(), |c| c.to_string());
    let user = user_id.map_or_else(|| "null".to_owned(), |id| Value::from(id).to_string());
    let json = format!(r#"{{"event":{event},"connectionId":{conn},"userId":{user}}}"#);
    Bytes::from(Message::Event(&json).encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 16 * 1024;

    fn alice() -> Identity {
        Identity::new(
            Some("u1".into()),
            Some(json!({"name": "Alice", "color": "#f00", "id": "forged-by-the-app?"})),
            None,
        )
    }

    #[test]
    fn the_server_owns_the_user_field() {
        let stamped = alice()
            .stamp_state(r#"{"user":{"name":"Mallory"},"cursor":3}"#, MAX)
            .unwrap();
        let state: Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(
            state,
            json!({"user": {"name": "Alice", "color": "#f00", "id": "u1"}, "cursor": 3})
        );
        // Leaving passes through; other shapes are refused.
        assert_eq!(alice().stamp_state(" null ", MAX).unwrap(), " null ");
        assert_eq!(alice().stamp_state("3", MAX), Err(StateError::NotAnObject));
        assert_eq!(alice().stamp_state("{", MAX), Err(StateError::NotJson));
        // Only a user id: the user field holds just it.
        let bob = Identity::new(Some("u2".into()), None, None);
        let stamped = bob.stamp_state("{}", MAX).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&stamped).unwrap(),
            json!({"user": {"id": "u2"}})
        );
    }

    #[test]
    fn anonymous_states_pass_through_untouched() {
        let anonymous = Identity::default();
        let state = r#"{"user":{"name":"whoever"}, "x": 1}"#;
        assert_eq!(anonymous.stamp_state(state, MAX).unwrap(), state);
        assert_eq!(anonymous.stamp_state("7", MAX).unwrap(), "7");
        assert_eq!(anonymous.stamp_state("nope", MAX), Err(StateError::NotJson));
    }

    #[test]
    fn states_are_bounded_with_the_user_attached() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(
            Identity::default().stamp_state(&deep, MAX),
            Err(StateError::TooDeep)
        );
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(100));
        assert_eq!(
            Identity::default().stamp_state(&big, 50),
            Err(StateError::TooLarge { max: 50 })
        );
        // Within the bound alone, past it once the user is attached.
        let fits = format!(r#"{{"x":"{}"}}"#, "a".repeat(30));
        assert!(Identity::default().stamp_state(&fits, 50).is_ok());
        assert_eq!(
            alice().stamp_state(&fits, 50),
            Err(StateError::TooLarge { max: 50 })
        );
    }

    #[test]
    fn event_frames_are_the_shared_envelope() {
        use tandem_protocol::event::ServerEvent;
        let cases = [
            (r#"{"kind":"ping"}"#, Some(7), Some("u\"1")),
            (" [1, 2] ", None, None),
            ("\"é\"", Some(u64::from(u32::MAX)), Some("")),
        ];
        for (event, conn, user) in cases {
            let frame = event_frame(event, conn, user);
            let Ok(Message::Event(json)) = Message::decode(&frame) else {
                panic!("not an event frame");
            };
            // What the SDKs read…
            let read = ServerEvent::parse(json).unwrap();
            let expected = ServerEvent {
                event: serde_json::from_str(event).unwrap(),
                connection_id: conn,
                user_id: user.map(str::to_owned),
            };
            assert_eq!(read, expected);
            // …and the same JSON the envelope type writes.
            assert_eq!(
                serde_json::from_str::<Value>(json).unwrap(),
                serde_json::from_str::<Value>(&expected.to_json()).unwrap()
            );
        }
    }
}
