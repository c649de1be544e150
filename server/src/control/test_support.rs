//! Helpers shared by the control plane's unit tests.

use crate::control::accounts::Signup;
use crate::control::plane::{RequestMeta, UserAuth, Via};
use crate::control::ControlPlane;
use crate::ids::TenantId;

/// Signs `email` up (with a password the policy accepts) and returns them as a signed-in
/// session, with the tenant signup created for them.
pub(crate) async fn signed_up(plane: &ControlPlane, email: &str) -> (UserAuth, TenantId) {
    let created = plane
        .signup(
            Signup {
                email: email.to_owned(),
                password: "correct horse battery".to_owned(),
                tenant_name: None,
                project_name: None,
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    (
        UserAuth {
            user: created.user,
            via: Via::Session,
        },
        created.tenant.id,
    )
}
