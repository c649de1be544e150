//! Row mapping helpers that need no database types: unique violations to
//! [`StoreError::Conflict`] and stored enum names parsed without panicking. The decoders
//! from a database row to the store's row types are in `store/sql/rows.rs`, compiled
//! once per backend.

use super::StoreError;

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with `message`; any
/// other error stays `Unavailable`.
pub(crate) fn conflict(message: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match error {
        sqlx::Error::Database(ref db) if db.is_unique_violation() => {
            StoreError::Conflict(message.to_owned())
        }
        other => StoreError::Unavailable(other),
    }
}

/// Parses a stored enum name; an unknown one is a decode error (the schema's CHECK
/// constraints should make it impossible, but a bad row must not panic the server).
pub(crate) fn stored<T>(
    column: &str,
    raw: String,
    parse: fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    parse(&raw).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unknown stored value {raw:?}").into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::control::{KeyKindRow, Role};

    #[test]
    fn unknown_stored_names_are_errors_not_panics() {
        assert_eq!(
            stored("role", "owner".to_owned(), Role::parse).unwrap(),
            Role::Owner
        );
        let err = stored("kind", "root".to_owned(), KeyKindRow::parse).unwrap_err();
        assert!(matches!(err, sqlx::Error::ColumnDecode { ref index, .. } if index == "kind"));
        assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
    }
}
