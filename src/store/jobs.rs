//! The durable job queue.
//!
//! A job is a row; enqueueing is an INSERT in the caller's transaction (a transactional
//! outbox), so a state change and the work that follows it commit together or not at all.
//! Claiming moves `run_at` to the lease's end: a job is due when `run_at` has passed, so a
//! crashed worker's job becomes due again by itself when its lease runs out.

use super::Row;

use super::{Backend, Conn, Store, StoreResult, col, dynamic, query};
use crate::domain::Timestamp;
use crate::domain::task::Task;

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Row id (time-ordered).
    pub id: String,
    /// What to do.
    pub task: Task,
    /// The payment it concerns, if any (listed on the payment's timeline).
    pub payment_id: Option<String>,
    /// When it is due.
    pub run_at: Timestamp,
    /// Failed attempts before it is dead-lettered.
    pub max_attempts: i64,
}

impl NewJob {
    /// A job due at `run_at` with a fresh id.
    pub fn new(
        task: Task,
        payment_id: Option<String>,
        run_at: Timestamp,
        max_attempts: i64,
    ) -> NewJob {
        NewJob {
            id: crate::idgen::v7().to_string(),
            task,
            payment_id,
            run_at,
            max_attempts,
        }
    }
}

/// What a worker holds while it runs a job: the owner and lease end it claimed with. Every
/// write of the run is fenced by it, so a worker whose lease ran out writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: String,
    /// The claiming worker.
    pub owner: String,
    /// The lease end (the job's `run_at` while claimed).
    pub until: Timestamp,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Row id.
    pub id: String,
    /// The stored kind (for logs, whatever the payload).
    pub kind: String,
    /// What to do; `Err` when the stored row does not describe a known task.
    pub task: Result<Task, String>,
    /// The payment it concerns.
    pub payment_id: Option<String>,
    /// Attempts including this one.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// This worker's hold on it.
    pub lease: Lease,
}

/// A dead-lettered job, for operators.
#[derive(Debug, Clone)]
pub struct DeadJob {
    /// Row id.
    pub id: String,
    /// Handler name.
    pub kind: String,
    /// Payment, if any.
    pub payment_id: Option<String>,
    /// Attempts made.
    pub attempts: i64,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// When it was dead-lettered.
    pub failed_at: Timestamp,
}

/// PostgreSQL channel that announces due work to every process's workers.
pub const CHANNEL: &str = "corridor_jobs";

/// Tells idle workers of every process that work is due (delivered at commit). A no-op on
/// SQLite, whose writers all live in one process and use an in-process notify.
pub(super) async fn announce(conn: &mut Conn) -> StoreResult<()> {
    if conn.backend() == Backend::Postgres {
        query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts a job. Callers that add work due now call [`announce`] once per transaction.
pub(super) async fn enqueue(conn: &mut Conn, job: &NewJob) -> StoreResult<()> {
    query(
        "INSERT INTO jobs (id, kind, payment_id, payload, state, run_at, attempts, max_attempts, created_at) \
         VALUES ($1, $2, $3, $4, 'ready', $5, 0, $6, $5)",
    )
    .bind(&job.id)
    .bind(job.task.kind())
    .bind(job.payment_id.clone())
    .bind(job.task.payload())
    .bind(job.run_at.millis())
    .bind(job.max_attempts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts `job` dead already, with `error`; nothing when a job with its id exists.
pub(super) async fn record_dead(
    conn: &mut Conn,
    job: &NewJob,
    error: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let error: String = error.chars().take(2_000).collect();
    query(
        "INSERT INTO jobs (id, kind, payment_id, payload, state, run_at, attempts, max_attempts, last_error, created_at, failed_at) \
         VALUES ($1, $2, $3, $4, 'dead', $5, $6, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&job.id)
    .bind(job.task.kind())
    .bind(job.payment_id.clone())
    .bind(job.task.payload())
    .bind(job.run_at.millis())
    .bind(job.max_attempts)
    .bind(error)
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due jobs for `owner` until `lease_until`.
pub async fn claim(
    store: &Store,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: i64,
) -> StoreResult<Vec<Job>> {
    claim_lane(store, Lane::Any, owner, now, lease_until, limit).await
}

/// Which jobs a claim takes: the engine keeps webhook deliveries in a lane of their own, so
/// payment steps never wait behind receivers that are slow to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Every kind.
    Any,
    /// Webhook deliveries only.
    Deliveries,
    /// Everything but webhook deliveries (payment steps, housekeeping, alerts).
    Steps,
}

/// Claims up to `limit` due jobs of `lane` for `owner` until `lease_until`.
pub async fn claim_lane(
    store: &Store,
    lane: Lane,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: i64,
) -> StoreResult<Vec<Job>> {
    let claim = Claim {
        owner: owner.to_owned(),
        now,
        lease_until,
        limit,
        lane,
    };
    // A claim is a commit like any other: a simulated crash may come before it or after it
    // (the leases taken by a process that is gone).
    store.around_commit(commit_claim(store, claim)).await
}

async fn commit_claim(store: &Store, claim: Claim) -> StoreResult<Vec<Job>> {
    let now = claim.now;
    // On SQLite the claim rides in the writer's next batch (no transaction of its own, and
    // the API cannot starve the workers of the one write connection).
    if let Some(group) = &store.group {
        return group.claim(claim).await;
    }
    store.note_write(
        now,
        async {
            let mut tx = store.begin().await?;
            let jobs = claim_in(&mut *tx, store.backend(), &claim).await?;
            tx.commit().await?;
            Ok(jobs)
        }
        .await,
        |jobs| !jobs.is_empty(),
    )
}

/// A claim of due jobs.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub(super) owner: String,
    pub(super) now: Timestamp,
    pub(super) lease_until: Timestamp,
    pub(super) limit: i64,
    pub(super) lane: Lane,
}

/// The claim's SQL for `lane` on `backend`, with `$1` owner, `$2` lease end, `$3` now and
/// `$4` limit. Public so that a test can hold its query plan to the indexes (an idle lane's
/// claim must not walk the other lane's backlog).
pub fn claim_sql(lane: Lane, backend: Backend) -> String {
    let delivery = Task::DELIVERY_KIND;
    let kinds = match lane {
        Lane::Any => String::new(),
        Lane::Deliveries => format!(" AND kind = '{delivery}'"),
        Lane::Steps => format!(" AND kind <> '{delivery}'"),
    };
    // SQLite serialises writers, so the sub-select cannot race; PostgreSQL needs row locks
    // that concurrent claimers skip rather than wait on.
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    format!(
        "UPDATE jobs SET lease_owner = $1, run_at = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'ready' AND run_at <= $3{kinds} ORDER BY run_at LIMIT $4{lock}) \
         RETURNING id, kind, payment_id, payload, attempts, max_attempts, lease_owner, run_at"
    )
}

pub(super) async fn claim_in(
    conn: &mut Conn,
    backend: Backend,
    claim: &Claim,
) -> StoreResult<Vec<Job>> {
    let Claim {
        owner,
        now,
        lease_until,
        limit,
        lane,
    } = claim;
    let sql = claim_sql(*lane, backend);
    let rows = query(dynamic(sql))
        .bind(owner)
        .bind(lease_until.millis())
        .bind(now.millis())
        .bind(*limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(job_from_row).collect()
}

fn job_from_row(r: &Row) -> StoreResult<Job> {
    let payload: String = col(r, "payload")?;
    let kind: String = col(r, "kind")?;
    let id: String = col(r, "id")?;
    Ok(Job {
        task: Task::from_parts(&kind, &payload).map_err(|e| e.to_string()),
        kind,
        payment_id: col(r, "payment_id")?,
        attempts: col(r, "attempts")?,
        max_attempts: col(r, "max_attempts")?,
        lease: Lease {
            job_id: id.clone(),
            owner: col::<Option<String>>(r, "lease_owner")?.unwrap_or_default(),
            until: Timestamp(col(r, "run_at")?),
        },
        id,
    })
}

/// Confirms, inside the caller's transaction, that `job` is still held under the lease it
/// was claimed with (and row-locks it on PostgreSQL, so no one claims it meanwhile). A
/// worker whose lease ran out must write nothing: another worker owns the job now.
///
/// On SQLite a read is enough — its one writer runs the whole unit, so nothing claims the job
/// in between — and a no-op `UPDATE` would rewrite the row and its page for nothing.
pub(super) async fn hold(conn: &mut Conn, lease: &Lease) -> StoreResult<bool> {
    if conn.backend() == Backend::Sqlite {
        let row = bind_fence(
            query("SELECT id FROM jobs WHERE id = $1 AND lease_owner = $2 AND run_at = $3"),
            lease,
        )
        .fetch_optional(&mut *conn)
        .await?;
        return Ok(row.is_some());
    }
    fenced(conn, query("UPDATE jobs SET lease_owner = lease_owner WHERE id = $1 AND lease_owner = $2 AND run_at = $3"), lease).await
}

/// Runs `q`, a write to one job whose statement ends with the lease fence
/// (`… WHERE id = $k AND lease_owner = $k+1 AND run_at = $k+2`, its last three placeholders),
/// binding the fence from `lease`. True when the job was still held (and so was written).
async fn fenced(conn: &mut Conn, q: super::sql::Query, lease: &Lease) -> StoreResult<bool> {
    let r = bind_fence(q, lease).execute(&mut *conn).await?;
    Ok(r.rows_affected() == 1)
}

/// Binds the lease fence (`id`, `lease_owner`, `run_at`) as `q`'s last three arguments.
fn bind_fence(q: super::sql::Query, lease: &Lease) -> super::sql::Query {
    q.bind(&lease.job_id)
        .bind(&lease.owner)
        .bind(lease.until.millis())
}

/// Gives the held job `task` as its payload while keeping the lease (fenced by it), so the
/// worker runs `task` next without a claim. False if the lease was lost.
pub(super) async fn keep_lease(conn: &mut Conn, lease: &Lease, task: &Task) -> StoreResult<bool> {
    fenced(
        conn,
        query(
            "UPDATE jobs SET payload = $1, attempts = 0, last_error = NULL \
         WHERE id = $2 AND lease_owner = $3 AND run_at = $4",
        )
        .bind(task.payload()),
        lease,
    )
    .await
}

/// Runs the held job again at `run_at` with `task`, releasing the lease, fenced by it (the
/// fence is the write's own `WHERE`: no separate statement). False if the lease was lost.
pub(super) async fn reschedule_held(
    conn: &mut Conn,
    lease: &Lease,
    run_at: Timestamp,
    task: &Task,
) -> StoreResult<bool> {
    fenced(conn, query(
        "UPDATE jobs SET run_at = $1, payload = $2, attempts = 0, lease_owner = NULL, last_error = NULL \
         WHERE id = $3 AND lease_owner = $4 AND run_at = $5",
    )
    .bind(run_at.millis())
    .bind(task.payload()), lease).await
}

/// Removes the held job, fenced by its lease. False if the lease was lost.
pub(super) async fn complete_held(conn: &mut Conn, lease: &Lease) -> StoreResult<bool> {
    fenced(
        conn,
        query("DELETE FROM jobs WHERE id = $1 AND lease_owner = $2 AND run_at = $3"),
        lease,
    )
    .await
}

/// Removes a finished job (in the same transaction as the work's effects).
pub(super) async fn complete(conn: &mut Conn, id: &str) -> StoreResult<()> {
    query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs the job again at `run_at` with a new payload, not counting this run as a failure
/// (a poll that found the transfer still pending).
pub(super) async fn reschedule(
    conn: &mut Conn,
    id: &str,
    run_at: Timestamp,
    task: &Task,
) -> StoreResult<()> {
    query(
        "UPDATE jobs SET run_at = $1, payload = $2, attempts = 0, lease_owner = NULL, last_error = NULL WHERE id = $3",
    )
    .bind(run_at.millis())
    .bind(task.payload())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or dead when attempts are used up.
/// Returns whether the job went dead, or `None` when the lease was lost meanwhile (another
/// worker holds the job now, and nothing is written).
pub(super) async fn fail(
    conn: &mut Conn,
    lease: &Lease,
    dead: bool,
    error: &str,
    now: Timestamp,
    retry_at: Timestamp,
) -> StoreResult<bool> {
    let error: String = error.chars().take(2_000).collect();
    let sql = if dead {
        "UPDATE jobs SET state = 'dead', last_error = $1, failed_at = $2, lease_owner = NULL \
         WHERE id = $3 AND lease_owner = $4 AND run_at = $5"
    } else {
        "UPDATE jobs SET run_at = $2, last_error = $1, lease_owner = NULL \
         WHERE id = $3 AND lease_owner = $4 AND run_at = $5"
    };
    fenced(
        conn,
        query(sql).bind(error).bind(if dead {
            now.millis()
        } else {
            retry_at.millis()
        }),
        lease,
    )
    .await
}

/// Makes every job leased by `owner` due now (graceful shutdown hands work back).
pub(super) async fn release_owner(
    conn: &mut Conn,
    owner: &str,
    now: Timestamp,
) -> StoreResult<u64> {
    let r = query("UPDATE jobs SET run_at = $1, lease_owner = NULL WHERE lease_owner = $2 AND state = 'ready'")
        .bind(now.millis())
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// A page of dead-lettered jobs, newest first, after the job `after`.
pub async fn dead(store: &Store, after: Option<&str>, limit: i64) -> StoreResult<Vec<DeadJob>> {
    let mut conn = store.reader().await?;
    let rows = super::sql::Keyset {
        select: "SELECT id, kind, payment_id, attempts, last_error, failed_at FROM jobs".into(),
        table: "jobs",
        scope: "state = 'dead'",
        order: "failed_at",
        id: "id",
        ascending: false,
    }
    .page(&[], after, limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeadJob {
                id: col(r, "id")?,
                kind: col(r, "kind")?,
                payment_id: col(r, "payment_id")?,
                attempts: col(r, "attempts")?,
                last_error: col(r, "last_error")?,
                failed_at: Timestamp(col::<Option<i64>>(r, "failed_at")?.unwrap_or_default()),
            })
        })
        .collect()
}

/// Moves a dead job back to ready with fresh attempts. False if it is not dead.
pub(super) async fn redrive(conn: &mut Conn, id: &str, now: Timestamp) -> StoreResult<bool> {
    let r = query(
        "UPDATE jobs SET state = 'ready', attempts = 0, run_at = $1, failed_at = NULL, lease_owner = NULL \
         WHERE id = $2 AND state = 'dead'",
    )
    .bind(now.millis())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Queue depth: due-and-unclaimed ready jobs, dead jobs, and the age of the oldest due job.
pub async fn stats(store: &Store, now: Timestamp) -> StoreResult<QueueStats> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(
        "SELECT \
           COALESCE(SUM(CASE WHEN state = 'ready' AND run_at <= $1 THEN 1 ELSE 0 END), 0) AS ready, \
           COALESCE(SUM(CASE WHEN state = 'ready' THEN 1 ELSE 0 END), 0) AS scheduled, \
           COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS dead, \
           MIN(CASE WHEN state = 'ready' AND run_at <= $1 AND lease_owner IS NULL THEN run_at END) AS oldest \
         FROM jobs",
    )
    .bind(now.millis())
    .fetch_one(&mut *conn)
    .await?;
    let oldest: Option<i64> = col(&row, "oldest")?;
    Ok(QueueStats {
        ready: col(&row, "ready")?,
        scheduled: col(&row, "scheduled")?,
        dead: col(&row, "dead")?,
        oldest_due_age_ms: oldest.map(|o| (now.millis() - o).max(0)).unwrap_or(0),
    })
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Jobs due now (including leased ones).
    pub ready: i64,
    /// All non-dead jobs.
    pub scheduled: i64,
    /// Dead-lettered jobs.
    pub dead: i64,
    /// How long the oldest unclaimed due job has waited.
    pub oldest_due_age_ms: i64,
}

/// Number of jobs for a payment (tests and invariant checks).
pub async fn count_for_payment(store: &Store, payment_id: &str) -> StoreResult<i64> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query("SELECT COUNT(*) AS n FROM jobs WHERE payment_id = $1")
        .bind(payment_id)
        .fetch_one(&mut *conn)
        .await?;
    col(&row, "n")
}

/// When the earliest ready job becomes due (lets an idle worker sleep exactly that long).
pub async fn next_due(store: &Store) -> StoreResult<Option<Timestamp>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query("SELECT MIN(run_at) AS next FROM jobs WHERE state = 'ready'")
        .fetch_one(&mut *conn)
        .await?;
    Ok(col::<Option<i64>>(&row, "next")?.map(Timestamp))
}

/// A job as operators see it on a payment's timeline.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// Row id.
    pub id: String,
    /// Handler name.
    pub kind: String,
    /// `ready` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// Attempts allowed before it is dead-lettered.
    pub max_attempts: i64,
    /// When it runs next (or, while leased, when the lease ends).
    pub run_at: Timestamp,
    /// Error of the last attempt.
    pub last_error: Option<String>,
}

/// The jobs of one payment, newest first (the dashboard shows why a payment is waiting).
pub async fn for_payment(
    store: &Store,
    payment_id: &str,
    limit: i64,
) -> StoreResult<Vec<JobSummary>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(
        "SELECT id, kind, state, attempts, max_attempts, run_at, last_error FROM jobs \
         WHERE payment_id = $1 ORDER BY created_at DESC, id LIMIT $2",
    )
    .bind(payment_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobSummary {
                id: col(r, "id")?,
                kind: col(r, "kind")?,
                state: col(r, "state")?,
                attempts: col(r, "attempts")?,
                max_attempts: col(r, "max_attempts")?,
                run_at: Timestamp(col(r, "run_at")?),
                last_error: col(r, "last_error")?,
            })
        })
        .collect()
}

/// Makes sure the recurring job `id` exists (created due at `run_at` if missing).
pub(super) async fn ensure_recurring(
    conn: &mut Conn,
    id: &str,
    task: &Task,
    run_at: Timestamp,
) -> StoreResult<()> {
    query(
        "INSERT INTO jobs (id, kind, payment_id, payload, state, run_at, attempts, max_attempts, created_at) \
         VALUES ($1, $2, NULL, $3, 'ready', $4, 0, 1000000, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(task.kind())
    .bind(task.payload())
    .bind(run_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Schedules a payment's step job: the running job `running` when given (rescheduled in
/// place), otherwise the payment's latest step job in any state (made ready and due again —
/// an operator's retry revives a dead one), otherwise a new one.
pub(super) async fn schedule_step(
    conn: &mut Conn,
    payment_id: &str,
    task: &Task,
    run_at: Timestamp,
    max_attempts: i64,
) -> StoreResult<()> {
    let existing = query(
        "SELECT id FROM jobs WHERE payment_id = $1 AND kind = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(payment_id)
    .bind(task.kind())
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        Some(row) => {
            let id: String = col(&row, "id")?;
            query(
                "UPDATE jobs SET state = 'ready', run_at = $1, attempts = 0, payload = $2, lease_owner = NULL, \
                 failed_at = NULL, last_error = NULL WHERE id = $3",
            )
            .bind(run_at.millis())
            .bind(task.payload())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            enqueue(
                conn,
                &NewJob::new(
                    task.clone(),
                    Some(payment_id.to_owned()),
                    run_at,
                    max_attempts,
                ),
            )
            .await?
        }
    }
    Ok(())
}

/// Removes a finished payment's idle step jobs (a job a worker holds is left to it: its
/// fenced writes find the payment moved on).
pub(super) async fn complete_steps(conn: &mut Conn, payment_id: &str) -> StoreResult<()> {
    query(
        "DELETE FROM jobs WHERE payment_id = $1 AND kind = $2 AND state = 'ready' AND lease_owner IS NULL",
    )
    .bind(payment_id)
    .bind(Task::step(crate::domain::PaymentState::Pending).kind())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a job with this id exists (in any state).
pub async fn exists(store: &Store, id: &str) -> StoreResult<bool> {
    let mut conn = store.reader().await?;
    let row = query("SELECT id FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_lanes_index_is_partial_on_the_kind_its_claim_names() {
        // The claim's condition must imply the index's, or the planner cannot use it.
        let migration = include_str!("../../migrations/0012_delivery_lane_index.sql");
        let condition = format!("kind = '{}'", Task::DELIVERY_KIND);
        assert!(migration.contains(&format!("WHERE {condition};")));
        assert!(claim_sql(Lane::Deliveries, Backend::Sqlite).contains(&condition));
    }
}
