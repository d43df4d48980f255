//! Group commit for SQLite: one writer thread takes units of work from a bounded queue, applies
//! as many as are waiting in one transaction — each inside its own savepoint, so one unit's
//! rejected guard or constraint violation undoes only that unit — commits once, and only then
//! answers each caller.
//!
//! A durable SQLite commit costs an fsync; with one commit per unit the disk, not the CPU,
//! sets the pace. Batching spends that fsync on everything that arrived meanwhile, and the
//! batch grows with the load by itself: an idle writer commits a lone unit at once, a busy one
//! commits what queued up behind the last fsync.
//!
//! The writer owns its connection (rusqlite, on its own thread): each statement runs in place
//! from a cache of prepared statements. Through sqlx every statement was a hand-off to the
//! driver's thread and back — two context switches, ~45 µs — and a unit is a dozen statements,
//! so the hand-offs, not SQLite, were the writer's ceiling.
//!
//! Durability is never silent. Any error other than a unit's own constraint violation (a
//! full disk, an I/O error) fails the whole batch: every caller in it gets an error, none is
//! told its unit committed, and whatever is left of the transaction is rolled back (SQLite may
//! have rolled back on its own; the writer asks the connection, not its own bookkeeping) or the
//! connection is replaced before its next use.

use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use super::cache::AccountIds;
use super::checkpointer::{self, Checkpointer};
use super::jobs::{self, Claim, Job};
use super::ledger::AccountIndex;
use super::sim::{self, SimTransfer};
use super::sql::{Exec, Lite};
use super::unit::{Rejected, UnitOfWork, apply};
use super::{Backend, Store, StoreError, StoreResult};

/// Units one batch takes at most (bounds a batch's transaction and its latency).
const MAX_BATCH: usize = 512;
/// Units waiting for the writer at most; callers beyond it wait to enqueue (back-pressure).
const QUEUE: usize = 8_192;
/// Prepared statements the writer keeps (the write path has a few dozen distinct ones; the
/// transition statement varies with the facts it sets).
const STATEMENT_CACHE: usize = 256;

/// What a caller is told about its unit.
pub(super) type Outcome = StoreResult<Result<(), Rejected>>;

pub(super) enum Request {
    /// A unit of work.
    Unit {
        unit: UnitOfWork,
        answer: oneshot::Sender<Outcome>,
    },
    /// A claim of due jobs (it writes leases, so it is a write like any other).
    Claim {
        claim: Claim,
        answer: oneshot::Sender<StoreResult<Vec<Job>>>,
    },
    /// The in-process simulator recording a transfer (insert, or count a repeated ask).
    SimInitiate {
        transfer: SimTransfer,
        answer: oneshot::Sender<StoreResult<SimTransfer>>,
    },
}

impl Request {
    fn at(&self) -> crate::domain::Timestamp {
        match self {
            Request::Unit { unit, .. } => unit.now(),
            Request::Claim { claim, .. } => claim.now,
            Request::SimInitiate { transfer, .. } => transfer.created_at,
        }
    }
}

/// What one request of a batch produced.
enum Produced {
    Unit(Outcome),
    Claim(StoreResult<Vec<Job>>),
    Sim(StoreResult<SimTransfer>),
}

/// The handle [`Store::commit`] sends units through.
#[derive(Debug, Clone)]
pub(super) enum GroupCommit {
    /// To the writer thread.
    Thread(mpsc::Sender<Request>),
    /// Applied on the caller's thread, one request at a time (`corridor simulate`, which runs
    /// one thing at a time: a hand-off to a thread would only add two context switches).
    Inline(std::sync::Arc<std::sync::Mutex<InlineWriter>>),
}

/// The write connection of an inline writer.
pub(super) struct InlineWriter {
    store: Store,
    path: PathBuf,
    conn: Option<Lite>,
}

impl std::fmt::Debug for InlineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl GroupCommit {
    /// Starts the writer on `store` (a handle without group commit of its own, so the writer
    /// ends when the last user's handle is dropped).
    pub(super) fn start(store: Store, path: PathBuf) -> StoreResult<GroupCommit> {
        let (queue, rx) = mpsc::channel(QUEUE);
        // Open once here so a file that cannot be opened fails the start, not the first write.
        drop(open(&path, None)?);
        let checkpoints = Checkpointer::start(path.clone())?;
        std::thread::Builder::new()
            .name("corridor-writer".into())
            .spawn(move || writer(store, path, rx, checkpoints))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the database writer: {e}")))?;
        Ok(GroupCommit::Thread(queue))
    }

    /// A writer that applies each request on the caller's thread (see [`GroupCommit::Inline`]).
    pub(super) fn inline(store: Store, path: PathBuf) -> StoreResult<GroupCommit> {
        let conn = Some(open(&path, None)?);
        Ok(GroupCommit::Inline(std::sync::Arc::new(
            std::sync::Mutex::new(InlineWriter { store, path, conn }),
        )))
    }

    /// Commits `unit` with whatever else is waiting; answers once the batch's commit returned.
    pub(super) async fn commit(&self, unit: UnitOfWork) -> Outcome {
        let (answer, told) = oneshot::channel();
        self.send(Request::Unit { unit, answer }, told).await?
    }

    /// Claims due jobs in the next batch.
    pub(super) async fn claim(&self, claim: Claim) -> StoreResult<Vec<Job>> {
        let (answer, told) = oneshot::channel();
        self.send(Request::Claim { claim, answer }, told).await?
    }

    /// Records a simulated transfer in the next batch.
    pub(super) async fn sim_initiate(&self, transfer: SimTransfer) -> StoreResult<SimTransfer> {
        let (answer, told) = oneshot::channel();
        self.send(Request::SimInitiate { transfer, answer }, told)
            .await?
    }

    async fn send<T>(&self, request: Request, told: oneshot::Receiver<T>) -> StoreResult<T> {
        let stopped = |reason: &str| StoreError::Batch {
            unavailable: true,
            reason: reason.to_owned(),
        };
        match self {
            GroupCommit::Thread(queue) => {
                if queue.send(request).await.is_err() {
                    return Err(stopped("the database writer has stopped"));
                }
            }
            GroupCommit::Inline(writer) => {
                let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                let InlineWriter { store, path, conn } = &mut *w;
                process(store, path, conn, None, &mut vec![request]);
            }
        }
        told.await
            .map_err(|_| stopped("the database writer stopped before answering"))
    }
}

impl Request {
    /// The caller stopped waiting (its request timed out or its client went away): its unit
    /// is not applied, so nothing commits behind the back of an answer already sent.
    fn abandoned(&self) -> bool {
        match self {
            Request::Unit { answer, .. } => answer.is_closed(),
            Request::Claim { answer, .. } => answer.is_closed(),
            Request::SimInitiate { answer, .. } => answer.is_closed(),
        }
    }

    fn fail(self, e: StoreError) {
        match self {
            Request::Unit { answer, .. } => {
                let _ = answer.send(Err(e));
            }
            Request::Claim { answer, .. } => {
                let _ = answer.send(Err(e));
            }
            Request::SimInitiate { answer, .. } => {
                let _ = answer.send(Err(e));
            }
        }
    }

    fn answer(self, p: Produced) {
        match (self, p) {
            (Request::Unit { answer, .. }, Produced::Unit(o)) => {
                let _ = answer.send(o);
            }
            (Request::Claim { answer, .. }, Produced::Claim(o)) => {
                let _ = answer.send(o);
            }
            (Request::SimInitiate { answer, .. }, Produced::Sim(o)) => {
                let _ = answer.send(o);
            }
            (r, _) => r.fail(StoreError::Corrupt(
                "group commit produced a result of another kind".into(),
            )),
        }
    }
}

impl Produced {
    /// Whether this result wrote something (a no-op commit proves nothing about the disk).
    fn wrote(&self) -> bool {
        match self {
            Produced::Unit(o) => matches!(o, Ok(Ok(()))),
            Produced::Claim(o) => o.as_ref().is_ok_and(|jobs| !jobs.is_empty()),
            Produced::Sim(o) => o.is_ok(),
        }
    }
}

/// Opens the writer's own connection on the database file; with a `checkpointer`, the
/// connection's own automatic checkpoint is only the fallback (see `checkpointer`).
fn open(path: &Path, checkpointer: Option<&Checkpointer>) -> StoreResult<Lite> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // WAL for concurrent readers; FULL so a commit survives power loss. A busy timeout
    // because another process (the CLI) may hold the lock for a moment. Temporary storage
    // (statement journals of a unit's savepoint, sorts) in memory: on disk every one of them
    // was a file created, written, closed and unlinked.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; \
         PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    if checkpointer.is_some() {
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpointer::WRITER_FALLBACK_PAGES,
        )?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(Lite(
        conn,
        "writer",
        Some(super::webhooks::EndpointCache::default()),
    ))
}

/// The writer thread: owns the one write connection, takes what is queued, commits it as one
/// batch, answers. Ends when every handle that can send to it is gone.
fn writer(store: Store, path: PathBuf, mut rx: mpsc::Receiver<Request>, checkpoints: Checkpointer) {
    let mut conn: Option<Lite> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        batch.retain(|r| !r.abandoned());
        metrics::histogram!("corridor_commit_batch_units").record(batch.len() as f64);
        process(&store, &path, &mut conn, Some(&checkpoints), &mut batch);
    }
}

/// Commits `batch` on `conn` (opened on `path` when there is none) and answers every request
/// in it. A unit whose own error broke the transaction is answered with it and the rest of
/// the batch is tried again without it, so one bad unit cannot fail its neighbours. A batch
/// that wrote tells `checkpoints`, when there is one.
fn process(
    store: &Store,
    path: &Path,
    conn: &mut Option<Lite>,
    checkpoints: Option<&Checkpointer>,
    batch: &mut Vec<Request>,
) {
    while !batch.is_empty() {
        let at = batch
            .iter()
            .map(Request::at)
            .max()
            .unwrap_or(crate::domain::Timestamp(0));
        let lite = match conn.as_mut() {
            Some(c) => c,
            None => match open(path, checkpoints) {
                Ok(c) => conn.insert(c),
                Err(error) => {
                    store.note_failure(at, &error);
                    fail_all(batch, &error);
                    continue;
                }
            },
        };
        let result = match futures::executor::block_on(commit_batch(
            lite,
            &store.caches.accounts,
            batch,
            Apart::ByGuards,
        )) {
            Err(Failed::Redo) => {
                // A unit must be undone after it wrote: start over, each unit in a savepoint.
                forget_endpoints(lite);
                if lite.0.is_autocommit() || lite.0.execute_batch("ROLLBACK").is_ok() {
                    futures::executor::block_on(commit_batch(
                        lite,
                        &store.caches.accounts,
                        batch,
                        Apart::BySavepoints,
                    ))
                } else {
                    Err(Failed::from(StoreError::Corrupt(
                        "the writer could not roll back a batch to run it again".into(),
                    )))
                }
            }
            other => other,
        };
        for r in batch.iter() {
            if let Request::Unit { unit, .. } = r {
                store.invalidate_caches(unit);
            }
        }
        match result {
            Ok(Committed {
                produced,
                wakes,
                learned,
            }) => {
                store.caches.accounts.learn(learned);
                store.note_committed_together(
                    batch
                        .iter()
                        .filter(|r| matches!(r, Request::Unit { .. }))
                        .count(),
                );
                if produced.iter().any(Produced::wrote) {
                    store.note_success();
                    if let Some(c) = checkpoints {
                        c.committed();
                    }
                }
                for (r, p) in batch.drain(..).zip(produced) {
                    r.answer(p);
                }
                if wakes {
                    store.wake.notify_one();
                }
            }
            Err(failed) => {
                let (culprit, error) = match failed {
                    Failed::Error { culprit, error } => (culprit, error),
                    // Only a batch without savepoints asks to be run again.
                    Failed::Redo => (
                        None,
                        StoreError::Corrupt("a batch in savepoints asked to run again".into()),
                    ),
                };
                store.note_failure(at, &error);
                forget_endpoints(lite);
                // Whatever SQLite did on its own (a full disk rolls the transaction back
                // by itself), nothing of this batch may stay open: roll back what is
                // left, or start over on a fresh connection.
                if !lite.0.is_autocommit() && lite.0.execute_batch("ROLLBACK").is_err() {
                    *conn = None;
                }
                match culprit {
                    Some(i) if !error.is_unavailable() => {
                        batch.remove(i).fail(error);
                    }
                    _ => {
                        *conn = None;
                        fail_all(batch, &error);
                    }
                }
            }
        }
    }
}

/// Forgets the endpoint lists the writer remembers (writes were undone).
fn forget_endpoints(lite: &mut Lite) {
    if let Some(cache) = lite.2.as_mut() {
        cache.forget();
    }
}

/// Fails every request of the batch with `error`: nothing of it committed.
fn fail_all(batch: &mut Vec<Request>, error: &StoreError) {
    let reason = error.to_string();
    for r in batch.drain(..) {
        r.fail(StoreError::Batch {
            unavailable: true,
            reason: reason.clone(),
        });
    }
}

/// Why a batch did not commit.
enum Failed {
    /// An error, and the request at fault when one was.
    Error {
        culprit: Option<usize>,
        error: StoreError,
    },
    /// A unit must be undone after it wrote: run the batch again with its units in
    /// savepoints ([`Apart::BySavepoints`]).
    Redo,
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Error {
            culprit: None,
            error,
        }
    }
}

/// How one unit of a batch is kept from undoing or spoiling its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apart {
    /// By its guards alone: nearly every unit commits, and a rejected one is nearly always
    /// rejected by its first write, a guard that wrote nothing when it failed. No savepoint,
    /// so SQLite copies no page into a statement journal per unit (a savepoint per unit was
    /// a tenth of the writer's time). A unit that must be undone after it wrote anything asks
    /// for the batch to be run again [`Apart::BySavepoints`].
    ByGuards,
    /// Each unit inside its own savepoint, rolled back alone.
    BySavepoints,
}

/// Whether a unit rejected by its write number `k`, `w`, has written nothing: a guard that
/// fails writes nothing, and the first write of a unit is the first thing it does — except
/// the ledger's, whose guards are checked after its inserts.
pub(super) fn rejected_clean(k: usize, w: &super::unit::Write) -> bool {
    k == 0 && !matches!(w, super::unit::Write::Ledger { .. })
}

/// One transaction for the whole batch; units kept apart as `apart` says. `Err` means
/// nothing of the batch committed; otherwise one result per request, in order, and whether
/// workers should wake.
async fn commit_batch(
    lite: &mut Lite,
    accounts: &AccountIds,
    batch: &[Request],
    apart: Apart,
) -> Result<Committed, Failed> {
    lite.control("BEGIN IMMEDIATE")?;
    // Under the write lock: whatever another connection committed is in, and nothing more
    // can come until COMMIT.
    if lite.2.as_ref().is_some_and(|c| !c.is_empty()) {
        let version = lite.pragma_int("PRAGMA data_version")?;
        if let Some(cache) = lite.2.as_mut() {
            cache.check(version);
        }
    }
    let mut produced = Vec::with_capacity(batch.len());
    let mut wakes = false;
    let mut learned = Vec::new();
    // With savepoints, that of the last unit that succeeded is released just before the next
    // one opens; COMMIT releases the last.
    let mut open = false;
    for (i, r) in batch.iter().enumerate() {
        let at_fault = |error| Failed::Error {
            culprit: Some(i),
            error,
        };
        let r = match r {
            Request::Claim { claim, .. } => {
                let jobs = jobs::claim_in(lite, Backend::Sqlite, claim)
                    .await
                    .map_err(at_fault)?;
                produced.push(Produced::Claim(Ok(jobs)));
                continue;
            }
            Request::SimInitiate { transfer, .. } => {
                // An upsert: a repeated ask counts, it never violates a constraint.
                let stored = sim::initiate_in(lite, transfer).await.map_err(at_fault)?;
                produced.push(Produced::Sim(Ok(stored)));
                continue;
            }
            Request::Unit { unit, .. } => unit,
        };
        let savepoint = apart == Apart::BySavepoints;
        if savepoint {
            if open {
                lite.control("RELEASE unit")?;
            }
            lite.control("SAVEPOINT unit")?;
            open = true;
        }
        let mut outcome = Ok(Ok(()));
        let mut index = AccountIndex::new(accounts);
        for (k, w) in r.writes().iter().enumerate() {
            match apply(lite, &mut index, w, r.now()).await {
                Ok(Ok(())) => {}
                Ok(Err(rejected)) => {
                    if !savepoint && !rejected_clean(k, w) {
                        return Err(Failed::Redo);
                    }
                    outcome = Ok(Err(rejected));
                    break;
                }
                // A constraint violation undoes only its statement (SQLite keeps the
                // transaction), so the unit's savepoint can be rolled back and the batch go
                // on; anything else may have ended the transaction and fails the batch.
                // (Without savepoints the unit's other statements may have written: run
                // the batch again with them.)
                Err(e) if e.is_constraint() && !lite.0.is_autocommit() => {
                    if !savepoint {
                        return Err(Failed::Redo);
                    }
                    outcome = Err(e);
                    break;
                }
                Err(e) => return Err(at_fault(e)),
            }
        }
        if matches!(outcome, Ok(Ok(()))) {
            wakes |= r.wakes_workers();
            learned.extend(index.learned());
        } else if savepoint {
            lite.batch("ROLLBACK TO unit; RELEASE unit").await?;
            open = false;
            // What it undid may have been remembered meanwhile.
            forget_endpoints(lite);
        }
        produced.push(Produced::Unit(outcome));
    }
    // Only a COMMIT that returned OK acknowledges anything; had SQLite ended the transaction
    // on its own, COMMIT fails ("no transaction is active") and so does the whole batch.
    lite.control("COMMIT")?;
    Ok(Committed {
        produced,
        wakes,
        learned,
    })
}

/// What a batch that committed produced.
struct Committed {
    /// One result per request, in order.
    produced: Vec<Produced>,
    /// Whether workers should wake.
    wakes: bool,
    /// The ledger accounts its units used that the store's cache did not know.
    learned: Vec<(String, i64)>,
}
