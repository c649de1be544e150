//! A project's public-access settings: what the anonymous tokens a publishable key
//! mints may reach. With public access on, a project allows one room pattern (an exact
//! room or `prefix*`, `*` for all) and a set of scopes (by default `room:read` and
//! `room:presence:write`; `room:write` only if the project's admin opts in). Minting
//! refuses any permission outside them (400), and the token authorizer checks every
//! publishable-key token against the project's *current* settings on connect, so
//! narrowing them (or switching public access off) applies to tokens already minted; the
//! REST handler that changes them also closes the open connections of the project's
//! publishable keys (4401), which reconnect under the new rules.

use super::error::{ControlError, ControlResult};
use super::token::{Access, RoomPattern, RoomPermission, Scope};
use crate::store::control::ProjectRow;

/// Every scope a project may open to the public, in their canonical order.
const SCOPES: [(Scope, &str); 3] = [
    (Scope::Read, "room:read"),
    (Scope::PresenceWrite, "room:presence:write"),
    (Scope::Write, "room:write"),
];

/// What a project's publishable-key tokens may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAccess {
    /// The rooms.
    pub rooms: RoomPattern,
    /// The scopes, never empty, in canonical order.
    pub scopes: Vec<Scope>,
}

impl PublicAccess {
    /// The settings of `project` when its public access is on.
    pub fn of(project: &ProjectRow) -> ControlResult<Option<Self>> {
        if !project.public_access {
            return Ok(None);
        }
        Self::parse(&project.public_rooms, &project.public_scopes)
            .map(Some)
            .map_err(|e| ControlError::Internal(format!("stored public-access settings: {e}")))
    }

    /// Parses a room pattern and space-separated scopes (what the REST API and the
    /// store hold); the error says what is wrong.
    pub fn parse(rooms: &str, scopes: &str) -> Result<Self, String> {
        let rooms = RoomPattern::new(rooms).map_err(|e| format!("publicRooms: {e}"))?;
        let mut parsed = Vec::new();
        for word in scopes.split_whitespace() {
            let Some((scope, _)) = SCOPES.iter().find(|(_, name)| *name == word) else {
                return Err(format!(
                    "publicScopes: unknown scope {word:?} (room:read, room:presence:write, \
                     room:write)"
                ));
            };
            if !parsed.contains(scope) {
                parsed.push(*scope);
            }
        }
        if !parsed.contains(&Scope::Read) && !parsed.contains(&Scope::Write) {
            return Err(
                "publicScopes must include room:read (a token that cannot read cannot enter)"
                    .to_owned(),
            );
        }
        parsed.sort_by_key(|s| SCOPES.iter().position(|(c, _)| c == s));
        Ok(Self {
            rooms,
            scopes: parsed,
        })
    }

    /// The scopes as stored: space-separated, canonical order.
    pub fn scopes_text(&self) -> String {
        self.scopes
            .iter()
            .filter_map(|s| SCOPES.iter().find(|(c, _)| c == s).map(|(_, n)| *n))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether a requested permission stays inside these settings: every room its
    /// pattern covers is covered here, and every scope is allowed.
    pub fn covers(&self, permission: &RoomPermission) -> bool {
        pattern_within(&permission.room, &self.rooms)
            && permission.scopes.iter().all(|s| self.scopes.contains(s))
    }

    /// `access` (what a token allows in `room`) cut down to these settings.
    pub fn limit(&self, room: &str, access: Access) -> Access {
        if !self.rooms.matches(room) {
            return Access::default();
        }
        let write = self.scopes.contains(&Scope::Write);
        let presence = write || self.scopes.contains(&Scope::PresenceWrite);
        Access {
            read: access.read,
            write: access.write && write,
            presence: access.presence && presence,
            // A public (anonymous) token never gets past a read-only room.
            admin: false,
        }
    }
}

/// Whether every room `inner` covers is covered by `outer`.
fn pattern_within(inner: &RoomPattern, outer: &RoomPattern) -> bool {
    match outer.as_str().strip_suffix('*') {
        // `prefix*` covers an exact room or a narrower prefix that starts with it.
        Some(prefix) => inner.as_str().starts_with(prefix),
        // An exact room covers only itself.
        None => inner == outer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(room: &str, scopes: &[Scope]) -> RoomPermission {
        RoomPermission {
            room: RoomPattern::new(room).unwrap(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn settings_parse_and_refuse_what_is_wrong() {
        let public =
            PublicAccess::parse("lobby-*", "room:presence:write room:read room:read").unwrap();
        assert_eq!(public.scopes, vec![Scope::Read, Scope::PresenceWrite]);
        assert_eq!(public.scopes_text(), "room:read room:presence:write");
        assert!(PublicAccess::parse("a*b", "room:read").is_err());
        assert!(PublicAccess::parse("", "room:read").is_err());
        assert!(PublicAccess::parse("*", "").is_err());
        assert!(PublicAccess::parse("*", "room:presence:write").is_err());
        assert!(PublicAccess::parse("*", "room:read room:admin").is_err());
        let writers = PublicAccess::parse("*", "room:write").unwrap();
        assert_eq!(writers.scopes_text(), "room:write");
    }

    #[test]
    fn a_request_must_stay_inside_the_pattern_and_scopes() {
        let public = PublicAccess::parse("lobby-*", "room:read room:presence:write").unwrap();
        assert!(public.covers(&perm("lobby-1", &[Scope::Read])));
        assert!(public.covers(&perm("lobby-*", &[Scope::Read, Scope::PresenceWrite])));
        assert!(public.covers(&perm("lobby-eu-*", &[Scope::Read])));
        assert!(
            !public.covers(&perm("*", &[Scope::Read])),
            "wider than the pattern"
        );
        assert!(
            !public.covers(&perm("lobby*", &[Scope::Read])),
            "wider than the pattern"
        );
        assert!(!public.covers(&perm("admin", &[Scope::Read])));
        assert!(!public.covers(&perm("lobby-1", &[Scope::Write])));
        let exact = PublicAccess::parse("demo", "room:read").unwrap();
        assert!(exact.covers(&perm("demo", &[Scope::Read])));
        assert!(!exact.covers(&perm("demo*", &[Scope::Read])));
        assert!(!exact.covers(&perm("demo", &[Scope::PresenceWrite])));
    }

    #[test]
    fn access_on_connect_is_cut_to_the_current_settings() {
        let full = Access {
            read: true,
            write: true,
            presence: true,
            admin: false,
        };
        let read_only = PublicAccess::parse("lobby-*", "room:read").unwrap();
        assert_eq!(
            read_only.limit("lobby-1", full),
            Access {
                read: true,
                write: false,
                presence: false,
                admin: false,
            }
        );
        assert!(!read_only.limit("other", full).can_enter());
        let writers = PublicAccess::parse("*", "room:write").unwrap();
        assert_eq!(writers.limit("x", full), full);
    }
}
