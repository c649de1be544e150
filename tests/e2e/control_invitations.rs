//! Accounts and sessions against the real binary (#14): membership only by an accepted
//! invitation, logins in the user's own security log (not the tenant's audit log), signup
//! not revealing registered emails, and the cross-site guard. Every response is checked
//! against the served OpenAPI spec by the harness.

use serde_json::{json, Value};

use crate::harness::{Cred, Server};

fn json_body(value: Value) -> (&'static str, Vec<u8>) {
    ("application/json", value.to_string().into_bytes())
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_only_by_accepting_and_their_logins_stay_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let ada = server.signup().await;
    let bob = server.signup().await;
    let ta = ada.tenant_id.clone();

    // The old direct add is gone.
    let r = server
        .request_unchecked(
            "POST",
            &format!("/v1/tenants/{ta}/members"),
            &[("Cookie", &ada.cookie)],
            Some(json_body(json!({"email": bob.email, "role": "admin"}))),
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.text());

    let invited = server
        .call(
            "POST",
            &format!("/v1/tenants/{ta}/invitations"),
            Cred::Cookie(&ada.cookie),
            Some(json!({"email": bob.email, "role": "admin"})),
        )
        .await
        .expect(201)
        .json();
    let token = invited["token"].as_str().unwrap().to_owned();
    assert_eq!(invited["invitation"]["status"], "pending");
    assert!(invited["acceptUrl"].as_str().unwrap().contains(&token));
    // Bob is not in Ada's tenant until he accepts.
    server
        .call(
            "GET",
            &format!("/v1/tenants/{ta}"),
            Cred::Cookie(&bob.cookie),
            None,
        )
        .await
        .expect(404);
    // Ada cannot accept for him.
    server
        .call(
            "POST",
            "/v1/invitations/accept",
            Cred::Cookie(&ada.cookie),
            Some(json!({"token": token})),
        )
        .await
        .expect(403);
    let joined = server
        .call(
            "POST",
            "/v1/invitations/accept",
            Cred::Cookie(&bob.cookie),
            Some(json!({"token": token})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(joined["status"], "accepted");
    server
        .call(
            "POST",
            "/v1/invitations/accept",
            Cred::Cookie(&bob.cookie),
            Some(json!({"token": token})),
        )
        .await
        .expect(409);
    server
        .call(
            "GET",
            &format!("/v1/tenants/{ta}"),
            Cred::Cookie(&bob.cookie),
            None,
        )
        .await
        .expect(200);

    // Bob's logins: in his security log, not in Ada's audit log.
    server
        .login(&bob.email, "wrong password!")
        .await
        .expect(401);
    server.login_cookie(&bob.email, &bob.password).await;
    let security_log = || async {
        server
            .call(
                "GET",
                "/v1/me/security-log",
                Cred::Cookie(&bob.cookie),
                None,
            )
            .await
            .expect(200)
            .json()
    };
    crate::harness::eventually(
        "two login events in the security log",
        std::time::Duration::from_secs(10),
        || async { actions(&security_log().await).len() >= 2 },
    )
    .await;
    let log = security_log().await;
    assert_eq!(actions(&log), ["login.succeeded", "login.failed"]);
    assert_eq!(log["data"][0]["ip"], "127.0.0.1");
    let audit = server
        .call(
            "GET",
            &format!("/v1/tenants/{ta}/audit-log"),
            Cred::Cookie(&ada.cookie),
            None,
        )
        .await
        .expect(200)
        .json();
    let audit = actions(&audit);
    assert!(audit.iter().all(|a| !a.starts_with("login.")), "{audit:?}");
    assert!(audit.contains(&"member.invited".to_owned()), "{audit:?}");
    assert!(audit.contains(&"member.joined".to_owned()), "{audit:?}");

    // Bob leaves.
    let r = server
        .call(
            "POST",
            &format!("/v1/tenants/{ta}/leave"),
            Cred::Cookie(&bob.cookie),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    server
        .call(
            "GET",
            &format!("/v1/tenants/{ta}"),
            Cred::Cookie(&bob.cookie),
            None,
        )
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_with_a_taken_email_answers_like_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let ada = server.signup().await;
    let again = server
        .call(
            "POST",
            "/v1/auth/signup",
            Cred::None,
            Some(json!({"email": ada.email, "password": "another long passphrase here"})),
        )
        .await
        .expect(201);
    let body = again.json();
    assert_eq!(body["user"]["email"], ada.email.as_str());
    assert_ne!(body["user"]["id"], ada.user_id.as_str());
    let cookie = crate::harness::session_cookie(&again);
    // The answer's session opens nothing; Ada's account is unchanged.
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&cookie), None)
        .await
        .expect(401);
    server.login_cookie(&ada.email, &ada.password).await;
    // A weak password is refused with a clear reason.
    let weak = server
        .call(
            "POST",
            "/v1/auth/signup",
            Cred::None,
            Some(json!({"email": "weak@example.test", "password": "aaaaaaaaaa"})),
        )
        .await
        .expect(400)
        .json();
    assert!(
        weak["detail"]
            .as_str()
            .unwrap()
            .contains("too easy to guess"),
        "{weak}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_form_posts_with_the_cookie_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_strict(&dir, &[]);
    let ada = server.signup().await;
    let projects = format!("/v1/tenants/{}/projects", ada.tenant_id);
    for header in [
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "https://evil.example"),
    ] {
        let all = [("Cookie", ada.cookie.as_str()), header];
        let r = server
            .request(
                "POST",
                &projects,
                &all,
                Some(json_body(json!({"name": "x"}))),
            )
            .await
            .expect(403);
        assert_eq!(r.json()["code"], "cross_site_request");
        let r = server
            .request("POST", "/v1/auth/logout", &all, Some(json_body(json!({}))))
            .await
            .expect(403);
        assert_eq!(r.json()["code"], "cross_site_request");
    }
    // A body-less form post (logout) from a browser without Fetch Metadata.
    server
        .request(
            "POST",
            "/v1/auth/logout",
            &[("Cookie", ada.cookie.as_str())],
            Some(("application/x-www-form-urlencoded", Vec::new())),
        )
        .await
        .expect(415);
    // The session still works: nothing above logged it out.
    server
        .call("GET", "/v1/auth/me", Cred::Cookie(&ada.cookie), None)
        .await
        .expect(200);
    // Same origin passes.
    server
        .request(
            "POST",
            &projects,
            &[
                ("Cookie", ada.cookie.as_str()),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some(json_body(json!({"name": "from-the-dashboard"}))),
        )
        .await
        .expect(201);
}
