//! A rooms engine on a fresh SQLite directory, and clients that run the real session
//! over an in-memory transport (the session is generic over `Sink + Stream`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use serde_json::Value;
use tandem_protocol::awareness::{self, AwarenessEntry};
use tandem_protocol::Message;
use tokio::sync::mpsc;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update, WriteTxn};

use crate::rooms::auth::Grant;
use crate::rooms::session::{self, Inbound, Outbound};
use crate::rooms::{RoomKey, Rooms, RoomsConfig};
use crate::store::sqlite::SqliteStore;
use crate::store::usage::SharedUsageStore;
use crate::store::SharedDocStore;

/// How long any wait in these tests may take before it counts as a failure.
const DEADLINE: Duration = Duration::from_secs(10);

pub(super) struct Harness {
    pub(super) rooms: Rooms,
    pub(super) store: SharedDocStore,
    /// The same store, as usage metering writes to it.
    pub(super) usage: SharedUsageStore,
    pub(super) dir: tempfile::TempDir,
}

impl Harness {
    pub(super) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (rooms, store, usage) = open(&dir).await;
        Self {
            rooms,
            store,
            usage,
            dir,
        }
    }

    /// Shuts the engine down (every room flushed, the store closed) and starts a new one
    /// on the same data directory: what a restart sees.
    pub(super) async fn restart(&mut self) {
        self.rooms.shutdown(DEADLINE).await;
        let (rooms, store, usage) = open(&self.dir).await;
        self.rooms = rooms;
        self.store = store;
        self.usage = usage;
    }

    /// Updates in the room's stored log (`None` if the store has no such room).
    pub(super) async fn stored_updates(&self, key: &RoomKey) -> Option<usize> {
        let found = self
            .store
            .find_room(&key.project_id, &key.name)
            .await
            .unwrap();
        match found {
            Some(_) => Some(
                self.store
                    .load(&key.project_id, &key.name)
                    .await
                    .unwrap()
                    .updates
                    .len(),
            ),
            None => None,
        }
    }
}

async fn open(dir: &tempfile::TempDir) -> (Rooms, SharedDocStore, SharedUsageStore) {
    let sqlite = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let store: SharedDocStore = sqlite.clone();
    let usage: SharedUsageStore = sqlite;
    let config = RoomsConfig {
        // Rooms stay loaded for the whole test unless it says otherwise.
        room_idle_timeout: Duration::from_secs(600),
        ..RoomsConfig::default()
    };
    (
        Rooms::metered(store.clone(), usage.clone(), config),
        store,
        usage,
    )
}

pub(super) fn key(project: &str, name: &str) -> RoomKey {
    RoomKey {
        project_id: project.into(),
        name: name.into(),
    }
}

/// Full rights, no user, no key.
pub(super) fn grant(project: &str) -> Grant {
    Grant {
        project_id: project.to_owned(),
        can_write: true,
        can_presence: true,
        can_admin: false,
        expires_at: None,
        user_id: None,
        user_info: None,
        key_id: None,
        limits: None,
    }
}

/// The session's transport, backed by two channels.
struct Pipe {
    inbound: mpsc::UnboundedReceiver<Inbound>,
    outbound: mpsc::UnboundedSender<Outbound>,
}

impl Stream for Pipe {
    type Item = Result<Inbound, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inbound.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

impl Sink<Outbound> for Pipe {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: Outbound) -> Result<(), Infallible> {
        let _ = self.outbound.send(frame);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

/// One connection, seen from the client's side.
pub(super) struct Client {
    to_server: mpsc::UnboundedSender<Inbound>,
    from_server: mpsc::UnboundedReceiver<Outbound>,
    /// The room's state vector as its sync step 1 on joining said.
    pub(super) server_sv: Vec<u8>,
}

impl Client {
    fn spawn(rooms: &Rooms, key: &RoomKey, grant: Grant) -> Self {
        Self::spawn_with(rooms, key, grant, session::ConnOptions::default())
    }

    /// Connects with extension options (saved acknowledgements, in-band refresh).
    pub(super) fn spawn_with(
        rooms: &Rooms,
        key: &RoomKey,
        grant: Grant,
        options: session::ConnOptions,
    ) -> Self {
        let (to_server, inbound) = mpsc::unbounded_channel();
        let (outbound, from_server) = mpsc::unbounded_channel();
        let pipe = Pipe { inbound, outbound };
        tokio::spawn(session::run(
            rooms.clone(),
            key.clone(),
            grant,
            options,
            pipe,
        ));
        Self {
            to_server,
            from_server,
            server_sv: Vec::new(),
        }
    }

    /// Connects without waiting for anything (for tests of refusals).
    pub(super) fn spawn_for_test(rooms: &Rooms, key: &RoomKey, grant: Grant) -> Self {
        Self::spawn(rooms, key, grant)
    }

    /// Connects and waits until the room has taken the connection in (its sync step 1
    /// is the first thing a joined connection receives).
    pub(super) async fn joined(rooms: &Rooms, key: &RoomKey, grant: Grant) -> Self {
        let mut client = Self::spawn(rooms, key, grant);
        client.server_sv = client
            .until(|m| match m {
                Message::SyncStep1(sv) => Some(sv.to_vec()),
                _ => None,
            })
            .await;
        client
    }

    pub(super) fn send(&self, message: Message<'_>) {
        let frame = Bytes::from(message.encode());
        self.to_server.send(Inbound::Binary(frame)).unwrap();
    }

    /// Sends one awareness state for `client_id`.
    pub(super) fn send_awareness(&self, client_id: u64, clock: u64, state: &str) {
        let update = awareness::encode_update([AwarenessEntry {
            client_id,
            clock,
            state,
        }]);
        self.send(Message::Awareness(&update));
    }

    /// The next frame from the server.
    pub(super) async fn next(&mut self) -> Outbound {
        tokio::time::timeout(DEADLINE, self.from_server.recv())
            .await
            .expect("nothing from the server before the deadline")
            .expect("the session ended without a close frame")
    }

    /// Skips messages until `pick` returns something; panics on a close.
    pub(super) async fn until<T>(&mut self, mut pick: impl FnMut(&Message<'_>) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Outbound::Binary(frame) => {
                    let message = Message::decode(&frame).unwrap();
                    if let Some(found) = pick(&message) {
                        return found;
                    }
                }
                Outbound::Close { code, reason } => {
                    panic!("closed ({code} {reason}) while waiting for a message")
                }
            }
        }
    }

    /// Skips messages until the server closes; returns the close code and reason.
    pub(super) async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Outbound::Close { code, reason } = self.next().await {
                return (code, reason);
            }
        }
    }

    /// Everything received from here up to the answer to a sync step 1 of ours. The
    /// room handles a connection's messages in order, so whatever it was going to send
    /// this connection in answer to earlier messages has arrived by then.
    pub(super) async fn round_trip(&mut self) -> Vec<Vec<u8>> {
        self.send(Message::SyncStep1(&[0]));
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Outbound::Binary(frame) => {
                    if let Ok(Message::SyncStep2(_)) = Message::decode(&frame) {
                        return seen;
                    }
                    seen.push(frame.to_vec());
                }
                Outbound::Close { code, reason } => panic!("closed ({code} {reason})"),
            }
        }
    }

    /// The next custom event, as JSON.
    pub(super) async fn event(&mut self) -> Value {
        let json = self
            .until(|m| match m {
                Message::Event(json) => Some((*json).to_owned()),
                _ => None,
            })
            .await;
        serde_json::from_str(&json).unwrap()
    }
}

/// Events among frames (from [`Client::round_trip`]).
pub(super) fn events(frames: &[Vec<u8>]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| match Message::decode(f) {
            Ok(Message::Event(json)) => serde_json::from_str(json).ok(),
            _ => None,
        })
        .collect()
}

/// A client-side document with a fixed client id, making updates the way Yjs does.
pub(super) struct Author {
    pub(super) doc: Doc,
}

impl Author {
    pub(super) fn new(client_id: u64) -> Self {
        Self {
            doc: Doc::with_client_id(client_id),
        }
    }

    /// Appends to the text root `name`; returns the update.
    pub(super) fn type_text(&self, name: &str, s: &str) -> Bytes {
        let mut txn = self.doc.transact_mut();
        let text = txn.get_or_insert_text(name);
        let end = text.len(&txn);
        text.insert(&mut txn, end, s);
        Bytes::from(txn.encode_update_v1())
    }

    pub(super) fn state_vector(&self) -> Vec<u8> {
        use yrs::updates::encoder::Encode;
        self.doc.transact().state_vector().encode_v1()
    }
}

/// The text root `name` of a document built from `updates`.
pub(super) fn text_of(updates: &[&[u8]], name: &str) -> String {
    let doc = Doc::new();
    for update in updates {
        doc.transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }
    let text = doc.get_or_insert_text(name);
    let txn = doc.transact();
    text.get_string(&txn)
}
