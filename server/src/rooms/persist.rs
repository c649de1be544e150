//! Group commit: one writer task takes appends from every room, writes whatever has
//! queued up in one transaction (one sync to disk), then acknowledges each append.
//! While a commit is in flight the next batch gathers, so under load many updates share
//! one fsync and when idle a lone update is written at once.
//!
//! If the store fails, the batch is retried with backoff until `persist_timeout`; then
//! every append in it is acknowledged with an error and the rooms close their clients
//! with 1013 (the clients keep their edits and resend them on reconnect).
//!
//! One failure is not retried: an append for a room that no longer exists (deleted on
//! another node of a cluster while the update waited here) violates the log's foreign
//! key. Then each room's appends are written on their own, so the other rooms in the
//! batch still land, and the deleted room's are refused at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::metrics::EngineMetrics;
use super::Clock;
use crate::store::{Append, Attribution, RoomId, Seq, SharedDocStore};

/// The acknowledgement of one append: its seq once durable, or an error.
pub(crate) type Ack = oneshot::Receiver<Result<Seq, ()>>;

struct Request {
    append: Append,
    ack: oneshot::Sender<Result<Seq, ()>>,
}

/// A handle to the writer task.
#[derive(Clone)]
pub(crate) struct Persister {
    tx: mpsc::Sender<Request>,
}

impl Persister {
    /// Starts the writer. It stops when every handle is dropped.
    pub(crate) fn spawn(
        store: SharedDocStore,
        max_batch: usize,
        persist_timeout: Duration,
        metrics: Arc<EngineMetrics>,
        clock: Clock,
    ) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 4);
        tokio::spawn(run(
            store,
            rx,
            max_batch.max(1),
            persist_timeout,
            metrics,
            clock,
        ));
        Self { tx }
    }

    /// Queues an update; waits while the queue is full (backpressure to the room).
    pub(crate) async fn append(
        &self,
        room_id: RoomId,
        data: Bytes,
        author: Arc<Attribution>,
    ) -> Ack {
        let (ack, rx) = oneshot::channel();
        let request = Request {
            append: Append {
                room_id,
                data,
                author,
                written_at: 0,
            },
            ack,
        };
        // If the writer is gone the request (and its ack sender) is dropped, which the
        // room sees as a failed append.
        let _ = self.tx.send(request).await;
        rx
    }
}

async fn run(
    store: SharedDocStore,
    mut rx: mpsc::Receiver<Request>,
    max_batch: usize,
    persist_timeout: Duration,
    metrics: Arc<EngineMetrics>,
    clock: Clock,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        // One time for the batch: what history calls "when it was written".
        let written_at = clock.now_ms();
        let appends: Vec<Append> = batch
            .iter()
            .map(|r| Append {
                written_at,
                ..r.append.clone()
            })
            .collect();
        let started = Instant::now();
        let results = write_batch(&store, &appends, persist_timeout).await;
        let ok = results.iter().all(Result::is_ok);
        metrics.commit(appends.len(), started.elapsed(), ok);
        tracing::trace!(batch = appends.len(), ok, "group commit");
        for (request, result) in batch.drain(..).zip(results) {
            let _ = request.ack.send(result);
        }
    }
}

enum Failure {
    /// The store stayed unavailable past the timeout.
    GaveUp,
    /// A room in the batch no longer exists.
    RoomGone,
}

/// Writes the batch in one transaction; if a room in it was deleted meanwhile, writes
/// each room's appends on their own instead. One result per append, in order.
async fn write_batch(
    store: &SharedDocStore,
    appends: &[Append],
    persist_timeout: Duration,
) -> Vec<Result<Seq, ()>> {
    match write_with_retry(store, appends, persist_timeout).await {
        Ok(seqs) => seqs.into_iter().map(Ok).collect(),
        Err(Failure::GaveUp) => vec![Err(()); appends.len()],
        Err(Failure::RoomGone) => {
            let mut results = vec![Err(()); appends.len()];
            let mut rooms: Vec<RoomId> = appends.iter().map(|a| a.room_id).collect();
            rooms.sort_unstable();
            rooms.dedup();
            for room in rooms {
                let (positions, own): (Vec<usize>, Vec<Append>) = appends
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.room_id == room)
                    .map(|(i, a)| (i, a.clone()))
                    .unzip();
                match write_with_retry(store, &own, persist_timeout).await {
                    Ok(seqs) => {
                        for (i, seq) in positions.into_iter().zip(seqs) {
                            results[i] = Ok(seq);
                        }
                    }
                    Err(Failure::RoomGone) => {
                        tracing::debug!(room, "dropping updates of a room deleted meanwhile");
                    }
                    Err(Failure::GaveUp) => {}
                }
            }
            results
        }
    }
}

async fn write_with_retry(
    store: &SharedDocStore,
    appends: &[Append],
    persist_timeout: Duration,
) -> Result<Vec<Seq>, Failure> {
    let deadline = Instant::now() + persist_timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        match store.append(appends).await {
            Ok(seqs) if seqs.len() == appends.len() => return Ok(seqs),
            Ok(seqs) => {
                tracing::error!(
                    expected = appends.len(),
                    got = seqs.len(),
                    "store returned the wrong number of seqs"
                );
                return Err(Failure::GaveUp);
            }
            Err(crate::store::StoreError::Unavailable(sqlx::Error::Database(error)))
                if error.is_foreign_key_violation() =>
            {
                return Err(Failure::RoomGone);
            }
            Err(error) => {
                if Instant::now() + backoff >= deadline {
                    tracing::error!(%error, batch = appends.len(), "giving up on persisting updates");
                    return Err(Failure::GaveUp);
                }
                tracing::warn!(%error, retry_in = ?backoff, "persisting updates failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
