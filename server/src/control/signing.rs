//! The token key ring: the Ed25519 key that signs client tokens now, and every key whose
//! tokens may still be alive (published at `/.well-known/jwks.json`). Keys live in the
//! store so every node signs and verifies with the same ones; a node that meets an
//! unknown `kid` reloads (at most once a second), which is how a rotation on one node
//! reaches the others.
//!
//! With a KEK ([`super::kek`]) the seeds are sealed at rest: new keys are stored sealed,
//! plaintext seeds left from before are sealed when the ring loads, and seeds sealed
//! under the KEK being rotated out (`--old-kek-file`) are re-sealed under the new one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::clock::Clock;
use super::error::ControlError;
use super::error::ControlResult;
use super::kek::{self, Kek};
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

/// The key-encryption keys the seeds are sealed with.
#[derive(Debug, Clone, Default)]
pub struct Keks {
    /// Seals new seeds and opens stored ones; `None`: seeds are stored in clear.
    pub current: Option<Arc<Kek>>,
    /// Being rotated out: seeds sealed under it are opened and re-sealed under `current`.
    pub old: Option<Arc<Kek>>,
}

/// The signing key and the verifying keys, cached from the store.
pub struct KeyRing {
    store: Arc<dyn ControlStore>,
    clock: Arc<dyn Clock>,
    keks: Keks,
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
        keks: Keks,
    ) -> ControlResult<Self> {
        seal_stored(&*store, &keks).await?;
        let ring = build(&*store, &*clock, token_max_ttl, &keks).await?;
        Ok(Self {
            store,
            clock,
            keks,
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
        let ring = build(&*self.store, &*self.clock, self.token_max_ttl, &self.keks).await?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
        Ok(())
    }

    /// Starts signing with a new key; the old ones stay valid (and published) until the
    /// tokens they signed have expired. Returns the new `kid`.
    pub async fn rotate(&self) -> ControlResult<String> {
        let kid = insert_new(&*self.store, &*self.clock, &self.keks).await?;
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

/// Seals plaintext seeds under the current KEK and re-seals those under the old one.
async fn seal_stored(store: &dyn ControlStore, keks: &Keks) -> ControlResult<()> {
    let Some(current) = &keks.current else {
        return Ok(());
    };
    for row in store.signing_keys().await? {
        let seed = if kek::is_sealed(&row.secret) {
            match (current.open(&row.kid, &row.secret), &keks.old) {
                (Ok(_), _) => continue,
                (Err(kek::KekError::OtherKek), Some(old)) => old.open(&row.kid, &row.secret),
                (Err(error), _) => Err(error),
            }
            .map_err(|error| unreadable(&row.kid, &error))?
        } else {
            let Ok(seed) = <[u8; 32]>::try_from(row.secret.as_slice()) else {
                return Err(unreadable(&row.kid, &"not a 32-byte seed"));
            };
            seed
        };
        let sealed = current.seal(&row.kid, &seed)?;
        store.set_signing_key_secret(&row.kid, &sealed).await?;
        tracing::info!(kid = %row.kid, "token signing key sealed under the KEK");
    }
    Ok(())
}

fn unreadable(kid: &str, error: &dyn std::fmt::Display) -> ControlError {
    ControlError::Internal(format!(
        "token signing key {kid} cannot be read ({error}): start with the KEK it was sealed \
         under (--kek-file / TANDEM_KEK), or with --old-kek-file while rotating"
    ))
}

/// The seed of a stored key: opened with the KEK if sealed.
fn open_seed(row: &SigningKeyRow, keks: &Keks) -> ControlResult<SigningKey> {
    if kek::is_sealed(&row.secret) {
        let kek = keks
            .current
            .as_ref()
            .ok_or_else(|| unreadable(&row.kid, &"it is sealed and no KEK is configured"))?;
        let mut seed = kek
            .open(&row.kid, &row.secret)
            .or_else(|error| match (&error, &keks.old) {
                (kek::KekError::OtherKek, Some(old)) => old.open(&row.kid, &row.secret),
                _ => Err(error),
            })
            .map_err(|error| unreadable(&row.kid, &error))?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(key)
    } else {
        SigningKey::from_slice(&row.secret).map_err(|error| unreadable(&row.kid, &error))
    }
}

async fn insert_new(
    store: &dyn ControlStore,
    clock: &dyn Clock,
    keks: &Keks,
) -> ControlResult<String> {
    let key = SigningKey::generate()?;
    let kid = key.kid().to_owned();
    let secret = match &keks.current {
        Some(kek) => kek.seal(&kid, &key.to_bytes())?,
        None => key.to_bytes().to_vec(),
    };
    store
        .insert_signing_key(&SigningKeyRow {
            kid: kid.clone(),
            secret,
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
    keks: &Keks,
) -> ControlResult<Ring> {
    let mut rows = store.signing_keys().await?;
    if !rows.iter().any(|r| r.retired_at.is_none()) {
        insert_new(store, clock, keks).await?;
        rows = store.signing_keys().await?;
    }
    let now = clock.now();
    let mut current = None;
    let mut verifying = HashMap::new();
    // Oldest first: the newest unretired key ends up current (two nodes racing to
    // create the first key both work; the newer wins everywhere after a reload).
    for row in rows {
        let key = match open_seed(&row, keks) {
            Ok(key) => key,
            // The key that signs now must be readable: refuse to start (or reload)
            // rather than mint with a key other nodes cannot verify.
            Err(error) if row.retired_at.is_none() => return Err(error),
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
    let current =
        current.ok_or_else(|| ControlError::Internal("no usable token signing key".to_owned()))?;
    Ok(Ring {
        current,
        verifying,
        loaded_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::clock::ManualClock;
    use crate::control::token::{sign, verify, Claims};
    use crate::store::sqlite::SqliteStore;

    const TTL: Duration = Duration::from_secs(3600);

    fn kek() -> Arc<Kek> {
        Arc::new(Kek::parse(&Kek::generate_hex().unwrap()).unwrap())
    }

    fn keks(current: Option<&Arc<Kek>>, old: Option<&Arc<Kek>>) -> Keks {
        Keks {
            current: current.cloned(),
            old: old.cloned(),
        }
    }

    async fn ring(store: &Arc<SqliteStore>, keks: Keks) -> ControlResult<KeyRing> {
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        KeyRing::load(store.clone(), clock, TTL, keks).await
    }

    /// Every key a thief could build from a stored secret: the secret itself if it is
    /// 32 bytes, and every 32-byte window of it.
    fn candidate_kids(secret: &[u8]) -> Vec<String> {
        secret
            .windows(32)
            .filter_map(|w| SigningKey::from_slice(w).ok())
            .map(|k| k.kid().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn with_a_kek_the_stored_seed_cannot_sign_and_the_ring_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let kek = kek();
        let first = ring(&store, keks(Some(&kek), None)).await.unwrap();
        let kid = first.current().kid().to_owned();
        let claims = Claims::new("u", "p", SystemTime::now(), TTL).unwrap();
        let token = sign(&claims, &first.current()).unwrap();

        // The database dump: the row holds no usable seed.
        let rows = store.signing_keys().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert!(kek::is_sealed(&rows[0].secret));
        assert!(!candidate_kids(&rows[0].secret).contains(&kid));
        assert_ne!(rows[0].secret, first.current().to_bytes().to_vec());

        // A restart with the KEK signs and verifies with the same key.
        let again = ring(&store, keks(Some(&kek), None)).await.unwrap();
        assert_eq!(again.current().kid(), kid);
        let key = again.verifying_key(&kid).await;
        assert!(verify(&token, |_| key, SystemTime::now(), Duration::ZERO).is_ok());
        // Without it, or with another KEK, the server refuses to start.
        assert!(ring(&store, Keks::default()).await.is_err());
        assert!(ring(&store, keks(Some(&self::kek()), None)).await.is_err());
        // New keys are stored sealed too.
        let new_kid = again.rotate().await.unwrap();
        let rows = store.signing_keys().await.unwrap();
        assert!(rows.iter().all(|r| kek::is_sealed(&r.secret)));
        assert!(rows
            .iter()
            .all(|r| !candidate_kids(&r.secret).contains(&new_kid)));
    }

    #[tokio::test]
    async fn plaintext_seeds_are_sealed_on_start_and_a_kek_rotation_reseals_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        // Before KEKs: a plaintext seed (what older servers wrote).
        let plain = ring(&store, Keks::default()).await.unwrap();
        let kid = plain.current().kid().to_owned();
        let rows = store.signing_keys().await.unwrap();
        assert_eq!(rows[0].secret, plain.current().to_bytes().to_vec());

        let old = kek();
        let sealed = ring(&store, keks(Some(&old), None)).await.unwrap();
        assert_eq!(sealed.current().kid(), kid);
        let rows = store.signing_keys().await.unwrap();
        assert!(kek::is_sealed(&rows[0].secret));
        assert_eq!(
            old.open(&kid, &rows[0].secret).unwrap(),
            plain.current().to_bytes()
        );

        // Rotation: old + new re-seals under new; afterwards new alone suffices.
        let new = kek();
        ring(&store, keks(Some(&new), Some(&old))).await.unwrap();
        let rows = store.signing_keys().await.unwrap();
        assert_eq!(
            new.open(&kid, &rows[0].secret).unwrap(),
            plain.current().to_bytes()
        );
        assert_eq!(
            old.open(&kid, &rows[0].secret),
            Err(kek::KekError::OtherKek)
        );
        let after = ring(&store, keks(Some(&new), None)).await.unwrap();
        assert_eq!(after.current().kid(), kid);
        assert!(ring(&store, keks(Some(&old), None)).await.is_err());
    }
}
