//! The inspector's room actions across a cluster (three nodes on one Postgres and one
//! Redis, `cluster_support.rs`): the read-only setting changed through one node is
//! enforced on the others for connections already open (writes refused and not
//! applied anywhere, reading goes on, a `room:admin` token still writes), and closing
//! one connection through a node that does not hold it reaches the node that does.
//! Skipped like the other cluster tests when Postgres or Redis is unreachable (not in
//! CI).

use std::time::Duration;

use serde_json::json;
use tandem_protocol::close;

use crate::cluster_support::{Cluster, Options};
use crate::harness::{Client, Closed, Cred};

const WITHIN: Duration = Duration::from_secs(10);

/// Pushes text until the room refuses it (the read-only setting has arrived on the
/// client's node), within [`WITHIN`]; returns what it pushed before that was accepted.
async fn push_until_refused(client: &mut Client, what: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while client.auth_denied.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read-only setting did not reach {what}"
        );
        client.text_push(".").await;
        client.round_trip().await;
    }
}

async fn document(node: &crate::harness::Server, key: &str, room: &str) -> String {
    let doc = node
        .call(
            "GET",
            &format!("/v1/rooms/{room}/document"),
            Cred::Bearer(key),
            None,
        )
        .await
        .expect(200)
        .json();
    doc.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_and_closing_a_connection_reach_every_node() {
    let Some(cluster) = Cluster::start(
        "cluster_inspector::read_only_and_closing_a_connection_reach_every_node",
        Options {
            strict: true,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (n0, n1, n2) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (_account, project) = n0.project().await;
    let key = project.key.key.clone();
    let writer = n1
        .token(&key, "ada", json!({"*": ["room:write"]}), None)
        .await;
    let admin = n1
        .token(&key, "mod", json!({"*": ["room:admin"]}), None)
        .await;
    let room = "shared";
    let mut on1 = Client::connect(&n1.ws_url_token(room, &writer)).await;
    let mut on2 = Client::connect(&n2.ws_url_token(room, &writer)).await;
    let mut moderator = Client::connect(&n1.ws_url_token(room, &admin)).await;
    on1.text_push("a").await;
    on2.pump_until("the first edit on node 3", WITHIN, |c| c.text() == "a")
        .await;

    // Read-only, through node 1, where the room is not even loaded.
    let body = n0
        .call(
            "PATCH",
            &format!("/v1/rooms/{room}"),
            Cred::Bearer(&key),
            Some(json!({"readOnly": true})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(body["readOnly"], true, "{body}");
    push_until_refused(&mut on2, "node 3").await;
    push_until_refused(&mut on1, "node 2").await;
    assert!(on1.auth_denied.as_deref().unwrap().contains("read-only"));
    // Refused writes are not applied anywhere; the admin's write reaches everyone.
    on2.text_push("DENIED").await;
    on2.round_trip().await;
    moderator.text_push("ADMIN").await;
    on2.pump_until("the admin's edit on node 3", WITHIN, |c| {
        c.text().contains("ADMIN")
    })
    .await;
    on1.pump_until("the admin's edit on node 2", WITHIN, |c| {
        c.text().contains("ADMIN")
    })
    .await;
    for node in [n0, n1, n2] {
        let doc = document(node, &key, room).await;
        assert!(
            !doc.contains("DENIED"),
            "a refused write was applied: {doc}"
        );
    }
    assert!(
        on1.closed.is_none() && on2.closed.is_none(),
        "read-only keeps them connected"
    );

    // Writable again, through node 3: writes flow between nodes again.
    n2.call(
        "PATCH",
        &format!("/v1/rooms/{room}"),
        Cred::Bearer(&key),
        Some(json!({"readOnly": false})),
    )
    .await
    .expect(200);
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        on1.text_push("+").await;
        on1.round_trip().await;
        if document(n0, &key, room).await.contains('+') {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room did not become writable on node 2"
        );
    }

    // Close one connection of node 3 through node 1: the listing (served by node 3)
    // names its node; node 1 passes the close on.
    let users = n2
        .call(
            "GET",
            &format!("/v1/rooms/{room}/users"),
            Cred::Bearer(&key),
            None,
        )
        .await
        .expect(200)
        .json();
    let listed = users["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "node 3 lists its own connection: {users}");
    let (conn, node) = (
        listed[0]["connectionId"].as_u64().unwrap(),
        listed[0]["node"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        listed[0]["scopes"],
        json!(["room:read", "room:write", "room:presence:write"])
    );
    assert_eq!(listed[0]["keyId"], json!(project.key.id));
    // Without the node, node 1 looks among its own connections only.
    n0.call(
        "DELETE",
        &format!("/v1/rooms/{room}/connections/{conn}"),
        Cred::Bearer(&key),
        None,
    )
    .await
    .expect(404);
    n0.call(
        "DELETE",
        &format!("/v1/rooms/{room}/connections/{conn}?node={node}"),
        Cred::Bearer(&key),
        None,
    )
    .await
    .expect(202);
    let closed = on2.closed_within(WITHIN).await;
    assert!(
        matches!(&closed, Closed::Code(code, reason) if *code == close::FORBIDDEN && reason.contains("administrator")),
        "{closed:?}"
    );
    on1.round_trip().await;
    moderator.round_trip().await;
    assert!(on1.closed.is_none() && moderator.closed.is_none());
}
