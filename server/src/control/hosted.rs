//! Hosted signup (the dashboard's front door): an account as [`ControlPlane::signup`]
//! makes it, plus the `production` project beside `development` and a first secret key,
//! each through the same operation the REST API uses.

use super::accounts::{SignedUp, Signup};
use super::error::ControlResult;
use super::keys::CreatedKey;
use super::plane::{ControlPlane, RequestMeta, UserAuth, Via};
use crate::store::control::{KeyKindRow, ProjectRow, Role};

/// The second project every hosted signup gets.
pub const PRODUCTION: &str = "production";

/// What a hosted signup created.
#[derive(Debug)]
pub struct HostedSignup {
    /// The user, their tenant and the `development` project.
    pub account: SignedUp,
    /// The `production` project.
    pub production: ProjectRow,
    /// A secret key for `development` (its plaintext is shown once).
    pub secret_key: CreatedKey,
}

impl ControlPlane {
    /// Signs a user up with a `development` and a `production` project and a secret key
    /// for `development`. `None` when the email was taken: [`ControlPlane::signup`] then
    /// created nothing (and told the address's owner), and neither does this.
    pub async fn hosted_signup(
        &self,
        signup: Signup,
        meta: &RequestMeta,
    ) -> ControlResult<Option<HostedSignup>> {
        let account = self
            .signup(
                Signup {
                    project_name: None,
                    ..signup
                },
                meta,
            )
            .await?;
        if !account.created {
            return Ok(None);
        }
        let auth = UserAuth {
            user: account.user.clone(),
            via: Via::Session,
        };
        let access = self
            .tenant_access(&auth, &account.tenant.id, Role::Owner)
            .await?;
        let production = self
            .create_project(&access, PRODUCTION, false, meta)
            .await?;
        let secret_key = self
            .create_project_key(
                &account.tenant.id,
                &account.project.id,
                KeyKindRow::Secret,
                "default",
                &access.actor,
                meta,
            )
            .await?;
        Ok(Some(HostedSignup {
            account,
            production,
            secret_key,
        }))
    }
}
