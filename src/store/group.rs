//! Group commit for SQLite: one writer task takes units of work from a bounded queue, applies
//! as many as are waiting in one transaction — each inside its own savepoint, so one unit's
//! rejected guard or constraint violation undoes only that unit — commits once, and only then
//! answers each caller.
//!
//! A durable SQLite commit costs an fsync; with one commit per unit the disk, not the CPU,
//! sets the pace. Batching spends that fsync on everything that arrived meanwhile, and the
//! batch grows with the load by itself: an idle writer commits a lone unit at once, a busy one
//! commits what queued up behind the last fsync.
//!
//! Durability is never silent. Any error other than a unit's own constraint violation (a
//! full disk, an I/O error) fails the whole batch: every caller in it gets an error, none is
//! told its unit committed, and the write connection is replaced before its next use (SQLite
//! may have rolled back on its own, and the driver's idea of the transaction is then wrong).

use tokio::sync::{mpsc, oneshot};

use super::unit::{Rejected, UnitOfWork, apply};
use super::{Store, StoreError, StoreResult, jobs};

/// Units one batch takes at most (bounds a batch's transaction and its latency).
const MAX_BATCH: usize = 512;
/// Units waiting for the writer at most; callers beyond it wait to enqueue (back-pressure).
const QUEUE: usize = 8_192;

/// What a caller is told about its unit.
pub(super) type Outcome = StoreResult<Result<(), Rejected>>;

struct Request {
    unit: UnitOfWork,
    answer: oneshot::Sender<Outcome>,
}

/// The handle [`Store::commit`] sends units through.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl GroupCommit {
    /// Starts the writer on `store` (a handle without group commit of its own, so the writer
    /// ends when the last user's handle is dropped).
    pub(super) fn start(store: Store) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, rx));
        GroupCommit { queue }
    }

    /// Commits `unit` with whatever else is waiting; answers once the batch's commit returned.
    pub(super) async fn commit(&self, unit: UnitOfWork) -> Outcome {
        let (answer, told) = oneshot::channel();
        if self.queue.send(Request { unit, answer }).await.is_err() {
            return Err(StoreError::Batch {
                unavailable: true,
                reason: "the database writer has stopped".into(),
            });
        }
        told.await.unwrap_or_else(|_| {
            Err(StoreError::Batch {
                unavailable: true,
                reason: "the database writer stopped before answering".into(),
            })
        })
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let at = batch
            .iter()
            .map(|r| r.unit.now())
            .max()
            .unwrap_or(crate::domain::Timestamp(0));
        let outcomes = store.note_write(at, commit_batch(&store, &batch).await);
        metrics::histogram!("corridor_commit_batch_units").record(batch.len() as f64);
        match outcomes {
            Ok(outcomes) => {
                let wakes = batch
                    .iter()
                    .zip(&outcomes)
                    .any(|(r, o)| r.unit.wakes_workers() && matches!(o, Ok(Ok(()))));
                for (r, o) in batch.drain(..).zip(outcomes) {
                    let _ = r.answer.send(o);
                }
                if wakes {
                    store.wake.notify_one();
                }
            }
            Err(e) => {
                let unavailable = e.is_unavailable();
                let reason = e.to_string();
                for r in batch.drain(..) {
                    let _ = r.answer.send(Err(StoreError::Batch {
                        unavailable,
                        reason: reason.clone(),
                    }));
                }
            }
        }
    }
}

/// A constraint violation undoes only the statement (SQLite keeps the transaction), so the
/// unit's savepoint can be rolled back and the batch go on; anything else may have ended the
/// transaction and fails the batch.
fn unit_level(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(db)) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c & 0xff == 19),
        _ => false,
    }
}

/// One transaction for the whole batch; per unit a savepoint. `Err` means nothing of the
/// batch committed.
async fn commit_batch(store: &Store, batch: &[Request]) -> StoreResult<Vec<Outcome>> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut wakes = false;
    for r in batch {
        sqlx::query("SAVEPOINT unit").execute(&mut *tx).await?;
        let mut outcome = Ok(Ok(()));
        for w in r.unit.writes() {
            match apply(&mut tx, w, r.unit.now()).await {
                Ok(Ok(())) => {}
                Ok(Err(rejected)) => {
                    outcome = Ok(Err(rejected));
                    break;
                }
                Err(e) if unit_level(&e) => {
                    outcome = Err(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if matches!(outcome, Ok(Ok(()))) {
            sqlx::query("RELEASE unit").execute(&mut *tx).await?;
            wakes |= r.unit.wakes_workers();
        } else {
            sqlx::query("ROLLBACK TO unit").execute(&mut *tx).await?;
            sqlx::query("RELEASE unit").execute(&mut *tx).await?;
        }
        outcomes.push(outcome);
    }
    if wakes {
        jobs::announce(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}
