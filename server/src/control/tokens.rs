//! Client tokens: minting (`POST /v1/tokens`) and the [`TokenAuthorizer`] that checks
//! them on the WebSocket, turning claims into the rooms engine's [`Grant`].

use std::time::Duration;

use async_trait::async_trait;
use tandem_protocol::close;

use super::error::{ControlError, ControlResult};
use super::keywatch::Standing;
use super::plane::{from_ms, ControlPlane, ProjectAuth};
use super::public::PublicAccess;
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
    /// The app's id for its user: required with a secret key, refused with a
    /// publishable key (whose tokens are anonymous, with a server-chosen id).
    pub user_id: Option<String>,
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
        let user_id = if auth.publishable {
            check_public_request(&request, auth.public.as_ref())?;
            anonymous_user_id()?
        } else {
            let Some(user_id) = request.user_id.as_deref().map(str::trim) else {
                return Err(ControlError::Invalid(
                    "userId is required with a secret key".to_owned(),
                ));
            };
            user_id.to_owned()
        };
        let user_id = user_id.as_str();
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

/// The prefix of the server-chosen user ids of publishable-key tokens.
pub const ANONYMOUS_USER_PREFIX: &str = "anon_";

/// A publishable key is public (it ships in the browser): whoever holds it must not
/// choose who they are nor get more than the project's [`PublicAccess`] allows.
fn check_public_request(
    request: &TokenRequest,
    public: Option<&PublicAccess>,
) -> ControlResult<()> {
    if request.user_id.is_some() {
        return Err(ControlError::Invalid(
            "publishable keys mint anonymous tokens: omit userId (the server chooses an anon_ id)"
                .to_owned(),
        ));
    }
    if request
        .user_info
        .as_ref()
        .is_some_and(|info| !info.is_null())
    {
        return Err(ControlError::Invalid(
            "publishable keys mint anonymous tokens: userInfo is not allowed".to_owned(),
        ));
    }
    let Some(public) = public else {
        return Err(ControlError::Forbidden(
            "public access is off for this project; enable it or use a secret key".to_owned(),
        ));
    };
    if let Some(outside) = request.permissions.iter().find(|p| !public.covers(p)) {
        return Err(ControlError::Invalid(format!(
            "publishable-key tokens are limited to the project's public access: rooms {:?} \
             with {}; {:?} asks for more (mint other tokens from your backend with the \
             secret key)",
            public.rooms.as_str(),
            public.scopes_text(),
            outside.room.as_str(),
        )));
    }
    Ok(())
}

/// `anon_` and 128 random bits, base64url.
fn anonymous_user_id() -> ControlResult<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    super::fill_random(&mut bytes)?;
    Ok(format!(
        "{ANONYMOUS_USER_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
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
        let mut access = claims.access(room);
        if !access.can_enter() {
            return Err(Denied {
                code: close::FORBIDDEN,
                reason: "this token does not allow this room".to_owned(),
            });
        }
        let mut limits = None;
        let mut key_expires_at = None;
        if let (Some(key), Some(tenant)) = (&claims.key, &claims.ten) {
            let (Some(key_id), Some(tenant_id)) = (KeyId::parse(key), TenantId::parse(tenant))
            else {
                return Err(Denied::unauthorized("malformed token"));
            };
            let unavailable = |error: &dyn std::fmt::Display| {
                tracing::warn!(%error, "checking a token's key failed");
                Denied {
                    code: close::TRY_AGAIN_LATER,
                    reason: "storage unavailable; try again".to_owned(),
                }
            };
            limits = Some(
                self.plane
                    .tenant_limits(&tenant_id)
                    .await
                    .map_err(|e| unavailable(&e))?,
            );
            match self.plane.key_standing(&tenant_id, &key_id).await {
                Ok(Standing::Active { expires_at, public }) => {
                    // A publishable key's token gets no more than its project opens to
                    // the public now (the settings may have narrowed since it was minted).
                    if let Some(public) = public {
                        access = public.limit(room, access);
                        if !access.can_enter() {
                            return Err(Denied {
                                code: close::FORBIDDEN,
                                reason: "the project's public access does not include this room"
                                    .to_owned(),
                            });
                        }
                    }
                    // A rolled key stops at `expires_at`: so does this connection, on
                    // every node and across restarts, without waiting for a sweep.
                    if let Some(at) = expires_at {
                        key_expires_at = Some(from_ms(at));
                    }
                    // Watched so that the connection is closed if the key stops
                    // before the token expires (revoked elsewhere, public access off).
                    self.plane.key_watch().watch(
                        &tenant_id,
                        &key_id,
                        &claims.prj,
                        claims.expires_at() + LEEWAY,
                    );
                }
                Ok(Standing::Stopped(reason)) => return Err(Denied::unauthorized(reason)),
                Err(error) => return Err(unavailable(&error)),
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
            can_admin: access.admin,
            expires_at: Some(match key_expires_at {
                Some(at) => claims.expires_at().min(at),
                None => claims.expires_at(),
            }),
            user_id: Some(claims.sub.clone()),
            user_info,
            key_id: claims.key.clone(),
            limits,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::control::clock::ManualClock;
    use crate::control::plane::RequestMeta;
    use crate::control::token::{RoomPattern, Scope};
    use crate::control::ControlConfig;
    use crate::store::sqlite::SqliteStore;

    struct Fixture {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        plane: ControlPlane,
        auth: ProjectAuth,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let plane = ControlPlane::new(store, clock.clone(), ControlConfig::default())
            .await
            .unwrap();
        let boot = plane.bootstrap_if_empty().await.unwrap().unwrap();
        let auth = plane
            .authenticate_project_key(boot.secret_key.plaintext.expose(), false)
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            clock,
            plane,
            auth,
        }
    }

    fn request(pattern: &str, scopes: &[Scope], ttl: u64) -> TokenRequest {
        TokenRequest {
            user_id: Some("ada".to_owned()),
            user_info: Some(serde_json::json!({ "name": "Ada" })),
            permissions: vec![RoomPermission {
                room: RoomPattern::new(pattern).unwrap(),
                scopes: scopes.to_vec(),
            }],
            ttl: Some(Duration::from_secs(ttl)),
        }
    }

    #[tokio::test]
    async fn a_minted_token_grants_what_it_says_in_the_rooms_it_names() {
        let f = fixture().await;
        let authorizer = TokenAuthorizer::new(f.plane.clone());
        let write = f
            .plane
            .mint_token(&f.auth, request("doc-*", &[Scope::Write], 600))
            .unwrap();
        let grant = authorizer
            .authorize("doc-1", Some(&write.token))
            .await
            .unwrap();
        assert_eq!(grant.project_id, f.auth.project_id.as_str());
        assert!(grant.can_write && grant.can_presence);
        assert_eq!(grant.user_id.as_deref(), Some("ada"));
        assert_eq!(grant.user_info, Some(serde_json::json!({ "name": "Ada" })));
        assert_eq!(grant.key_id.as_deref(), Some(f.auth.key_id.as_str()));

        let denied = authorizer
            .authorize("other", Some(&write.token))
            .await
            .unwrap_err();
        assert_eq!(denied.code, close::FORBIDDEN);

        let read = f
            .plane
            .mint_token(&f.auth, request("doc-1", &[Scope::Read], 600))
            .unwrap();
        let grant = authorizer
            .authorize("doc-1", Some(&read.token))
            .await
            .unwrap();
        assert!(!grant.can_write && !grant.can_presence);
        assert_eq!(
            authorizer
                .authorize("doc-2", Some(&read.token))
                .await
                .unwrap_err()
                .code,
            close::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn publishable_key_tokens_are_anonymous_read_only_and_die_with_public_access() {
        use crate::control::keywatch::PUBLIC_ACCESS_OFF;
        use crate::store::control::{KeyKindRow, ProjectPatch};
        let f = fixture().await;
        let meta = RequestMeta::default();
        let (tenant, project) = (&f.auth.tenant_id, &f.auth.project_id);
        let pk = f
            .plane
            .create_project_key(tenant, project, KeyKindRow::Publishable, "web", "t", &meta)
            .await
            .unwrap();
        let public = |on| ProjectPatch {
            public_access: Some(on),
            ..ProjectPatch::default()
        };
        f.plane
            .store()
            .update_project(tenant, project, &public(true))
            .await
            .unwrap();
        let auth = f
            .plane
            .authenticate_project_key(pk.plaintext.expose(), true)
            .await
            .unwrap();
        assert!(auth.publishable);
        let public_request = |user_id: Option<&str>, info, scopes: &[Scope]| TokenRequest {
            user_id: user_id.map(str::to_owned),
            user_info: info,
            permissions: vec![RoomPermission {
                room: RoomPattern::new("*").unwrap(),
                scopes: scopes.to_vec(),
            }],
            ttl: None,
        };
        let read = [Scope::Read, Scope::PresenceWrite];
        // Posing as someone, attaching user info, or asking for write: refused.
        for refused in [
            public_request(Some("ceo"), None, &read),
            public_request(None, Some(serde_json::json!({"name": "CEO"})), &read),
            public_request(None, None, &[Scope::Write]),
            public_request(None, None, &[Scope::Read, Scope::Write]),
        ] {
            assert!(matches!(
                f.plane.mint_token(&auth, refused),
                Err(ControlError::Invalid(_))
            ));
        }
        let a = f
            .plane
            .mint_token(&auth, public_request(None, None, &read))
            .unwrap();
        let b = f
            .plane
            .mint_token(
                &auth,
                public_request(None, Some(serde_json::Value::Null), &read),
            )
            .unwrap();
        assert!(
            a.claims.sub.starts_with(ANONYMOUS_USER_PREFIX),
            "{}",
            a.claims.sub
        );
        assert!(a.claims.sub.len() > ANONYMOUS_USER_PREFIX.len() + 20);
        assert_ne!(a.claims.sub, b.claims.sub);
        assert!(a.claims.user.is_null());
        let authorizer = TokenAuthorizer::new(f.plane.clone());
        let grant = authorizer.authorize("lobby", Some(&a.token)).await.unwrap();
        assert!(!grant.can_write && grant.can_presence);
        assert_eq!(grant.user_info, None);

        // Public access off: the tokens no longer connect (and the sweep closes the
        // open ones, see keywatch).
        f.plane
            .store()
            .update_project(tenant, project, &public(false))
            .await
            .unwrap();
        let denied = authorizer
            .authorize("lobby", Some(&a.token))
            .await
            .unwrap_err();
        assert_eq!(
            (denied.code, denied.reason.as_str()),
            (close::UNAUTHORIZED, PUBLIC_ACCESS_OFF)
        );
        // A secret key must name the user.
        let mut nameless = request("*", &[Scope::Write], 60);
        nameless.user_id = None;
        assert!(matches!(
            f.plane.mint_token(&f.auth, nameless),
            Err(ControlError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn publishable_key_tokens_stay_inside_the_projects_public_rooms_and_scopes() {
        use crate::store::control::{KeyKindRow, ProjectPatch};
        let f = fixture().await;
        let meta = RequestMeta::default();
        let (tenant, project) = (&f.auth.tenant_id, &f.auth.project_id);
        let pk = f
            .plane
            .create_project_key(tenant, project, KeyKindRow::Publishable, "web", "t", &meta)
            .await
            .unwrap();
        let set = |rooms: &str, scopes: &str| ProjectPatch {
            public_access: Some(true),
            public_rooms: Some(rooms.to_owned()),
            public_scopes: Some(scopes.to_owned()),
            ..ProjectPatch::default()
        };
        let store = f.plane.store();
        store
            .update_project(
                tenant,
                project,
                &set("lobby-*", "room:read room:presence:write"),
            )
            .await
            .unwrap();
        let auth = || async {
            f.plane
                .authenticate_project_key(pk.plaintext.expose(), true)
                .await
                .unwrap()
        };
        let ask = |room: &str, scopes: &[Scope]| TokenRequest {
            user_id: None,
            user_info: None,
            permissions: vec![RoomPermission {
                room: RoomPattern::new(room).unwrap(),
                scopes: scopes.to_vec(),
            }],
            ttl: None,
        };
        let public = auth().await;
        // Outside the pattern, or a scope the project does not open: 400.
        for (room, scopes) in [
            ("*", &[Scope::Read][..]),
            ("admin", &[Scope::Read][..]),
            ("lobby*", &[Scope::Read][..]),
            ("lobby-1", &[Scope::Write][..]),
        ] {
            let refused = f.plane.mint_token(&public, ask(room, scopes));
            assert!(
                matches!(&refused, Err(ControlError::Invalid(m)) if m.contains("lobby-*")),
                "{room}: {refused:?}"
            );
        }
        let wide = f
            .plane
            .mint_token(
                &public,
                ask("lobby-*", &[Scope::Read, Scope::PresenceWrite]),
            )
            .unwrap();
        let authorizer = TokenAuthorizer::new(f.plane.clone());
        let grant = authorizer
            .authorize("lobby-1", Some(&wide.token))
            .await
            .unwrap();
        assert!(grant.can_presence && !grant.can_write);

        // Narrowed afterwards: the token already minted gets only what is open now.
        store
            .update_project(tenant, project, &set("lobby-eu-*", "room:read"))
            .await
            .unwrap();
        let denied = authorizer
            .authorize("lobby-1", Some(&wide.token))
            .await
            .unwrap_err();
        assert_eq!(denied.code, close::FORBIDDEN, "{}", denied.reason);
        let grant = authorizer
            .authorize("lobby-eu-1", Some(&wide.token))
            .await
            .unwrap();
        assert!(
            !grant.can_presence && !grant.can_write,
            "presence was closed"
        );

        // An admin may open writing to the public explicitly.
        store
            .update_project(tenant, project, &set("board-*", "room:write"))
            .await
            .unwrap();
        let writers = auth().await;
        let write = f
            .plane
            .mint_token(&writers, ask("board-1", &[Scope::Write]))
            .unwrap();
        assert!(write.claims.sub.starts_with(ANONYMOUS_USER_PREFIX));
        let grant = authorizer
            .authorize("board-1", Some(&write.token))
            .await
            .unwrap();
        assert!(grant.can_write);
    }

    #[tokio::test]
    async fn missing_expired_and_revoked_credentials_are_4401() {
        let f = fixture().await;
        let authorizer = TokenAuthorizer::new(f.plane.clone());
        assert_eq!(
            authorizer.authorize("doc-1", None).await.unwrap_err().code,
            close::UNAUTHORIZED
        );
        let minted = f
            .plane
            .mint_token(&f.auth, request("*", &[Scope::Write], 60))
            .unwrap();
        // Within the leeway past expiry it still works; beyond, it does not.
        f.clock
            .advance(Duration::from_secs(60 + LEEWAY.as_secs() - 1));
        assert!(authorizer
            .authorize("doc-1", Some(&minted.token))
            .await
            .is_ok());
        f.clock.advance(Duration::from_secs(2));
        let expired = authorizer
            .authorize("doc-1", Some(&minted.token))
            .await
            .unwrap_err();
        assert_eq!(
            (expired.code, expired.reason.as_str()),
            (close::UNAUTHORIZED, "token expired")
        );

        let fresh = f
            .plane
            .mint_token(&f.auth, request("*", &[Scope::Write], 600))
            .unwrap();
        f.plane
            .revoke_project_key(
                &f.auth.tenant_id,
                &f.auth.project_id,
                &f.auth.key_id,
                "test",
                &RequestMeta::default(),
            )
            .await
            .unwrap();
        let revoked = authorizer
            .authorize("doc-1", Some(&fresh.token))
            .await
            .unwrap_err();
        assert_eq!(revoked.code, close::UNAUTHORIZED);
        assert!(revoked.reason.contains("revoked"), "{}", revoked.reason);
    }

    #[tokio::test]
    async fn tokens_survive_a_signing_key_rotation_and_new_ones_use_the_new_key() {
        let f = fixture().await;
        let authorizer = TokenAuthorizer::new(f.plane.clone());
        let before = f
            .plane
            .mint_token(&f.auth, request("*", &[Scope::Write], 600))
            .unwrap();
        let old_kid = f.plane.key_ring().current().kid().to_owned();
        let new_kid = f.plane.key_ring().rotate().await.unwrap();
        assert_ne!(old_kid, new_kid);
        assert!(authorizer.authorize("a", Some(&before.token)).await.is_ok());
        let after = f
            .plane
            .mint_token(&f.auth, request("*", &[Scope::Write], 600))
            .unwrap();
        assert_eq!(
            token::peek_kid(&after.token).as_deref(),
            Some(new_kid.as_str())
        );
        let published: Vec<String> = f
            .plane
            .key_ring()
            .jwks()
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert!(published.contains(&old_kid) && published.contains(&new_kid));
        // Once every token the old key could have signed has expired, it is dropped.
        f.clock
            .advance(ControlConfig::default().token_max_ttl + Duration::from_secs(1));
        f.plane.key_ring().reload().await.unwrap();
        let published: Vec<String> = f
            .plane
            .key_ring()
            .jwks()
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(published, vec![new_kid]);
    }

    #[tokio::test]
    async fn mint_refuses_what_it_cannot_honour() {
        let f = fixture().await;
        let mut no_perms = request("*", &[Scope::Write], 600);
        no_perms.permissions.clear();
        let mut too_long = request("*", &[Scope::Write], 600);
        too_long.ttl = Some(ControlConfig::default().token_max_ttl + Duration::from_secs(1));
        let mut not_object = request("*", &[Scope::Write], 600);
        not_object.user_info = Some(serde_json::json!("Ada"));
        let mut no_user = request("*", &[Scope::Write], 600);
        no_user.user_id = Some(" ".to_owned());
        let mut no_scopes = request("*", &[], 600);
        no_scopes.ttl = None;
        for bad in [no_perms, too_long, not_object, no_user, no_scopes] {
            assert!(
                matches!(
                    f.plane.mint_token(&f.auth, bad),
                    Err(ControlError::Invalid(_))
                ),
                "should be refused"
            );
        }
    }
}
