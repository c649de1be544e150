//! Choosing and opening a backend: `postgres://…` is Postgres, `sqlite://…` SQLite, and
//! no URL at all the embedded SQLite file under the data directory.

use std::path::Path;
use std::sync::Arc;

use super::control::ControlStore;
use super::export::Export;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::usage::{SharedUsageStore, UsageStore};
use super::{SharedDocStore, StoreError, StoreResult};

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url`, by its scheme.
    pub fn of_url(url: &str) -> StoreResult<Self> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(StoreError::InvalidUrl(
                "a database URL starts with postgres://, postgresql:// or sqlite://".into(),
            )),
        }
    }
}

/// A validated database URL (`--database-url`). `Debug` hides the user and password.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL, secrets included: pass it to the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its backend.
    pub fn backend(&self) -> Backend {
        // Validated on construction.
        Backend::of_url(&self.0).unwrap_or(Backend::Sqlite)
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Backend::of_url(url).map_err(|e| e.to_string())?;
        Ok(Self(url.to_owned()))
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, Self::Error> {
        url.parse()
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `scheme://user:password@host/db?options` → `scheme://…@host/db`, and no query
        // (where a password may be passed too).
        let url = self.0.split('?').next().unwrap_or_default();
        match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => write!(f, "{scheme}://…@{host}"),
            _ => f.write_str(url),
        }
    }
}

/// One opened store, as each trait its users need (one object behind all of them).
#[derive(Clone)]
pub struct Stores {
    /// Room documents.
    pub docs: SharedDocStore,
    /// The control plane.
    pub control: Arc<dyn ControlStore>,
    /// Whole-installation copy (`tandem store copy`).
    pub export: Arc<dyn Export>,
    /// Usage metering.
    pub usage: SharedUsageStore,
    /// Stripe billing state and the meter outbox.
    pub billing: super::billing::SharedBillingStore,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Opens (creating it if needed) and migrates the store at `url`, or with no URL the
    /// embedded SQLite database in `data_dir`.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> StoreResult<Self> {
        match url {
            None => Ok(Self::from_store(SqliteStore::open_dir(data_dir).await?)),
            Some(url) => match Backend::of_url(url)? {
                Backend::Sqlite => Ok(Self::from_store(SqliteStore::open_url(url).await?)),
                Backend::Postgres => Ok(Self::from_store(PostgresStore::open_url(url).await?)),
            },
        }
    }

    /// Opens and migrates the store at `url`, which must already exist (a SQLite file
    /// is not created): the source of a copy.
    pub async fn open_existing(url: &str) -> StoreResult<Self> {
        match Backend::of_url(url)? {
            Backend::Sqlite => Ok(Self::from_store(SqliteStore::open_existing_url(url).await?)),
            Backend::Postgres => Ok(Self::from_store(PostgresStore::open_url(url).await?)),
        }
    }

    fn from_store<S>(store: S) -> Self
    where
        S: super::DocStore + ControlStore + Export + UsageStore + super::billing::BillingStore,
    {
        let store = Arc::new(store);
        Self {
            docs: store.clone(),
            control: store.clone(),
            export: store.clone(),
            billing: store.clone(),
            usage: store,
        }
    }

    /// Closes the store's connections.
    pub async fn close(&self) {
        self.docs.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        for (url, backend) in [
            ("postgres://u@127.0.0.1/db", Backend::Postgres),
            ("postgresql://u@127.0.0.1/db", Backend::Postgres),
            ("POSTGRES://u@host/db", Backend::Postgres),
            ("sqlite://data/tandem.db", Backend::Sqlite),
            ("sqlite:tandem.db", Backend::Sqlite),
        ] {
            assert_eq!(Backend::of_url(url).unwrap(), backend, "{url}");
        }
        for url in ["mysql://x", "tandem.db", "", "redis://127.0.0.1"] {
            assert!(matches!(
                Backend::of_url(url),
                Err(StoreError::InvalidUrl(_))
            ));
            assert!(url.parse::<DatabaseUrl>().is_err());
        }
    }

    #[test]
    fn debug_hides_the_password() {
        for (url, shown) in [
            (
                "postgres://tandem:s3cret@db.internal:5432/tandem?sslmode=disable",
                "postgres://…@db.internal:5432/tandem",
            ),
            (
                "postgres://127.0.0.1/tandem?password=s3cret",
                "postgres://127.0.0.1/tandem",
            ),
            ("sqlite://data/tandem.db", "sqlite://data/tandem.db"),
        ] {
            let parsed: DatabaseUrl = url.parse().unwrap();
            assert_eq!(format!("{parsed:?}"), shown);
            assert_eq!(parsed.expose(), url);
        }
        let toml: DatabaseUrl = serde_json::from_str("\"postgresql://x@h/d\"").unwrap();
        assert_eq!(toml.backend(), Backend::Postgres);
        assert!(serde_json::from_str::<DatabaseUrl>("\"mysql://x\"").is_err());
    }

    #[test]
    fn the_config_file_and_flags_take_a_database_url() {
        use crate::config::{Config, ServeOptions};
        let file: ServeOptions =
            toml::from_str("database-url = \"postgres://tandem@127.0.0.1/tandem\"").unwrap();
        let config = Config::resolve(file).unwrap();
        let url = config.database_url.unwrap();
        assert_eq!(url.backend(), Backend::Postgres);
        assert!(toml::from_str::<ServeOptions>("database-url = \"tandem.db\"").is_err());
        let none = Config::resolve(ServeOptions::default()).unwrap();
        assert!(
            none.database_url.is_none(),
            "SQLite in --data-dir by default"
        );
    }
}
