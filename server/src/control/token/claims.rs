//! A token's claims: who, which project, which rooms with which scopes.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{from_unix_secs, unix_secs, RoomPattern};
use crate::control::{fill_random, RandomError};

/// What a token lets a client do in rooms; serialised as exactly these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read the document and see presence.
    #[serde(rename = "room:read")]
    Read,
    /// Change the document (implies read and presence).
    #[serde(rename = "room:write")]
    Write,
    /// Publish one's own presence.
    #[serde(rename = "room:presence:write")]
    PresenceWrite,
    /// Write even while the room is read-only (implies write).
    #[serde(rename = "room:admin")]
    Admin,
}

/// Scopes granted in the rooms a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPermission {
    /// The rooms.
    pub room: RoomPattern,
    /// What is allowed there.
    pub scopes: Vec<Scope>,
}

/// What a token allows in one room, all matching permissions combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// May enter, sync and receive updates and presence. False: refuse the connection.
    pub read: bool,
    /// Updates are applied (otherwise refused).
    pub write: bool,
    /// Own presence is published.
    pub presence: bool,
    /// Updates are applied even while the room is read-only.
    pub admin: bool,
}

impl Access {
    /// Whether the token gives any access to the room at all.
    pub fn can_enter(&self) -> bool {
        self.read
    }

    fn grant(&mut self, scope: Scope) {
        match scope {
            Scope::Read => self.read = true,
            // Write is full access: a writer who could not read could not merge, and one
            // who could not show presence would be an invisible editor.
            Scope::Write => {
                self.read = true;
                self.write = true;
                self.presence = true;
            }
            Scope::PresenceWrite => self.presence = true,
            Scope::Admin => {
                self.grant(Scope::Write);
                self.admin = true;
            }
        }
    }
}

/// The payload of a client token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant's id for its end user (opaque to us; shown in presence and usage).
    pub sub: String,
    /// The project the token is for: rooms are looked up in this project only.
    pub prj: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Unique token id (for audit and revocation lists).
    pub jti: String,
    /// Arbitrary user info the tenant attaches; shown to others with this user's
    /// presence. At most [`MAX_USER_INFO_BYTES`] encoded.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub user: serde_json::Value,
    /// Room permissions; no matching permission means no access.
    #[serde(default)]
    pub perms: Vec<RoomPermission>,
    /// The id of the API key that minted the token: revoking that key invalidates the
    /// token (checked on connect) and closes connections that used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The tenant that owns the project (with `key`, what the revocation check looks
    /// up; signed, so it can be trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ten: Option<String>,
}

impl Claims {
    /// Claims for `sub` in project `prj`, issued at `now` and valid for `ttl`, with a
    /// random `jti`, no user info and no permissions yet.
    pub fn new(
        sub: impl Into<String>,
        prj: impl Into<String>,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Self, RandomError> {
        let iat = unix_secs(now);
        let mut jti = [0u8; 16];
        fill_random(&mut jti)?;
        Ok(Self {
            sub: sub.into(),
            prj: prj.into(),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            nbf: None,
            jti: URL_SAFE_NO_PAD.encode(jti),
            user: serde_json::Value::Null,
            perms: Vec::new(),
            key: None,
            ten: None,
        })
    }

    /// When the token expires, for closing the connection then.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_secs(self.exp)
    }

    /// What this token allows in `room`: the union of every permission whose pattern
    /// matches.
    pub fn access(&self, room: &str) -> Access {
        let mut access = Access::default();
        for perm in self.perms.iter().filter(|p| p.room.matches(room)) {
            for &scope in &perm.scopes {
                access.grant(scope);
            }
        }
        access
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::*;
    use super::*;
    use crate::control::clock::{Clock, ManualClock};

    #[test]
    fn claims_use_the_documented_names() {
        let clock = ManualClock::at_unix(1_000);
        let mut claims = Claims::new("u", "p", clock.now(), Duration::from_secs(60)).unwrap();
        claims.nbf = Some(990);
        claims.perms = vec![perm(
            "a",
            &[Scope::Read, Scope::Write, Scope::PresenceWrite],
        )];
        let value = serde_json::to_value(&claims).unwrap();
        assert_eq!(value["sub"], "u");
        assert_eq!(value["prj"], "p");
        assert_eq!(value["iat"], 1_000);
        assert_eq!(value["exp"], 1_060);
        assert_eq!(value["nbf"], 990);
        assert_eq!(
            value["perms"],
            json!([{"room": "a", "scopes": ["room:read", "room:write", "room:presence:write"]}])
        );
        // Absent user info is omitted, and jti is random.
        assert!(value.get("user").is_none());
        let other = Claims::new("u", "p", clock.now(), Duration::from_secs(60)).unwrap();
        assert_ne!(claims.jti, other.jti);
    }

    #[test]
    fn access_combines_every_matching_permission() {
        let clock = ManualClock::default();
        let mut claims = claims(&clock);
        claims.perms = vec![
            perm("*", &[Scope::Read]),
            perm("team-*", &[Scope::PresenceWrite]),
            perm("team-notes", &[Scope::Write]),
            perm("secret", &[]),
        ];
        let read_only = Access {
            read: true,
            write: false,
            presence: false,
            admin: false,
        };
        assert_eq!(claims.access("lobby"), read_only);
        assert_eq!(
            claims.access("team-board"),
            Access {
                read: true,
                write: false,
                presence: true,
                admin: false,
            }
        );
        assert_eq!(
            claims.access("team-notes"),
            Access {
                read: true,
                write: true,
                presence: true,
                admin: false,
            }
        );
        // An empty scope list adds nothing, and does not take away what `*` gave.
        assert_eq!(claims.access("secret"), read_only);
    }

    #[test]
    fn access_scopes_and_no_match() {
        let clock = ManualClock::default();
        let mut claims = claims(&clock);
        claims.perms = vec![
            perm("w", &[Scope::Write]),
            perm("r", &[Scope::Read]),
            perm("p", &[Scope::PresenceWrite]),
            perm("rp", &[Scope::Read, Scope::PresenceWrite]),
        ];
        let w = claims.access("w");
        assert!(w.read && w.write && w.presence && w.can_enter());
        let r = claims.access("r");
        assert!(r.read && !r.write && !r.presence);
        // Presence alone does not let one read the document.
        let p = claims.access("p");
        assert!(!p.read && !p.write && p.presence && !p.can_enter());
        let rp = claims.access("rp");
        assert!(rp.read && !rp.write && rp.presence);
        assert!(!w.admin && !r.admin && !rp.admin);
        // Admin is write and more: it alone writes in a read-only room.
        claims.perms = vec![perm("a", &[Scope::Admin])];
        let a = claims.access("a");
        assert!(a.read && a.write && a.presence && a.admin);
        assert_eq!(
            serde_json::to_value(Scope::Admin).unwrap(),
            json!("room:admin")
        );
        // No matching pattern: no access at all.
        assert_eq!(claims.access("elsewhere"), Access::default());
        assert!(!claims.access("elsewhere").can_enter());
        claims.perms.clear();
        assert_eq!(claims.access("w"), Access::default());
    }
}
