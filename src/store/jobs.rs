//! The durable job queue.
//!
//! A job is a row; enqueueing is an INSERT in the caller's transaction (a transactional
//! outbox), so a state change and the work that follows it commit together or not at all.
//! Claiming moves `run_at` to the lease's end: a job is due when `run_at` has passed, so a
//! crashed worker's job becomes due again by itself when its lease runs out.

use sqlx::any::AnyRow;

use super::{Backend, Conn, StoreResult, col, dynamic};
use crate::domain::Timestamp;

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Row id (uuid).
    pub id: String,
    /// Handler name, e.g. `payment.step`.
    pub kind: String,
    /// Payment the job belongs to, if any.
    pub payment_id: Option<String>,
    /// Handler input.
    pub payload: serde_json::Value,
    /// Earliest run time.
    pub run_at: Timestamp,
    /// Attempts before the job is dead-lettered.
    pub max_attempts: i64,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Row id.
    pub id: String,
    /// Handler name.
    pub kind: String,
    /// Payment the job belongs to, if any.
    pub payment_id: Option<String>,
    /// Handler input.
    pub payload: serde_json::Value,
    /// Attempts including this one.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Who holds the lease (this process's worker id).
    pub lease_owner: String,
    /// When the lease ends (the claimed `run_at`); with the owner, the lease's fence.
    pub lease_until: Timestamp,
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
pub async fn announce(conn: &mut Conn) -> StoreResult<()> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts a job. Callers that add work due now call [`announce`] once per transaction.
pub async fn enqueue(conn: &mut Conn, job: &NewJob) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, payment_id, payload, state, run_at, attempts, max_attempts, created_at) \
         VALUES ($1, $2, $3, $4, 'ready', $5, 0, $6, $5)",
    )
    .bind(&job.id)
    .bind(&job.kind)
    .bind(job.payment_id.clone())
    .bind(job.payload.to_string())
    .bind(job.run_at.millis())
    .bind(job.max_attempts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due jobs for `owner` until `lease_until`.
pub async fn claim(
    conn: &mut Conn,
    backend: Backend,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: i64,
) -> StoreResult<Vec<Job>> {
    // SQLite serialises writers, so the sub-select cannot race; PostgreSQL needs row locks
    // that concurrent claimers skip rather than wait on.
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, run_at = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'ready' AND run_at <= $3 ORDER BY run_at LIMIT $4{lock}) \
         RETURNING id, kind, payment_id, payload, attempts, max_attempts, lease_owner, run_at"
    );
    let rows = sqlx::query(dynamic(sql))
        .bind(owner)
        .bind(lease_until.millis())
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(job_from_row).collect()
}

fn job_from_row(r: &AnyRow) -> StoreResult<Job> {
    let payload: String = col(r, "payload")?;
    Ok(Job {
        id: col(r, "id")?,
        kind: col(r, "kind")?,
        payment_id: col(r, "payment_id")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| super::StoreError::Corrupt(format!("job payload: {e}")))?,
        attempts: col(r, "attempts")?,
        max_attempts: col(r, "max_attempts")?,
        lease_owner: col::<Option<String>>(r, "lease_owner")?.unwrap_or_default(),
        lease_until: Timestamp(col(r, "run_at")?),
    })
}

/// Confirms, inside the caller's transaction, that `job` is still held under the lease it
/// was claimed with (and row-locks it on PostgreSQL, so no one claims it meanwhile). A
/// worker whose lease ran out must write nothing: another worker owns the job now.
pub async fn hold(conn: &mut Conn, job: &Job) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE jobs SET lease_owner = lease_owner WHERE id = $1 AND lease_owner = $2 AND run_at = $3")
        .bind(&job.id)
        .bind(&job.lease_owner)
        .bind(job.lease_until.millis())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Removes a finished job (in the same transaction as the work's effects).
pub async fn complete(conn: &mut Conn, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs the job again at `run_at` with a new payload, not counting this run as a failure
/// (a poll that found the transfer still pending).
pub async fn reschedule(
    conn: &mut Conn,
    id: &str,
    run_at: Timestamp,
    payload: &serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET run_at = $1, payload = $2, attempts = 0, lease_owner = NULL, last_error = NULL WHERE id = $3",
    )
    .bind(run_at.millis())
    .bind(payload.to_string())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or dead when attempts are used up.
/// Returns whether the job went dead, or `None` when the lease was lost meanwhile (another
/// worker holds the job now, and nothing is written).
pub async fn fail(
    conn: &mut Conn,
    job: &Job,
    error: &str,
    now: Timestamp,
    retry_at: Timestamp,
) -> StoreResult<Option<bool>> {
    let dead = job.attempts >= job.max_attempts;
    let error: String = error.chars().take(2_000).collect();
    let sql = if dead {
        "UPDATE jobs SET state = 'dead', last_error = $1, failed_at = $2, lease_owner = NULL \
         WHERE id = $3 AND lease_owner = $4 AND run_at = $5"
    } else {
        "UPDATE jobs SET run_at = $2, last_error = $1, lease_owner = NULL \
         WHERE id = $3 AND lease_owner = $4 AND run_at = $5"
    };
    let r = sqlx::query(sql)
        .bind(error)
        .bind(if dead {
            now.millis()
        } else {
            retry_at.millis()
        })
        .bind(&job.id)
        .bind(&job.lease_owner)
        .bind(job.lease_until.millis())
        .execute(&mut *conn)
        .await?;
    Ok((r.rows_affected() == 1).then_some(dead))
}

/// Makes every job leased by `owner` due now (graceful shutdown hands work back).
pub async fn release_owner(conn: &mut Conn, owner: &str, now: Timestamp) -> StoreResult<u64> {
    let r = sqlx::query("UPDATE jobs SET run_at = $1, lease_owner = NULL WHERE lease_owner = $2 AND state = 'ready'")
        .bind(now.millis())
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// Makes a payment's pending jobs due now (operator force-retry). Returns how many.
pub async fn run_payment_jobs_now(
    conn: &mut Conn,
    payment_id: &str,
    now: Timestamp,
) -> StoreResult<u64> {
    let r = sqlx::query("UPDATE jobs SET run_at = $1 WHERE payment_id = $2 AND state = 'ready' AND lease_owner IS NULL")
        .bind(now.millis())
        .bind(payment_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// Dead-lettered jobs, newest first.
pub async fn dead(conn: &mut Conn, limit: i64) -> StoreResult<Vec<DeadJob>> {
    let rows = sqlx::query(
        "SELECT id, kind, payment_id, attempts, last_error, failed_at FROM jobs WHERE state = 'dead' \
         ORDER BY failed_at DESC, id LIMIT $1",
    )
    .bind(limit)
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
pub async fn redrive(conn: &mut Conn, id: &str, now: Timestamp) -> StoreResult<Option<bool>> {
    let r = sqlx::query(
        "UPDATE jobs SET state = 'ready', attempts = 0, run_at = $1, failed_at = NULL, lease_owner = NULL \
         WHERE id = $2 AND state = 'dead'",
    )
    .bind(now.millis())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 1 {
        return Ok(Some(true));
    }
    let exists = sqlx::query("SELECT id FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(exists.map(|_| false))
}

/// Queue depth: due-and-unclaimed ready jobs, dead jobs, and the age of the oldest due job.
pub async fn stats(conn: &mut Conn, now: Timestamp) -> StoreResult<QueueStats> {
    let row = sqlx::query(
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
pub async fn count_for_payment(conn: &mut Conn, payment_id: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE payment_id = $1")
        .bind(payment_id)
        .fetch_one(&mut *conn)
        .await?;
    col(&row, "n")
}

/// Removes a payment's unclaimed jobs (the payment became terminal outside a worker).
pub async fn cancel_for_payment(conn: &mut Conn, payment_id: &str) -> StoreResult<u64> {
    let r = sqlx::query(
        "DELETE FROM jobs WHERE payment_id = $1 AND state = 'ready' AND lease_owner IS NULL",
    )
    .bind(payment_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

/// When the earliest ready job becomes due (lets an idle worker sleep exactly that long).
pub async fn next_due(conn: &mut Conn) -> StoreResult<Option<Timestamp>> {
    let row = sqlx::query("SELECT MIN(run_at) AS next FROM jobs WHERE state = 'ready'")
        .fetch_one(&mut *conn)
        .await?;
    Ok(col::<Option<i64>>(&row, "next")?.map(Timestamp))
}

/// The ready job of `kind` for a payment, if one exists (a webhook advances it).
pub async fn step_job_for(
    conn: &mut Conn,
    payment_id: &str,
    kind: &str,
) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT id FROM jobs WHERE payment_id = $1 AND kind = $2 AND state = 'ready' ORDER BY created_at LIMIT 1")
        .bind(payment_id)
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| col(&r, "id")).transpose()
}

/// The job of `kind` for a payment in any state (ready or dead), newest first.
pub async fn step_job_any_state(
    conn: &mut Conn,
    payment_id: &str,
    kind: &str,
) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "SELECT id FROM jobs WHERE payment_id = $1 AND kind = $2 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(payment_id)
    .bind(kind)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| col(&r, "id")).transpose()
}

/// Makes a job (ready or dead) due now with fresh attempts and a new payload; drops any
/// lease, so a stuck holder's late writes are fenced off.
pub async fn force_due(
    conn: &mut Conn,
    id: &str,
    now: Timestamp,
    payload: &serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'ready', run_at = $1, attempts = 0, payload = $2, lease_owner = NULL, failed_at = NULL WHERE id = $3",
    )
    .bind(now.millis())
    .bind(payload.to_string())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
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
    conn: &mut Conn,
    payment_id: &str,
    limit: i64,
) -> StoreResult<Vec<JobSummary>> {
    let rows = sqlx::query(
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

/// Creates a recurring job with a fixed id once per database (several nodes starting at
/// once create it exactly once): the handler reschedules it after every run.
pub async fn ensure_recurring(
    conn: &mut Conn,
    id: &str,
    kind: &str,
    run_at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, payment_id, payload, state, run_at, attempts, max_attempts, created_at) \
         VALUES ($1, $2, NULL, '{}', 'ready', $3, 0, 1000000, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(run_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
