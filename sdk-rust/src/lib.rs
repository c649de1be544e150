//! Tandem's native client SDK: rooms with a shared Yjs document, presence and custom
//! events, kept connected by a tokio task.
//!
//! A [`Client`] knows the server and where tokens come from (a [`TokenProvider`]:
//! usually your backend, which mints them with the project's secret key). Entering a
//! room gives a [`Room`]: its yrs [`Doc`](yrs::Doc) (or the [`SharedMap`],
//! [`SharedList`] and [`SharedText`] helpers), this client's presence, the
//! [`others`](Room::others) with the user info the server attached from their tokens, a
//! stream of [`RoomEvent`]s, and custom events.
//!
//! ```no_run
//! use serde_json::json;
//! use tandem_sdk::{Client, RoomEvent};
//!
//! # async fn my_backend_token(room: &str) -> Result<String, std::io::Error> { Ok(String::new()) }
//! #[tokio::main]
//! async fn main() -> Result<(), tandem_sdk::Error> {
//!     let client = Client::builder("http://127.0.0.1:8080")
//!         .token_provider(|room: String| async move { my_backend_token(&room).await })
//!         .build()?;
//!     let room = client.enter("my-room").await?;
//!     room.wait_synced().await?;
//!
//!     room.update_presence(json!({"name": "Ada"}))?;
//!     room.list("messages").push(json!({"text": "hello"}))?;
//!
//!     let mut events = room.events();
//!     while let Some(event) = events.recv().await {
//!         match event {
//!             RoomEvent::DocumentChanged => println!("{}", room.list("messages").to_json()),
//!             RoomEvent::Others(others) => println!("{} others online", others.len()),
//!             RoomEvent::Error(e) if e.is_fatal() => return Err(e),
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Behaviour
//!
//! The protocol side lives in the sans-IO [`ClientSession`](tandem_protocol::client::ClientSession)
//! shared with the WASM SDK; this crate is the transport around it (see `transport/`).
//! Lost connections are retried with exponential backoff and full jitter (250 ms growing
//! to 30 s by default); each new connection resynchronises the document by state vector,
//! so edits made offline are sent then and nothing is lost. Close codes decide the rest:
//! an expired or revoked token (4401) asks the provider for a fresh one at once; a rate
//! limit (4429) waits the time the server names; a refusal that retrying cannot fix
//! (4400 malformed, 4403 forbidden, 4404 room deleted, 4413 too large, or three fresh
//! tokens refused in a row) stops the room with a fatal [`Error`].
//!
//! # TLS
//!
//! `https://` base URLs connect rooms with `wss://` (rustls, ring provider), trusting the
//! webpki (Mozilla) roots; a private CA or a self-signed server is trusted with
//! [`ClientBuilder::add_root_certificate`]. A certificate that is not trusted is reported
//! as [`Error::Tls`] on every attempt.
//!
//! # Server side
//!
//! [`admin`] is the REST client for your backend (tokens, rooms, documents, keys, usage,
//! audit log), the same surface as `@tandem/node`; [`dev`] has a token provider built on
//! it for development and server-side tools.

#![deny(missing_docs)]

pub mod admin;
mod client;
pub mod dev;
mod error;
mod event;
mod room;
mod shared;
mod tls;
mod token;
mod transport;
mod url;

pub use client::{Client, ClientBuilder, RoomOptions};
pub use error::{ApiError, BoxError, Error, Result};
pub use event::{CustomEvent, RoomEvent, Status};
pub use room::{Room, RoomEvents};
pub use shared::{Change, SharedList, SharedMap, SharedText, Subscription};
pub use tandem_protocol::client::Other;
pub use tls::Certificate;
pub use token::{StaticToken, TokenFuture, TokenProvider};

/// The wire protocol the SDK is built on (frames, close codes, the client session).
pub use tandem_protocol as protocol;
/// The CRDT library the documents are made of.
pub use yrs;

#[cfg(test)]
mod tests {
    #[test]
    fn close_codes_map_to_the_documented_client_reactions() {
        use crate::protocol::close::{retry_for, Retry};
        assert_eq!(retry_for(4401), Retry::RefreshToken);
        assert_eq!(retry_for(4429), Retry::After);
        assert_eq!(retry_for(4400), Retry::Never);
        assert_eq!(retry_for(1012), Retry::Backoff);
        assert_eq!(retry_for(1006), Retry::Backoff);
    }
}
