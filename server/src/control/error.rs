//! The control plane's error: what went wrong in terms a client can act on. The HTTP
//! layer maps each variant to one status and problem type; nothing here knows HTTP.

use std::time::Duration;

use crate::store::StoreError;

/// Why a control-plane operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request is well-formed but a value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No valid credential: missing, malformed, unknown, revoked or expired.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid credential that does not allow this (a role too low, a publishable key
    /// where public access is off).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing with this id here: also the answer for another tenant's resources, so
    /// their existence is not revealed.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule: the email is registered, the name exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many failed attempts; try again after the given time.
    #[error("too many failed attempts ({limit} per {} s); try again in {} s", window.as_secs(), retry_after.as_secs().max(1))]
    TooManyAttempts {
        /// How long until an attempt is allowed.
        retry_after: Duration,
        /// The limit reached (failures per window).
        limit: u32,
        /// The window the limit counts over.
        window: Duration,
    },
    /// The store is unreachable; retrying later may help.
    #[error("storage unavailable")]
    Unavailable(#[source] StoreError),
    /// A bug or an environment failure (the CSPRNG); details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ControlError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => ControlError::Conflict(message),
            other => ControlError::Unavailable(other),
        }
    }
}

impl From<super::RandomError> for ControlError {
    fn from(error: super::RandomError) -> Self {
        ControlError::Internal(error.to_string())
    }
}

/// Result alias for control-plane operations.
pub type ControlResult<T> = Result<T, ControlError>;
