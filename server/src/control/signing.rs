//! The token key ring: the Ed25519 key that signs client tokens now, and every key whose
//! tokens may still be alive (published at `/.well-known/jwks.json`). Keys live in the
//! store so every node signs and verifies with the same ones; a node that meets an
//! unknown `kid` reloads (at most once a second), which is how a rotation on one node
//! reaches the others.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::clock::Clock;
use super::error::ControlResult;
use super::plane::{from_ms, to_ms};
use super::token::{self, Jwks, SigningKey, VerifyingKey};
use crate::store::control::{ControlStore, SigningKeyRow};

/// How often a miss may trigger a reload from the store.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

struct Ring {
    current: Arc<SigningKey>,
    verifying: HashMap<String, VerifyingKey>,
    loaded_at: SystemTime,
}

/// The signing key and the verifying keys, cached from the store.
pub struct KeyRing {
    store: Arc<dyn ControlStore>,
    clock: Arc<dyn Clock>,
    /// A retired key is still published for this long (the longest token lifetime).
    token_max_ttl: Duration,
    ring: RwLock<Ring>,
}

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh store.
    pub async fn load(
        store: Arc<dyn ControlStore>,
        clock: Arc<dyn Clock>,
        token_max_ttl: Duration,
    ) -> ControlResult<Self> {
        let ring = build(&*store, &*clock, token_max_ttl).await?;
        Ok(Self {
            store,
            clock,
            token_max_ttl,
            ring: RwLock::new(ring),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<SigningKey> {
        self.read().current.clone()
    }

    /// The verifying key for `kid`, reloading once if it is unknown (another node may
    /// have rotated).
    pub async fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        let stale = {
            let ring = self.read();
            if let Some(key) = ring.verifying.get(kid) {
                return Some(key.clone());
            }
            self.clock
                .now()
                .duration_since(ring.loaded_at)
                .unwrap_or_default()
                >= RELOAD_INTERVAL
        };
        if stale {
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "reloading token signing keys failed");
            }
        }
        self.read().verifying.get(kid).cloned()
    }

    /// Re-reads the keys from the store.
    pub async fn reload(&self) -> ControlResult<()> {
        let ring = build(&*self.store, &*self.clock, self.token_max_ttl).await?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
        Ok(())
    }

    /// Starts signing with a new key; the old ones stay valid (and published) until the
    /// tokens they signed have expired. Returns the new `kid`.
    pub async fn rotate(&self) -> ControlResult<String> {
        let kid = insert_new(&*self.store, &*self.clock).await?;
        self.store
            .retire_signing_keys_except(&kid, to_ms(self.clock.now()))
            .await?;
        self.reload().await?;
        Ok(kid)
    }

    /// The published key set.
    pub fn jwks(&self) -> Jwks {
        let ring = self.read();
        let mut keys: Vec<&VerifyingKey> = ring.verifying.values().collect();
        keys.sort_by(|a, b| a.kid().cmp(b.kid()));
        token::jwks(keys)
    }
}

async fn insert_new(store: &dyn ControlStore, clock: &dyn Clock) -> ControlResult<String> {
    let key = SigningKey::generate()?;
    let kid = key.kid().to_owned();
    store
        .insert_signing_key(&SigningKeyRow {
            kid: kid.clone(),
            secret: key.to_bytes().to_vec(),
            created_at: to_ms(clock.now()),
            retired_at: None,
        })
        .await?;
    Ok(kid)
}

async fn build(
    store: &dyn ControlStore,
    clock: &dyn Clock,
    token_max_ttl: Duration,
) -> ControlResult<Ring> {
    let mut rows = store.signing_keys().await?;
    if !rows.iter().any(|r| r.retired_at.is_none()) {
        insert_new(store, clock).await?;
        rows = store.signing_keys().await?;
    }
    let now = clock.now();
    let mut current = None;
    let mut verifying = HashMap::new();
    // Oldest first: the newest unretired key ends up current (two nodes racing to
    // create the first key both work; the newer wins everywhere after a reload).
    for row in rows {
        let key = match SigningKey::from_slice(&row.secret) {
            Ok(key) => key,
            Err(error) => {
                tracing::error!(kid = %row.kid, %error, "unreadable token signing key skipped");
                continue;
            }
        };
        let alive = row
            .retired_at
            .is_none_or(|at| now.duration_since(from_ms(at)).unwrap_or_default() < token_max_ttl);
        if alive {
            verifying.insert(key.kid().to_owned(), key.verifying_key().clone());
        }
        if row.retired_at.is_none() {
            current = Some(Arc::new(key));
        }
    }
    let current = current.ok_or_else(|| {
        super::error::ControlError::Internal("no usable token signing key".to_owned())
    })?;
    Ok(Ring {
        current,
        verifying,
        loaded_at: now,
    })
}
