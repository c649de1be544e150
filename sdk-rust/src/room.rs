//! [`Room`]: the app's handle on one entered room (its document, presence, others,
//! events), and [`RoomEvents`], a subscription to what happens in it.

use std::sync::Arc;

use futures_util::Stream;
use serde_json::Value;
use tandem_protocol::client::Other;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use yrs::{Doc, Origin};

use crate::error::{Error, Result};
use crate::event::{RoomEvent, Status};
use crate::shared::{SharedList, SharedMap, SharedText};
use crate::transport::{lock, Command, Shared};

/// A room this client entered with [`Client::enter`](crate::Client::enter).
///
/// The room keeps itself connected in a background task: it reconnects with backoff
/// after network loss or a server restart, refreshes its token through the client's
/// [`TokenProvider`](crate::TokenProvider), and resynchronises the document on every new
/// connection, so edits made while offline are sent then. Read and change the shared
/// document with [`doc`](Self::doc) (plain yrs) or the [`map`](Self::map) /
/// [`list`](Self::list) / [`text`](Self::text) helpers; every change is sent to the
/// others without further calls.
///
/// Dropping the room leaves it (without waiting); [`leave`](Self::leave) waits until the
/// pending changes and the goodbye are sent.
///
/// ```no_run
/// use serde_json::json;
/// use tandem_sdk::{Client, RoomEvent};
///
/// # async fn demo(client: Client) -> Result<(), tandem_sdk::Error> {
/// let room = client.enter("my-room").await?;
/// room.wait_synced().await?;
/// room.update_presence(json!({"cursor": 3}))?;
/// room.list("messages").push(json!({"text": "hello"}))?;
/// for other in room.others() {
///     println!("{:?} is here: {}", other.user, other.presence);
/// }
/// let mut events = room.events();
/// while let Some(event) = events.recv().await {
///     if let RoomEvent::DocumentChanged = event {
///         println!("{}", room.list("messages").to_json());
///     }
/// }
/// room.leave().await;
/// # Ok(()) }
/// ```
pub struct Room {
    name: String,
    doc: Doc,
    remote_origin: Origin,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("name", &self.name)
            .field("client_id", &self.client_id())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Room {
    pub(crate) fn new(
        name: String,
        doc: Doc,
        remote_origin: Origin,
        shared: Arc<Shared>,
        commands: mpsc::Sender<Command>,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            name,
            doc,
            remote_origin,
            shared,
            commands,
            task: Some(task),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared yrs document. Change it with ordinary yrs transactions: the room sees
    /// every committed change and sends it (or, offline, sends it after reconnecting).
    ///
    /// Do not hold a transaction across an `.await`, and do not call the room's helpers
    /// from inside one: the room applies the others' changes in transactions of its own.
    ///
    /// ```no_run
    /// use yrs::{GetString, Text, Transact};
    ///
    /// # fn demo(room: &tandem_sdk::Room) {
    /// let text = room.doc().get_or_insert_text("text");
    /// {
    ///     let mut txn = room.doc().transact_mut();
    ///     text.push(&mut txn, "hello");
    /// }
    /// println!("{}", text.get_string(&room.doc().transact()));
    /// # }
    /// ```
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// This client's Yjs client id: its id in the others' [`Other::client_id`].
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// The origin of the transactions that apply the others' changes: compare a
    /// transaction's origin with it to tell remote changes from local ones (for example
    /// in an undo manager that should only track local edits).
    pub fn remote_origin(&self) -> Origin {
        self.remote_origin.clone()
    }

    /// A handle on the root map `name` (created if missing).
    ///
    /// ```no_run
    /// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
    /// let settings = room.map("settings");
    /// settings.set("theme", "dark")?;
    /// assert_eq!(settings.get("theme"), Some("dark".into()));
    /// # Ok(()) }
    /// ```
    pub fn map(&self, name: &str) -> SharedMap {
        SharedMap::new(&self.doc, name, self.remote_origin.clone())
    }

    /// A handle on the root list (Y.Array) `name` (created if missing).
    ///
    /// ```no_run
    /// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
    /// let todos = room.list("todos");
    /// todos.push(serde_json::json!({"title": "write docs", "done": false}))?;
    /// println!("{} to do", todos.len());
    /// # Ok(()) }
    /// ```
    pub fn list(&self, name: &str) -> SharedList {
        SharedList::new(&self.doc, name, self.remote_origin.clone())
    }

    /// A handle on the root text (Y.Text) `name` (created if missing).
    ///
    /// ```no_run
    /// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
    /// let notes = room.text("notes");
    /// notes.push("hello ")?;
    /// notes.insert(6, "world")?;
    /// # Ok(()) }
    /// ```
    pub fn text(&self, name: &str) -> SharedText {
        SharedText::new(&self.doc, name, self.remote_origin.clone())
    }

    /// The connection status now.
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Waits until the document is synchronised with the server
    /// ([`Status::Synced`]), or the room stopped: then the fatal error (for example
    /// [`Error::Forbidden`]), or [`Error::Left`] when it was left.
    ///
    /// ```no_run
    /// # async fn demo(client: tandem_sdk::Client) {
    /// let room = client.enter("doc-1").await.unwrap();
    /// match room.wait_synced().await {
    ///     Ok(()) => println!("up to date"),
    ///     Err(tandem_sdk::Error::Forbidden { reason }) => eprintln!("not allowed: {reason}"),
    ///     Err(other) => eprintln!("{other}"),
    /// }
    /// # }
    /// ```
    pub async fn wait_synced(&self) -> Result<()> {
        let mut status = self.shared.status.subscribe();
        let status = status
            .wait_for(|s| matches!(s, Status::Synced | Status::Disconnected { .. }))
            .await
            .map_err(|_| Error::Left)?;
        match &*status {
            Status::Disconnected { error: Some(error) } => Err(error.clone()),
            Status::Disconnected { error: None } => Err(Error::Left),
            _ => Ok(()),
        }
    }

    /// Subscribes to the room's events from now on. Each subscriber gets every event;
    /// one that falls more than 1024 events behind gets [`RoomEvent::Lagged`] instead of
    /// the ones it missed.
    pub fn events(&self) -> RoomEvents {
        RoomEvents {
            receiver: self.shared.events.subscribe(),
        }
    }

    /// This client's presence: the JSON object others see (the server adds `user` from
    /// the token), or `null` while hidden ([`clear_presence`](Self::clear_presence)).
    pub fn presence(&self) -> Value {
        lock(&self.shared.presence)
            .state
            .clone()
            .map_or(Value::Null, Value::Object)
    }

    /// Merges the members of `patch` (a JSON object) into this client's presence;
    /// members not named keep their value. Sent at once when connected (many quick
    /// changes go out as one), otherwise on the next connection.
    ///
    /// ```no_run
    /// # fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
    /// room.update_presence(serde_json::json!({"cursor": {"x": 10, "y": 20}}))?;
    /// # Ok(()) }
    /// ```
    pub fn update_presence(&self, patch: Value) -> Result<()> {
        let Value::Object(patch) = patch else {
            return Err(Error::PresenceNotAnObject);
        };
        lock(&self.shared.presence)
            .state
            .get_or_insert_with(Default::default)
            .extend(patch);
        self.presence_changed();
        Ok(())
    }

    /// Replaces this client's presence with `presence` (a JSON object).
    pub fn set_presence(&self, presence: Value) -> Result<()> {
        let Value::Object(presence) = presence else {
            return Err(Error::PresenceNotAnObject);
        };
        lock(&self.shared.presence).state = Some(presence);
        self.presence_changed();
        Ok(())
    }

    /// Hides this client from the others while staying in the room;
    /// [`set_presence`](Self::set_presence) or [`update_presence`](Self::update_presence)
    /// shows it again.
    pub fn clear_presence(&self) {
        lock(&self.shared.presence).state = None;
        self.presence_changed();
    }

    fn presence_changed(&self) {
        lock(&self.shared.presence).dirty = true;
        self.shared.wake.notify_one();
    }

    /// The other clients in the room now, sorted by client id, each with the user info
    /// the server attached from its token ([`Other::user`], [`Other::user_id`]) and its
    /// presence. Empty while disconnected.
    pub fn others(&self) -> Vec<Other> {
        lock(&self.shared.others).clone()
    }

    /// Sends a custom event (any JSON value) to the others in the room, who receive it
    /// as [`RoomEvent::Custom`]. Events are not queued while disconnected: the call
    /// fails with [`Error::NotConnected`].
    ///
    /// ```no_run
    /// # async fn demo(room: &tandem_sdk::Room) -> Result<(), tandem_sdk::Error> {
    /// room.broadcast(serde_json::json!({"type": "wave"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn broadcast(&self, event: Value) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Broadcast(event, reply))
            .await
            .map_err(|_| Error::Left)?;
        answer.await.map_err(|_| Error::Left)?
    }

    /// Connects now: skips the wait before the next reconnect attempt (for example when
    /// the platform says the network is back), or starts again after the room stopped on
    /// a fatal error. Does nothing while connected.
    pub async fn reconnect(&self) -> Result<()> {
        self.commands
            .send(Command::Reconnect)
            .await
            .map_err(|_| Error::Left)
    }

    /// Leaves the room: pending changes are sent, this client's presence is withdrawn,
    /// the connection is closed, and the room's task ends. The document stays usable
    /// locally (clone [`doc`](Self::doc) first to keep it).
    pub async fn leave(mut self) {
        let _ = self.commands.send(Command::Leave).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A subscription to a room's events ([`Room::events`]).
///
/// ```no_run
/// use tandem_sdk::RoomEvent;
///
/// # async fn demo(room: &tandem_sdk::Room) {
/// let mut events = room.events();
/// while let Some(event) = events.recv().await {
///     match event {
///         RoomEvent::Status(status) => println!("status: {status:?}"),
///         RoomEvent::Others(others) => println!("{} others here", others.len()),
///         RoomEvent::Custom(custom) => println!("event: {}", custom.event),
///         RoomEvent::Error(error) if error.is_fatal() => break,
///         _ => {}
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct RoomEvents {
    receiver: broadcast::Receiver<RoomEvent>,
}

impl RoomEvents {
    /// The next event, waiting for it; `None` once the room is gone and every event was
    /// received.
    pub async fn recv(&mut self) -> Option<RoomEvent> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(RoomEvent::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<RoomEvent> {
        match self.receiver.try_recv() {
            Ok(event) => Some(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Some(RoomEvent::Lagged { missed })
            }
            Err(_) => None,
        }
    }

    /// The events as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = RoomEvent> + Send + 'static {
        futures_util::stream::unfold(self, |mut events| async move {
            let event = events.recv().await?;
            Some((event, events))
        })
    }
}
