//! Persistence: one schema on SQLite and PostgreSQL, reached through `sqlx::Any`.
//!
//! Every SQL statement of Corridor lives in this module's children; nothing above it sees a
//! pool, a connection or a transaction. Writes arrive as [`unit::UnitOfWork`]s and commit
//! through [`Store::commit`]; on SQLite they share one connection so writers queue
//! in-process instead of fighting over the file lock (and so a group-commit writer has a
//! single place to batch), while reads — typed query functions taking `&Store` — use a
//! separate pool.

mod batch;
mod cache;
pub mod census;
mod checkpointer;
mod group;
pub mod idempotency;
pub mod jobs;
mod layout;
pub mod ledger;
pub mod merchants;
pub mod ops;
pub mod payments;
pub mod provider_webhooks;
pub mod quotes;
pub mod reconciliations;
mod retention;
pub mod settings;
pub mod sim;
mod sql;
pub mod unit;
pub mod webhooks;

pub use unit::{Rejected, UnitOfWork, WakeupSink, Write};

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

/// A database connection; only this module's children hold one.
pub(in crate::store) use sql::Conn;
pub(crate) use sql::{Row, dynamic, query};

/// A connection for reads: pooled by sqlx (PostgreSQL) or a SQLite connection run in place.
pub(in crate::store) enum Reader {
    Pool(sqlx::pool::PoolConnection<sqlx::Any>),
    Lite(sql::LiteReader),
}

impl std::ops::Deref for Reader {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match self {
            Reader::Pool(c) => {
                let c: &sqlx::AnyConnection = c;
                c
            }
            Reader::Lite(l) => l.conn_ref(),
        }
    }
}

impl std::ops::DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut Conn {
        match self {
            Reader::Pool(c) => {
                let c: &mut sqlx::AnyConnection = c;
                c
            }
            Reader::Lite(l) => l.conn(),
        }
    }
}

/// Which database engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A driver's error, with the database's code when it gave one (an SQLSTATE on PostgreSQL,
/// the extended result code on SQLite), so both drivers classify alike.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    code: Option<String>,
    message: String,
}

impl DriverError {
    /// The database's code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

/// Failures of the storage layer, classified by what a caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (pool timeout, I/O): answer 503, retry later.
    #[error("database unavailable: {0}")]
    Unavailable(DriverError),
    /// The database cannot write (disk full, I/O error, out of memory): nothing was written;
    /// answer 503 and retry once the operator has made room.
    #[error("database cannot write: {0}")]
    Storage(DriverError),
    /// A row read back does not make sense (a bug or manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Db(DriverError),
    /// The group-commit batch this unit was in failed as a whole (for the error of
    /// another unit, or the commit): nothing of it was written.
    #[error("the batch did not commit: {reason}")]
    Batch {
        /// Whether retrying later may succeed.
        unavailable: bool,
        /// What failed.
        reason: String,
    },
}

impl StoreError {
    /// Classifies a driver error by its code.
    fn classify(unreachable: bool, code: Option<String>, message: String) -> StoreError {
        let e = DriverError { code, message };
        if unreachable || is_transient_code(e.code()) {
            StoreError::Unavailable(e)
        } else if is_storage_code(e.code()) {
            StoreError::Storage(e)
        } else {
            StoreError::Db(e)
        }
    }

    /// Whether this is a constraint violation (SQLite `CONSTRAINT`, PostgreSQL class 23).
    pub fn is_constraint(&self) -> bool {
        match self {
            StoreError::Db(e) => e.code().is_some_and(|c| {
                if c.len() == 5 {
                    c.starts_with("23")
                } else {
                    c.parse::<i64>().is_ok_and(|n| n & 0xff == 19)
                }
            }),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let unreachable = matches!(
            &e,
            sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
        );
        let code = match &e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        StoreError::classify(unreachable, code, e.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code.to_string()),
            _ => None,
        };
        StoreError::classify(false, code, e.to_string())
    }
}

/// Retryable, not bugs: SQLite `BUSY`/`LOCKED` (5, 6, with their extended codes);
/// PostgreSQL connection and shutdown classes (`08…`, `57P…`), serialization failure and
/// deadlock (`40001`, `40P01`), lock not available (`55P03`), statement timeout (`57014`),
/// too many connections (`53300`).
fn is_transient_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.len() == 5 {
        return code.starts_with("08")
            || code.starts_with("57P")
            // 25P03/25P04: the server ended a transaction that sat idle or ran too long.
            || matches!(
                code,
                "40001" | "40P01" | "55P03" | "57014" | "53300" | "25P03" | "25P04"
            );
    }
    code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// SQLite `NOMEM` (7), `READONLY` (8: e.g. a filesystem remounted read-only after I/O
/// errors), `IOERR` (10, with its extended codes), `FULL` (13), `CANTOPEN` (14); PostgreSQL
/// class 53 (insufficient resources: disk full, out of memory) except too many connections
/// (transient), and `58030` (I/O error).
fn is_storage_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // A SQLSTATE is always five characters; SQLite's (extended) codes are shorter numbers.
    if code.len() == 5 {
        return (code.starts_with("53") && code != "53300") || code == "58030";
    }
    code.parse::<i64>()
        .is_ok_and(|n| matches!(n & 0xff, 7 | 8 | 10 | 13 | 14))
}

impl StoreError {
    /// Whether retrying later may succeed (the caller answers 503, not 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Storage(_)
                | StoreError::Batch {
                    unavailable: true,
                    ..
                }
        )
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Pools for one database.
#[derive(Clone, Debug)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
    url: String,
    /// Notified after a commit that made work due now (and by `LISTEN` on PostgreSQL).
    wake: std::sync::Arc<tokio::sync::Notify>,
    /// Health of the write path: poisoned connections, a failing disk.
    writes: std::sync::Arc<WriteHealth>,
    /// SQLite read connections run in place (`None` on PostgreSQL, which reads from `read`).
    lite_read: Option<std::sync::Arc<sql::LitePool>>,
    /// The group-commit writer units go through (SQLite); `None`: each unit commits alone.
    group: Option<group::GroupCommit>,
    /// The writer tasks units go through on PostgreSQL (`batch.rs`); `None`: each unit
    /// commits alone.
    batch: Option<batch::Batcher>,
    /// API keys and rate pins, cleared by the units that change them.
    caches: std::sync::Arc<cache::Caches>,
    /// Crashes a simulator injects at commits (`None` outside `corridor simulate`).
    faults: Option<std::sync::Arc<dyn unit::CommitFaults>>,
    /// Where committed units' wake-ups go besides this process (serverless: SQS).
    wakeup_sink: Option<std::sync::Arc<dyn unit::WakeupSink>>,
}

/// What the store knows about its write path.
#[derive(Debug, Default)]
struct WriteHealth {
    /// The SQLite write connection saw an error inside a transaction: SQLite may have rolled
    /// the transaction back by itself (a full disk does), leaving the driver's idea of the
    /// connection's transaction state wrong — every later "commit" would commit nothing. The
    /// next acquire closes it and opens a fresh one.
    poisoned: std::sync::atomic::AtomicBool,
    /// When writes began failing for lack of space or an I/O error, as Unix ms (0: they
    /// do not); cleared by the next commit that succeeds. Readiness answers 503 meanwhile.
    failing_since: std::sync::atomic::AtomicI64,
    /// Units committed in a transaction shared with at least one other unit (group commit or
    /// batching at work).
    committed_together: std::sync::atomic::AtomicU64,
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Connections for reads (and, on PostgreSQL, for writes too).
    pub max_connections: u32,
    /// How long a caller waits for a connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// Commit concurrent units together: on SQLite through one writer (see `group.rs`), on
    /// PostgreSQL through writer tasks, half of `max_connections` (see `batch.rs`).
    pub group_commit: bool,
    /// SQLite with group commit: apply each unit on the calling thread instead of handing it
    /// to the writer thread. Only for a caller that runs one thing at a time (`corridor
    /// simulate`): nothing is batched, and the caller's thread blocks on SQLite.
    pub inline_writer: bool,
    /// PostgreSQL: a session idle inside a transaction this long is ended by the server, so
    /// a client whose link died mid-transaction cannot keep rows locked (and hidden from
    /// every node's `SKIP LOCKED` claims) until TCP gives up hours later.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            group_commit: true,
            inline_writer: false,
            idle_in_transaction_timeout: Duration::from_secs(30),
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file if needed.
    pub async fn connect(url: &str, cfg: PoolConfig) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let writes = std::sync::Arc::new(WriteHealth::default());
        let idle_tx_ms = cfg.idle_in_transaction_timeout.as_millis().max(1);
        let build = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(cfg.acquire_timeout)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL for concurrent readers; FULL so a commit survives power loss.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        } else {
                            // No statement may hang a worker forever on a half-dead link; no
                            // transaction may outlive a dead client; and the server probes an
                            // idle link, so a vanished client host is noticed in about a minute.
                            conn.execute("SET statement_timeout = 30000").await?;
                            // An integer we formatted, not input.
                            let idle_tx =
                                format!("SET idle_in_transaction_session_timeout = {idle_tx_ms}");
                            conn.execute(sqlx::AssertSqlSafe(idle_tx)).await?;
                            conn.execute("SET tcp_keepalives_idle = 30").await?;
                            conn.execute("SET tcp_keepalives_interval = 10").await?;
                            conn.execute("SET tcp_keepalives_count = 3").await?;
                        }
                        Ok(())
                    })
                })
        };
        let (write, read) = match backend {
            Backend::Sqlite => {
                let health = writes.clone();
                let write = build(1)
                    .before_acquire(move |_conn, _meta| {
                        let health = health.clone();
                        Box::pin(async move {
                            // `false` closes the connection; the pool opens a fresh one.
                            Ok(!health
                                .poisoned
                                .swap(false, std::sync::atomic::Ordering::SeqCst))
                        })
                    })
                    .connect_with(opts.clone())
                    .await?;
                let read = build(cfg.max_connections.max(2)).connect_lazy_with(opts);
                (write, read)
            }
            Backend::Postgres => {
                let pool = build(cfg.max_connections).connect_with(opts).await?;
                (pool.clone(), pool)
            }
        };
        let lite_read = (backend == Backend::Sqlite).then(|| {
            sql::LitePool::new(
                sqlite_path(&url),
                usize::try_from(cfg.max_connections.max(2)).unwrap_or(2),
            )
        });
        let mut store = Store {
            write,
            read,
            backend,
            url,
            lite_read,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            writes,
            group: None,
            batch: None,
            caches: std::sync::Arc::default(),
            faults: None,
            wakeup_sink: None,
        };
        if backend == Backend::Postgres && cfg.group_commit {
            let writers = usize::try_from(cfg.max_connections / 2).unwrap_or(1);
            store.batch = Some(batch::Batcher::start(store.clone(), writers));
        }
        if backend == Backend::Sqlite && cfg.group_commit {
            let path = sqlite_path(&store.url);
            store.group = Some(if cfg.inline_writer {
                group::GroupCommit::inline(store.clone(), path)?
            } else {
                group::GroupCommit::start(store.clone(), path)?
            });
        }
        Ok(store)
    }

    /// Applies pending migrations (idempotent; safe with several processes starting at once).
    /// On SQLite the tables keyed by a payment are then stored on their key (see `layout`).
    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations")
            .run(&self.write)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => StoreError::from(e),
                other => StoreError::Corrupt(format!("migration failed: {other}")),
            })?;
        if self.backend == Backend::Sqlite {
            layout::cluster(self).await?;
        }
        Ok(())
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Opens a write transaction (for this module's children only: everything above
    /// commits units of work).
    pub(in crate::store) async fn begin(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.write.begin().await?)
    }

    /// A connection for reads (for this module's children only).
    pub(in crate::store) async fn reader(&self) -> StoreResult<Reader> {
        match &self.lite_read {
            Some(pool) => Ok(Reader::Lite(pool.get()?)),
            None => Ok(Reader::Pool(self.read.acquire().await?)),
        }
    }

    /// Records how a write transaction ended (see [`Store::note_success`] and
    /// [`Store::note_failure`]); `wrote` tells whether a success actually wrote something.
    pub(in crate::store) fn note_write<T>(
        &self,
        at: crate::domain::Timestamp,
        result: StoreResult<T>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> StoreResult<T> {
        match &result {
            Ok(v) if wrote(v) => self.note_success(),
            Ok(_) => {}
            Err(e) => self.note_failure(at, e),
        }
        result
    }

    /// A transaction that wrote something committed: the write path works (again). Only a
    /// commit that wrote proves it — a claim that leased nothing commits on a full disk too.
    pub(in crate::store) fn note_success(&self) {
        if self
            .writes
            .failing_since
            .swap(0, std::sync::atomic::Ordering::SeqCst)
            != 0
        {
            metrics::gauge!("corridor_storage_failing").set(0.0);
            tracing::warn!("database writes succeed again");
        }
    }

    /// A write transaction failed: on SQLite the write connection is replaced before its
    /// next use (its transaction state can no longer be trusted), and a storage failure marks
    /// the write path failing until a write succeeds again.
    pub(in crate::store) fn note_failure(&self, at: crate::domain::Timestamp, e: &StoreError) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.backend == Backend::Sqlite {
            self.writes.poisoned.store(true, SeqCst);
        }
        if matches!(e, StoreError::Storage(_))
            && self
                .writes
                .failing_since
                .compare_exchange(0, at.millis().max(1), SeqCst, SeqCst)
                .is_ok()
        {
            metrics::gauge!("corridor_storage_failing").set(1.0);
            tracing::error!(error = %e, "database cannot write (disk full or I/O error): writes answer 503 until it can");
        }
    }

    /// How many units so far committed in a transaction shared with other units — whether
    /// group commit (SQLite) or batching (PostgreSQL) is at work.
    pub fn units_committed_together(&self) -> u64 {
        self.writes
            .committed_together
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `n` units committed together (a batch of more than one).
    pub(in crate::store) fn note_committed_together(&self, n: usize) {
        if n > 1 {
            self.writes
                .committed_together
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Since when writes fail for lack of space or an I/O error, if they do.
    pub fn writes_failing_since(&self) -> Option<crate::domain::Timestamp> {
        match self
            .writes
            .failing_since
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            0 => None,
            ms => Some(crate::domain::Timestamp(ms)),
        }
    }

    /// The notify this process's workers wait on: signalled after every commit that made
    /// work due now, and on PostgreSQL whenever any node announces work.
    pub fn wakeups(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut c = self.read.acquire().await?;
        c.ping().await?;
        Ok(())
    }

    /// Wakes `wake` whenever any process enqueues due work (PostgreSQL `LISTEN`); on SQLite,
    /// where every writer is in this process, the in-process notify already covers it.
    /// Reconnects on its own after a database outage; callers keep a bounded fallback poll.
    pub fn listen_for_jobs(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let wake = self.wake.clone();
        let url = self.url.clone();
        Some(tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut listener) => {
                        if listener.listen(jobs::CHANNEL).await.is_ok() {
                            // Work may have arrived while we were not listening.
                            wake.notify_one();
                            while listener.recv().await.is_ok() {
                                wake.notify_one();
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "job listener cannot connect"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }

    /// Closes the pools, waiting for checked-out connections.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// The file of a `sqlite://PATH[?options]` (or `sqlite:PATH`) URL.
fn sqlite_path(url: &str) -> std::path::PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or(rest).into()
}

/// Reads a column, turning a type mismatch into [`StoreError::Corrupt`].
pub(crate) fn col<T: sql::Column>(row: &Row, name: &str) -> StoreResult<T> {
    row.get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// Parses a stored text column into a domain type.
pub(crate) fn parse_col<T: FromStr>(row: &Row, name: &str) -> StoreResult<T> {
    let s: String = col(row, name)?;
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("column {name}: bad value `{s}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_io_error_is_a_storage_failure_on_both_engines() {
        // SQLite primary and extended result codes: FULL, IOERR_WRITE, IOERR_FSYNC, NOMEM.
        for code in ["13", "778", "1034", "7", "10"] {
            assert!(is_storage_code(Some(code)), "{code}");
        }
        // PostgreSQL disk_full, out_of_memory, configuration_limit_exceeded, io_error;
        // SQLite READONLY and CANTOPEN.
        for code in ["53100", "53200", "53400", "58030", "8", "14"] {
            assert!(is_storage_code(Some(code)), "{code}");
        }
        // Constraint violations and busy/locked are not.
        for code in ["2067", "1555", "5", "23505", "40001", "53300"] {
            assert!(!is_storage_code(Some(code)), "{code}");
        }
        assert!(!is_storage_code(None));
    }

    #[test]
    fn busy_locked_deadlocks_and_timeouts_are_transient() {
        for code in [
            "5", "6", "261", "517", "773", "40001", "40P01", "55P03", "57014", "08006", "25P03",
        ] {
            assert!(is_transient_code(Some(code)), "{code}");
        }
        for code in ["13", "19", "2067", "23505", "42P01"] {
            assert!(!is_transient_code(Some(code)), "{code}");
        }
    }
}
