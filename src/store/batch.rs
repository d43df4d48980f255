//! Batching on PostgreSQL: a few writer tasks take units of work from one queue, commit as
//! many as are waiting in one transaction, and only then answer each caller.
//!
//! A unit alone costs a `BEGIN`, a `COMMIT` (a WAL flush) and, when it makes work due, a
//! `pg_notify` — three of the eight round trips of a payment's creation — and every round
//! trip is two context switches on each side of the socket, which is where a loaded node's
//! CPU went (a third of Corridor's time was the kernel switching tasks). A batch pays those
//! three once. The batch grows with the load by itself: an idle writer commits a lone unit at
//! once, exactly as a unit alone; a busy one takes what queued up meanwhile.
//!
//! Units of a batch are kept apart by their guards, not by savepoints (each is a round trip):
//! a unit rejected by its first write has written nothing, so the batch goes on without it.
//! Anything else that goes wrong before `COMMIT` — a guard that fails after its unit wrote, a
//! constraint violation (PostgreSQL then aborts the whole transaction), a deadlock between two
//! batches — rolls the batch back and commits each of its units alone, the path a unit takes
//! without batching, so every caller gets the answer it would have got on its own. A broken
//! connection or a full disk fails the batch as a whole: nothing of it committed, and every
//! caller hears so. Only a `COMMIT` that returned acknowledges anything.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::group::rejected_clean;
use super::jobs;
use super::ledger::AccountIndex;
use super::unit::{Rejected, UnitOfWork, apply};
use super::{Store, StoreError, StoreResult};

/// Units one batch takes at most: a batch holds its rows' locks until it commits, so it stays
/// short.
const MAX_BATCH: usize = 64;
/// Units waiting for a writer at most; callers beyond it wait to enqueue (back-pressure).
const QUEUE: usize = 4_096;

/// What a caller is told about its unit.
type Outcome = StoreResult<Result<(), Rejected>>;

struct Pending {
    unit: UnitOfWork,
    answer: oneshot::Sender<Outcome>,
}

/// The handle [`Store::commit`] sends units through on PostgreSQL.
#[derive(Debug, Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts `writers` writer tasks on `store` (a handle without a batcher of its own, so
    /// the writers end when the last user's handle is dropped).
    pub(super) fn start(store: Store, writers: usize) -> Batcher {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(store.clone(), rx.clone()));
        }
        Batcher { queue }
    }

    /// Commits `unit` with whatever else is waiting; answers once its batch's commit returned.
    pub(super) async fn commit(&self, unit: UnitOfWork) -> Outcome {
        let stopped = |what: &str| StoreError::Batch {
            unavailable: true,
            reason: what.into(),
        };
        let (answer, told) = oneshot::channel();
        self.queue
            .send(Pending { unit, answer })
            .await
            .map_err(|_| stopped("the database writers stopped"))?;
        told.await
            .map_err(|_| stopped("the database writers stopped before answering"))?
    }
}

/// A writer task: takes the first unit waiting and every other one queued behind it (up to
/// [`MAX_BATCH`]), commits them, answers. Ends when every handle that can send is gone.
async fn writer(store: Store, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(p) => batch.push(p),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
        }
        // A caller that stopped waiting (its request timed out, its client went away) has its
        // unit dropped, so nothing commits behind the back of an answer already sent.
        batch.retain(|p| !p.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!("corridor_commit_batch_units").record(batch.len() as f64);
        // A panic fails only this batch (its callers hear that the writer stopped before
        // answering, and nothing of it committed unless its COMMIT had returned); the writer
        // goes on with the next one.
        if AssertUnwindSafe(process(&store, batch))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!("a database writer panicked in a batch; its units were failed");
        }
    }
}

/// Commits `batch` and answers every unit in it.
async fn process(store: &Store, batch: Vec<Pending>) {
    if batch.len() > 1 {
        let outcome = commit_batch(store, &batch).await;
        for p in &batch {
            store.invalidate_caches(&p.unit);
        }
        match outcome {
            Ok(Committed {
                outcomes,
                wakes,
                learned,
            }) => {
                store.caches.accounts.learn(learned);
                store.note_committed_together(outcomes.len());
                if outcomes.iter().any(Result::is_ok) {
                    store.note_success();
                }
                if wakes {
                    store.wake.notify_one();
                }
                for (p, o) in batch.into_iter().zip(outcomes) {
                    let _ = p.answer.send(Ok(o));
                }
                return;
            }
            Err(Failed::Whole(error)) => {
                let at = batch.iter().map(|p| p.unit.now()).max();
                store.note_failure(at.unwrap_or(crate::domain::Timestamp(0)), &error);
                let reason = error.to_string();
                for p in batch {
                    let _ = p.answer.send(Err(StoreError::Batch {
                        unavailable: error.is_unavailable(),
                        reason: reason.clone(),
                    }));
                }
                return;
            }
            // Nothing of it committed: each unit alone, below.
            Err(Failed::EachAlone) => {}
        }
    }
    for p in batch {
        // Units alone take longer than their batch: a caller may have stopped waiting
        // meanwhile, and its unit must not commit behind the answer it got.
        if p.answer.is_closed() {
            continue;
        }
        let outcome = store.commit_alone(&p.unit).await;
        let _ = p.answer.send(outcome);
    }
}

/// Why a batch did not commit (nothing of it did).
enum Failed {
    /// For a reason every unit shares (the connection, the disk): fail them all.
    Whole(StoreError),
    /// For one unit's sake, or a clash with another batch: commit each unit alone.
    EachAlone,
}

/// What a batch that committed produced.
struct Committed {
    /// One result per unit, in order.
    outcomes: Vec<Result<(), Rejected>>,
    /// Whether workers should wake.
    wakes: bool,
    /// The ledger accounts its units created.
    learned: Vec<(String, i64)>,
}

impl From<StoreError> for Failed {
    /// An error met inside a batch, before its COMMIT: worth committing each unit alone for
    /// anything but the connection or the disk failing — a unit's own error, or a deadlock,
    /// lock timeout or serialization failure that two batches' locks caused and units alone
    /// would not.
    fn from(e: StoreError) -> Failed {
        let alone = match &e {
            StoreError::Storage(_) => false,
            StoreError::Unavailable(d) => {
                matches!(d.code(), Some("40P01" | "40001" | "55P03" | "57014"))
            }
            _ => true,
        };
        if alone {
            Failed::EachAlone
        } else {
            Failed::Whole(e)
        }
    }
}

/// One transaction for the whole batch.
async fn commit_batch(store: &Store, batch: &[Pending]) -> Result<Committed, Failed> {
    let mut tx = store.begin().await.map_err(Failed::Whole)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut wakes = false;
    let mut learned = Vec::new();
    for Pending { unit, .. } in batch {
        let mut index = AccountIndex::new(&store.caches.accounts);
        let mut outcome = Ok(());
        for (k, w) in unit.writes().iter().enumerate() {
            let failed = match apply(&mut *tx, &mut index, w, unit.now()).await {
                Ok(Ok(())) => continue,
                // Rejected before it wrote anything: the batch goes on without it.
                Ok(Err(rejected)) if rejected_clean(k, w) => {
                    outcome = Err(rejected);
                    break;
                }
                Ok(Err(_)) => Failed::EachAlone,
                Err(e) => Failed::from(e),
            };
            // Whatever the rollback says, the transaction is over: dropping it ends it too.
            let _ = tx.rollback().await;
            return Err(failed);
        }
        if outcome.is_ok() {
            wakes |= unit.wakes_workers();
            learned.extend(index.learned());
        }
        outcomes.push(outcome);
    }
    if wakes {
        jobs::announce(&mut *tx).await.map_err(Failed::from)?;
    }
    // A COMMIT that failed may or may not have committed (the link can drop after the
    // server did): never run its units again, fail them all.
    tx.commit()
        .await
        .map_err(|e| Failed::Whole(StoreError::from(e)))?;
    Ok(Committed {
        outcomes,
        wakes,
        learned,
    })
}
