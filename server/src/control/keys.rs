//! API keys and personal access tokens: creation (the plaintext is returned once and
//! never stored), listing, revocation (immediate), rolling (the old key keeps working
//! for a chosen grace period), and authentication of a request's key.

use std::time::Duration;

use super::apikey::{self, KeyKind, Plaintext};
use super::error::{ControlError, ControlResult};
use super::plane::{AuditEvent, ControlPlane, ProjectAuth, RequestMeta, UserAuth, Via};
use crate::ids::{KeyId, ProjectId, TenantId};
use crate::store::control::{KeyFilter, KeyKindRow, KeyRow};

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A key just created: the only time its plaintext exists outside the client.
#[derive(Debug)]
pub struct CreatedKey {
    /// The stored row.
    pub row: KeyRow,
    /// The key itself (redacted in `Debug`).
    pub plaintext: Plaintext,
}

fn kind_of(kind: KeyKindRow) -> KeyKind {
    match kind {
        KeyKindRow::Secret => KeyKind::Secret,
        KeyKindRow::Publishable => KeyKind::Publishable,
        KeyKindRow::Pat => KeyKind::PersonalAccessToken,
    }
}

fn check_key_name(name: &str) -> ControlResult<String> {
    let name = name.trim();
    if name.chars().count() > MAX_KEY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ControlError::Invalid(format!(
            "key names are at most {MAX_KEY_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name.to_owned())
}

impl ControlPlane {
    async fn insert_new_key(
        &self,
        tenant_id: &TenantId,
        project_id: Option<&ProjectId>,
        user_id: Option<&crate::ids::UserId>,
        kind: KeyKindRow,
        name: &str,
        expires_at: Option<i64>,
    ) -> ControlResult<CreatedKey> {
        let (plaintext, hash) = apikey::generate(kind_of(kind))?;
        let row = KeyRow {
            id: KeyId::generate()?,
            tenant_id: tenant_id.clone(),
            project_id: project_id.cloned(),
            user_id: user_id.cloned(),
            kind,
            name: check_key_name(name)?,
            display_prefix: apikey::display_prefix(plaintext.expose()).to_owned(),
            created_at: self.now_ms(),
            last_used_at: None,
            expires_at,
            revoked_at: None,
        };
        self.store().insert_key(&row, hash.as_bytes()).await?;
        Ok(CreatedKey { row, plaintext })
    }

    /// Creates a secret or publishable key for a project of the tenant.
    pub async fn create_project_key(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        kind: KeyKindRow,
        name: &str,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<CreatedKey> {
        if kind == KeyKindRow::Pat {
            return Err(ControlError::Invalid(
                "project keys are secret or publishable".to_owned(),
            ));
        }
        self.store()
            .project(tenant_id, project_id)
            .await?
            .ok_or(ControlError::NotFound)?;
        let created = self
            .insert_new_key(tenant_id, Some(project_id), None, kind, name, None)
            .await?;
        self.audit(AuditEvent {
            tenant_id,
            project_id: Some(project_id),
            actor,
            action: "key.created",
            target: Some(created.row.id.as_str()),
            meta,
            details: serde_json::json!({ "kind": kind.as_str(), "name": created.row.name }),
        })
        .await;
        Ok(created)
    }

    /// The project's keys, newest first (revoked ones included, marked).
    pub async fn list_project_keys(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> ControlResult<Vec<KeyRow>> {
        self.store()
            .project(tenant_id, project_id)
            .await?
            .ok_or(ControlError::NotFound)?;
        Ok(self
            .store()
            .list_keys(tenant_id, &KeyFilter::Project(project_id.clone()))
            .await?)
    }

    /// A project key by id (404 for another project's key or a PAT).
    pub async fn project_key(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        key_id: &KeyId,
    ) -> ControlResult<KeyRow> {
        self.store()
            .key(tenant_id, key_id)
            .await?
            .filter(|k| k.project_id.as_ref() == Some(project_id))
            .ok_or(ControlError::NotFound)
    }

    /// Revokes a project key at once. The caller closes connections using it.
    pub async fn revoke_project_key(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        key_id: &KeyId,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<KeyRow> {
        self.project_key(tenant_id, project_id, key_id).await?;
        let row = self
            .store()
            .revoke_key(tenant_id, key_id, self.now_ms())
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id,
            project_id: Some(project_id),
            actor,
            action: "key.revoked",
            target: Some(key_id.as_str()),
            meta,
            details: serde_json::json!({}),
        })
        .await;
        Ok(row)
    }

    /// Rolls a project key: a new key with the same name and kind, and the old one
    /// keeps working for `grace` (at most `max_roll_grace`; zero stops it now).
    pub async fn roll_project_key(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        key_id: &KeyId,
        grace: Duration,
        actor: &str,
        meta: &RequestMeta,
    ) -> ControlResult<(CreatedKey, KeyRow)> {
        if grace > self.config().max_roll_grace {
            return Err(ControlError::Invalid(format!(
                "the grace period is at most {} seconds",
                self.config().max_roll_grace.as_secs()
            )));
        }
        let old = self.project_key(tenant_id, project_id, key_id).await?;
        if !old.is_active(self.now_ms()) {
            return Err(ControlError::Conflict(
                "this key is revoked or expired; create a new one instead".to_owned(),
            ));
        }
        let created = self
            .insert_new_key(tenant_id, Some(project_id), None, old.kind, &old.name, None)
            .await?;
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let old = self
            .store()
            .expire_key(tenant_id, key_id, self.now_ms().saturating_add(grace_ms))
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id,
            project_id: Some(project_id),
            actor,
            action: "key.rolled",
            target: Some(key_id.as_str()),
            meta,
            details: serde_json::json!({
                "new_key": created.row.id.as_str(),
                "grace_seconds": grace.as_secs(),
            }),
        })
        .await;
        Ok((created, old))
    }

    /// Creates a personal access token for `user` in the tenant.
    pub async fn create_pat(
        &self,
        tenant_id: &TenantId,
        auth: &UserAuth,
        name: &str,
        expires_in: Option<Duration>,
        meta: &RequestMeta,
    ) -> ControlResult<CreatedKey> {
        let expires_at = expires_in.map(|d| {
            self.now_ms()
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        let created = self
            .insert_new_key(
                tenant_id,
                None,
                Some(&auth.user.id),
                KeyKindRow::Pat,
                name,
                expires_at,
            )
            .await?;
        self.audit(AuditEvent {
            tenant_id,
            project_id: None,
            actor: auth.user.id.as_str(),
            action: "pat.created",
            target: Some(created.row.id.as_str()),
            meta,
            details: serde_json::json!({ "name": created.row.name }),
        })
        .await;
        Ok(created)
    }

    /// The user's personal access tokens in the tenant.
    pub async fn list_pats(
        &self,
        tenant_id: &TenantId,
        auth: &UserAuth,
    ) -> ControlResult<Vec<KeyRow>> {
        Ok(self
            .store()
            .list_keys(tenant_id, &KeyFilter::PatsOf(auth.user.id.clone()))
            .await?)
    }

    /// Revokes one of the user's own personal access tokens.
    pub async fn revoke_pat(
        &self,
        tenant_id: &TenantId,
        auth: &UserAuth,
        key_id: &KeyId,
        meta: &RequestMeta,
    ) -> ControlResult<KeyRow> {
        self.store()
            .key(tenant_id, key_id)
            .await?
            .filter(|k| k.kind == KeyKindRow::Pat && k.user_id.as_ref() == Some(&auth.user.id))
            .ok_or(ControlError::NotFound)?;
        let row = self
            .store()
            .revoke_key(tenant_id, key_id, self.now_ms())
            .await?
            .ok_or(ControlError::NotFound)?;
        self.audit(AuditEvent {
            tenant_id,
            project_id: None,
            actor: auth.user.id.as_str(),
            action: "pat.revoked",
            target: Some(key_id.as_str()),
            meta,
            details: serde_json::json!({}),
        })
        .await;
        Ok(row)
    }

    /// Looks up an active key by its plaintext; every failure is the same 401 (a
    /// malformed, unknown, revoked or expired key are not told apart).
    async fn active_key(&self, plaintext: &str, expected: KeyKind) -> ControlResult<KeyRow> {
        const INVALID: &str = "invalid, revoked or expired API key";
        let parsed = apikey::parse_as(plaintext, expected)
            .map_err(|_| ControlError::Unauthenticated(INVALID))?;
        let now = self.now_ms();
        let key = self
            .store()
            .key_by_hash(parsed.hash.as_bytes())
            .await?
            .filter(|k| k.is_active(now) && kind_of(k.kind) == expected)
            .ok_or(ControlError::Unauthenticated(INVALID))?;
        if key
            .last_used_at
            .is_none_or(|at| now - at >= TOUCH_INTERVAL_MS)
        {
            let store = self.store().clone();
            let id = key.id.clone();
            tokio::spawn(async move {
                if let Err(error) = store.touch_key(&id, now).await {
                    tracing::debug!(%error, "recording key use failed");
                }
            });
        }
        Ok(key)
    }

    /// Authenticates a project API key: an `sk_…`, or a `pk_…` when `allow_publishable`
    /// (the token route; the project must allow public access then).
    pub async fn authenticate_project_key(
        &self,
        plaintext: &str,
        allow_publishable: bool,
    ) -> ControlResult<ProjectAuth> {
        let publishable = plaintext.starts_with(KeyKind::Publishable.prefix());
        if publishable && !allow_publishable {
            return Err(ControlError::Unauthenticated(
                "this route needs a secret key (sk_…); publishable keys only mint tokens",
            ));
        }
        let expected = if publishable {
            KeyKind::Publishable
        } else {
            KeyKind::Secret
        };
        let key = self.active_key(plaintext, expected).await?;
        let project_id = key.project_id.clone().ok_or(ControlError::Unauthenticated(
            "invalid, revoked or expired API key",
        ))?;
        let mut public = None;
        if publishable {
            let project = self
                .store()
                .project(&key.tenant_id, &project_id)
                .await?
                .ok_or(ControlError::Unauthenticated(
                    "invalid, revoked or expired API key",
                ))?;
            public = super::public::PublicAccess::of(&project)?;
            if public.is_none() {
                return Err(ControlError::Forbidden(
                    "public access is off for this project; enable it or use a secret key"
                        .to_owned(),
                ));
            }
        }
        let limits = self.tenant_limits(&key.tenant_id).await?;
        Ok(ProjectAuth {
            tenant_id: key.tenant_id,
            project_id,
            key_id: key.id,
            publishable,
            public,
            limits,
        })
    }

    /// Authenticates a personal access token.
    pub async fn authenticate_pat(&self, plaintext: &str) -> ControlResult<UserAuth> {
        let key = self
            .active_key(plaintext, KeyKind::PersonalAccessToken)
            .await?;
        let user_id = key.user_id.clone().ok_or(ControlError::Unauthenticated(
            "invalid, revoked or expired API key",
        ))?;
        let user =
            self.store()
                .user_by_id(&user_id)
                .await?
                .ok_or(ControlError::Unauthenticated(
                    "invalid, revoked or expired API key",
                ))?;
        Ok(UserAuth {
            user,
            via: Via::Pat {
                key_id: key.id,
                tenant_id: key.tenant_id,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::clock::ManualClock;
    use crate::control::ControlConfig;
    use crate::store::control::{ControlStore, ProjectPatch};
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn revoke_roll_and_publishable_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let plane = ControlPlane::new(store.clone(), clock.clone(), ControlConfig::default())
            .await
            .unwrap();
        let meta = RequestMeta::default();
        let boot = plane.bootstrap_if_empty().await.unwrap().unwrap();
        let (tenant, project) = (&boot.account.tenant.id, &boot.account.project.id);
        let sk = boot.secret_key.plaintext.expose().to_owned();
        let auth = plane.authenticate_project_key(&sk, false).await.unwrap();
        assert_eq!(&auth.project_id, project);

        // Roll with a grace period: both work until it ends, then only the new one.
        let (new, old) = plane
            .roll_project_key(
                tenant,
                project,
                &auth.key_id,
                Duration::from_secs(60),
                "t",
                &meta,
            )
            .await
            .unwrap();
        assert_eq!(old.expires_at, Some(plane.now_ms() + 60_000));
        clock.advance(Duration::from_secs(59));
        assert!(plane.authenticate_project_key(&sk, false).await.is_ok());
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            plane.authenticate_project_key(&sk, false).await,
            Err(ControlError::Unauthenticated(_))
        ));
        let sk2 = new.plaintext.expose().to_owned();
        let auth2 = plane.authenticate_project_key(&sk2, false).await.unwrap();
        // Rolling an expired key is refused; revoking takes effect at once.
        assert!(matches!(
            plane
                .roll_project_key(tenant, project, &auth.key_id, Duration::ZERO, "t", &meta)
                .await,
            Err(ControlError::Conflict(_))
        ));
        plane
            .revoke_project_key(tenant, project, &auth2.key_id, "t", &meta)
            .await
            .unwrap();
        assert!(plane.authenticate_project_key(&sk2, false).await.is_err());

        // Publishable keys: only where allowed, only where public access is on.
        let pk = plane
            .create_project_key(tenant, project, KeyKindRow::Publishable, "web", "t", &meta)
            .await
            .unwrap();
        let pk = pk.plaintext.expose().to_owned();
        assert!(matches!(
            plane.authenticate_project_key(&pk, false).await,
            Err(ControlError::Unauthenticated(_))
        ));
        assert!(matches!(
            plane.authenticate_project_key(&pk, true).await,
            Err(ControlError::Forbidden(_))
        ));
        store
            .update_project(
                tenant,
                project,
                &ProjectPatch {
                    public_access: Some(true),
                    ..ProjectPatch::default()
                },
            )
            .await
            .unwrap();
        let public = plane.authenticate_project_key(&pk, true).await.unwrap();
        assert!(public.publishable);
        // A key of the wrong kind, or a typo, is the same 401 as an unknown key.
        let typo = format!("{}x", &sk2[..sk2.len() - 1]);
        for bad in [typo.as_str(), "sk_short", "pat_x", ""] {
            assert!(matches!(
                plane.authenticate_project_key(bad, false).await,
                Err(ControlError::Unauthenticated(_))
            ));
        }
    }
}
