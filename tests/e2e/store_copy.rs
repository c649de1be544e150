//! Moving up: a populated SQLite installation is copied to Postgres with `tandem store
//! copy`, and a server on the copy serves the same accounts, keys and documents.
//!
//! Needs Postgres on 127.0.0.1:5432 (user `postgres`, trust auth; or
//! `TANDEM_TEST_POSTGRES`): the test makes a database of its own and drops it after. With
//! no Postgres it is skipped with a message, except in CI (`CI=true`), where it fails.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::harness::{Client, Cred, Server};

/// A database of this test's own, dropped (best effort) on drop.
struct PgDb {
    url: String,
    admin_url: String,
    name: String,
}

impl PgDb {
    async fn create() -> Option<PgDb> {
        let admin_url = std::env::var("TANDEM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let connected =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url)).await;
        let Ok(Ok(mut admin)) = connected else {
            let message = format!("Postgres is not reachable at {admin_url}");
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{message} (CI=true: this test must run)"
            );
            eprintln!("skipping store_copy: {message}");
            return None;
        };
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tandem_test_{suffix}");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Some(PgDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin.execute(sql.as_str()).await.ok()
            })
        })
        .join();
    }
}

/// Runs `tandem store copy`; returns (success, stdout, stderr).
fn store_copy(from: &str, to: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["store", "copy", "--from", from, "--to", to])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tandem store copy");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_installation_moves_to_postgres() {
    let Some(db) = PgDb::create().await else {
        return;
    };

    // A SQLite installation with an account, a key and two documents, one of them
    // compacted (snapshot plus log) along the way.
    let sqlite_dir = tempfile::tempdir().unwrap();
    let mut old = Server::start_strict(&sqlite_dir, &["--compact-after-updates", "4"]);
    let (account, project) = old.project().await;
    let token = old
        .token(&project.key.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let mut notes = Client::connect(&old.ws_url_token("notes", &token)).await;
    for word in [
        "Moving ",
        "up ",
        "to ",
        "Postgres, ",
        "with ",
        "every ",
        "edit.",
    ] {
        notes.text_push(word).await;
    }
    notes.round_trip().await;
    let mut other = Client::connect(&old.ws_url_token("team/plans", &token)).await;
    other.map_set("status", "copied").await;
    other.round_trip().await;
    let expected = notes.text();
    assert_eq!(expected, "Moving up to Postgres, with every edit.");
    notes.close().await;
    other.close().await;
    assert!(old.sigterm(), "the SQLite server stops cleanly");

    // Copy and verify.
    let from = format!("sqlite://{}", sqlite_dir.path().join("tandem.db").display());
    let (ok, stdout, stderr) = store_copy(&from, &db.url);
    assert!(ok, "store copy failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("verified"), "{stdout}");
    // The usage the old server flushed at shutdown went along (verified row by row).
    for table in [
        "usage_flushes",
        "usage_hourly",
        "usage_project_hourly",
        "usage_users",
    ] {
        let rows: u64 = stdout
            .lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(table)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {table} in {stdout}"));
        assert!(rows > 0, "{table}: {stdout}");
    }
    assert!(
        !stdout.contains("postgres@"),
        "the URL's user (and password) are not printed: {stdout}"
    );
    // Into a database that now has data: refused, and it says why.
    let (ok, _, stderr) = store_copy(&from, &db.url);
    assert!(!ok);
    assert!(stderr.contains("not empty"), "{stderr}");

    // A server on the copy: the same login, the same key, the same documents.
    let unused_dir = tempfile::tempdir().unwrap();
    let new = Server::start_strict(&unused_dir, &["--database-url", &db.url]);
    assert!(
        !unused_dir.path().join("tandem.db").exists(),
        "with --database-url, no SQLite file is made"
    );
    new.login(&account.email, &account.password)
        .await
        .expect(200);
    let rooms = new
        .call("GET", "/v1/rooms", Cred::Bearer(&project.key.key), None)
        .await
        .expect(200)
        .json();
    let names: Vec<&str> = rooms["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{rooms}"))
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["notes", "team/plans"], "{rooms}");
    let token = new
        .token(&project.key.key, "bob", json!({"*": ["room:write"]}), None)
        .await;
    let mut fresh = Client::connect(&new.ws_url_token("notes", &token)).await;
    assert_eq!(fresh.text(), expected);
    let plans = Client::connect(&new.ws_url_token("team/plans", &token)).await;
    assert_eq!(plans.map_get("status").as_deref(), Some("copied"));

    // And it goes on from there: an edit on the Postgres server is kept.
    fresh.text_push(" Done.").await;
    fresh.round_trip().await;
    let again = Client::connect(&new.ws_url_token("notes", &token)).await;
    assert_eq!(again.text(), format!("{expected} Done."));
}
