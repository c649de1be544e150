//! A user's own sign-in sessions: list them (browser, address, created, last seen), end
//! one, end every other. Sessions are stored only as the SHA-256 of their id; a session
//! is named in lists and URLs by `ses_` and the first 12 bytes of that hash in hex,
//! which opens nothing (the cookie is the preimage of the whole hash). Ending a session
//! needs a session (a personal access token cannot sign its owner out), and is written
//! to the user's security log.

use super::accounts::session_hash;
use super::plane::{RequestMeta, UserAuth};
use super::{ControlError, ControlPlane, ControlResult};
use crate::store::control::SessionRow;

/// A session's "last seen" is written at most this often (milliseconds).
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// One session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `ses_…`: names the session, opens nothing.
    pub id: String,
    /// When it began (unix ms).
    pub created_at: i64,
    /// When it ends on its own (unix ms).
    pub expires_at: i64,
    /// When it was last used, to the minute (unix ms; `None` for sessions older than
    /// this feature).
    pub last_seen_at: Option<i64>,
    /// The browser's `User-Agent` when it signed in.
    pub user_agent: Option<String>,
    /// The address it signed in from.
    pub ip: Option<String>,
    /// Whether it is the session asking.
    pub current: bool,
}

/// The public name of a session, from the hash it is stored by.
pub fn public_id(id_hash: &[u8]) -> String {
    let mut out = String::from("ses_");
    for b in id_hash.iter().take(12) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl ControlPlane {
    /// The user's live sessions, newest first; `current` (the asking session's cookie)
    /// is marked.
    pub async fn list_sessions(
        &self,
        auth: &UserAuth,
        current: Option<&str>,
    ) -> ControlResult<Vec<SessionInfo>> {
        let current = current.map(session_hash);
        let rows = self
            .store()
            .list_sessions(&auth.user.id, self.now_ms())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| info(row, current.as_ref()))
            .collect())
    }

    /// Ends one of the user's sessions (its cookie stops working at once). `NotFound`
    /// for an id that is not one of the user's live sessions.
    pub async fn end_session(
        &self,
        auth: &UserAuth,
        id: &str,
        meta: &RequestMeta,
    ) -> ControlResult<()> {
        auth.require_session("sessions can only be ended from a signed-in session")?;
        let rows = self
            .store()
            .list_sessions(&auth.user.id, self.now_ms())
            .await?;
        let row = rows
            .into_iter()
            .find(|row| public_id(&row.id_hash) == id)
            .ok_or(ControlError::NotFound)?;
        let hash: [u8; 32] =
            row.id_hash.as_slice().try_into().map_err(|_| {
                ControlError::Internal("a stored session hash is not 32 bytes".into())
            })?;
        if !self.store().delete_session(&hash).await? {
            return Err(ControlError::NotFound);
        }
        self.record_security_event(
            &auth.user.id,
            "session.ended",
            meta,
            serde_json::json!({ "session": id }),
        )
        .await;
        Ok(())
    }

    /// Ends every session of the user but `current` (the asking session's cookie);
    /// returns how many ended.
    pub async fn end_other_sessions(
        &self,
        auth: &UserAuth,
        current: &str,
        meta: &RequestMeta,
    ) -> ControlResult<u64> {
        auth.require_session("sessions can only be ended from a signed-in session")?;
        let ended = self
            .store()
            .delete_other_sessions(&auth.user.id, &session_hash(current))
            .await?;
        self.record_security_event(
            &auth.user.id,
            "session.ended_others",
            meta,
            serde_json::json!({ "ended": ended }),
        )
        .await;
        Ok(ended)
    }
}

fn info(row: SessionRow, current: Option<&[u8; 32]>) -> SessionInfo {
    SessionInfo {
        id: public_id(&row.id_hash),
        current: current.is_some_and(|c| c.as_slice() == row.id_hash.as_slice()),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_seen_at: row.last_seen_at,
        user_agent: row.user_agent,
        ip: row.ip,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::clock::ManualClock;
    use crate::control::plane::Via;
    use crate::control::ControlConfig;
    use crate::store::sqlite::SqliteStore;

    fn meta(ua: &str, ip: &str) -> RequestMeta {
        RequestMeta {
            ip: Some(ip.to_owned()),
            user_agent: Some(ua.to_owned()),
        }
    }

    #[tokio::test]
    async fn a_user_sees_and_ends_their_own_sessions_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let plane = ControlPlane::new(store, clock.clone(), ControlConfig::default())
            .await
            .unwrap();
        let (ada, ada_tenant) =
            crate::control::test_support::signed_up(&plane, "ada@example.com").await;
        let (bob, _) = crate::control::test_support::signed_up(&plane, "bob@example.com").await;
        let laptop = plane
            .create_session(&ada.user, &meta("Firefox", "192.0.2.1"))
            .await
            .unwrap();
        clock.advance(std::time::Duration::from_secs(5));
        let phone = plane
            .create_session(&ada.user, &meta("Safari", "192.0.2.2"))
            .await
            .unwrap();
        clock.advance(std::time::Duration::from_secs(5));
        let tablet = plane
            .create_session(&ada.user, &meta("Chrome", "192.0.2.3"))
            .await
            .unwrap();
        let bobs = plane
            .create_session(&bob.user, &meta("Edge", "198.51.100.1"))
            .await
            .unwrap();

        let listed = plane
            .list_sessions(&ada, Some(&laptop.cookie_value))
            .await
            .unwrap();
        let agents: Vec<_> = listed.iter().map(|s| s.user_agent.as_deref()).collect();
        assert_eq!(agents, [Some("Chrome"), Some("Safari"), Some("Firefox")]);
        assert_eq!(
            listed.iter().map(|s| s.current).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(listed[2].ip.as_deref(), Some("192.0.2.1"));
        assert!(listed
            .iter()
            .all(|s| s.id.starts_with("ses_") && s.id.len() == 28));

        // Last seen moves when the session is used, at most once a minute.
        let seen = listed[2].last_seen_at.unwrap();
        clock.advance(std::time::Duration::from_secs(61));
        plane.session_user(&laptop.cookie_value).await.unwrap();
        let again = plane.list_sessions(&ada, None).await.unwrap();
        assert_eq!(again[2].last_seen_at, Some(seen + 71_000));

        // Another user's session is not found by its id, and a PAT cannot end any.
        let bob_id = plane.list_sessions(&bob, None).await.unwrap()[0].id.clone();
        assert!(matches!(
            plane
                .end_session(&ada, &bob_id, &RequestMeta::default())
                .await,
            Err(ControlError::NotFound)
        ));
        let by_token = UserAuth {
            user: ada.user.clone(),
            via: Via::Pat {
                key_id: crate::ids::KeyId::generate().unwrap(),
                tenant_id: ada_tenant,
            },
        };
        assert!(matches!(
            plane
                .end_session(&by_token, &listed[1].id, &RequestMeta::default())
                .await,
            Err(ControlError::Forbidden(_))
        ));

        // Ending one: its cookie stops working, the others keep going.
        plane
            .end_session(&ada, &listed[1].id, &RequestMeta::default())
            .await
            .unwrap();
        assert!(plane.session_user(&phone.cookie_value).await.is_err());
        assert!(plane.session_user(&laptop.cookie_value).await.is_ok());
        assert!(matches!(
            plane
                .end_session(&ada, &listed[1].id, &RequestMeta::default())
                .await,
            Err(ControlError::NotFound)
        ));

        // Ending all others keeps only the asking one, and nobody else's.
        let ended = plane
            .end_other_sessions(&ada, &laptop.cookie_value, &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(ended, 1);
        assert!(plane.session_user(&tablet.cookie_value).await.is_err());
        assert!(plane.session_user(&laptop.cookie_value).await.is_ok());
        assert!(plane.session_user(&bobs.cookie_value).await.is_ok());
        let actions: Vec<String> = plane
            .security_log(&ada, None, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(actions.contains(&"session.ended".to_owned()), "{actions:?}");
        assert!(
            actions.contains(&"session.ended_others".to_owned()),
            "{actions:?}"
        );
    }
}
