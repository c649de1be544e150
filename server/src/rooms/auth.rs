//! The authorizer seam: the WebSocket handler asks an [`Authorizer`] whether a token may
//! enter a room, and hands the resulting [`Grant`] to the engine. The engine trusts the
//! grant and never sees tokens; the control plane provides the real authorizer
//! (`control::tokens::TokenAuthorizer`).

use std::time::SystemTime;

use async_trait::async_trait;
use tandem_protocol::close;

/// What a verified credential allows in one room.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The project the room belongs to: rooms are namespaced by project.
    pub project_id: String,
    /// Whether document updates are applied (read-only connections are refused).
    pub can_write: bool,
    /// Whether awareness (presence) updates are accepted.
    pub can_presence: bool,
    /// `room:admin`: writes are applied even while the room is read-only.
    pub can_admin: bool,
    /// When the credential expires; the connection is closed with 4401 then.
    pub expires_at: Option<SystemTime>,
    /// The app's id for the user (the token's `sub`), if any.
    pub user_id: Option<String>,
    /// Server-attached user info (the token's `user`, a JSON object), if any. The
    /// engine puts it into the connection's presence so clients cannot forge it.
    pub user_info: Option<serde_json::Value>,
    /// The API key the credential descends from; revoking the key closes the
    /// connection.
    pub key_id: Option<String>,
    /// The plan limits that apply (`None`: unlimited, e.g. `--allow-anonymous`).
    pub limits: Option<super::limits::Limits>,
}

/// Why a connection was refused, as a WebSocket close code and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (close {code})")]
pub struct Denied {
    /// A close code from [`tandem_protocol::close`].
    pub code: u16,
    /// A human-readable reason the client can show.
    pub reason: String,
}

impl Denied {
    /// A 4401 refusal: the client should obtain a (new) token.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self {
            code: close::UNAUTHORIZED,
            reason: reason.into(),
        }
    }
}

/// Decides who may enter which room.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Checks `token` (from `?token=`) for `room`.
    async fn authorize(&self, room: &str, token: Option<&str>) -> Result<Grant, Denied>;
}

/// The project that anonymous connections (`--allow-anonymous`) use.
pub const ANONYMOUS_PROJECT: &str = "anonymous";

/// Lets everyone in with full rights, in the [`ANONYMOUS_PROJECT`]. Development only.
#[derive(Debug, Default)]
pub struct AllowAnonymous;

#[async_trait]
impl Authorizer for AllowAnonymous {
    async fn authorize(&self, _room: &str, _token: Option<&str>) -> Result<Grant, Denied> {
        Ok(Grant {
            project_id: ANONYMOUS_PROJECT.to_owned(),
            can_write: true,
            can_presence: true,
            can_admin: false,
            expires_at: None,
            user_id: None,
            user_info: None,
            key_id: None,
            limits: None,
        })
    }
}
