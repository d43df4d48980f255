//! Housekeeping as a recurring job: purge quotes unused 24 h past expiry and idempotency
//! keys older than 24 h. As a queue job it runs on exactly one node at a time.

use super::{Engine, JobError};
use crate::domain::Timestamp;
use crate::store::jobs::{self, Job};
use crate::store::{Store, StoreResult, idempotency, provider_webhooks, quotes};

/// Job kind of the housekeeping job.
pub const KIND: &str = "janitor";
const JOB_ID: &str = "janitor";
const RETENTION_MS: i64 = 24 * 3_600_000;
const EVERY_MS: i64 = 600_000;

/// Makes sure the (single, fixed-id) housekeeping job exists.
pub async fn ensure_scheduled(store: &Store, now: Timestamp) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    jobs::ensure_recurring(&mut tx, JOB_ID, KIND, now.plus_millis(EVERY_MS)).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs one housekeeping pass and schedules the next.
pub async fn run(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let now = engine.clock.now();
    let cutoff = Timestamp(now.millis() - RETENTION_MS);
    let Some(mut tx) = engine.begin_held(job).await? else {
        return Ok(());
    };
    let q = quotes::purge_unused_before(&mut tx, cutoff).await?;
    let k = idempotency::purge_before(&mut tx, cutoff).await?;
    provider_webhooks::purge_before(&mut tx, cutoff).await?;
    crate::store::ops::purge_sessions(&mut tx, now).await?;
    jobs::reschedule(&mut tx, &job.id, now.plus_millis(EVERY_MS), &job.payload).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    tracing::info!(quotes = q, idempotency_keys = k, "housekeeping done");
    Ok(())
}
