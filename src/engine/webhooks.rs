//! Delivering events to merchant endpoints: Standard Webhooks signatures, a timeout, retries
//! on the configured schedule (±20 % jitter, `Retry-After` honoured within bounds), `410 Gone`
//! disables the endpoint, and every attempt is recorded. Each endpoint gets at most
//! [`PER_ENDPOINT`] deliveries in flight per process, so a slow receiver cannot hold the
//! worker pool and delay everyone else's webhooks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Engine, JobError};
use crate::domain::Timestamp;
use crate::domain::task::Task;
use crate::egress;
use crate::signing::Secret;
use crate::store::jobs::Job;
use crate::store::unit::Write;
use crate::store::webhooks::{self, Delivery, Endpoint, Event};

/// Deliveries in flight per endpoint and process.
pub const PER_ENDPOINT: usize = 2;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);
/// Back-off when an endpoint's or its merchant's slots are all busy (not counted as an
/// attempt).
const BUSY_DELAY_MS: i64 = 250;

/// What one HTTP attempt produced.
#[derive(Debug)]
enum Answer {
    /// An HTTP status, with `Retry-After` seconds when given.
    Status(u16, Option<u64>),
    /// No answer: refused address, DNS, connection, timeout.
    NoAnswer(String),
}

impl Engine {
    /// An HTTP client pinned to the checked address of `target`, reused across deliveries
    /// to the same host and address (building one per attempt costs a TLS set-up each time).
    fn delivery_client(&self, target: &egress::Target) -> Result<reqwest::Client, reqwest::Error> {
        let key = (target.host.clone(), target.addr);
        let mut cache = self
            .delivery_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        // Pin the connection to the address that was checked: no second DNS answer, no redirect.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.cfg.webhook_timeout)
            .resolve(&target.host, target.addr)
            // A proxy from the environment would resolve the host again, itself, and so
            // undo the address check: deliveries go direct.
            .no_proxy()
            .user_agent(concat!("Corridor-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        if cache.len() >= 1_000 {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    fn endpoint_slot(&self, endpoint_id: &str) -> Option<OwnedSemaphorePermit> {
        slot(&self.endpoint_slots, endpoint_id, PER_ENDPOINT)
    }

    /// A merchant's share of the delivery lane: half of it, so one merchant's unanswering
    /// endpoints cannot take every delivery slot from the others — and always more than
    /// one endpoint's [`PER_ENDPOINT`], so one bad endpoint cannot starve the merchant's
    /// healthy ones either.
    fn merchant_slot(&self, merchant_id: &str) -> Option<OwnedSemaphorePermit> {
        let share = (self.cfg.webhook_workers / 2).max(PER_ENDPOINT + 1);
        slot(&self.merchant_slots, merchant_id, share)
    }
}

/// One of `cap` permits for `key`, if one is free now (never waits: a busy key's delivery
/// is put back for later instead of holding a slot of the lane while it waits).
fn slot(
    slots: &std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    key: &str,
    cap: usize,
) -> Option<OwnedSemaphorePermit> {
    let sem = {
        let mut map = slots.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, s| s.available_permits() < cap);
        }
        map.entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(cap)))
            .clone()
    };
    sem.try_acquire_owned().ok()
}

/// Runs one delivery job: event `event_id` to endpoint `endpoint_id`, after `attempt`
/// earlier attempts.
pub async fn run(
    engine: &Engine,
    job: &Job,
    event_id: &str,
    endpoint_id: &str,
    attempt: u32,
) -> Result<(), JobError> {
    let store = engine.store();
    let (endpoint, event) = (
        webhooks::get_endpoint(store, endpoint_id).await?,
        webhooks::get_event(store, event_id).await?,
    );
    let done = || Write::CompleteJob {
        job_id: job.id.clone(),
    };
    let (Some(endpoint), Some(event)) = (endpoint, event) else {
        engine.commit_held(job, vec![done()]).await?;
        return Ok(());
    };
    tracing::Span::current().record("merchant_id", endpoint.merchant_id.as_str());
    if endpoint.disabled_at.is_some() {
        engine.commit_held(job, vec![done()]).await?;
        return Ok(());
    }
    let task = |attempt| Task::DeliverWebhook {
        event_id: event_id.to_owned(),
        endpoint_id: endpoint_id.to_owned(),
        attempt,
    };
    let slots = engine
        .merchant_slot(&endpoint.merchant_id)
        .and_then(|m| engine.endpoint_slot(&endpoint.endpoint_id).map(|e| (m, e)));
    let Some(_slots) = slots else {
        let at = engine.now().plus_millis(BUSY_DELAY_MS);
        engine
            .commit_held(
                job,
                vec![Write::Reschedule {
                    job_id: job.id.clone(),
                    task: task(attempt),
                    run_at: at,
                }],
            )
            .await?;
        return Ok(());
    };

    let attempt = attempt + 1;
    let now = engine.now();
    let started = Instant::now();
    let answer = send(engine, &endpoint, &event, now).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status_code, error) = match &answer {
        Answer::Status(s, _) if (200..300).contains(s) => (Some(i64::from(*s)), None),
        Answer::Status(s, _) => (Some(i64::from(*s)), Some(format!("receiver answered {s}"))),
        Answer::NoAnswer(e) => (None, Some(e.clone())),
    };

    let mut writes = vec![Write::InsertDelivery(Delivery {
        delivery_id: format!("whd_{}", crate::idgen::v7()),
        event_id: event.event_id.clone(),
        endpoint_id: endpoint.endpoint_id.clone(),
        merchant_id: endpoint.merchant_id.clone(),
        payment_id: event.payment_id.clone(),
        event_type: event.event_type.clone(),
        attempt: i64::from(attempt),
        status_code,
        error: error.clone(),
        duration_ms,
        created_at: now,
    })];
    let outcome = match answer {
        Answer::Status(s, _) if (200..300).contains(&s) => {
            writes.push(done());
            "success"
        }
        Answer::Status(410, _) => {
            writes.push(Write::DisableEndpoint {
                endpoint_id: endpoint.endpoint_id.clone(),
                reason: "receiver answered 410 Gone".into(),
            });
            writes.push(done());
            "gone"
        }
        other => match retry_delay(engine, attempt, &other) {
            Some(delay) => {
                let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                writes.push(Write::Reschedule {
                    job_id: job.id.clone(),
                    task: task(attempt),
                    run_at: now.plus_millis(ms),
                });
                "retry"
            }
            None => {
                writes.push(done());
                "failed"
            }
        },
    };
    if !engine.commit_held(job, writes).await? {
        return Ok(());
    }
    metrics::counter!("corridor_webhook_deliveries_total", "outcome" => outcome).increment(1);
    match outcome {
        "success" => {
            tracing::debug!(event_id = %event.event_id, endpoint_id = %endpoint.endpoint_id, "webhook delivered")
        }
        "gone" => {
            tracing::warn!(endpoint_id = %endpoint.endpoint_id, "webhook endpoint answered 410 Gone: disabled")
        }
        _ => tracing::warn!(
            event_id = %event.event_id,
            endpoint_id = %endpoint.endpoint_id,
            attempt,
            outcome,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery failed"
        ),
    }
    Ok(())
}

/// Delay before the next attempt after `attempts` failed ones; `None` when the schedule is
/// used up.
fn retry_delay(engine: &Engine, attempts: u32, answer: &Answer) -> Option<Duration> {
    let base = *engine
        .cfg
        .webhook_retry
        .get(usize::try_from(attempts).ok()? - 1)?;
    if let Answer::Status(_, Some(secs)) = answer {
        // The receiver knows best when it can take the event again, within bounds.
        return Some(
            Duration::from_secs(*secs).clamp(base.min(Duration::from_secs(1)), MAX_RETRY_AFTER),
        );
    }
    let permille = u32::try_from(engine.jitter_permille()).unwrap_or(1_000);
    Some(base * permille / 1_000)
}

async fn send(engine: &Engine, endpoint: &Endpoint, event: &Event, now: Timestamp) -> Answer {
    let target = match egress::resolve(&endpoint.url, engine.cfg.webhook_allow_private).await {
        Ok(t) => t,
        Err(e) => return Answer::NoAnswer(e.to_string()),
    };
    let mut secrets = Vec::with_capacity(2);
    if let Ok(s) = Secret::parse(endpoint.secret.expose_secret()) {
        secrets.push(s);
    }
    if let (Some(prev), Some(until)) = (&endpoint.previous_secret, endpoint.previous_secret_until)
        && now < until
        && let Ok(s) = Secret::parse(prev.expose_secret())
    {
        secrets.push(s);
    }
    let client = match engine.delivery_client(&target) {
        Ok(c) => c,
        Err(e) => return Answer::NoAnswer(format!("client: {e}")),
    };
    let secrets: Vec<&Secret> = secrets.iter().collect();
    let result = crate::signing::signed_post(
        &client,
        target.url.as_str(),
        &secrets,
        &event.event_id,
        now,
        event.body.clone(),
    )
    .send()
    .await;
    match result {
        Ok(resp) => {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            Answer::Status(resp.status().as_u16(), retry_after)
        }
        Err(e) if e.is_timeout() => Answer::NoAnswer("timed out".into()),
        Err(e) => Answer::NoAnswer(format!("request failed: {}", e.without_url())),
    }
}
