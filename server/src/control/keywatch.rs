//! Keeps open sockets honest about the API keys behind their tokens. A token is checked
//! against its minting key when it connects; afterwards the key can stop working (a roll's
//! grace period ends, a revoke made on another node or while Redis was down, public access
//! switched off for a publishable key). So every node remembers which keys its own
//! connections descend from ([`KeyWatch`], filled by the token authorizer) and re-reads
//! just those keys from the store every [`SWEEP_INTERVAL`] ([`ControlPlane::sweep_keys`]);
//! the caller closes (4401) the connections of every key that stopped.
//!
//! Nothing here is only in memory that matters after a restart: a restarted node has no
//! connections, and each new one is admitted against the stored key row (whose
//! `expires_at` also bounds the connection's lifetime, see the authorizer).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt as _};

use super::error::ControlResult;
use super::plane::ControlPlane;
use crate::ids::{KeyId, TenantId};
use crate::store::control::KeyKindRow;

/// How often a node re-reads the keys its connections descend from.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Store reads in flight at once during a sweep.
const SWEEP_CONCURRENCY: usize = 8;
/// A stopped key is closed again on this many further sweeps: a connection admitted just
/// before the key stopped (its check read the row a moment earlier) joins its room after
/// the first close and is caught by the next.
const CLOSE_AGAIN_SWEEPS: u8 = 2;

/// Why a key no longer vouches for its tokens: the close reason sent with 4401.
pub const KEY_STOPPED: &str = "the API key that issued this token was revoked or rolled";
/// The close reason when a publishable key's project turned public access off.
pub const PUBLIC_ACCESS_OFF: &str = "public access is off for this project";

/// Whether a key still vouches for the tokens it minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It does; `expires_at` (unix ms) is when a rolled key stops.
    Active {
        /// Set on a rolled key: its tokens stop at this time.
        expires_at: Option<i64>,
        /// A publishable key: what its project opens to the public now (its tokens are
        /// held to it on connect).
        public: Option<super::public::PublicAccess>,
    },
    /// It does not, for this reason.
    Stopped(&'static str),
}

/// A key found stopped by a sweep: close its connections in `project_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedKey {
    /// The project the key belongs to.
    pub project_id: String,
    /// The key.
    pub key_id: String,
    /// The close reason.
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
struct Watched {
    tenant_id: TenantId,
    key_id: KeyId,
    project_id: String,
    /// The latest expiry of a token admitted with this key (plus leeway): after it no
    /// connection of the key can be open, so the entry is dropped.
    until: SystemTime,
    /// `Some(n)`: found stopped; closed again on `n` more sweeps, then dropped.
    stopped: Option<(u8, &'static str)>,
}

/// The keys this node's connections descend from.
#[derive(Debug, Default)]
pub struct KeyWatch {
    keys: Mutex<HashMap<KeyId, Watched>>,
}

impl KeyWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, Watched>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that a connection with a token of `key_id` (valid until `until`) was
    /// admitted on this node.
    pub fn watch(&self, tenant_id: &TenantId, key_id: &KeyId, project_id: &str, until: SystemTime) {
        let mut keys = self.lock();
        let entry = keys.entry(key_id.clone()).or_insert_with(|| Watched {
            tenant_id: tenant_id.clone(),
            key_id: key_id.clone(),
            project_id: project_id.to_owned(),
            until,
            stopped: None,
        });
        entry.until = entry.until.max(until);
    }

    /// How many keys are watched (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ControlPlane {
    /// Whether the API key `key_id` of `tenant_id` still vouches for its tokens: it exists,
    /// is neither revoked nor past a roll's grace period, and (a publishable key) its
    /// project still allows public access.
    pub async fn key_standing(
        &self,
        tenant_id: &TenantId,
        key_id: &KeyId,
    ) -> ControlResult<Standing> {
        let Some(row) = self.store().key(tenant_id, key_id).await? else {
            return Ok(Standing::Stopped(KEY_STOPPED));
        };
        if !row.is_active(self.now_ms()) {
            return Ok(Standing::Stopped(KEY_STOPPED));
        }
        let mut public = None;
        if row.kind == KeyKindRow::Publishable {
            let project = match &row.project_id {
                Some(project_id) => self.store().project(tenant_id, project_id).await?,
                None => None,
            };
            public = match project {
                Some(project) => super::public::PublicAccess::of(&project)?,
                None => None,
            };
            if public.is_none() {
                return Ok(Standing::Stopped(PUBLIC_ACCESS_OFF));
            }
        }
        Ok(Standing::Active {
            expires_at: row.expires_at,
            public,
        })
    }

    /// The keys this node watches.
    pub fn key_watch(&self) -> &KeyWatch {
        &self.inner.key_watch
    }

    /// Re-reads every watched key and returns those that stopped (and those found
    /// stopped on the last [`CLOSE_AGAIN_SWEEPS`] sweeps): the caller closes their
    /// connections. A key that cannot be read (store down) is kept for the next sweep.
    pub async fn sweep_keys(&self) -> Vec<StoppedKey> {
        let now = self.now();
        let mut stopped = Vec::new();
        let to_check: Vec<Watched> = {
            let mut keys = self.key_watch().lock();
            keys.retain(|_, w| w.until > now);
            for w in keys.values_mut() {
                if let Some((left, reason)) = w.stopped {
                    stopped.push(StoppedKey {
                        project_id: w.project_id.clone(),
                        key_id: w.key_id.to_string(),
                        reason,
                    });
                    w.stopped = Some((left.saturating_sub(1), reason));
                }
            }
            keys.retain(|_, w| w.stopped.is_none_or(|(left, _)| left > 0));
            keys.values()
                .filter(|w| w.stopped.is_none())
                .cloned()
                .collect()
        };
        let checked: Vec<(Watched, ControlResult<Standing>)> = stream::iter(to_check)
            .map(|w| async move {
                let standing = self.key_standing(&w.tenant_id, &w.key_id).await;
                (w, standing)
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut keys = self.key_watch().lock();
        for (w, standing) in checked {
            match standing {
                Ok(Standing::Active { .. }) => {}
                Ok(Standing::Stopped(reason)) => {
                    if let Some(entry) = keys.get_mut(&w.key_id) {
                        entry.stopped = Some((CLOSE_AGAIN_SWEEPS, reason));
                    }
                    stopped.push(StoppedKey {
                        project_id: w.project_id,
                        key_id: w.key_id.to_string(),
                        reason,
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, key = %w.key_id, "checking an API key failed; retrying");
                }
            }
        }
        stopped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::clock::ManualClock;
    use crate::control::plane::{ProjectAuth, RequestMeta};
    use crate::control::ControlConfig;
    use crate::store::control::{ControlStore, ProjectPatch};
    use crate::store::sqlite::SqliteStore;

    async fn plane() -> (
        tempfile::TempDir,
        Arc<ManualClock>,
        Arc<SqliteStore>,
        ControlPlane,
        ProjectAuth,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let plane = ControlPlane::new(store.clone(), clock.clone(), ControlConfig::default())
            .await
            .unwrap();
        let boot = plane.bootstrap_if_empty().await.unwrap().unwrap();
        let auth = plane
            .authenticate_project_key(boot.secret_key.plaintext.expose(), false)
            .await
            .unwrap();
        (dir, clock, store, plane, auth)
    }

    #[tokio::test]
    async fn a_rolled_key_is_reported_when_its_grace_ends_then_forgotten() {
        let (_dir, clock, _store, plane, auth) = plane().await;
        let until = plane.now() + Duration::from_secs(3600);
        plane.key_watch().watch(
            &auth.tenant_id,
            &auth.key_id,
            auth.project_id.as_str(),
            until,
        );
        assert!(plane.sweep_keys().await.is_empty());
        plane
            .roll_project_key(
                &auth.tenant_id,
                &auth.project_id,
                &auth.key_id,
                Duration::from_secs(60),
                "t",
                &RequestMeta::default(),
            )
            .await
            .unwrap();
        // During the grace period nothing stops.
        clock.advance(Duration::from_secs(59));
        assert!(plane.sweep_keys().await.is_empty());
        clock.advance(Duration::from_secs(1));
        let expected = StoppedKey {
            project_id: auth.project_id.to_string(),
            key_id: auth.key_id.to_string(),
            reason: KEY_STOPPED,
        };
        assert_eq!(plane.sweep_keys().await, vec![expected.clone()]);
        // Closed again on the next sweeps (a racing connect), then forgotten.
        for _ in 0..CLOSE_AGAIN_SWEEPS {
            assert_eq!(plane.sweep_keys().await, vec![expected.clone()]);
        }
        assert!(plane.sweep_keys().await.is_empty());
        assert!(plane.key_watch().is_empty());
    }

    #[tokio::test]
    async fn public_access_off_stops_publishable_keys_and_expired_entries_are_dropped() {
        let (_dir, clock, store, plane, auth) = plane().await;
        let pk = plane
            .create_project_key(
                &auth.tenant_id,
                &auth.project_id,
                KeyKindRow::Publishable,
                "web",
                "t",
                &RequestMeta::default(),
            )
            .await
            .unwrap();
        let public = |on| ProjectPatch {
            public_access: Some(on),
            ..ProjectPatch::default()
        };
        store
            .update_project(&auth.tenant_id, &auth.project_id, &public(true))
            .await
            .unwrap();
        let soon = plane.now() + Duration::from_secs(10);
        let watch = plane.key_watch();
        watch.watch(&auth.tenant_id, &pk.row.id, auth.project_id.as_str(), soon);
        watch.watch(
            &auth.tenant_id,
            &auth.key_id,
            auth.project_id.as_str(),
            soon,
        );
        assert_eq!(
            plane
                .key_standing(&auth.tenant_id, &pk.row.id)
                .await
                .unwrap(),
            Standing::Active {
                expires_at: None,
                public: Some(
                    crate::control::public::PublicAccess::parse(
                        "*",
                        "room:read room:presence:write"
                    )
                    .unwrap()
                ),
            }
        );
        assert!(plane.sweep_keys().await.is_empty());
        store
            .update_project(&auth.tenant_id, &auth.project_id, &public(false))
            .await
            .unwrap();
        let stopped = plane.sweep_keys().await;
        assert_eq!(stopped.len(), 1, "{stopped:?}");
        assert_eq!(stopped[0].key_id, pk.row.id.to_string());
        assert_eq!(stopped[0].reason, PUBLIC_ACCESS_OFF);
        // Past every admitted token's expiry the entries go.
        clock.advance(Duration::from_secs(10));
        assert!(plane.sweep_keys().await.is_empty());
        assert!(watch.is_empty());
    }
}
