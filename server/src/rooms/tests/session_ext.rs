//! The session extension (message type 101): the hello, saved acknowledgements sent
//! only after the group commit, and in-band token refresh (a refreshed connection
//! outlives its first token; a token for another user or project is refused).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tandem_protocol::session::Refreshed;
use tandem_protocol::{close, Message};

use super::harness::{grant, key, Author, Client, Harness};
use crate::rooms::auth::{Denied, Grant};
use crate::rooms::session::{ConnOptions, Reauthorize};

fn ada() -> Grant {
    Grant {
        user_id: Some("usr_ada".to_owned()),
        user_info: Some(json!({"name": "Ada", "color": "#0af"})),
        ..grant("prj_a")
    }
}

fn opted_in() -> ConnOptions {
    ConnOptions {
        session_ext: true,
        reauthorize: Some(fake_authorizer()),
    }
}

/// Stands in for the token authorizer (bound to the room, as the WebSocket handler
/// binds it): each "token" names the grant it would produce.
fn fake_authorizer() -> Reauthorize {
    Arc::new(|token: String| {
        Box::pin(async move {
            let in_a_minute = Some(SystemTime::now() + Duration::from_secs(60));
            match token.as_str() {
                "fresh" => Ok(Grant {
                    expires_at: in_a_minute,
                    can_write: false,
                    ..ada()
                }),
                "bob" => Ok(Grant {
                    user_id: Some("usr_bob".to_owned()),
                    expires_at: in_a_minute,
                    ..ada()
                }),
                "other-project" => Ok(Grant {
                    project_id: "prj_b".to_owned(),
                    expires_at: in_a_minute,
                    ..ada()
                }),
                "other-room" => Err(Denied {
                    code: close::FORBIDDEN,
                    reason: "token does not allow this room".to_owned(),
                }),
                _ => Err(Denied::unauthorized("invalid token")),
            }
        })
    })
}

/// Connects with the extension and returns the client and its hello.
async fn join_opted_in(h: &Harness, room: &crate::rooms::RoomKey, grant: Grant) -> (Client, Value) {
    let mut client = Client::spawn_with(&h.rooms, room, grant, opted_in());
    let hello = client
        .until(|m| match m {
            Message::Hello(json) => Some(serde_json::from_str::<Value>(json).unwrap()),
            Message::SyncStep1(_) => panic!("sync step 1 before the hello"),
            _ => None,
        })
        .await;
    client
        .until(|m| matches!(m, Message::SyncStep1(_)).then_some(()))
        .await;
    (client, hello)
}

async fn refresh(client: &mut Client, token: &str) -> Refreshed {
    client.send(Message::RefreshToken(token));
    client
        .until(|m| match m {
            Message::Refreshed(json) => Some(serde_json::from_str::<Refreshed>(json).unwrap()),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn the_hello_names_the_connection_and_its_user() {
    let h = Harness::new().await;
    let (_ada, hello) = join_opted_in(&h, &key("prj_a", "doc"), ada()).await;
    assert_eq!(hello["userId"], "usr_ada");
    assert_eq!(
        hello["user"],
        json!({"id": "usr_ada", "name": "Ada", "color": "#0af"})
    );
    assert_eq!(hello["canWrite"], true);
    assert!(hello["connectionId"].is_u64());
    assert_eq!(hello["expiresAt"], Value::Null);
}

#[tokio::test]
async fn saved_comes_only_after_the_commit() {
    use sqlx::Connection;

    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let (mut ada, _) = join_opted_in(&h, &room, ada()).await;
    let author = Author::new(7);

    // Nothing to store yet: an empty step 2 is acknowledged at once.
    ada.send(Message::SyncStep2(&[0, 0]));
    let first = ada
        .until(|m| match m {
            Message::Saved(n) => Some(*n),
            _ => None,
        })
        .await;
    assert_eq!(first, 1);

    // Another connection takes SQLite's write lock: the group commit cannot finish.
    let db = format!("sqlite://{}", h.dir.path().join("tandem.db").display());
    let mut blocker = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();

    ada.send(Message::Update(&author.type_text("t", "hello")));
    ada.send(Message::Update(&author.type_text("t", " world")));
    // Presence is not held back by the disk: its echo arrives while the updates wait,
    // and the room answers a connection's messages in order, so any acknowledgement
    // of the updates would have come before it.
    ada.send_awareness(7, 1, "{}");
    let before_echo = ada
        .until(|m| match m {
            Message::Saved(n) => Some(Some(*n)),
            Message::Awareness(_) => Some(None),
            _ => None,
        })
        .await;
    assert_eq!(before_echo, None, "acknowledged before the commit");

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    drop(blocker);
    // Both updates are acknowledged, by their count on this connection (the empty
    // step 2 was the first), once they are on disk.
    let mut upto = 0;
    while upto < 3 {
        upto = ada
            .until(|m| match m {
                Message::Saved(n) => Some(*n),
                _ => None,
            })
            .await;
    }
    assert_eq!(upto, 3);
    assert_eq!(h.stored_updates(&room).await, Some(2));
}

#[tokio::test]
async fn stock_connections_get_no_session_messages() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut stock = Client::joined(&h.rooms, &room, ada()).await;
    let author = Author::new(9);
    stock.send(Message::SyncStep2(&[0, 0]));
    stock.send(Message::Update(&author.type_text("t", "x")));
    // The step 2 answer to a round trip waits for the update to be durable.
    let frames = stock.round_trip().await;
    assert!(
        frames.iter().all(|f| !matches!(
            Message::decode(f),
            Ok(Message::Hello(_) | Message::Saved(_))
        )),
        "a stock client got a type 101 message"
    );
    assert_eq!(h.stored_updates(&room).await, Some(1));
}

#[tokio::test]
async fn a_refreshed_connection_outlives_its_first_token() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let soon = SystemTime::now() + Duration::from_millis(400);
    let (mut refreshed, hello) = join_opted_in(
        &h,
        &room,
        Grant {
            expires_at: Some(soon),
            ..ada()
        },
    )
    .await;
    assert!(hello["expiresAt"].is_u64());
    // A witness with a token that expires a little after the first one, never refreshed.
    let mut witness = Client::joined(
        &h.rooms,
        &room,
        Grant {
            expires_at: Some(soon + Duration::from_millis(100)),
            ..ada()
        },
    )
    .await;

    let answer = refresh(&mut refreshed, "fresh").await;
    assert!(answer.ok, "{answer:?}");
    assert!(answer.expires_at.is_some_and(|at| at > unix_ms(soon)));
    // Scopes may change with the new token: this one is read-only.
    assert_eq!(answer.can_write, Some(false));

    let (code, _) = witness.closed().await;
    assert_eq!(code, close::UNAUTHORIZED, "the witness's token expired");
    // Past the first token's expiry, the refreshed connection still works, and its
    // new rights apply: its update is refused as read-only.
    let author = Author::new(3);
    refreshed.send(Message::Update(&author.type_text("t", "no")));
    refreshed
        .until(|m| matches!(m, Message::AuthDenied(_)).then_some(()))
        .await;
    refreshed.round_trip().await;
}

#[tokio::test]
async fn a_token_for_another_user_project_or_room_is_refused() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let (mut ada, _) = join_opted_in(&h, &room, ada()).await;
    for (token, code) in [
        ("bob", close::FORBIDDEN),
        ("other-project", close::FORBIDDEN),
        ("other-room", close::FORBIDDEN),
        ("garbage", close::UNAUTHORIZED),
    ] {
        let answer = refresh(&mut ada, token).await;
        assert!(!answer.ok, "{token} was accepted");
        assert_eq!(answer.code, Some(code), "{token}: {answer:?}");
    }
    // A refusal changes nothing: the connection keeps working with its rights.
    let author = Author::new(4);
    ada.send(Message::Update(&author.type_text("t", "still here")));
    ada.until(|m| matches!(m, Message::Saved(1)).then_some(()))
        .await;
}

#[tokio::test]
async fn clients_may_not_send_server_session_messages() {
    let h = Harness::new().await;
    let room = key("prj_a", "doc");
    let mut mallory = Client::joined(&h.rooms, &room, grant("prj_a")).await;
    mallory.send(Message::Saved(1));
    let (code, _) = mallory.closed().await;
    assert_eq!(code, close::MALFORMED);
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
