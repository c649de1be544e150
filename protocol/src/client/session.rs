//! [`ClientSession`]: one room's connection state machine. It reacts to inputs (socket
//! opened, frame received, socket closed, timer tick, app calls) and queues outputs
//! (frames to send, sockets to open or close, events for the app). See the
//! [module docs](super) for the transport's side of the contract.

use std::collections::VecDeque;

use serde_json::{Map, Value};
use yrs::{Doc, Origin};

use crate::awareness;
use crate::event::ServerEvent;
use crate::session::{Hello, Refreshed};
use crate::{DecodeError, Message};

use super::config::SessionConfig;
use super::doc::{DocLink, Notify};
use super::error::{CallError, SessionError};
use super::output::{Event, Output, Status};
use super::presence::{LocalPresence, Other, Others};
use super::reconnect::{Plan, Reconnect};

/// The close code the session uses when it ends a connection itself.
const CLIENT_CLOSE: u16 = 1000;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// Never connected.
    Idle,
    /// Waiting until `at_ms` to ask for a connection.
    Waiting { at_ms: u64, refresh_token: bool },
    /// [`Output::Connect`] was emitted; the transport has not reported back yet.
    Connecting { since_ms: u64 },
    /// A socket is open.
    Open {
        last_recv_ms: u64,
        /// The server's sync step 2 arrived on this connection.
        synced: bool,
        /// The server said it will not apply our updates.
        read_only: bool,
        /// A resync was already requested after a bad frame (once per connection, so a
        /// broken server cannot make us spin).
        resync_requested: bool,
    },
    /// Left, or stopped by a fatal error.
    Stopped,
}

/// A sans-IO client for one room: the yrs document, the local presence and everyone
/// else's, and the connection's life cycle (sync, reconnects, close codes).
///
/// ```
/// use tandem_protocol::client::{ClientSession, Output, SessionConfig, Status};
/// use tandem_protocol::Message;
///
/// let mut session = ClientSession::new(yrs::Doc::new(), SessionConfig::default()).unwrap();
/// session.connect(0);
/// assert_eq!(session.poll_output(), Some(Output::Connect { refresh_token: false }));
/// session.on_open(5);
/// // The server says hello with its sync step 1; the session answers with step 2.
/// session.on_frame(6, &Message::SyncStep1(&[0]).encode());
/// let frames: Vec<Output> = std::iter::from_fn(|| session.poll_output()).collect();
/// assert!(frames.iter().any(|o| matches!(o, Output::Send(f)
///     if matches!(Message::decode(f), Ok(Message::SyncStep2(_))))));
/// assert_eq!(session.status(), &Status::Connected);
/// ```
#[derive(Debug)]
pub struct ClientSession {
    config: SessionConfig,
    link: DocLink,
    conn: Conn,
    status: Status,
    reconnect: Reconnect,
    presence: LocalPresence,
    others: Others,
    outputs: VecDeque<Output>,
    /// When the connection's token should be replaced in band (from the server's hello
    /// or its last refresh answer), and whether the transport was already asked.
    refresh: Option<Refresh>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refresh {
    at_ms: u64,
    asked: bool,
}

/// How long before a token expires the session asks for a fresh one: a quarter of what
/// is left, at most a minute, at least half a second (the JS SDK uses the same rule).
fn refresh_lead_ms(expires_in_ms: u64) -> u64 {
    (expires_in_ms / 4).clamp(500, 60_000)
}

impl ClientSession {
    /// A session for `doc` (a clone of the app's handle: yrs documents are shared
    /// references). The session observes the document from now on: every transaction
    /// the app commits is sent to the server while connected, and resynchronised after
    /// a reconnect otherwise. Fails only if a transaction is open on `doc`.
    ///
    /// The local presence starts as `{}`, like the stock y-websocket client, so others
    /// see this client (with its token's user info) as soon as it connects.
    pub fn new(doc: Doc, config: SessionConfig) -> Result<Self, CallError> {
        let client_id = doc.client_id().get();
        let link = DocLink::attach(doc)?;
        Ok(Self {
            reconnect: Reconnect::new(&config),
            config,
            link,
            conn: Conn::Idle,
            status: Status::Initial,
            presence: LocalPresence::new(client_id),
            others: Others::new(client_id),
            outputs: VecDeque::new(),
            refresh: None,
        })
    }

    /// The document this session synchronises.
    pub fn doc(&self) -> &Doc {
        self.link.doc()
    }

    /// This client's Yjs client id, which is also its awareness id.
    pub fn client_id(&self) -> u64 {
        self.link.doc().client_id().get()
    }

    /// The origin of the transactions that apply the server's changes: compare a
    /// transaction's origin with it to tell remote changes from local ones (e.g. for an
    /// undo manager that should track only local edits).
    pub fn remote_origin(&self) -> Origin {
        self.link.origin()
    }

    /// Registers a callback run whenever the app commits a change that is waiting to be
    /// sent, so an event-driven transport knows to call [`poll_output`](Self::poll_output).
    /// It runs inside the app's transaction commit: it must not block, touch the
    /// document or call the session (wake a task, post a message).
    pub fn set_change_notifier(&mut self, notify: Option<Notify>) {
        self.link.set_notify(notify);
    }

    /// The current status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether the server said (on this connection) that it will not apply our changes.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self.conn,
            Conn::Open {
                read_only: true,
                ..
            }
        )
    }

    /// The local presence, or `None` while hidden ([`clear_presence`](Self::clear_presence)).
    pub fn presence(&self) -> Option<&Map<String, Value>> {
        self.presence.state()
    }

    /// The other clients present in the room, sorted by client id. Empty while
    /// disconnected: the server sends the current list again on reconnect.
    pub fn others(&self) -> Vec<Other> {
        self.others.list()
    }

    /// The next queued output, if any. Call it until it returns `None` after every
    /// input and whenever the change notifier fires. Local document changes are picked
    /// up here.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.flush_local();
        self.outputs.pop_front()
    }

    /// When [`tick`](Self::tick) must be called next (milliseconds, the same clock as
    /// every `now_ms`), or `None` when no timer is running. Ticking earlier or more
    /// often is harmless.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.conn {
            Conn::Idle | Conn::Stopped => None,
            Conn::Waiting { at_ms, .. } => Some(at_ms),
            Conn::Connecting { since_ms } => {
                Some(since_ms.saturating_add(self.config.connect_timeout_ms))
            }
            Conn::Open { last_recv_ms, .. } => {
                let live = self.presence.is_live().then(|| {
                    let silence = last_recv_ms.saturating_add(self.config.silence_timeout_ms);
                    let renew = self
                        .presence
                        .last_sent_ms
                        .saturating_add(self.config.awareness_renew_ms);
                    silence.min(renew)
                });
                let expiry = self.others.next_expiry_ms(self.config.awareness_timeout_ms);
                let refresh = self.refresh.filter(|r| !r.asked).map(|r| r.at_ms);
                [live, expiry, refresh].into_iter().flatten().min()
            }
        }
    }

    // ---- inputs from the app ----

    /// Starts connecting (from [`Status::Initial`], or again after
    /// [`Status::Disconnected`]), or skips the wait before the next reconnect (e.g.
    /// the platform reports the network is back). Does nothing while connecting or
    /// connected.
    pub fn connect(&mut self, now_ms: u64) {
        match self.conn {
            Conn::Idle | Conn::Stopped => {
                self.reconnect.reset();
                self.request_connect(now_ms, false);
            }
            Conn::Waiting { refresh_token, .. } => self.request_connect(now_ms, refresh_token),
            Conn::Connecting { .. } | Conn::Open { .. } => {}
        }
    }

    /// Leaves the room: pending changes are sent, the presence is withdrawn (`null` at
    /// the same clock, as y-websocket's `disconnect()` does), the socket is closed and
    /// nothing is retried. [`connect`](Self::connect) enters again.
    pub fn leave(&mut self, _now_ms: u64) {
        match self.conn {
            Conn::Open { .. } => {
                self.flush_local();
                if self.presence.is_live() {
                    let frame = self.presence.leave_frame();
                    self.outputs.push_back(Output::Send(frame));
                }
                self.close_socket("leaving the room");
            }
            Conn::Connecting { .. } => self.close_socket("leaving the room"),
            Conn::Idle | Conn::Waiting { .. } | Conn::Stopped => {}
        }
        self.drop_connection();
        self.stop(None);
    }

    /// Replaces the local presence (a JSON object; the server adds `user`). Sent at
    /// once when connected, otherwise on the next connection.
    pub fn set_presence(&mut self, now_ms: u64, presence: Value) -> Result<(), CallError> {
        let Value::Object(map) = presence else {
            return Err(CallError::PresenceNotAnObject);
        };
        self.presence.set(map);
        self.announce_presence(now_ms);
        Ok(())
    }

    /// Merges the members of `patch` (a JSON object) into the local presence, like
    /// Liveblocks' `updatePresence`: members not named keep their value.
    pub fn update_presence(&mut self, now_ms: u64, patch: Value) -> Result<(), CallError> {
        let Value::Object(patch) = patch else {
            return Err(CallError::PresenceNotAnObject);
        };
        let mut map = self.presence.state().cloned().unwrap_or_default();
        map.extend(patch);
        self.presence.set(map);
        self.announce_presence(now_ms);
        Ok(())
    }

    /// Hides this client from the others (its presence becomes `null`) while staying
    /// connected. [`set_presence`](Self::set_presence) shows it again.
    pub fn clear_presence(&mut self, now_ms: u64) {
        if self.presence.is_live() {
            self.presence.clear();
            self.announce_presence(now_ms);
        }
    }

    /// Sends a custom event (any JSON value) to the room's other connections. Events are
    /// not queued while disconnected: like Liveblocks' broadcast, they are for things
    /// that only matter now.
    pub fn broadcast(&mut self, event: &Value) -> Result<(), CallError> {
        if !matches!(self.conn, Conn::Open { .. }) {
            return Err(CallError::NotConnected);
        }
        self.send(Message::Event(&event.to_string()).encode());
        Ok(())
    }

    // ---- inputs from the transport ----

    /// The socket requested by [`Output::Connect`] is open. The session sends its sync
    /// step 1 and its presence, like the stock client.
    pub fn on_open(&mut self, now_ms: u64) {
        if !matches!(self.conn, Conn::Connecting { .. }) {
            return;
        }
        self.conn = Conn::Open {
            last_recv_ms: now_ms,
            synced: false,
            read_only: false,
            resync_requested: false,
        };
        self.set_status(Status::Connected);
        self.send(Message::SyncStep1(&self.link.state_vector()).encode());
        self.presence.on_reconnect();
        if self.presence.is_live() {
            self.send_presence(now_ms);
        }
    }

    /// A binary frame arrived. Text frames are not part of the protocol: drop them.
    pub fn on_frame(&mut self, now_ms: u64, frame: &[u8]) {
        let Conn::Open { last_recv_ms, .. } = &mut self.conn else {
            return;
        };
        *last_recv_ms = now_ms;
        match Message::decode(frame) {
            Ok(message) => self.on_message(now_ms, message),
            // A newer server may speak types we do not know; the stock client ignores
            // them too.
            Err(DecodeError::UnknownMessageType(_)) => {}
            Err(e) => self.protocol_error(format!("undecodable frame: {e}"), false),
        }
    }

    /// The socket closed (or could not be opened: pass 1006) with `code` and `reason`.
    /// What happens next follows [`crate::close::retry_for`].
    pub fn on_close(&mut self, now_ms: u64, code: u16, reason: &str) {
        let synced = match self.conn {
            Conn::Open { synced, .. } => synced,
            Conn::Connecting { .. } => false,
            Conn::Idle | Conn::Waiting { .. } | Conn::Stopped => return,
        };
        // Frames still queued were meant for the socket that is gone.
        self.outputs.retain(|o| !matches!(o, Output::Send(_)));
        self.drop_connection();
        let plan = self.reconnect.after_close(code, reason, synced);
        self.follow(now_ms, plan);
    }

    /// Runs the timers: reconnects that are due, connection attempts that took too long,
    /// dead connections, presence renewal and others' expiry.
    pub fn tick(&mut self, now_ms: u64) {
        match self.conn {
            Conn::Idle | Conn::Stopped => {}
            Conn::Waiting {
                at_ms,
                refresh_token,
            } => {
                if now_ms >= at_ms {
                    self.request_connect(now_ms, refresh_token);
                }
            }
            Conn::Connecting { since_ms } => {
                if now_ms >= since_ms.saturating_add(self.config.connect_timeout_ms) {
                    self.abandon(now_ms, "connection attempt timed out");
                }
            }
            Conn::Open { last_recv_ms, .. } => {
                if self.presence.is_live() {
                    let silent_since = now_ms.saturating_sub(last_recv_ms);
                    if silent_since >= self.config.silence_timeout_ms {
                        self.abandon(now_ms, "no message from the server");
                        return;
                    }
                    let since_sent = now_ms.saturating_sub(self.presence.last_sent_ms);
                    if since_sent >= self.config.awareness_renew_ms {
                        self.presence.renew();
                        self.send_presence(now_ms);
                    }
                }
                if self.others.expire(now_ms, self.config.awareness_timeout_ms) {
                    self.emit_others();
                }
                if let Some(refresh) = &mut self.refresh {
                    if !refresh.asked && now_ms >= refresh.at_ms {
                        refresh.asked = true;
                        self.outputs.push_back(Output::RefreshToken);
                    }
                }
            }
        }
    }

    /// The fresh token the transport got after [`Output::RefreshToken`]: sent to the
    /// server on the open connection, which extends the connection's life with it.
    pub fn on_fresh_token(&mut self, _now_ms: u64, token: &str) {
        if matches!(self.conn, Conn::Open { .. }) {
            self.send(Message::RefreshToken(token).encode());
        }
    }

    /// The token provider failed after [`Output::RefreshToken`]: asked again in a
    /// second (the server closes with 4401 at expiry if nothing works, and the
    /// reconnect policy takes over).
    pub fn on_fresh_token_failed(&mut self, now_ms: u64) {
        if let Some(refresh) = &mut self.refresh {
            *refresh = Refresh {
                at_ms: now_ms.saturating_add(1_000),
                asked: false,
            };
        }
    }

    /// Schedules the next in-band refresh for a token that expires in `expires_in_ms`.
    fn schedule_refresh(&mut self, now_ms: u64, expires_in_ms: Option<u64>) {
        self.refresh = expires_in_ms.map(|left| Refresh {
            at_ms: now_ms.saturating_add(left.saturating_sub(refresh_lead_ms(left))),
            asked: false,
        });
    }

    // ---- message handling ----

    fn on_message(&mut self, now_ms: u64, message: Message<'_>) {
        match message {
            Message::SyncStep1(sv) => {
                // Local updates are forwarded only from here on: everything before is
                // in this answer, so the server never gets an update whose history it
                // lacks. Forwarding starts *before* the diff is taken, so a change
                // committed in between is in one or the other (or both, harmlessly).
                if !self.is_read_only() {
                    self.link.set_forwarding(true);
                }
                match self.link.diff(sv) {
                    Ok(diff) => self.send(Message::SyncStep2(&diff).encode()),
                    Err(detail) => self.protocol_error(detail, false),
                }
            }
            Message::SyncStep2(update) => {
                if self.apply_remote(update) {
                    self.on_synced();
                }
            }
            Message::Update(update) => {
                self.apply_remote(update);
            }
            Message::Awareness(bytes) => self.on_awareness(now_ms, bytes),
            Message::AuthDenied(reason) => {
                if let Conn::Open { read_only, .. } = &mut self.conn {
                    *read_only = true;
                }
                // Nothing we change will be applied on this connection; the edits stay
                // in the document and a later connection with write access syncs them.
                self.link.set_forwarding(false);
                self.outputs
                    .push_back(Output::Event(Event::Error(SessionError::ReadOnly {
                        reason: reason.to_owned(),
                    })));
            }
            Message::QueryAwareness => {
                if self.presence.is_live() {
                    self.send_presence(now_ms);
                }
            }
            Message::Event(json) => match ServerEvent::parse(json) {
                Ok(event) => self.outputs.push_back(Output::Event(Event::Custom(event))),
                Err(e) => self.protocol_error(e.to_string(), false),
            },
            // The session extension (the transport opts in with `?tandem=1`): the
            // token's remaining life schedules an in-band refresh.
            Message::Hello(json) => match serde_json::from_str::<Hello>(json) {
                Ok(hello) => self.schedule_refresh(now_ms, hello.expires_in_ms),
                Err(e) => self.protocol_error(format!("bad hello: {e}"), false),
            },
            Message::Refreshed(json) => match serde_json::from_str::<Refreshed>(json) {
                Ok(answer) if answer.ok => self.schedule_refresh(now_ms, answer.expires_in_ms),
                Ok(answer) => {
                    // The old token stays valid until it expires; then the server's 4401
                    // and the reconnect policy (which asks for a fresh token) take over.
                    if let Some(refresh) = &mut self.refresh {
                        refresh.asked = true;
                    }
                    self.outputs.push_back(Output::Event(Event::Error(
                        SessionError::RefreshRefused {
                            code: answer.code.unwrap_or(crate::close::UNAUTHORIZED),
                            reason: answer.reason.unwrap_or_default(),
                        },
                    )));
                }
                Err(e) => self.protocol_error(format!("bad refresh answer: {e}"), false),
            },
            // Saved acknowledgements: this session does not track them (yet).
            Message::Saved(_) => {}
            Message::RefreshToken(_) => {
                self.protocol_error("the server sent a token refresh".to_owned(), false);
            }
        }
    }

    /// Applies a server update; returns whether it could be applied.
    fn apply_remote(&mut self, update: &[u8]) -> bool {
        match self.link.apply_remote(update) {
            Ok(changed) => {
                if changed {
                    self.outputs
                        .push_back(Output::Event(Event::DocumentChanged));
                }
                true
            }
            Err(detail) => {
                self.protocol_error(detail, true);
                false
            }
        }
    }

    fn on_synced(&mut self) {
        if let Conn::Open { synced, .. } = &mut self.conn {
            if !*synced {
                *synced = true;
                self.reconnect.reset();
                self.set_status(Status::Synced);
            }
        }
    }

    fn on_awareness(&mut self, now_ms: u64, bytes: &[u8]) {
        let entries = match awareness::decode_update(bytes) {
            Ok(entries) => entries,
            Err(e) => return self.protocol_error(format!("bad awareness update: {e}"), false),
        };
        let own_id = self.client_id();
        let mut reannounce = false;
        for entry in entries.iter().filter(|e| e.client_id == own_id) {
            reannounce |= self.presence.on_own_entry(entry);
        }
        if reannounce {
            self.send_presence(now_ms);
        }
        if self.others.apply(&entries, now_ms) {
            self.emit_others();
        }
    }

    /// Reports an unreadable server frame. With `resync`, document data was lost, so
    /// the session asks for the server's state again (once per connection).
    fn protocol_error(&mut self, detail: String, resync: bool) {
        self.outputs
            .push_back(Output::Event(Event::Error(SessionError::Protocol {
                detail,
            })));
        if let Conn::Open {
            resync_requested, ..
        } = &mut self.conn
        {
            if resync && !*resync_requested {
                *resync_requested = true;
                let sv = self.link.state_vector();
                self.send(Message::SyncStep1(&sv).encode());
            }
        }
    }

    // ---- connection life cycle ----

    fn request_connect(&mut self, now_ms: u64, refresh_token: bool) {
        self.outputs.push_back(Output::Connect { refresh_token });
        self.conn = Conn::Connecting { since_ms: now_ms };
        let failures = self.reconnect.failures();
        self.set_status(if failures == 0 {
            Status::Connecting
        } else {
            Status::Reconnecting { attempt: failures }
        });
    }

    /// Carries out the reconnect policy's decision.
    fn follow(&mut self, now_ms: u64, plan: Plan) {
        match plan {
            Plan::Stop(error) => self.stop(Some(error)),
            Plan::Retry {
                delay_ms,
                refresh_token,
                notice,
            } => {
                if let Some(notice) = notice {
                    self.outputs.push_back(Output::Event(Event::Error(notice)));
                }
                self.conn = Conn::Waiting {
                    at_ms: now_ms.saturating_add(delay_ms),
                    refresh_token,
                };
                self.set_status(Status::Reconnecting {
                    attempt: self.reconnect.failures(),
                });
                if delay_ms == 0 {
                    self.request_connect(now_ms, refresh_token);
                }
            }
        }
    }

    /// Gives up on the current socket from our side and reconnects with backoff.
    fn abandon(&mut self, now_ms: u64, reason: &str) {
        self.close_socket(reason);
        self.drop_connection();
        let plan = self.reconnect.after_timeout();
        self.follow(now_ms, plan);
    }

    fn close_socket(&mut self, reason: &str) {
        self.outputs.push_back(Output::Close {
            code: CLIENT_CLOSE,
            reason: reason.to_owned(),
        });
    }

    /// Forgets what belonged to the connection that just ended.
    fn drop_connection(&mut self) {
        self.refresh = None;
        self.link.set_forwarding(false);
        self.conn = Conn::Idle;
        if self.others.clear() {
            self.emit_others();
        }
    }

    fn stop(&mut self, error: Option<SessionError>) {
        self.conn = Conn::Stopped;
        self.link.set_forwarding(false);
        if let Some(error) = &error {
            self.outputs
                .push_back(Output::Event(Event::Error(error.clone())));
        }
        self.set_status(Status::Disconnected { error });
    }

    // ---- outputs ----

    fn set_status(&mut self, status: Status) {
        if self.status != status {
            self.status = status.clone();
            self.outputs
                .push_back(Output::Event(Event::StatusChanged(status)));
        }
    }

    fn emit_others(&mut self) {
        let list = self.others.list();
        self.outputs
            .push_back(Output::Event(Event::OthersChanged(list)));
    }

    fn announce_presence(&mut self, now_ms: u64) {
        if matches!(self.conn, Conn::Open { .. }) {
            self.send_presence(now_ms);
        }
    }

    fn send_presence(&mut self, now_ms: u64) {
        self.presence.last_sent_ms = now_ms;
        self.send(self.presence.frame());
    }

    /// Queues a frame after any local changes made before it, so that what the frame
    /// refers to (a cursor in new text, an event about a new item) arrives first.
    fn send(&mut self, frame: Vec<u8>) {
        self.flush_local();
        self.outputs.push_back(Output::Send(frame));
    }

    /// Turns the local changes collected by the observer into one update frame.
    fn flush_local(&mut self) {
        let pending = self.link.take_pending();
        if pending.is_empty()
            || !matches!(
                self.conn,
                Conn::Open {
                    read_only: false,
                    ..
                }
            )
        {
            return;
        }
        let frames: Vec<Vec<u8>> = if pending.len() == 1 {
            pending
        } else {
            match yrs::merge_updates_v1(&pending) {
                Ok(merged) => vec![merged],
                // Merging our own updates does not fail in practice; if it does, they
                // still go, one frame each.
                Err(_) => pending,
            }
        };
        for update in frames {
            self.outputs
                .push_back(Output::Send(Message::Update(&update).encode()));
        }
    }
}
