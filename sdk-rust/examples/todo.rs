//! A collaborative to-do list: run it in two terminals and edit the same list. Each item
//! is an entry of the shared map `todos` (id → `{text, done, at}`), so concurrent edits to
//! different items never conflict and the last edit of one item wins.
//!
//! ```text
//! export TANDEM_SECRET_KEY=sk_…                      # printed by `tandem serve`
//! cargo run -p tandem-sdk --example todo -- Ada
//! cargo run -p tandem-sdk --example todo -- Grace     # another terminal
//! ```
//!
//! Arguments: `[name] [room]` (room default `todos`). Commands: `add <text>`,
//! `done <n>`, `undo <n>`, `rm <n>`, `list`, `quit`. Edits made while the server is
//! unreachable are kept and sent when it is back.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tandem_sdk::{RoomEvent, SharedMap, Status};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = common::user_name(args.next());
    let room_name = args.next().unwrap_or_else(|| "todos".into());

    let client = common::client_from_env(&name)?;
    let room = client.enter(&room_name).await?;
    let todos = room.map("todos");
    let mut events = room.events();
    println!("{room_name}: add <text> | done <n> | undo <n> | rm <n> | list | quit");

    let mut created = 0u64;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                let Some(line) = line? else { break };
                let (command, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
                let rest = rest.trim();
                match command {
                    "" => {}
                    "quit" => break,
                    "list" => show(&todos, &common::online(&room)),
                    "add" if !rest.is_empty() => {
                        created += 1;
                        let id = format!("{}-{created}", room.client_id());
                        todos.set(&id, json!({ "text": rest, "done": false, "at": now_ms() }))?;
                        show(&todos, &common::online(&room));
                    }
                    "done" | "undo" | "rm" => match item_id(&todos, rest) {
                        Some(id) if command == "rm" => {
                            todos.delete(&id);
                            show(&todos, &common::online(&room));
                        }
                        Some(id) => {
                            if let Some(mut item) = todos.get(&id) {
                                item["done"] = json!(command == "done");
                                todos.set(&id, item)?;
                            }
                            show(&todos, &common::online(&room));
                        }
                        None => println!("no item {rest:?}: `list` shows the numbers"),
                    },
                    _ => println!("add <text> | done <n> | undo <n> | rm <n> | list | quit"),
                }
            }
            event = events.recv() => match event {
                None => break,
                Some(RoomEvent::DocumentChanged | RoomEvent::Others(_)) => {
                    show(&todos, &common::online(&room));
                }
                Some(RoomEvent::Status(Status::Synced)) => show(&todos, &common::online(&room)),
                Some(RoomEvent::Status(Status::Reconnecting { .. })) => {
                    println!("(offline: edits are kept and sent when the server is back)");
                }
                Some(RoomEvent::Error(error)) if error.is_fatal() => {
                    eprintln!("stopped: {error}");
                    break;
                }
                Some(_) => {}
            },
        }
    }
    room.leave().await;
    Ok(())
}

/// The items in display order: oldest first, ties broken by id.
fn sorted(todos: &SharedMap) -> Vec<(String, Value)> {
    let Value::Object(map) = todos.to_json() else {
        return Vec::new();
    };
    let mut items: Vec<(String, Value)> = map.into_iter().collect();
    items.sort_by(|(a_id, a), (b_id, b)| {
        let (a_at, b_at) = (
            a["at"].as_f64().unwrap_or(0.0),
            b["at"].as_f64().unwrap_or(0.0),
        );
        a_at.total_cmp(&b_at).then_with(|| a_id.cmp(b_id))
    });
    items
}

/// The id of the item numbered `number` (1-based) in the display order.
fn item_id(todos: &SharedMap, number: &str) -> Option<String> {
    let index = number.parse::<usize>().ok()?.checked_sub(1)?;
    sorted(todos).into_iter().nth(index).map(|(id, _)| id)
}

fn show(todos: &SharedMap, online: &str) {
    let items = sorted(todos);
    let done = items
        .iter()
        .filter(|(_, item)| item["done"] == true)
        .count();
    println!("\n== {done}/{} done · online: {online}", items.len());
    for (n, (_, item)) in items.iter().enumerate() {
        let mark = if item["done"] == true { "x" } else { " " };
        println!(
            "{:>3}. [{mark}] {}",
            n + 1,
            item["text"].as_str().unwrap_or_default()
        );
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
