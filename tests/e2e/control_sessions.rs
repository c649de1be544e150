//! A user's own sessions over REST against the real binary: listing (browser, address,
//! which one is asking), ending one (its cookie stops working), ending all the others,
//! and that a personal access token may list but not end them. Every response is
//! checked against the served OpenAPI spec by the harness.

use serde_json::json;

use crate::harness::{Cred, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_ended_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let ada = server.signup().await;
    let laptop = server.login_cookie(&ada.email, &ada.password).await;
    let phone = server.login_cookie(&ada.email, &ada.password).await;
    let bob = server.signup().await;

    let listed = server
        .call("GET", "/v1/me/sessions", Cred::Cookie(&ada.cookie), None)
        .await
        .expect(200)
        .json();
    let sessions = listed["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{listed}");
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "{listed}"
    );
    assert!(sessions.iter().all(|s| s["ip"] == "127.0.0.1"), "{listed}");
    // Newest first: the phone's session, then the laptop's, then signup's (current).
    assert_eq!(sessions[2]["current"], true, "{listed}");
    let phone_id = sessions[0]["id"].as_str().unwrap().to_owned();
    assert!(phone_id.starts_with("ses_"));

    // Bob cannot end Ada's session: it is not one of his.
    server
        .call(
            "DELETE",
            &format!("/v1/me/sessions/{phone_id}"),
            Cred::Cookie(&bob.cookie),
            None,
        )
        .await
        .expect(404);
    // A personal access token may list, not end.
    let pat = server
        .call(
            "POST",
            &format!("/v1/tenants/{}/personal-access-tokens", ada.tenant_id),
            Cred::Cookie(&ada.cookie),
            Some(json!({"name": "ci"})),
        )
        .await
        .expect(201)
        .json();
    let pat = pat["key"].as_str().unwrap().to_owned();
    server
        .call("GET", "/v1/me/sessions", Cred::Bearer(&pat), None)
        .await
        .expect(200);
    server
        .call(
            "DELETE",
            &format!("/v1/me/sessions/{phone_id}"),
            Cred::Bearer(&pat),
            None,
        )
        .await
        .expect(403);
    server
        .call("DELETE", "/v1/me/sessions", Cred::Bearer(&pat), None)
        .await
        .expect(403);

    // Ending the phone's session: its cookie stops working, the others go on.
    server
        .call(
            "DELETE",
            &format!("/v1/me/sessions/{phone_id}"),
            Cred::Cookie(&ada.cookie),
            None,
        )
        .await
        .expect(204);
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&phone), None)
        .await
        .expect(401);
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&laptop), None)
        .await
        .expect(200);

    // Everywhere else: the laptop's ends, the asking one and Bob's stay.
    let ended = server
        .call("DELETE", "/v1/me/sessions", Cred::Cookie(&ada.cookie), None)
        .await
        .expect(200)
        .json();
    assert_eq!(ended["ended"], 1, "{ended}");
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&laptop), None)
        .await
        .expect(401);
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&ada.cookie), None)
        .await
        .expect(200);
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&bob.cookie), None)
        .await
        .expect(200);
    let log = server
        .call(
            "GET",
            "/v1/me/security-log",
            Cred::Cookie(&ada.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"session.ended"), "{actions:?}");
    assert!(actions.contains(&"session.ended_others"), "{actions:?}");
}
