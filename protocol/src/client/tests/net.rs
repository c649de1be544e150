//! A deterministic network for sessions: a fake clock, a FIFO of frames in flight between
//! the sessions and the [`Hub`], per-client network switches and scripted refusals. It
//! plays the transport's part of the contract exactly as the module docs describe it.

use std::collections::VecDeque;

use yrs::types::ToJson;
use yrs::{Any, Doc, GetString, Transact};

use super::hub::{Hub, Outbox};
use crate::client::{ClientSession, Event, Output, SessionConfig, Status};
use crate::Message;

/// What the test-side transport saw for one client.
pub struct Client {
    pub session: ClientSession,
    pub doc: Doc,
    /// Whether a socket is open (at the hub).
    pub online: bool,
    /// Whether the network works; when not, connection attempts fail with 1006.
    pub link_up: bool,
    /// When set, frames from the server are lost (a half-open connection).
    pub deaf: bool,
    /// When set, connection attempts never complete (no `on_open`, no `on_close`).
    pub hang: bool,
    /// Opens are answered with a read-only auth message.
    pub read_only: bool,
    /// Scripted refusals: the next connections are opened and at once closed with these.
    pub refusals: VecDeque<(u16, String)>,
    pub events: Vec<Event>,
    /// `(now, refresh_token)` of every `Output::Connect`.
    pub connects: Vec<(u64, bool)>,
    pub closes: Vec<(u16, String)>,
    /// Every frame the session sent, in order.
    pub sent: Vec<Vec<u8>>,
    epoch: u64,
}

impl Client {
    pub fn statuses(&self) -> Vec<Status> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StatusChanged(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn sent_messages(&self) -> Vec<Message<'_>> {
        self.sent
            .iter()
            .map(|f| Message::decode(f).expect("session sends valid frames"))
            .collect()
    }

    pub fn json(&self) -> Any {
        doc_json(&self.doc)
    }
}

/// The test documents' content: map `m`, text `t` and array `a` (read through typed
/// roots, so a document that only received them by sync reads the same).
pub fn doc_json(doc: &Doc) -> Any {
    let m = doc.get_or_insert_map("m");
    let t = doc.get_or_insert_text("t");
    let a = doc.get_or_insert_array("a");
    let txn = doc.transact();
    Any::from(vec![
        m.to_json(&txn),
        Any::from(t.get_string(&txn)),
        a.to_json(&txn),
    ])
}

enum Delivery {
    ToHub {
        from: usize,
        epoch: u64,
        frame: Vec<u8>,
    },
    ToClient {
        to: usize,
        epoch: u64,
        frame: Vec<u8>,
    },
}

pub struct Net {
    pub now: u64,
    pub hub: Hub,
    pub clients: Vec<Client>,
    in_flight: VecDeque<Delivery>,
}

/// The config tests use: the defaults with a fixed seed.
pub fn config(seed: u64) -> SessionConfig {
    SessionConfig {
        jitter_seed: seed,
        ..SessionConfig::default()
    }
}

impl Net {
    pub fn new(clients: usize) -> Self {
        Self::with_config(clients, config)
    }

    pub fn with_config(clients: usize, config: impl Fn(u64) -> SessionConfig) -> Self {
        let clients = (0..clients)
            .map(|i| {
                let doc = Doc::with_client_id(100 + i as u64);
                let session =
                    ClientSession::new(doc.clone(), config(i as u64 + 1)).expect("attach");
                Client {
                    session,
                    doc,
                    online: false,
                    link_up: true,
                    deaf: false,
                    hang: false,
                    read_only: false,
                    refusals: VecDeque::new(),
                    events: Vec::new(),
                    connects: Vec::new(),
                    closes: Vec::new(),
                    sent: Vec::new(),
                    epoch: 0,
                }
            })
            .collect();
        Self {
            now: 1_000,
            hub: Hub::new(),
            clients,
            in_flight: VecDeque::new(),
        }
    }

    /// Every client connects and everything settles.
    pub fn connect_all(&mut self) {
        for i in 0..self.clients.len() {
            self.clients[i].session.connect(self.now);
        }
        self.pump();
    }

    /// Drains every session's outputs, acting on them like a transport.
    fn drain_outputs(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.clients.len() {
            while let Some(output) = self.clients[i].session.poll_output() {
                any = true;
                self.act(i, output);
            }
        }
        any
    }

    fn act(&mut self, i: usize, output: Output) {
        let now = self.now;
        match output {
            Output::Connect { refresh_token } => {
                let c = &mut self.clients[i];
                c.connects.push((now, refresh_token));
                if c.hang {
                    return;
                }
                if !c.link_up {
                    c.session.on_close(now, 1006, "network unreachable");
                    return;
                }
                let refusal = c.refusals.pop_front();
                let greeting = self.open_socket(i);
                match refusal {
                    // The server accepts the upgrade and then closes with a code, which
                    // is how Tandem refuses (stock clients read close codes, not HTTP).
                    Some((code, reason)) => self.server_close(i, code, &reason),
                    None => self.queue(greeting),
                }
            }
            // The hub sends no hello, so no session asks; answer like a provider would.
            Output::RefreshToken => self.clients[i].session.on_fresh_token(now, "fresh"),
            Output::Send(frame) => {
                let c = &mut self.clients[i];
                assert!(c.online, "client {i} sent a frame without a socket");
                c.sent.push(frame.clone());
                let epoch = c.epoch;
                self.in_flight.push_back(Delivery::ToHub {
                    from: i,
                    epoch,
                    frame,
                });
            }
            Output::Close { code, reason } => {
                self.clients[i].closes.push((code, reason));
                self.close_socket(i);
            }
            Output::Event(event) => self.clients[i].events.push(event),
        }
    }

    fn open_socket(&mut self, i: usize) -> Outbox {
        let read_only = self.clients[i].read_only;
        let c = &mut self.clients[i];
        c.online = true;
        c.epoch += 1;
        c.session.on_open(self.now);
        self.hub.open(i, read_only)
    }

    fn close_socket(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if !c.online {
            return;
        }
        c.online = false;
        c.epoch += 1;
        let out = self.hub.close(i, self.now);
        self.queue(out);
    }

    fn queue(&mut self, out: Outbox) {
        for (to, frame) in out {
            let epoch = self.clients[to].epoch;
            self.in_flight
                .push_back(Delivery::ToClient { to, epoch, frame });
        }
    }

    /// Delivers one frame in flight. Returns false when nothing was in flight.
    pub fn deliver_one(&mut self) -> bool {
        let Some(delivery) = self.in_flight.pop_front() else {
            return false;
        };
        match delivery {
            Delivery::ToHub { from, epoch, frame } => {
                if self.clients[from].epoch == epoch && self.hub.is_open(from) {
                    let out = self.hub.receive(from, &frame, self.now);
                    self.queue(out);
                }
            }
            Delivery::ToClient { to, epoch, frame } => {
                let c = &mut self.clients[to];
                if c.epoch == epoch && c.online && !c.deaf {
                    c.session.on_frame(self.now, &frame);
                }
            }
        }
        true
    }

    /// One step: act on every output, then deliver one frame.
    pub fn step(&mut self) -> bool {
        let acted = self.drain_outputs();
        let delivered = self.deliver_one();
        acted || delivered
    }

    /// Runs until nothing is in flight and no session has anything to say.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// The server closes client `i`'s socket with a code.
    pub fn server_close(&mut self, i: usize, code: u16, reason: &str) {
        self.close_socket(i);
        self.clients[i].session.on_close(self.now, code, reason);
    }

    /// Client `i` loses its network: the socket dies (1006) and new ones cannot open.
    pub fn cut(&mut self, i: usize) {
        self.clients[i].link_up = false;
        if self.clients[i].online {
            self.server_close(i, 1006, "");
        }
    }

    /// Client `i`'s network is back (it reconnects at its next attempt).
    pub fn restore(&mut self, i: usize) {
        self.clients[i].link_up = true;
    }

    /// Moves the clock forward by `ms`, firing every session's timers when they are due
    /// and letting the network settle after each.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        for _ in 0..100_000 {
            self.pump();
            let next = self
                .clients
                .iter()
                .filter_map(|c| c.session.next_deadline())
                .filter(|d| *d <= target)
                .min();
            match next {
                Some(deadline) => {
                    self.now = self.now.max(deadline);
                    for i in 0..self.clients.len() {
                        self.clients[i].session.tick(self.now);
                    }
                }
                None => {
                    self.now = target;
                    for i in 0..self.clients.len() {
                        self.clients[i].session.tick(self.now);
                    }
                    self.pump();
                    return;
                }
            }
        }
        panic!("timers did not settle");
    }

    /// Delivers a frame straight to client `i`'s session (as if from the server).
    pub fn inject(&mut self, i: usize, frame: &[u8]) {
        self.clients[i].session.on_frame(self.now, frame);
        self.pump();
    }
}
