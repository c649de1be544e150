//! Typed, prefixed identifiers (`usr_…`, `ten_…`, `prj_…`, `key_…`): a user id cannot be
//! passed where a project id is expected, and an id in a log or a support ticket says
//! what it names. The random part is 96 bits from the OS CSPRNG, hex-encoded.

use std::fmt;

use crate::control::{fill_random, RandomError};

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with, underscore included.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Result<Self, RandomError> {
                Ok(Self(format!("{}{}", Self::PREFIX, random_hex()?)))
            }

            /// Wraps a string read back from the store (trusted: we wrote it).
            pub fn from_db(raw: String) -> Self {
                Self(raw)
            }

            /// Parses an id from a request: right prefix, then 1–64 ASCII alphanumerics.
            /// Anything else is `None` (the caller answers 404, as for an unknown id).
            pub fn parse(raw: &str) -> Option<Self> {
                let rest = raw.strip_prefix(Self::PREFIX)?;
                (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| Self(raw.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-9a-zA-Z]{1,64}$")))
                    .examples([concat!($prefix, "4f1c2b9a0e7d6c5b4a392817")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// A user account.
    UserId,
    "usr_"
);
prefixed_id!(
    /// A tenant: the billing entity that owns projects.
    TenantId,
    "ten_"
);
prefixed_id!(
    /// A project: a namespace of rooms and keys inside a tenant.
    ProjectId,
    "prj_"
);
prefixed_id!(
    /// An API key or personal access token (the id, never the secret).
    KeyId,
    "key_"
);
prefixed_id!(
    /// An invitation to join a tenant (the id, never the token of its link).
    InvitationId,
    "inv_"
);

prefixed_id!(
    /// A webhook endpoint of a project.
    WebhookId,
    "whk_"
);
prefixed_id!(
    /// An event of a project (the change feed, and the `webhook-id` of its deliveries).
    EventId,
    "evt_"
);
prefixed_id!(
    /// One event's delivery to one webhook endpoint.
    DeliveryId,
    "dlv_"
);

fn random_hex() -> Result<String, RandomError> {
    let mut bytes = [0u8; 12];
    fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_carry_their_prefix() {
        let id = ProjectId::generate().unwrap();
        assert!(id.as_str().starts_with("prj_"));
        assert_eq!(id.as_str().len(), 4 + 24);
        assert_eq!(ProjectId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(ProjectId::generate().unwrap(), id);
    }

    #[test]
    fn parse_refuses_other_kinds_and_path_tricks() {
        assert_eq!(ProjectId::parse("ten_abc"), None);
        assert_eq!(ProjectId::parse("prj_"), None);
        assert_eq!(ProjectId::parse("prj_../x"), None);
        assert_eq!(ProjectId::parse("prj_a%2Fb"), None);
        assert_eq!(ProjectId::parse(&format!("prj_{}", "a".repeat(65))), None);
        assert!(ProjectId::parse("prj_abc123").is_some());
    }
}
