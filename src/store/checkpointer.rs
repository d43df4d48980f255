//! Checkpoints off the commit path (SQLite).
//!
//! In WAL mode every commit appends the pages it changed to the log, and a checkpoint copies
//! the newest version of each logged page back into the database file (and fsyncs it) so the
//! log can start over. SQLite's automatic checkpoint runs inside the `COMMIT` that crosses
//! 1,000 logged pages — on the writer thread, which every payment waits for: the writer's
//! profile showed its checkpoints as an eighth of its time, once every dozen batches.
//!
//! Here a thread of its own, on its own connection, runs a passive checkpoint (it never
//! blocks the writer or a reader) shortly after commits, at most every [`EVERY`]. The
//! writer's automatic checkpoint stays armed at [`WRITER_FALLBACK_PAGES`]: should this thread
//! fall behind or fail, the writer checkpoints as before, so the log cannot grow without
//! bound. Durability is untouched: a commit is durable once its log frames are synced; the
//! checkpoint only moves already-durable pages.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use super::{StoreError, StoreResult};

/// A checkpoint runs at most this often: each copies every page changed since the previous
/// one once, however many commits rewrote it meanwhile.
pub(super) const EVERY: Duration = Duration::from_millis(50);

/// The writer's own automatic checkpoint, a safety net when this thread falls behind: the
/// log's length in pages at which the writer's `COMMIT` checkpoints by itself.
pub(super) const WRITER_FALLBACK_PAGES: i64 = 20_000;

/// The writer's side: tells the checkpointer that a commit logged pages.
#[derive(Debug)]
pub(super) struct Checkpointer(SyncSender<()>);

impl Checkpointer {
    /// Starts the checkpoint thread on the database at `path`. It ends when the returned
    /// handle (the writer's) is dropped.
    pub(super) fn start(path: PathBuf) -> StoreResult<Checkpointer> {
        let (tx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("corridor-checkpoint".into())
            .spawn(move || run(&path, &rx))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer(tx))
    }

    /// A commit logged pages: a checkpoint is due (one pending signal covers any number).
    pub(super) fn committed(&self) {
        // Full: a checkpoint is already due. Disconnected: the thread is gone, and the
        // writer's fallback checkpoint covers the log.
        let _ = self.0.try_send(());
    }
}

fn run(path: &Path, signals: &Receiver<()>) {
    let mut conn: Option<rusqlite::Connection> = None;
    // Each wait ends with a commit to checkpoint, or with the writer gone.
    while signals.recv().is_ok() {
        if conn.is_none() {
            match open(path) {
                Ok(c) => conn = Some(c),
                Err(e) => tracing::warn!(error = %e, "the checkpointer cannot open the database"),
            }
        }
        if let Some(c) = &conn
            && let Err(e) = checkpoint(c)
        {
            // The writer's fallback checkpoint covers the log meanwhile; try a fresh
            // connection on the next signal.
            tracing::warn!(error = %e, "a background checkpoint failed");
            metrics::counter!("corridor_db_checkpoint_failures_total").increment(1);
            conn = None;
        }
        std::thread::sleep(EVERY);
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // FULL: the checkpoint fsyncs the database file before the log may be reused.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

/// One passive checkpoint: copies what no reader still needs from the log, never waits.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?
        .query_row([], |_| Ok(()))?;
    metrics::counter!("corridor_db_checkpoints_total").increment(1);
    Ok(())
}
