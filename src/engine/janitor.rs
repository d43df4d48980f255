//! Housekeeping as a recurring job: purge quotes unused 24 h past expiry, idempotency keys
//! and provider webhook ids older than 24 h, and expired dashboard sessions. As a queue job
//! it runs on exactly one node at a time.

use super::{Engine, JobError};
use crate::domain::Timestamp;
use crate::domain::task::Task;
use crate::store::jobs::Job;
use crate::store::unit::Write;

const JOB_ID: &str = "janitor";
const RETENTION_MS: i64 = 24 * 3_600_000;
const EVERY_MS: i64 = 600_000;

/// The write that makes sure the (single, fixed-id) housekeeping job exists.
pub fn ensure_scheduled(now: Timestamp) -> Write {
    Write::EnsureRecurring {
        job_id: JOB_ID.to_owned(),
        task: Task::Housekeeping {},
        run_at: now.plus_millis(EVERY_MS),
    }
}

/// Runs one housekeeping pass and schedules the next.
pub async fn run(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let now = engine.now();
    engine
        .commit_held(
            job,
            vec![
                Write::Purge {
                    cutoff: Timestamp(now.millis() - RETENTION_MS),
                    history_cutoff: Timestamp(
                        now.millis()
                            - i64::try_from(engine.cfg.history_retention.as_millis())
                                .unwrap_or(i64::MAX / 2),
                    ),
                },
                Write::Reschedule {
                    job_id: job.id.clone(),
                    task: Task::Housekeeping {},
                    run_at: now.plus_millis(EVERY_MS),
                },
            ],
        )
        .await?;
    Ok(())
}
