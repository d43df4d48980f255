//! The sweeper: a recurring queue job (so exactly one node runs it at a time) that raises
//! alerts for payments stuck too long in one state, dead jobs and failing webhook endpoints,
//! and clears them when the condition is gone. A new alert is logged once, counted, and —
//! when `CORRIDOR_ALERT_WEBHOOK` is set — POSTed signed like merchant webhooks.

use std::collections::HashSet;
use std::time::Duration;

use super::{Engine, JobError};
use crate::domain::Timestamp;
use crate::domain::task::Task;
use crate::signing::Secret;
use crate::store::jobs::{self, Job};
use crate::store::ops::{self, Alert, DEAD_JOB, STUCK_PAYMENT, WEBHOOK_ENDPOINT_FAILING};
use crate::store::unit::Write;

const JOB_ID: &str = "alerts-sweep";
/// How often the sweep runs: an alert appears within this of crossing its threshold.
const EVERY_MS: i64 = 2_000;
/// Consecutive failed deliveries that make an endpoint "failing".
const FAILING_AFTER: i64 = 3;

/// Where and how new alerts are pushed.
#[derive(Debug, Clone)]
pub struct AlertSink {
    /// Receiver URL.
    pub url: String,
    /// Signing secret.
    pub secret: Secret,
}

/// The write that makes sure the (single, fixed-id) sweep job exists.
pub fn ensure_scheduled(now: Timestamp) -> Write {
    Write::EnsureRecurring {
        job_id: JOB_ID.to_owned(),
        task: Task::SweepAlerts {},
        run_at: now,
    }
}

fn alert(kind: &str, subject: &str, message: String, since: Timestamp) -> Alert {
    Alert {
        alert_id: format!("alert_{}", crate::idgen::v4()),
        kind: kind.to_owned(),
        subject: subject.to_owned(),
        payment_id: None,
        endpoint_id: None,
        job_id: None,
        message,
        since,
    }
}

/// Runs one sweep and schedules the next.
pub async fn run(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let now = engine.now();
    let store = engine.store();
    let stuck_ms = i64::try_from(engine.cfg.stuck_after.as_millis()).unwrap_or(i64::MAX);
    let (stuck, dead, failing) = (
        ops::stuck_payments(
            store,
            Timestamp(now.millis().saturating_sub(stuck_ms)),
            10_000,
        )
        .await?,
        jobs::dead(store, None, 10_000).await?,
        ops::failing_endpoints(store, FAILING_AFTER).await?,
    );
    let mut wanted = Vec::new();
    for (payment_id, state, since) in &stuck {
        let mut a = alert(
            STUCK_PAYMENT,
            payment_id,
            format!(
                "payment has been {state} for longer than {}s",
                stuck_ms / 1000
            ),
            since.plus_millis(stuck_ms),
        );
        a.payment_id = Some(payment_id.clone());
        wanted.push(a);
    }
    for j in &dead {
        let mut a = alert(
            DEAD_JOB,
            &j.id,
            format!(
                "{} job dead after {} attempts: {}",
                j.kind,
                j.attempts,
                j.last_error.as_deref().unwrap_or("no error recorded")
            ),
            j.failed_at,
        );
        a.job_id = Some(j.id.clone());
        a.payment_id = j.payment_id.clone();
        wanted.push(a);
    }
    for (endpoint_id, since) in &failing {
        let mut a = alert(
            WEBHOOK_ENDPOINT_FAILING,
            endpoint_id,
            format!("the last {FAILING_AFTER} deliveries to this endpoint failed"),
            *since,
        );
        a.endpoint_id = Some(endpoint_id.clone());
        wanted.push(a);
    }

    // One read of what is open, then only the differences are written (the sweep is one
    // queue job, so no other sweep races this one).
    // Only the kinds this sweep decides on: others (a reconciliation's) are raised and
    // cleared by their own job.
    let open: Vec<Alert> = ops::open_alerts(store)
        .await?
        .into_iter()
        .filter(|a| [STUCK_PAYMENT, DEAD_JOB, WEBHOOK_ENDPOINT_FAILING].contains(&a.kind.as_str()))
        .collect();
    let open_keys: HashSet<(&str, &str)> = open
        .iter()
        .map(|a| (a.kind.as_str(), a.subject.as_str()))
        .collect();
    let wanted_keys: HashSet<(&str, &str)> = wanted
        .iter()
        .map(|a| (a.kind.as_str(), a.subject.as_str()))
        .collect();
    let mut raised = Vec::new();
    let mut writes = Vec::new();
    for a in &wanted {
        if !open_keys.contains(&(a.kind.as_str(), a.subject.as_str())) {
            writes.push(Write::RaiseAlert(a.clone()));
            raised.push(a.clone());
        }
    }
    for a in &open {
        if !wanted_keys.contains(&(a.kind.as_str(), a.subject.as_str())) {
            writes.push(Write::ClearAlert {
                alert_id: a.alert_id.clone(),
            });
        }
    }
    writes.push(Write::Reschedule {
        job_id: job.id.clone(),
        task: Task::SweepAlerts {},
        run_at: now.plus_millis(EVERY_MS),
    });
    if !engine.commit_held(job, writes).await? {
        return Ok(());
    }

    for a in &raised {
        metrics::counter!("corridor_alerts_raised_total", "kind" => a.kind.clone()).increment(1);
        tracing::warn!(
            kind = %a.kind,
            payment_id = a.payment_id.as_deref().unwrap_or(""),
            endpoint_id = a.endpoint_id.as_deref().unwrap_or(""),
            job_id = a.job_id.as_deref().unwrap_or(""),
            message = %a.message,
            "alert raised"
        );
        if let Some(sink) = &engine.cfg.alert_sink {
            notify(sink, a, now).await;
        }
    }
    Ok(())
}

/// Best-effort push of a new alert; a failure is logged (the alert stays listed by the API).
async fn notify(sink: &AlertSink, a: &Alert, now: Timestamp) {
    let body = serde_json::json!({
        "id": a.alert_id,
        "type": "alert.raised",
        "created_at": now.to_rfc3339(),
        "data": {
            "id": a.alert_id, "kind": a.kind, "payment_id": a.payment_id, "endpoint_id": a.endpoint_id,
            "job_id": a.job_id, "message": a.message, "since": a.since.to_rfc3339(),
        },
    })
    .to_string();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "alert webhook client");
            return;
        }
    };
    let sent =
        crate::signing::signed_post(&client, &sink.url, &[&sink.secret], &a.alert_id, now, body)
            .send()
            .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(
            status = r.status().as_u16(),
            "alert webhook refused the alert"
        ),
        Err(e) => tracing::warn!(error = %e.without_url(), "alert webhook unreachable"),
    }
}
