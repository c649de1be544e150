//! The tokio transport loop around the sans-IO [`ClientSession`]: one task per room
//! ([`Driver::run`]) opens sockets when the session asks, feeds it frames, closes and
//! timer ticks, and carries out its outputs. The [`Room`](crate::Room) handle talks to
//! the task through [`Shared`] (state the app reads synchronously, the presence slot,
//! the wake-up) and a bounded command queue.
//!
//! ```text
//! loop {
//!     drain session.poll_output(): Connect → start opening a socket (token provider
//!         first when there is no token or the session asks for a fresh one),
//!         Send → queue on the socket, Close → close it, Event → publish to the app
//!     wait for the first of: an app command, the wake-up (a local document change or a
//!         presence change), the socket opening / failing / a frame / a close,
//!         session.next_deadline()
//!     feed that to the session
//! }
//! ```

pub(crate) mod socket;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use tandem_protocol::client::{ClientSession, Event, Other, Output};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{BoxError, Error, Result};
use crate::event::{RoomEvent, Status};
use crate::token::TokenProvider;
use crate::url::BaseUrl;

use socket::{Incoming, Socket, ABNORMAL};

/// How many events a subscriber may fall behind before it misses some.
pub(crate) const EVENT_BUFFER: usize = 1024;
/// App commands waiting for the room's task.
pub(crate) const COMMAND_QUEUE: usize = 64;

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values
/// replaced whole).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The local presence as the app last set it; `dirty` until the task has handed it to
/// the session. Many changes between two turns of the loop are sent as one.
#[derive(Debug, Default)]
pub(crate) struct PresenceSlot {
    /// `None` while hidden.
    pub(crate) state: Option<Map<String, Value>>,
    pub(crate) dirty: bool,
}

/// What the room handle and its task share.
pub(crate) struct Shared {
    /// Wakes the task: the document has local changes to send, or the presence changed.
    pub(crate) wake: Notify,
    pub(crate) presence: Mutex<PresenceSlot>,
    pub(crate) others: Mutex<Vec<Other>>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) events: broadcast::Sender<RoomEvent>,
}

impl Shared {
    pub(crate) fn new(presence: Option<Map<String, Value>>) -> Self {
        let dirty = presence.is_some();
        Self {
            wake: Notify::new(),
            presence: Mutex::new(PresenceSlot {
                // The session starts with `{}`, like the stock client.
                state: Some(presence.unwrap_or_default()),
                dirty,
            }),
            others: Mutex::new(Vec::new()),
            status: watch::Sender::new(Status::Initial),
            events: broadcast::Sender::new(EVENT_BUFFER),
        }
    }
}

/// What the room handle asks of its task.
pub(crate) enum Command {
    /// Send a custom event; the reply says whether it could be sent.
    Broadcast(Value, oneshot::Sender<Result<()>>),
    /// Connect now (skip the backoff wait, or start again after a fatal error).
    Reconnect,
    /// Leave the room and end the task.
    Leave,
}

/// What opening a connection produced: the token it used (kept for the next attempt
/// even when this one failed, so a flaky network does not call the provider each
/// time) and the socket, or why there is none.
struct Opened {
    token: Option<String>,
    /// Boxed: a socket is large and moves through the loop's wake-up value.
    result: Result<Box<socket::Ws>, OpenError>,
}

/// A fresh token for the open connection, being fetched (in-band refresh).
type Refreshing = Pin<Box<dyn Future<Output = std::result::Result<String, BoxError>> + Send>>;

enum OpenError {
    Token(BoxError),
    Network(String),
    Tls(String),
}

type Opening = Pin<Box<dyn Future<Output = Opened> + Send>>;

/// Where the room's socket is.
enum Link {
    None,
    Opening(Opening),
    Open(Socket),
}

/// What woke the loop.
enum Wake {
    Command(Option<Command>),
    Local,
    Opened(Opened),
    Incoming(Incoming),
    /// The token provider answered an in-band refresh.
    FreshToken(std::result::Result<String, BoxError>),
    Timer,
}

/// Everything the room's task needs to connect.
pub(crate) struct Target {
    pub(crate) base: BaseUrl,
    pub(crate) room: String,
    pub(crate) provider: Option<Arc<dyn TokenProvider>>,
    /// For `wss://`.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

/// The room's task.
pub(crate) struct Driver {
    session: ClientSession,
    target: Arc<Target>,
    /// The token in hand; dropped when the session asks for a fresh one.
    token: Option<String>,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    /// The session's clock: milliseconds since this instant.
    start: Instant,
    link: Link,
    /// Sockets still sending their close frame.
    closing: Vec<JoinHandle<()>>,
    /// The token provider's answer for an in-band refresh, while one is asked for.
    refreshing: Option<Refreshing>,
}

impl Driver {
    pub(crate) fn new(
        session: ClientSession,
        target: Arc<Target>,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        Self {
            session,
            target,
            token: None,
            shared,
            commands,
            start: Instant::now(),
            link: Link::None,
            closing: Vec::new(),
            refreshing: None,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs the room until it is left (or its handle dropped).
    pub(crate) async fn run(mut self) {
        self.take_presence();
        self.session.connect(self.now());
        loop {
            self.drain();
            let wake = self.wait().await;
            let now = self.now();
            match wake {
                Wake::Command(Some(Command::Broadcast(event, reply))) => {
                    let _ = reply.send(self.session.broadcast(&event).map_err(Error::from));
                }
                Wake::Command(Some(Command::Reconnect)) => self.session.connect(now),
                Wake::Command(Some(Command::Leave) | None) => break,
                // Local document changes are picked up by `poll_output` in `drain`.
                Wake::Local => self.take_presence(),
                Wake::Opened(opened) => self.on_opened(now, opened),
                Wake::Incoming(Incoming::Frame(frame)) => self.session.on_frame(now, &frame),
                Wake::Incoming(Incoming::Closed { code, reason }) => {
                    self.drop_link();
                    if code == ABNORMAL {
                        self.publish(RoomEvent::Error(Error::Connection {
                            detail: format!("connection lost: {reason}"),
                        }));
                    }
                    self.session.on_close(now, code, &reason);
                }
                Wake::FreshToken(result) => {
                    self.refreshing = None;
                    match result {
                        Ok(token) => {
                            // Kept for the next connection too.
                            self.token = Some(token.clone());
                            self.session.on_fresh_token(now, &token);
                        }
                        Err(e) => {
                            self.publish(RoomEvent::Error(Error::token_provider(e)));
                            self.session.on_fresh_token_failed(now);
                        }
                    }
                }
                Wake::Timer => self.session.tick(now),
            }
        }
        self.leave().await;
    }

    /// Waits for the next thing to react to.
    async fn wait(&mut self) -> Wake {
        let deadline = self
            .session
            .next_deadline()
            .map(|ms| self.start + Duration::from_millis(ms));
        let link = &mut self.link;
        let refreshing = &mut self.refreshing;
        tokio::select! {
            command = self.commands.recv() => Wake::Command(command),
            () = self.shared.wake.notified() => Wake::Local,
            wake = next_on_link(link) => wake,
            token = fresh_token(refreshing) => Wake::FreshToken(token),
            () = sleep_until(deadline) => Wake::Timer,
        }
    }

    /// Carries out everything the session has queued.
    fn drain(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Connect { refresh_token } => self.open(refresh_token),
                Output::Send(frame) => self.send(frame),
                Output::Close { code, reason } => self.close(code, reason),
                Output::Event(event) => self.on_event(event),
                Output::RefreshToken => self.refresh_token(),
            }
        }
        self.closing.retain(|task| !task.is_finished());
    }

    fn open(&mut self, refresh_token: bool) {
        if refresh_token {
            self.token = None;
        }
        self.drop_link();
        let target = Arc::clone(&self.target);
        let token = self.token.clone();
        tracing::debug!(room = %target.room, refresh_token, "connecting");
        self.link = Link::Opening(Box::pin(async move {
            let token = match (token, &target.provider) {
                (Some(token), _) => Some(token),
                (None, Some(provider)) => match provider.token(&target.room).await {
                    Ok(token) => Some(token),
                    Err(e) => {
                        return Opened {
                            token: None,
                            result: Err(OpenError::Token(e)),
                        }
                    }
                },
                (None, None) => None,
            };
            // `tandem=1`: the server's hello (token expiry) and in-band refresh.
            let url = with_session_ext(target.base.room_url(&target.room, token.as_deref()));
            let result = socket::open(&url, target.tls.clone())
                .await
                .map(Box::new)
                .map_err(|failure| match failure {
                    socket::OpenFailure::Tls(detail) => OpenError::Tls(detail),
                    socket::OpenFailure::Network(detail) => OpenError::Network(detail),
                });
            Opened { token, result }
        }));
    }

    /// Asks the token provider for a fresh token for the open connection (in band).
    fn refresh_token(&mut self) {
        let Some(provider) = self.target.provider.clone() else {
            return;
        };
        let room = self.target.room.clone();
        tracing::debug!(room = %room, "refreshing the token in band");
        self.refreshing = Some(Box::pin(async move { provider.token(&room).await }));
    }

    fn on_opened(&mut self, now: u64, Opened { token, result }: Opened) {
        self.link = Link::None;
        self.token = token;
        match result {
            Ok(ws) => {
                self.link = Link::Open(Socket::new(*ws));
                self.session.on_open(now);
            }
            Err(OpenError::Token(e)) => {
                tracing::debug!(room = %self.target.room, error = %e, "token provider failed");
                self.publish(RoomEvent::Error(Error::token_provider(e)));
                self.session
                    .on_close(now, ABNORMAL, "the token provider failed");
            }
            Err(OpenError::Tls(detail)) => {
                tracing::debug!(room = %self.target.room, %detail, "TLS failed");
                self.publish(RoomEvent::Error(Error::Tls {
                    detail: detail.clone(),
                }));
                self.session.on_close(now, ABNORMAL, &detail);
            }
            Err(OpenError::Network(detail)) => {
                tracing::debug!(room = %self.target.room, %detail, "connection failed");
                self.publish(RoomEvent::Error(Error::Connection {
                    detail: detail.clone(),
                }));
                self.session.on_close(now, ABNORMAL, &detail);
            }
        }
    }

    fn send(&mut self, frame: Vec<u8>) {
        let Link::Open(socket) = &self.link else {
            return;
        };
        if socket.send(frame).is_err() {
            // The socket cannot keep up: drop it; the next connection resyncs.
            self.drop_link();
            self.publish(RoomEvent::Error(Error::Connection {
                detail: "the connection stalled (send queue full)".to_owned(),
            }));
            let now = self.now();
            self.session.on_close(now, ABNORMAL, "send queue full");
        }
    }

    fn close(&mut self, code: u16, reason: String) {
        match std::mem::replace(&mut self.link, Link::None) {
            Link::Open(socket) => self.closing.push(socket.close(code, reason)),
            Link::Opening(_) | Link::None => {}
        }
    }

    fn drop_link(&mut self) {
        if let Link::Open(socket) = std::mem::replace(&mut self.link, Link::None) {
            socket.abort();
        }
    }

    /// Hands a presence change from the app to the session.
    fn take_presence(&mut self) {
        let change = {
            let mut slot = lock(&self.shared.presence);
            std::mem::take(&mut slot.dirty).then(|| slot.state.clone())
        };
        let now = self.now();
        match change {
            Some(Some(state)) => {
                // Always an object (the handle checks), so this cannot fail.
                let _ = self.session.set_presence(now, Value::Object(state));
            }
            Some(None) => self.session.clear_presence(now),
            None => {}
        }
    }

    fn on_event(&mut self, event: Event) {
        let event = match event {
            Event::StatusChanged(status) => {
                let status = Status::from(status);
                self.shared.status.send_replace(status.clone());
                RoomEvent::Status(status)
            }
            Event::OthersChanged(others) => {
                lock(&self.shared.others).clone_from(&others);
                RoomEvent::Others(others)
            }
            Event::DocumentChanged => RoomEvent::DocumentChanged,
            Event::Custom(event) => RoomEvent::Custom(event.into()),
            Event::Error(error) => RoomEvent::Error(error.into()),
        };
        self.publish(event);
    }

    fn publish(&self, event: RoomEvent) {
        // No subscriber is fine: events are optional.
        let _ = self.shared.events.send(event);
    }

    /// Leaves: pending changes and the presence withdrawal are sent, the socket closed
    /// (bounded by the close grace period).
    async fn leave(mut self) {
        let now = self.now();
        self.session.leave(now);
        self.drain();
        self.drop_link();
        for task in std::mem::take(&mut self.closing) {
            let _ = task.await;
        }
        tracing::debug!(room = %self.target.room, "left");
    }
}

async fn next_on_link(link: &mut Link) -> Wake {
    match link {
        Link::None => std::future::pending().await,
        Link::Opening(opening) => Wake::Opened(opening.as_mut().await),
        Link::Open(socket) => Wake::Incoming(socket.next().await),
    }
}

/// Opts the connect URL in to the session extension (message type 101).
fn with_session_ext(mut url: String) -> String {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(tandem_protocol::session::OPT_IN_PARAM);
    url.push_str("=1");
    url
}

async fn fresh_token(refreshing: &mut Option<Refreshing>) -> std::result::Result<String, BoxError> {
    match refreshing {
        Some(future) => future.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
