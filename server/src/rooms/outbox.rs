//! A connection's outbound queue: the room pushes frames without ever waiting, the
//! session pops them, and the room can ask the session to close.
//!
//! This replaces a tokio `mpsc` channel plus a `oneshot` per connection. Those allocate
//! about 1.6 KiB up front (a channel with two cache-padded fields and a first block of
//! 32 slots), a sixth of what an idle connection used to cost. Here the queue is a
//! `VecDeque` under a mutex that the room and the session each hold for a few
//! instructions: it holds memory only while frames are queued.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tandem_protocol::close;

use super::CloseReason;

struct State {
    frames: VecDeque<Bytes>,
    close: Option<CloseReason>,
    /// The room dropped its end (it unloaded or failed without a close reason).
    room_gone: bool,
    /// The session dropped its end: pushes fail, like sending on a closed channel.
    conn_gone: bool,
}

struct Shared {
    state: Mutex<State>,
    waker: AtomicWaker,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a single push, pop or flag update, so a poisoned
        // lock still guards a consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The room's end.
pub(crate) struct OutboxTx(Arc<Shared>);

/// The session's end.
pub(crate) struct OutboxRx(Arc<Shared>);

/// What the session should do next.
pub(crate) enum Event {
    Frame(Bytes),
    Close(CloseReason),
}

/// A queue holding at most `capacity` frames.
pub(crate) fn outbox(capacity: usize) -> (OutboxTx, OutboxRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            close: None,
            room_gone: false,
            conn_gone: false,
        }),
        waker: AtomicWaker::new(),
        capacity,
    });
    (OutboxTx(shared.clone()), OutboxRx(shared))
}

impl OutboxTx {
    /// Queues a frame; `false` if the queue is full or the connection is gone.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        {
            let mut state = self.0.lock();
            if state.conn_gone || state.frames.len() >= self.0.capacity {
                return false;
            }
            state.frames.push_back(frame);
        }
        self.0.waker.wake();
        true
    }

    /// Asks the session to close (the first reason wins).
    pub(crate) fn close(&self, reason: CloseReason) {
        self.0.lock().close.get_or_insert(reason);
        self.0.waker.wake();
    }
}

impl Drop for OutboxTx {
    fn drop(&mut self) {
        self.0.lock().room_gone = true;
        self.0.waker.wake();
    }
}

impl OutboxRx {
    /// The next thing to do: a close request first, then queued frames; once the room
    /// is gone and the queue drained, a close with "room unavailable".
    pub(crate) async fn recv(&self) -> Event {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Event> {
        // Register before looking, so a push after the look wakes us.
        self.0.waker.register(cx.waker());
        let mut state = self.0.lock();
        if let Some(reason) = state.close.take() {
            return Poll::Ready(Event::Close(reason));
        }
        if let Some(frame) = pop(&mut state) {
            return Poll::Ready(Event::Frame(frame));
        }
        if state.room_gone {
            return Poll::Ready(Event::Close(CloseReason::new(
                close::TRY_AGAIN_LATER,
                "room unavailable",
            )));
        }
        Poll::Pending
    }

    /// A queued frame, if any, without waiting.
    pub(crate) fn try_pop(&self) -> Option<Bytes> {
        pop(&mut self.0.lock())
    }
}

impl Drop for OutboxRx {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.conn_gone = true;
        state.frames = VecDeque::new();
    }
}

fn pop(state: &mut State) -> Option<Bytes> {
    let frame = state.frames.pop_front();
    if state.frames.is_empty() && state.frames.capacity() > 0 {
        // Most connections are idle most of the time: an empty queue holds no memory.
        // Reallocating at the next burst is cheap next to the socket write it feeds.
        state.frames = VecDeque::new();
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_then_close_then_gone() {
        let (tx, rx) = outbox(2);
        assert!(tx.push(Bytes::from_static(b"a")));
        assert!(tx.push(Bytes::from_static(b"b")));
        assert!(!tx.push(Bytes::from_static(b"c")), "full");
        assert!(matches!(rx.recv().await, Event::Frame(f) if f == "a"));
        tx.close(CloseReason::new(4000, "first"));
        tx.close(CloseReason::new(4001, "second"));
        // A close request comes before the frames still queued (the session flushes).
        assert!(matches!(rx.recv().await, Event::Close(r) if r.code == 4000));
        assert_eq!(rx.try_pop().as_deref(), Some(&b"b"[..]));
        drop(tx);
        assert!(matches!(rx.recv().await, Event::Close(r) if r.code == close::TRY_AGAIN_LATER));
    }

    #[tokio::test]
    async fn wakes_the_session_and_refuses_after_it_left() {
        let (tx, rx) = outbox(4);
        let waiter = tokio::spawn(async move {
            let event = rx.recv().await;
            (matches!(event, Event::Frame(f) if f == "x"), rx)
        });
        tokio::task::yield_now().await;
        assert!(tx.push(Bytes::from_static(b"x")));
        let (got, rx) = waiter.await.unwrap();
        assert!(got);
        drop(rx);
        assert!(!tx.push(Bytes::from_static(b"y")));
    }
}
