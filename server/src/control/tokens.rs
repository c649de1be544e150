//! Client tokens: minting (`POST /v1/tokens`) and the [`TokenAuthorizer`] that checks
//! them on the WebSocket, turning claims into the rooms engine's [`Grant`].

use std::time::Duration;

use async_trait::async_trait;
use tandem_protocol::close;

use super::error::{ControlError, ControlResult};
use super::plane::{ControlPlane, ProjectAuth};
use super::token::{self, Claims, RoomPermission, MAX_USER_INFO_BYTES};
use crate::ids::{KeyId, TenantId};
use crate::rooms::auth::{AllowAnonymous, Authorizer, Denied, Grant};

/// Clock skew tolerated between the node that minted a token and the one checking it.
pub const LEEWAY: Duration = Duration::from_secs(5);
/// Longest user id in a token.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Most permissions in one token.
pub const MAX_PERMISSIONS: usize = 64;

/// What `POST /v1/tokens` asks for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The app's id for its user.
    pub user_id: String,
    /// Shown to others with the user's presence (name, avatar, colour…): a JSON object.
    pub user_info: Option<serde_json::Value>,
    /// Room permissions.
    pub permissions: Vec<RoomPermission>,
    /// Requested lifetime; capped by the server's maximum.
    pub ttl: Option<Duration>,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The compact JWS.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

impl ControlPlane {
    /// Mints a client token for the key's project.
    pub fn mint_token(
        &self,
        auth: &ProjectAuth,
        request: TokenRequest,
    ) -> ControlResult<MintedToken> {
        let user_id = request.user_id.trim();
        if user_id.is_empty()
            || user_id.len() > MAX_USER_ID_BYTES
            || user_id.chars().any(char::is_control)
        {
            return Err(ControlError::Invalid(format!(
                "userId must be 1 to {MAX_USER_ID_BYTES} bytes without control characters"
            )));
        }
        if request.permissions.is_empty() {
            return Err(ControlError::Invalid(
                "permissions must name at least one room or room prefix".to_owned(),
            ));
        }
        if request.permissions.len() > MAX_PERMISSIONS {
            return Err(ControlError::Invalid(format!(
                "at most {MAX_PERMISSIONS} permissions per token"
            )));
        }
        if request.permissions.iter().any(|p| p.scopes.is_empty()) {
            return Err(ControlError::Invalid(
                "every permission needs at least one scope".to_owned(),
            ));
        }
        let user = match request.user_info {
            None | Some(serde_json::Value::Null) => serde_json::Value::Null,
            Some(info @ serde_json::Value::Object(_)) => info,
            Some(_) => {
                return Err(ControlError::Invalid(
                    "userInfo must be a JSON object".to_owned(),
                ))
            }
        };
        let config = self.config();
        let ttl = request.ttl.unwrap_or(config.token_default_ttl);
        if ttl.is_zero() || ttl > config.token_max_ttl {
            return Err(ControlError::Invalid(format!(
                "expiresIn must be 1 to {} seconds",
                config.token_max_ttl.as_secs()
            )));
        }
        let mut claims = Claims::new(user_id, auth.project_id.as_str(), self.now(), ttl)?;
        claims.user = user;
        claims.perms = request.permissions;
        claims.key = Some(auth.key_id.to_string());
        claims.ten = Some(auth.tenant_id.to_string());
        let key = self.key_ring().current();
        let token = token::sign(&claims, &key).map_err(|e| match e {
            token::SignError::UserInfoTooLarge { .. } => ControlError::Invalid(format!(
                "userInfo is at most {MAX_USER_INFO_BYTES} bytes of JSON"
            )),
            token::SignError::TooLarge { .. } => {
                ControlError::Invalid("too many or too long permissions".to_owned())
            }
            other => ControlError::Internal(other.to_string()),
        })?;
        Ok(MintedToken { token, claims })
    }

    /// Verifies a client token's signature and lifetime.
    pub async fn verify_token(&self, token: &str) -> Result<Claims, token::TokenError> {
        let key = match token::peek_kid(token) {
            Some(kid) => self.key_ring().verifying_key(&kid).await,
            None => None,
        };
        token::verify(token, |_| key, self.now(), LEEWAY)
    }
}

/// Checks client tokens on connect: signature, lifetime, the room against the token's
/// permissions, and that the key that minted it is still active.
#[derive(Debug, Clone)]
pub struct TokenAuthorizer {
    plane: ControlPlane,
}

impl TokenAuthorizer {
    /// An authorizer backed by `plane`.
    pub fn new(plane: ControlPlane) -> Self {
        Self { plane }
    }
}

#[async_trait]
impl Authorizer for TokenAuthorizer {
    async fn authorize(&self, room: &str, token: Option<&str>) -> Result<Grant, Denied> {
        let token = token.ok_or_else(|| {
            Denied::unauthorized("a token is required: connect with ?token=<client token>")
        })?;
        let claims = self
            .plane
            .verify_token(token)
            .await
            .map_err(|e| Denied::unauthorized(e.reason()))?;
        let access = claims.access(room);
        if !access.can_enter() {
            return Err(Denied {
                code: close::FORBIDDEN,
                reason: "this token does not allow this room".to_owned(),
            });
        }
        if let (Some(key), Some(tenant)) = (&claims.key, &claims.ten) {
            let (Some(key_id), Some(tenant_id)) = (KeyId::parse(key), TenantId::parse(tenant))
            else {
                return Err(Denied::unauthorized("malformed token"));
            };
            match self.plane.store().key(&tenant_id, &key_id).await {
                Ok(Some(row)) if row.is_active(self.plane.now_ms()) => {}
                Ok(_) => {
                    return Err(Denied::unauthorized(
                        "the API key that issued this token was revoked",
                    ))
                }
                Err(error) => {
                    tracing::warn!(%error, "checking a token's key failed");
                    return Err(Denied {
                        code: close::TRY_AGAIN_LATER,
                        reason: "storage unavailable; try again".to_owned(),
                    });
                }
            }
        }
        let user_info = match &claims.user {
            serde_json::Value::Object(_) => Some(claims.user.clone()),
            _ => None,
        };
        Ok(Grant {
            project_id: claims.prj.clone(),
            can_write: access.write,
            can_presence: access.presence,
            expires_at: Some(claims.expires_at()),
            user_id: Some(claims.sub.clone()),
            user_info,
            key_id: claims.key.clone(),
        })
    }
}

/// `--allow-anonymous`: a connection without a token enters the anonymous project with
/// full rights; one with a token is checked like always.
#[derive(Debug, Clone)]
pub struct AnonymousFallback {
    tokens: TokenAuthorizer,
}

impl AnonymousFallback {
    /// Falls back to anonymous access when no token is given.
    pub fn new(tokens: TokenAuthorizer) -> Self {
        Self { tokens }
    }
}

#[async_trait]
impl Authorizer for AnonymousFallback {
    async fn authorize(&self, room: &str, token: Option<&str>) -> Result<Grant, Denied> {
        match token {
            None => AllowAnonymous.authorize(room, None).await,
            Some(_) => self.tokens.authorize(room, token).await,
        }
    }
}
