//! What an app's backend does with the admin client: mint a client token for a user,
//! seed a room's document over REST, list the project's rooms page by page, read a
//! document back, see who is connected, and the project's usage.
//!
//! ```text
//! tandem serve                                  # prints a secret key on first start
//! export TANDEM_SECRET_KEY=sk_…
//! cargo run -p tandem-sdk --example admin
//! # against a TLS server with a private CA:
//! TANDEM_URL=https://127.0.0.1:8443 TANDEM_CA_FILE=ca.pem cargo run -p tandem-sdk --example admin
//! ```
//!
//! Arguments: `[room]` (default `admin-demo`). Environment: `TANDEM_URL`,
//! `TANDEM_SECRET_KEY`, `TANDEM_CA_FILE` (see `examples/common/mod.rs`).

mod common;

use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use serde_json::json;
use tandem_sdk::admin::{Authorize, ListRooms, Scope, UsageRange};
use yrs::{Array, Doc, ReadTxn, StateVector, Transact};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let room = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "admin-demo".into());
    let admin = common::admin_from_env()?;

    // A token for one of your users: what your auth endpoint returns to the client SDK.
    let minted = admin
        .authorize(
            &Authorize::new("ada")
                .user_info(json!({"name": "Ada"}))
                .allow(&room, [Scope::Write])
                .expires_in(Duration::from_secs(3600)),
        )
        .await?;
    println!("token for ada expires at {}", minted.expires_at);

    // Seed the document with a Yjs update, as if a client had sent it.
    let doc = Doc::new();
    let todos = doc.get_or_insert_array("todos");
    todos.push_back(&mut doc.transact_mut(), "written by the backend");
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    admin.rooms().apply_update(&room, update).await?;
    let document = admin.rooms().document(&room).await?;
    println!("room {room}: {}", serde_json::Value::Object(document));

    // Every room, fetched a page at a time as the stream is read.
    let mut rooms = admin
        .rooms()
        .list(ListRooms::default().page_size(20))
        .stream();
    while let Some(listed) = rooms.try_next().await? {
        println!(
            "  {} (created {}, {} connected)",
            listed.name, listed.created_at, listed.connections
        );
    }

    for user in admin.rooms().active_users(&room).await? {
        println!("connected: {:?} {:?}", user.user_id, user.user_info);
    }

    let now = SystemTime::now();
    let usage = admin
        .usage(&UsageRange::new(now - Duration::from_secs(86_400), now))
        .await?;
    let messages: i64 = usage.buckets.iter().map(|b| b.totals.messages_in).sum();
    println!("messages received in the last 24 h: {messages}");
    Ok(())
}
