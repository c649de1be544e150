//! Plan and rate limits end to end, against the real binary with a small plans file:
//! HTTP 429 with Retry-After and the RateLimit fields (per key, per IP) that clears
//! after the wait; WebSocket connection caps at their boundary; a flooding tenant is
//! closed with 4429 while a second tenant's clients get every update.

use std::time::Duration;

use serde_json::json;
use tandem_protocol::close;

use crate::control_tokens::refused;
use crate::harness::{eventually, Client, Closed, Cred, Server};

/// A plans file making the free plan small enough to reach in a test.
fn plans(dir: &tempfile::TempDir, body: &str) -> String {
    let path = dir.path().join("plans.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn assert_rate_limited(response: &crate::harness::HttpResponse, policy: &str, quota: u32) {
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(response.json()["code"], "rate_limited");
    let retry: u64 = response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        response.header("ratelimit-policy"),
        Some(format!("\"{policy}\";q={quota};w=60").as_str())
    );
    let state = response.header("ratelimit").expect("RateLimit");
    assert!(
        state.starts_with(&format!("\"{policy}\";r=0;t=")),
        "RateLimit: {state}"
    );
}

/// Per API key: the quota's worth of requests succeed (each saying what is left), the
/// next is 429 with the fields, another tenant's key is untouched, and after the
/// Retry-After wait requests succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rest_quota_gets_429_and_recovers_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let plans = plans(&dir, "[free]\nrest-requests-per-minute = 60\n");
    let server = Server::start_strict(&dir, &["--plans", &plans]);
    let (_, a) = server.project().await;
    let (_, b) = server.project().await;
    let mut last_remaining = u32::MAX;
    for _ in 0..60 {
        let ok = server
            .call("GET", "/v1/rooms", Cred::Bearer(&a.key.key), None)
            .await
            .expect(200);
        assert_eq!(ok.header("ratelimit-policy"), Some("\"per-key\";q=60;w=60"));
        let state = ok.header("ratelimit").unwrap();
        let remaining: u32 = state
            .split(";r=")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|r| r.parse().ok())
            .unwrap();
        assert!(remaining <= last_remaining, "{state}");
        last_remaining = remaining;
    }
    let refused = server
        .call("GET", "/v1/rooms", Cred::Bearer(&a.key.key), None)
        .await;
    assert_rate_limited(&refused, "per-key", 60);
    // Another tenant's key has its own quota.
    server
        .call("GET", "/v1/rooms", Cred::Bearer(&b.key.key), None)
        .await
        .expect(200);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    eventually(
        "the key's quota refills",
        Duration::from_secs(5),
        || async {
            server
                .call("GET", "/v1/rooms", Cred::Bearer(&a.key.key), None)
                .await
                .status
                == 200
        },
    )
    .await;
}

/// Per client address on signup (and login, separately): the quota's worth are
/// answered, the next is 429, and after the wait signup works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_from_one_address_is_limited_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &["--auth-requests-per-minute", "60"]);
    let bad = Some(json!({"email": "not-an-email", "password": "x"}));
    for _ in 0..60 {
        let r = server
            .call("POST", "/v1/auth/signup", Cred::None, bad.clone())
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
    }
    let refused = server
        .call("POST", "/v1/auth/signup", Cred::None, bad.clone())
        .await;
    assert_rate_limited(&refused, "per-ip", 60);
    // Login has a budget of its own.
    let login = server
        .call(
            "POST",
            "/v1/auth/login",
            Cred::None,
            Some(json!({"email": "nobody@example.test", "password": "wrong password"})),
        )
        .await;
    assert_eq!(login.status, 401, "{}", login.text());
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    eventually("signup answers again", Duration::from_secs(5), || async {
        server
            .call("POST", "/v1/auth/signup", Cred::None, bad.clone())
            .await
            .status
            == 400
    })
    .await;
    // X-Forwarded-For from an untrusted peer does not buy a fresh budget.
    for _ in 0..2 {
        server
            .request(
                "POST",
                "/v1/auth/signup",
                &[("X-Forwarded-For", "203.0.113.9")],
                Some(("application/json", b"{}".to_vec())),
            )
            .await;
    }
    let mut limited = false;
    for _ in 0..70 {
        let r = server
            .request(
                "POST",
                "/v1/auth/signup",
                &[("X-Forwarded-For", "203.0.113.10")],
                Some(("application/json", b"{}".to_vec())),
            )
            .await;
        if r.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "a spoofed X-Forwarded-For escaped the per-IP limit"
    );
}

/// Connection caps at their boundary, through the real socket and token path: the Nth
/// connection to a room is accepted, the N+1th refused with 4429 and a retry hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nth_connection_is_accepted_and_the_next_refused_with_4429() {
    let dir = tempfile::tempdir().unwrap();
    let plans = plans(
        &dir,
        "[free]\nconnections-per-room = 3\nconnections-per-project = 4\n",
    );
    let server = Server::start_strict(&dir, &["--plans", &plans]);
    let (_, project) = server.project().await;
    let token = server
        .token(&project.key.key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let mut room = Vec::new();
    for _ in 0..3 {
        room.push(Client::connect(&server.ws_url_token("doc", &token)).await);
    }
    let (code, reason) = refused(&server, "doc", Some(&token)).await;
    assert_eq!(code, close::RATE_LIMITED, "{reason}");
    assert!(reason.contains("3 per room"), "{reason}");
    assert!(close::retry_after(&reason).is_some(), "{reason}");
    // The project cap (4) counts the other room too.
    let _fourth = Client::connect(&server.ws_url_token("other", &token)).await;
    let (code, reason) = refused(&server, "third", Some(&token)).await;
    assert_eq!(code, close::RATE_LIMITED, "{reason}");
    assert!(reason.contains("4 per project"), "{reason}");
}

/// Noisy neighbour: a free-plan tenant floods and is closed with 4429 (everything it
/// sent before the limit is stored); meanwhile a second tenant's clients receive every
/// one of their updates and are never limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_hurt_another() {
    let dir = tempfile::tempdir().unwrap();
    let plans = plans(
        &dir,
        "[free]\nmessages-per-second = 20\nmessage-burst = 40\n",
    );
    let server = Server::start_strict(&dir, &["--plans", &plans]);
    let (_, noisy) = server.project().await;
    let (_, quiet) = server.project().await;
    let noisy_token = server
        .token(&noisy.key.key, "flood", json!({"*": ["room:write"]}), None)
        .await;
    let quiet_token = server
        .token(&quiet.key.key, "calm", json!({"*": ["room:write"]}), None)
        .await;
    let mut flooder = Client::connect(&server.ws_url_token("shared-name", &noisy_token)).await;
    let mut writer = Client::connect(&server.ws_url_token("shared-name", &quiet_token)).await;
    let mut reader = Client::connect(&server.ws_url_token("shared-name", &quiet_token)).await;

    let flood = tokio::spawn(async move {
        let mut sent = 0u32;
        for i in 0..500 {
            if !flooder.try_text_push(&format!("n{i},")).await {
                break;
            }
            sent += 1;
        }
        (flooder.closed_within(Duration::from_secs(10)).await, sent)
    });
    // The quiet tenant writes at its own pace, well under its limits.
    for i in 0..30 {
        writer.map_set(&format!("k{i}"), "v").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader
        .pump_until("every quiet update", Duration::from_secs(20), |c| {
            c.map_len() == 30
        })
        .await;
    let (closed, _) = flood.await.unwrap();
    match closed {
        Closed::Code(code, reason) => {
            assert_eq!(code, close::RATE_LIMITED, "{reason}");
            assert!(reason.contains("messages per second"), "{reason}");
        }
        Closed::Dropped => panic!("the flooder was dropped without a close frame"),
    }
    // The quiet tenant's connections are still open and usable.
    writer.map_set("after", "flood").await;
    reader
        .pump_until("the update after the flood", Duration::from_secs(10), |c| {
            c.map_len() == 31
        })
        .await;
    assert!(writer.closed.is_none() && reader.closed.is_none());
    // What the flooder sent before the limit is stored: its room's document holds a
    // prefix of n0,n1,… with at least the burst's worth of entries (less the two
    // handshake messages, which count too).
    let doc = server
        .call(
            "GET",
            "/v1/rooms/shared-name/document",
            Cred::Bearer(&noisy.key.key),
            None,
        )
        .await
        .expect(200)
        .json();
    let text = doc["text"].as_str().unwrap_or_default().to_owned();
    let expected: String = (0..38).map(|i| format!("n{i},")).collect();
    assert!(text.starts_with(&expected), "{text}");
}
