//! A terminal chat: lines you type go into the room's shared `messages` list, presence
//! shows who is online (with the names from their tokens), and `/wave` sends a custom
//! event.
//!
//! ```text
//! tandem serve                                  # prints a secret key on first start
//! export TANDEM_SECRET_KEY=sk_…
//! cargo run -p tandem-sdk --example chat -- Ada      # in one terminal
//! cargo run -p tandem-sdk --example chat -- Grace    # in another
//! ```
//!
//! Arguments: `[name] [room]` (room default `chat`). Environment: `TANDEM_URL`,
//! `TANDEM_SECRET_KEY` or `TANDEM_TOKEN` (see `examples/common/mod.rs`). Commands:
//! `/who`, `/wave`, `/quit`.

mod common;

use std::collections::HashSet;

use serde_json::{json, Value};
use tandem_sdk::{Room, RoomEvent, RoomOptions, SharedList, Status};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = common::user_name(args.next());
    let room_name = args.next().unwrap_or_else(|| "chat".into());

    let client = common::client_from_env(&name)?;
    let room = client
        .enter_with(
            &room_name,
            RoomOptions {
                initial_presence: Some(json!({ "app": "chat" })),
                ..RoomOptions::default()
            },
        )
        .await?;
    let mut events = room.events();
    println!("joining {room_name} as {name} (/who, /wave, /quit)");

    let messages = room.list("messages");
    let mut printed = HashSet::new();
    let mut sent = 0u64;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                let Some(line) = line? else { break };
                match line.trim() {
                    "" => {}
                    "/quit" => break,
                    "/who" => println!("online: {}", common::online(&room)),
                    "/wave" => {
                        if let Err(e) = room.broadcast(json!({ "type": "wave" })).await {
                            println!("(not sent: {e})");
                        }
                    }
                    text => {
                        sent += 1;
                        let id = format!("{}-{sent}", room.client_id());
                        messages.push(json!({ "id": id, "from": name, "text": text }))?;
                        print_new(&messages, &mut printed);
                    }
                }
            }
            event = events.recv() => match event {
                None => break,
                Some(RoomEvent::DocumentChanged) => print_new(&messages, &mut printed),
                Some(RoomEvent::Others(_)) => {
                    println!("-- online: {}", common::online(&room));
                }
                Some(RoomEvent::Custom(event)) if event.event["type"] == "wave" => {
                    println!("* {} waves", sender_name(&room, event.user_id.as_deref()));
                }
                Some(RoomEvent::Status(status)) => match status {
                    Status::Synced => print_new(&messages, &mut printed),
                    Status::Reconnecting { attempt } => {
                        println!("-- offline, reconnecting (attempt {attempt}); keep typing");
                    }
                    _ => {}
                },
                Some(RoomEvent::Error(error)) if error.is_fatal() => {
                    eprintln!("-- stopped: {error}");
                    break;
                }
                Some(_) => {}
            },
        }
    }
    room.leave().await;
    Ok(())
}

/// Prints the messages not printed yet, in the list's order (which every client agrees
/// on, even for messages sent at the same time).
fn print_new(messages: &SharedList, printed: &mut HashSet<String>) {
    let Value::Array(all) = messages.to_json() else {
        return;
    };
    for message in all {
        let id = message["id"].as_str().unwrap_or_default().to_owned();
        if printed.insert(id) {
            let from = message["from"].as_str().unwrap_or("?");
            let text = message["text"].as_str().unwrap_or_default();
            println!("{from}: {text}");
        }
    }
}

fn sender_name(room: &Room, user_id: Option<&str>) -> String {
    room.others()
        .iter()
        .find(|o| user_id.is_some() && o.user_id() == user_id)
        .and_then(|o| o.user.as_ref()?.get("name")?.as_str().map(str::to_owned))
        .or_else(|| user_id.map(str::to_owned))
        .unwrap_or_else(|| "someone".into())
}
