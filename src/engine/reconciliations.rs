//! Reconciliation runs as queue jobs: each run is performed by its own job (so exactly one
//! node performs it, and a crash only delays it), and a recurring job starts one for the
//! latest period every `CORRIDOR_RECONCILE_EVERY`. A run with mismatches raises the
//! `RECONCILIATION_MISMATCH` alert; a clean run clears it.

use serde_json::{Value, json};

use super::{Engine, JobError};
use crate::domain::Timestamp;
use crate::domain::reconcile::{Line, Outcome};
use crate::domain::task::Task;
use crate::service::reconcile::{ReconcileError, start_writes};
use crate::store::jobs::Job;
use crate::store::ops::{self, Alert, RECONCILIATION_MISMATCH};
use crate::store::reconciliations;
use crate::store::unit::Write;

const JOB_ID: &str = "reconciliation-schedule";
/// How far behind now a scheduled run's window ends: settlements of the last minute are
/// still being recorded.
const SETTLE_MS: i64 = 60_000;

/// The write that makes sure the recurring job exists (when runs are scheduled at all).
pub fn ensure_scheduled(now: Timestamp, every_ms: i64) -> Option<Write> {
    (every_ms > 0).then(|| Write::EnsureRecurring {
        job_id: JOB_ID.to_owned(),
        task: Task::ScheduleReconciliation {},
        run_at: now.plus_millis(every_ms),
    })
}

/// Starts a run over the last period and schedules the next.
pub async fn schedule(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let now = engine.now();
    let every = i64::try_from(engine.cfg.reconcile_every.as_millis()).unwrap_or(i64::MAX / 4);
    if every == 0 {
        engine
            .commit_held(job, vec![Write::CompleteHeld(job.lease.clone())])
            .await?;
        return Ok(());
    }
    let to = Timestamp(now.millis() - SETTLE_MS);
    let from = Timestamp(to.millis() - every);
    let (_, mut writes) = start_writes(from, to, now, engine.service.settings.job_max_attempts);
    writes.push(Write::Reschedule {
        job_id: job.id.clone(),
        task: Task::ScheduleReconciliation {},
        run_at: now.plus_millis(every),
    });
    engine.commit_held(job, writes).await?;
    Ok(())
}

fn line(l: &Option<Line>) -> Value {
    match l {
        Some(l) => {
            json!({"amount": l.amount, "currency": l.currency, "status": l.status.to_string()})
        }
        None => Value::Null,
    }
}

/// The mismatches as the API shows them.
fn mismatches(o: &Outcome) -> String {
    Value::Array(
        o.mismatches
            .iter()
            .map(|m| {
                json!({
                    "payment_id": m.payment_id,
                    "leg": m.leg.to_string(),
                    "kind": m.kind.to_string(),
                    "ours": line(&m.ours),
                    "theirs": line(&m.theirs),
                })
            })
            .collect(),
    )
    .to_string()
}

/// Performs run `id`: compares, then writes the result and the alert in one unit with the
/// job's completion.
pub async fn run(engine: &Engine, job: &Job, id: &str) -> Result<(), JobError> {
    let store = engine.store();
    let Some(mut r) = reconciliations::get(store, id).await? else {
        return Err(JobError::Permanent(format!(
            "reconciliation {id} does not exist"
        )));
    };
    let mut writes = Vec::new();
    if r.status == "PENDING" {
        match engine.service.reconcile(r.from, r.to).await {
            Ok(outcome) => {
                r.status = "COMPLETED".into();
                r.checked = i64::try_from(outcome.checked).unwrap_or(i64::MAX);
                r.matched = i64::try_from(outcome.matched).unwrap_or(i64::MAX);
                r.mismatches = mismatches(&outcome);
                let open: Vec<Alert> = ops::open_alerts(store)
                    .await?
                    .into_iter()
                    .filter(|a| a.kind == RECONCILIATION_MISMATCH)
                    .collect();
                writes.extend(open.iter().map(|a| Write::ClearAlert {
                    alert_id: a.alert_id.clone(),
                }));
                if !outcome.mismatches.is_empty() {
                    let n = outcome.mismatches.len();
                    tracing::warn!(reconciliation_id = %id, mismatches = n, "reconciliation found mismatches");
                    writes.push(Write::RaiseAlert(Alert {
                        alert_id: format!("alert_{}", crate::idgen::v4()),
                        kind: RECONCILIATION_MISMATCH.to_owned(),
                        subject: id.to_owned(),
                        payment_id: outcome.mismatches.first().map(|m| m.payment_id.clone()),
                        endpoint_id: None,
                        job_id: None,
                        message: format!("reconciliation {id} found {n} mismatch(es) between the ledger and a provider's statement"),
                        since: engine.now(),
                    }));
                }
            }
            Err(ReconcileError::Unsupported(why)) => {
                r.status = "FAILED".into();
                r.error = Some(why);
            }
            Err(ReconcileError::Unavailable(why)) => return Err(JobError::Transient(why)),
        }
        writes.insert(0, Write::FinishReconciliation(r));
    }
    writes.push(Write::CompleteHeld(job.lease.clone()));
    engine.commit_held(job, writes).await?;
    Ok(())
}
