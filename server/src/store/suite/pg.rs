//! A Postgres database per test: `CREATE DATABASE tandem_test_<random>` through the
//! maintenance database (default `postgres://postgres@127.0.0.1:5432/postgres`, or
//! `TANDEM_TEST_POSTGRES`), dropped again (best effort) when the test ends.
//!
//! No Postgres answering is a skip with a message on a developer machine and a failure
//! in CI (`CI=true`), where the Postgres tests must not silently not run.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test.
pub(crate) struct TestDb {
    /// Its URL.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a fresh database; `None` if Postgres is unreachable outside CI.
    pub async fn create() -> Option<TestDb> {
        let admin_url =
            std::env::var("TANDEM_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let connected =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url)).await;
        let mut admin = match connected {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => return unreachable(&admin_url, &error.to_string()),
            Err(_) => return unreachable(&admin_url, "no answer within 5 s"),
        };
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!(
            "tandem_test_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        let _ = admin.close().await;
        let (base, _) = admin_url
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .unwrap_or_else(|| panic!("TANDEM_TEST_POSTGRES must end in /<database>"));
        Some(TestDb {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }
}

fn unreachable(url: &str, error: &str) -> Option<TestDb> {
    let message = format!(
        "Postgres is not reachable at {url} ({error}); start it with \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         or point TANDEM_TEST_POSTGRES at one"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message} (CI=true: the Postgres tests must run)");
    }
    eprintln!("skipping a Postgres test: {message}");
    None
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one running this: drop the
        // database from a thread with a runtime of its own. FORCE ends the store's pool
        // connections if the test did not close them (it panicked, say).
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin.execute(sql.as_str()).await.ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
