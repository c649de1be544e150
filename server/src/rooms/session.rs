//! One connection's loop, generic over any `Sink + Stream` of frames so it runs the same
//! over an axum WebSocket or an in-memory channel in tests.
//!
//! The session validates everything a peer sends before the room sees it: the size, the
//! envelope (bounded codec), the update and state-vector encodings (yrs, panics caught),
//! awareness and event JSON. Any violation closes this connection only, with 4400 or
//! 4413. Decoding here also spreads the CPU cost across connection tasks instead of the
//! room.
//!
//! It also stamps what the connection says with who it is (statelessly, per
//! connection): the `user` field of its awareness states and the sender of its events
//! come from its grant ([`super::identity`]).
//!
//! A connection that opted in to the session extension ([`ConnOptions::session_ext`],
//! message type 101) is told who it is on joining ([`Message::Hello`]) and which of its
//! updates are durable ([`Message::Saved`], sent by the room after the group commit).
//! Any connection may send a fresh token in band ([`Message::RefreshToken`]): it is
//! checked through [`ConnOptions::reauthorize`] (the same authorizer as the connect),
//! must name the same project and user, and then replaces the connection's rights and
//! expiry, so a connection whose app keeps its token fresh is never closed for age.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tandem_protocol::awareness;
use tandem_protocol::json::{self, JsonLimits};
use tandem_protocol::{close, Message};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::auth::{Denied, Grant};
use super::identity::{self, Identity};
use super::limits::{rate_limited, ConnBuckets, ConnSlot, Limits};
use super::meter::ConnMeter;
use super::metrics::EngineMetrics;
use super::msg::{ConnInfo, Open, OwnedEntry, Rights, RoomLimits, RoomMsg};

/// A connection's usage counters and the engine's totals (for `/metrics`), counted
/// together.
struct Meters<'a> {
    conn: &'a ConnMeter,
    engine: &'a EngineMetrics,
}

impl Meters<'_> {
    fn received(&self, bytes: usize) {
        self.conn.received(bytes);
        self.engine.received(bytes);
    }

    fn sent(&self, frames: u64, bytes: u64) {
        self.conn.sent(frames, bytes);
        self.engine.sent(frames, bytes);
    }
}
use super::outbox::{self, Event, OutboxRx};
use super::{doc, validate};
use super::{CloseReason, ConnId, RoomKey, Rooms};

/// A frame from the peer, as the session needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A binary message (the only kind the protocol uses).
    Binary(Bytes),
    /// A text message: not part of the protocol.
    Text,
    /// A message larger than the transport's limit (already refused by it).
    TooLarge,
    /// The peer closed.
    Close,
    /// Ping/pong and other control frames the transport answers itself.
    Control,
}

/// A frame for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A binary message.
    Binary(Bytes),
    /// A close frame.
    Close {
        /// Close code.
        code: u16,
        /// Reason (at most 123 bytes).
        reason: String,
    },
}

/// How many times a join is retried when it races a room unloading.
const JOIN_ATTEMPTS: usize = 8;

/// Checks a fresh token for the connection's room, as the connect did (the WebSocket
/// handler binds the authorizer and the room name).
pub type Reauthorize = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Grant, Denied>> + Send>> + Send + Sync,
>;

/// What a connection asked for beyond the stock protocol.
#[derive(Clone, Default)]
pub struct ConnOptions {
    /// The client opted in to the session extension (`?tandem=1`): send it the hello
    /// and saved acknowledgements. Stock clients never get type 101 messages.
    pub session_ext: bool,
    /// How a fresh token sent in band is checked; `None` refuses in-band refreshes.
    pub reauthorize: Option<Reauthorize>,
}

impl std::fmt::Debug for ConnOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnOptions")
            .field("session_ext", &self.session_ext)
            .field("reauthorize", &self.reauthorize.is_some())
            .finish()
    }
}

/// Runs one connection in `key` until either side closes.
///
/// An idle connection spends its life parked in this future, so its size is memory per
/// connection: everything not needed while idle (joining, closing) is boxed so that it
/// takes heap only while it runs.
// Not an `async fn`: one wrapping the instrumented block below would hold its arguments
// twice (once as its own, once moved into the block).
pub fn run<T, E>(
    rooms: Rooms,
    key: RoomKey,
    grant: Grant,
    options: ConnOptions,
    mut transport: T,
) -> impl std::future::Future<Output = ()> + Send
where
    T: Stream<Item = Result<Inbound, E>> + Sink<Outbound> + Unpin + Send,
    E: std::fmt::Display + Send,
{
    let conn = rooms.next_conn_id();
    let span = tracing::debug_span!("conn", conn, project = %key.project_id, room = %key.name);
    let Grant {
        can_write,
        can_presence,
        can_admin,
        expires_at,
        user_id,
        user_info,
        key_id,
        limits,
        ..
    } = grant;
    let mut peer = Peer {
        conn,
        can_write,
        can_presence,
        identity: Arc::new(Identity::new(user_id, user_info, key_id)),
    };
    let ConnOptions {
        session_ext,
        reauthorize,
    } = options;
    let info = ConnInfo {
        rights: Rights {
            write: can_write,
            presence: can_presence,
            admin: can_admin,
        },
        since_ms: crate::store::unix_ms(),
    };
    async move {
        let config = rooms.config();
        // Counted in before joining, out when this future ends (dropped with it).
        let admitted = match &limits {
            Some(limits) => Box::pin(admit(&rooms, &key, limits)).await,
            // Without a plan there is no cap, but in a cluster the room's connections
            // are still counted (REST shows them cluster-wide).
            None => match rooms.engine().cluster.as_ref() {
                Some(cluster) => Ok(cluster.count_room(&key).map(|room| (None, Some(room)))),
                None => Ok(None),
            },
        };
        let _slot = match admitted {
            Ok(slot) => slot,
            Err(reason) => {
                Box::pin(send_close(&mut transport, &reason, config)).await;
                return;
            }
        };
        let room_limits = limits.as_ref().map(RoomLimits::from);
        let joined = Box::pin(join(&rooms, &key, conn, &peer.identity, info, room_limits)).await;
        let Joined { room, outbox } = match joined {
            Ok(joined) => joined,
            Err(reason) => {
                Box::pin(send_close(&mut transport, &reason, config)).await;
                return;
            }
        };
        tracing::debug!("connected");
        if session_ext {
            let hello = Bytes::from(hello_frame(&peer, expires_at));
            if !Box::pin(send(&mut transport, Outbound::Binary(hello), config)).await {
                let _ = Box::pin(room.send(RoomMsg::Leave { conn })).await;
                return;
            }
        }
        // Usage: reported to the meter as ended when this future ends (dropped with it).
        let metered = rooms
            .engine()
            .meter
            .connect(&key, peer.identity.user_id.as_deref());
        let meter = &Meters {
            conn: metered.counters(),
            engine: &rooms.engine().metrics,
        };
        // Boxed: most connections have no expiry, and a timer is ~100 bytes.
        let mut expiry = expires_at.map(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep(left))
        });
        let mut told_read_only = false;
        // Document updates (sync step 2 and update messages) received so far: what
        // saved acknowledgements count. After a refused (read-only) one, no count can
        // say "all saved" again on this connection, so acknowledgements stop.
        let mut updates: u64 = 0;
        let mut refused_some = false;
        let mut buckets = limits.map(|l| ConnBuckets::new(&l, tokio::time::Instant::now()));
        // The project's limits on this node: a plan change updates them in place.
        let live = limits.map(|l| rooms.engine().live_limits.cell(&key.project_id, l));
        let mut live_version = live.as_ref().map_or(0, |cell| cell.version());
        let reason: Option<CloseReason> = loop {
            tokio::select! {
                biased;
                event = outbox.recv() => match event {
                    Event::Close(reason) => {
                        // The room closed us (or is gone).
                        if reason.flush {
                            Box::pin(flush_queued(&mut transport, &outbox, config, meter)).await;
                        }
                        break Some(reason);
                    }
                    Event::Frame(frame) => {
                        if !Box::pin(send_batch(&mut transport, frame, &outbox, config, meter)).await {
                            break None;
                        }
                    }
                },
                () = sleep_until(&mut expiry) => {
                    break Some(CloseReason::new(close::UNAUTHORIZED, "token expired"));
                }
                inbound = transport.next() => match inbound {
                    Some(Ok(Inbound::Binary(frame))) => {
                        meter.received(frame.len());
                        // Charged before anything is done with the frame: over the
                        // limit, it is refused and the connection closed, while all it
                        // sent before is already with the room.
                        if let Some(buckets) = &mut buckets {
                            let now = tokio::time::Instant::now();
                            if let Some(cell) = &live {
                                let version = cell.version();
                                if version != live_version {
                                    live_version = version;
                                    buckets.set_limits(&cell.get(), now);
                                }
                            }
                            if let Err(reason) = buckets.charge(frame.len(), now) {
                                break Some(reason);
                            }
                        }
                        match validate(&peer, frame, config) {
                            Ok(Valid::Msg(mut msg)) => {
                                if let RoomMsg::Update { saved, .. } = &mut msg {
                                    updates += 1;
                                    *saved = (session_ext && !refused_some).then_some(updates);
                                }
                                if Box::pin(room.send(msg)).await.is_err() {
                                    break Some(CloseReason::new(close::TRY_AGAIN_LATER, "room unavailable"));
                                }
                            }
                            Ok(Valid::EmptyUpdate) => {
                                updates += 1;
                                if session_ext && !refused_some {
                                    let msg = RoomMsg::Saved { conn, upto: updates };
                                    if Box::pin(room.send(msg)).await.is_err() {
                                        break Some(CloseReason::new(close::TRY_AGAIN_LATER, "room unavailable"));
                                    }
                                }
                            }
                            Ok(Valid::Refresh(token)) => {
                                let (answer, renewed) = Box::pin(refresh(&key, &peer, reauthorize.as_ref(), token)).await;
                                if let Some(grant) = renewed {
                                    tracing::debug!("token refreshed in band");
                                    peer.can_write = grant.can_write;
                                    peer.can_presence = grant.can_presence;
                                    if grant.can_write {
                                        told_read_only = false;
                                    }
                                    expiry = grant.expires_at.map(|at| {
                                        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                                        Box::pin(tokio::time::sleep(left))
                                    });
                                }
                                let frame = Bytes::from(Message::Refreshed(&answer.to_json()).encode());
                                let len = frame.len() as u64;
                                if !Box::pin(send(&mut transport, Outbound::Binary(frame), config)).await {
                                    break None;
                                }
                                meter.sent(1, len);
                            }
                            Ok(Valid::ReadOnly) => {
                                updates += 1;
                                refused_some = true;
                                if !told_read_only {
                                    told_read_only = true;
                                    let denied = Message::AuthDenied("read-only: this connection may not change the document").encode();
                                    let len = denied.len() as u64;
                                    if !Box::pin(send(&mut transport, Outbound::Binary(Bytes::from(denied)), config)).await {
                                        break None;
                                    }
                                    meter.sent(1, len);
                                }
                            }
                            Ok(Valid::Nothing) => {}
                            Err(reason) => break Some(reason),
                        }
                    }
                    Some(Ok(Inbound::Text)) => {
                        break Some(CloseReason::new(close::MALFORMED, "text frames are not part of the protocol; send binary"));
                    }
                    Some(Ok(Inbound::TooLarge)) => break Some(too_large(config.max_message_bytes)),
                    Some(Ok(Inbound::Control)) => {}
                    Some(Ok(Inbound::Close)) | None => break None,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "connection error");
                        break None;
                    }
                },
            }
        };
        // Leaving is what removes our presence for the others, so it must arrive.
        let _ = Box::pin(room.send(RoomMsg::Leave { conn })).await;
        if let Some(reason) = reason {
            tracing::debug!(code = reason.code, reason = %reason.reason, "closing");
            Box::pin(send_close(&mut transport, &reason, config)).await;
        } else {
            tracing::debug!("disconnected");
        }
    }
    .instrument(span)
}

async fn sleep_until(expiry: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match expiry {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Most frames written to the socket in one go.
const MAX_BATCH: usize = 64;

/// Sends `first` and whatever else is already queued (up to [`MAX_BATCH`] frames) with
/// one flush, so a burst of frames released by one group commit costs one write to the
/// socket instead of one per frame. `false` if the peer is gone or stuck. The frames
/// are metered once flushed to the socket (so a metered frame has reached the kernel).
async fn send_batch<T>(
    transport: &mut T,
    first: Bytes,
    outbox: &OutboxRx,
    config: &super::RoomsConfig,
    meter: &Meters<'_>,
) -> bool
where
    T: Sink<Outbound> + Unpin,
{
    let write = async {
        let (mut frames, mut bytes) = (1, first.len() as u64);
        transport.feed(Outbound::Binary(first)).await?;
        for _ in 1..MAX_BATCH {
            match outbox.try_pop() {
                Some(frame) => {
                    frames += 1;
                    bytes += frame.len() as u64;
                    transport.feed(Outbound::Binary(frame)).await?;
                }
                None => break,
            }
        }
        transport.flush().await?;
        Ok::<_, T::Error>((frames, bytes))
    };
    match tokio::time::timeout(config.send_timeout, write).await {
        Ok(Ok((frames, bytes))) => {
            meter.sent(frames, bytes);
            true
        }
        _ => false,
    }
}

/// Sends what the room queued before it closed us.
async fn flush_queued<T>(
    transport: &mut T,
    outbox: &OutboxRx,
    config: &super::RoomsConfig,
    meter: &Meters<'_>,
) where
    T: Sink<Outbound> + Unpin,
{
    while let Some(frame) = outbox.try_pop() {
        if !send_batch(transport, frame, outbox, config, meter).await {
            break;
        }
    }
}

/// A joined room: where to send, and the queue the room answers on.
struct Joined {
    room: mpsc::Sender<RoomMsg>,
    outbox: OutboxRx,
}

/// Finds (or starts) the room and joins it, retrying if it raced an unload (the
/// unloading actor drops the join, and we ask the registry again).
async fn join(
    rooms: &Rooms,
    key: &RoomKey,
    conn: ConnId,
    identity: &Arc<Identity>,
    info: ConnInfo,
    limits: Option<RoomLimits>,
) -> Result<Joined, CloseReason> {
    let engine = rooms.engine();
    for _ in 0..JOIN_ATTEMPTS {
        if rooms.is_shutting_down() {
            return Err(CloseReason::new(close::RESTARTING, "server restarting"));
        }
        let handle = rooms.room(key, || Open::Create);
        let (outbox_tx, outbox) = outbox::outbox(engine.config.outbound_queue.max(4));
        let (reply_tx, reply) = oneshot::channel();
        let msg = RoomMsg::Join {
            conn,
            outbox: outbox_tx,
            identity: identity.clone(),
            info,
            limits,
            reply: reply_tx,
        };
        if handle.tx.send(msg).await.is_err() {
            continue;
        }
        match reply.await {
            Ok(Ok(())) => {
                return Ok(Joined {
                    room: handle.tx,
                    outbox,
                })
            }
            Ok(Err(reason)) => return Err(reason),
            Err(_) => continue,
        }
    }
    Err(CloseReason::new(
        close::TRY_AGAIN_LATER,
        "room unavailable; reconnect",
    ))
}

/// Counts the connection into its project under the plan's cap (and, in a cluster, into
/// its room under the cluster-wide room cap), and checks the project's room count when
/// this connection would create a room.
async fn admit(
    rooms: &Rooms,
    key: &RoomKey,
    limits: &Limits,
) -> Result<Option<(Option<ConnSlot>, Option<ConnSlot>)>, CloseReason> {
    let engine = rooms.engine();
    let refused = || {
        engine.emit(
            key,
            super::events::RoomEvent::LimitReached {
                limit: "connections",
            },
        );
        rate_limited(
            &format!(
                "connection limit: {} per project reached",
                limits.connections_per_project
            ),
            CONNECTION_RETRY,
        )
    };
    let Some(slot) = engine
        .project_connections
        .admit(&key.project_id, limits.connections_per_project)
    else {
        return Err(refused());
    };
    if let Some(cluster) = &engine.cluster {
        // The cap is cluster-wide; without an answer from Redis this node's count is
        // all there is to go by.
        match cluster
            .admit(&key.project_id, limits.connections_per_project)
            .await
        {
            Some(admission) if !admission.admitted => return Err(refused()),
            Some(admission) => engine.meter.saw_project_live(key, admission.total),
            None => tracing::warn!(
                "cluster connection count unavailable; admitting on this node's count"
            ),
        }
    }
    // The room's cap across nodes (the room's actor checks this node's share again).
    let room_slot = match &engine.cluster {
        Some(cluster) => Some(
            cluster
                .admit_room(key, limits.connections_per_room)
                .await
                .map_err(|()| {
                    rate_limited(
                        &format!(
                            "connection limit: {} per room reached",
                            limits.connections_per_room
                        ),
                        CONNECTION_RETRY,
                    )
                })?,
        ),
        None => None,
    };
    if rooms.engine().registry.get(key).is_none() {
        let existing = engine.store.find_room(&key.project_id, &key.name).await;
        if let Ok(None) = existing {
            let cap = usize::try_from(limits.rooms_per_project).unwrap_or(usize::MAX);
            let limit = u32::try_from(cap).unwrap_or(u32::MAX);
            match engine
                .store
                .list_rooms(&key.project_id, None, None, limit)
                .await
            {
                Ok(rooms) if rooms.len() >= cap => {
                    engine.emit(
                        key,
                        super::events::RoomEvent::LimitReached { limit: "rooms" },
                    );
                    return Err(CloseReason::new(
                        close::RATE_LIMITED,
                        close::with_retry_after(
                            &format!(
                                "room limit: {} rooms per project reached",
                                limits.rooms_per_project
                            ),
                            ROOM_RETRY,
                        ),
                    ));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "counting rooms failed; admitting"),
            }
        }
    }
    Ok(Some((Some(slot), room_slot)))
}

/// When to retry after a connection cap: others may leave soon.
const CONNECTION_RETRY: std::time::Duration = std::time::Duration::from_secs(30);
/// When to retry after the room cap: only deleting rooms frees one.
const ROOM_RETRY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The connection as its frames are checked: its id, rights and identity. The grant's
/// strings move into the shared [`Identity`] rather than being kept here too.
struct Peer {
    conn: ConnId,
    can_write: bool,
    can_presence: bool,
    identity: Arc<Identity>,
}

enum Valid {
    Msg(RoomMsg),
    /// A write from a read-only connection: refused, and the peer is told once.
    ReadOnly,
    /// An update with nothing in it: nothing to store, but it counts for saved
    /// acknowledgements.
    EmptyUpdate,
    /// A fresh token sent in band.
    Refresh(String),
    /// Nothing for the room (presence or an event without permission).
    Nothing,
}

/// The hello an opted-in connection gets on joining.
fn hello_frame(peer: &Peer, expires_at: Option<SystemTime>) -> Vec<u8> {
    let hello = tandem_protocol::session::Hello {
        connection_id: peer.conn,
        user_id: peer.identity.user_id.clone(),
        user: peer.identity.presence_user().cloned(),
        can_write: peer.can_write,
        can_presence: peer.can_presence,
        expires_at: expires_at.map(unix_ms),
        expires_in_ms: expires_at.map(ms_from_now),
    };
    Message::Hello(&hello.to_json()).encode()
}

fn ms_from_now(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::now())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks a fresh token sent in band: through the same authorizer as the connect (so
/// for the same room), and for the same project and user (rights may differ). Returns
/// the answer for the client and, when accepted, the new grant.
async fn refresh(
    key: &RoomKey,
    peer: &Peer,
    reauthorize: Option<&Reauthorize>,
    token: String,
) -> (tandem_protocol::session::Refreshed, Option<Grant>) {
    use tandem_protocol::session::Refreshed;
    let Some(reauthorize) = reauthorize else {
        return (
            Refreshed::refused(
                close::UNAUTHORIZED,
                "in-band token refresh is not available",
            ),
            None,
        );
    };
    let grant = match reauthorize(token).await {
        Ok(grant) => grant,
        Err(denied) => return (Refreshed::refused(denied.code, denied.reason), None),
    };
    if grant.project_id.as_str() != &*key.project_id {
        return (
            Refreshed::refused(close::FORBIDDEN, "the token is for another project"),
            None,
        );
    }
    if grant.user_id != peer.identity.user_id {
        return (
            Refreshed::refused(close::FORBIDDEN, "the token is for another user"),
            None,
        );
    }
    let answer = Refreshed {
        ok: true,
        expires_at: grant.expires_at.map(unix_ms),
        expires_in_ms: grant.expires_at.map(ms_from_now),
        can_write: Some(grant.can_write),
        can_presence: Some(grant.can_presence),
        code: None,
        reason: None,
    };
    (answer, Some(grant))
}

/// Checks one frame completely before the room sees it.
fn validate(peer: &Peer, frame: Bytes, limits: &super::RoomsConfig) -> Result<Valid, CloseReason> {
    let conn = peer.conn;
    let max = limits.max_message_bytes;
    if frame.len() > max {
        return Err(too_large(max));
    }
    let message = Message::decode(&frame).map_err(|e| malformed(&e))?;
    Ok(match message {
        Message::SyncStep1(sv) => {
            validate::validate_state_vector_v1(sv).map_err(|e| malformed(&e))?;
            let sv = doc::decode_state_vector(sv).map_err(|e| malformed(&e))?;
            Valid::Msg(RoomMsg::SyncStep1 { conn, sv })
        }
        Message::SyncStep2(payload) | Message::Update(payload) => {
            // yrs 0.28.1 trusts counts and clocks in an update: checked here first.
            validate::validate_update_v1(payload, &validate::Limits::default())
                .map_err(|e| malformed(&format!("invalid update: {e}")))?;
            let update = doc::decode_update(payload).map_err(|e| malformed(&e))?;
            if update.is_empty() {
                Valid::EmptyUpdate
            } else if !peer.can_write {
                Valid::ReadOnly
            } else {
                let payload = frame.slice_ref(payload);
                let relay = if matches!(message, Message::Update(_)) {
                    frame.clone()
                } else {
                    Bytes::from(Message::Update(&payload).encode())
                };
                Valid::Msg(RoomMsg::Update {
                    conn,
                    update,
                    payload,
                    frame: relay,
                    saved: None,
                })
            }
        }
        Message::Awareness(bytes) => {
            // What every receiver would parse: ids, clocks, JSON and its nesting. These
            // hold for whatever a stock client echoes back (it re-encodes states the
            // server sent, which passed them), so failing them is this peer's doing.
            let entries = awareness::decode_checked(bytes).map_err(|e| malformed(&e))?;
            if !peer.can_presence {
                return Ok(Valid::Nothing);
            }
            let max = limits.max_presence_bytes;
            let owned = entries
                .into_iter()
                .map(|e| OwnedEntry {
                    client_id: e.client_id,
                    clock: e.clock,
                    // The size (and the object shape a user's state needs) only counts
                    // for ids this connection may set, which the room decides: an echo
                    // of someone else's state is dropped there whatever it holds.
                    state: peer.identity.stamp_state(e.state, max),
                })
                .collect();
            Valid::Msg(RoomMsg::Awareness {
                conn,
                entries: owned,
            })
        }
        Message::QueryAwareness => Valid::Msg(RoomMsg::QueryAwareness { conn }),
        Message::Event(json) => {
            // Relayed as it is to every other connection, which parses it.
            json::check(json, JsonLimits::new(limits.max_event_bytes))
                .map_err(|e| CloseReason::new(close::MALFORMED, format!("invalid event: {e}")))?;
            if peer.can_presence {
                let user_id = peer.identity.user_id.as_deref();
                let frame = identity::event_frame(json, Some(conn), user_id);
                Valid::Msg(RoomMsg::Event { conn, frame })
            } else {
                Valid::Nothing
            }
        }
        Message::RefreshToken(token) => Valid::Refresh(token.to_owned()),
        Message::AuthDenied(_) => {
            return Err(CloseReason::new(
                close::MALFORMED,
                "auth messages are sent by the server only",
            ))
        }
        Message::Hello(_) | Message::Refreshed(_) | Message::Saved(_) => {
            return Err(CloseReason::new(
                close::MALFORMED,
                "session messages 0, 2 and 3 are sent by the server only",
            ))
        }
    })
}

fn malformed(error: &dyn std::fmt::Display) -> CloseReason {
    CloseReason::new(close::MALFORMED, format!("malformed message: {error}"))
}

fn too_large(max: usize) -> CloseReason {
    CloseReason::new(close::TOO_LARGE, format!("message larger than {max} bytes"))
}

/// Sends one frame within the send timeout; `false` if the peer is gone or stuck.
async fn send<T>(transport: &mut T, frame: Outbound, config: &super::RoomsConfig) -> bool
where
    T: Sink<Outbound> + Unpin,
{
    matches!(
        tokio::time::timeout(config.send_timeout, transport.send(frame)).await,
        Ok(Ok(()))
    )
}

async fn send_close<T>(transport: &mut T, reason: &CloseReason, config: &super::RoomsConfig)
where
    T: Sink<Outbound> + Unpin,
{
    let frame = Outbound::Close {
        code: reason.code,
        reason: truncate(&reason.reason, 123).to_owned(),
    };
    let _ = send(transport, frame, config).await;
}

/// The longest prefix of `s` within `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let cut = truncate(&long, 123);
        assert!(cut.len() <= 123);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
