//! The sans-IO client session both SDKs drive: one [`ClientSession`] per room owns the
//! protocol side of a connection (sync, presence, custom events, reconnects, close codes)
//! and nothing else. It opens no sockets, reads no clock, spawns nothing and draws no
//! randomness of its own: the transport passes `now` (milliseconds on any monotonic
//! clock) into every input and seeds the jitter through [`SessionConfig::jitter_seed`].
//!
//! # What it does on the wire
//!
//! The same as the stock y-websocket client, so the server cannot tell them apart:
//! on open it sends sync step 1 (its state vector) and its presence; it answers the
//! server's step 1 with step 2 (the diff); it applies the server's step 2 and updates
//! under its own origin ([`ClientSession::remote_origin`]), so they are never echoed; it
//! is [`Status::Synced`] once the server's step 2 arrives. Local changes made while
//! offline are simply in the document: the step 2 answer on the next connection carries
//! them. Presence is renewed every 15 s and others expire after 30 s without renewal.
//!
//! # Local changes
//!
//! The session observes the document's v1 updates itself (`observe_update_v1`), so the
//! app edits the `Doc` with plain yrs transactions and the SDKs need no glue. Updates
//! are collected only once the session has answered the server's sync step 1 on the
//! current connection (earlier changes are in that answer), and not on a read-only
//! connection; [`ClientSession::poll_output`] turns them into frames (merged into one
//! when several are waiting). This differs from the stock client, which forwards at
//! once, only in never sending the server an update whose history it lacks. An event-driven
//! transport registers [`ClientSession::set_change_notifier`] to learn that something
//! is waiting.
//!
//! # The transport's loop
//!
//! ```text
//! session.connect(now)
//! loop {
//!     while let Some(output) = session.poll_output() {
//!         match output {
//!             Output::Connect { refresh_token } => open a socket (fresh token if asked),
//!                 then session.on_open(now), or session.on_close(now, 1006, why)
//!             Output::Send(frame)   => send a binary frame
//!             Output::Close { .. }  => close the socket; report nothing more about it
//!             Output::Event(event)  => hand to the app
//!             Output::RefreshToken  => ask the token provider, then
//!                 session.on_fresh_token(now, &token) (or on_fresh_token_failed(now))
//!         }
//!     }
//!     wait for the first of:
//!         a binary frame       → session.on_frame(now, &frame)
//!         the socket closing   → session.on_close(now, code, &reason)
//!         session.next_deadline() → session.tick(now)
//!         the change notifier, an app call (set_presence, broadcast, leave…)
//! }
//! ```
//!
//! Transports connect with `?tandem=1` (the session extension): the server's hello says
//! how long the token has left, and a quarter of that before expiry the session asks for
//! a fresh one ([`Output::RefreshToken`]) and sends it on the open socket, so a healthy
//! connection is never closed because its token aged.
//!
//! Reconnect delays live in the session: [`Output::Connect`] comes out of `tick` when
//! the backoff (full jitter), a 4429 `retry-after` or a token refresh says so. Close
//! codes follow [`crate::close::retry_for`]; codes that cannot be retried, and a token
//! refused again right after a refresh, stop the session with a typed [`SessionError`].

mod backoff;
mod config;
mod doc;
mod error;
mod output;
mod presence;
mod reconnect;
mod session;

#[cfg(test)]
mod tests;

pub use backoff::{Backoff, Jitter};
pub use config::SessionConfig;
pub use doc::Notify;
pub use error::{CallError, SessionError};
pub use output::{Event, Output, Status};
pub use presence::Other;
pub use session::ClientSession;
