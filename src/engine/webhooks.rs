//! Delivering events to merchant endpoints: Standard Webhooks signatures, a timeout, retries
//! on the configured schedule (±20 % jitter, `Retry-After` honoured within bounds), `410 Gone`
//! disables the endpoint, and every attempt is recorded. Each endpoint gets at most
//! [`PER_ENDPOINT`] deliveries in flight per process, so a slow receiver cannot hold the
//! worker pool and delay everyone else's webhooks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::events::DeliverJob;
use super::{Engine, JobError};
use crate::domain::Timestamp;
use crate::egress;
use crate::signing::Secret;
use crate::store::jobs::{self, Job};
use crate::store::webhooks::{self, Delivery, Endpoint, Event};

/// Deliveries in flight per endpoint and process.
pub const PER_ENDPOINT: usize = 2;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);
/// Back-off when an endpoint's slots are all busy (not counted as an attempt).
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
            .user_agent(concat!("Corridor-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        if cache.len() >= 1_000 {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    fn endpoint_slot(&self, endpoint_id: &str) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut map = self
                .endpoint_slots
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map.len() > 10_000 {
                map.retain(|_, s| s.available_permits() < PER_ENDPOINT);
            }
            map.entry(endpoint_id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT)))
                .clone()
        };
        sem.try_acquire_owned().ok()
    }
}

/// Runs one delivery job.
pub async fn run(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let mut d: DeliverJob = serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::Permanent(format!("bad delivery payload: {e}")))?;
    let (endpoint, event) = {
        let mut conn = engine.store.reader().await?;
        (
            webhooks::get_endpoint(&mut conn, &d.endpoint_id).await?,
            webhooks::get_event(&mut conn, &d.event_id).await?,
        )
    };
    let (Some(endpoint), Some(event)) = (endpoint, event) else {
        return finish(engine, job).await;
    };
    tracing::Span::current().record("merchant_id", endpoint.merchant_id.as_str());
    if endpoint.disabled_at.is_some() {
        return finish(engine, job).await;
    }
    let Some(_slot) = engine.endpoint_slot(&endpoint.endpoint_id) else {
        let Some(mut tx) = engine.begin_held(job).await? else {
            return Ok(());
        };
        let at = engine.clock.now().plus_millis(BUSY_DELAY_MS);
        jobs::reschedule(&mut tx, &job.id, at, &job.payload).await?;
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        return Ok(());
    };

    d.attempt += 1;
    let now = engine.clock.now();
    let started = Instant::now();
    let answer = send(engine, &endpoint, &event, now).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status_code, error) = match &answer {
        Answer::Status(s, _) if (200..300).contains(s) => (Some(i64::from(*s)), None),
        Answer::Status(s, _) => (Some(i64::from(*s)), Some(format!("receiver answered {s}"))),
        Answer::NoAnswer(e) => (None, Some(e.clone())),
    };

    let Some(mut tx) = engine.begin_held(job).await? else {
        return Ok(());
    };
    webhooks::insert_delivery(
        &mut tx,
        &Delivery {
            delivery_id: format!("whd_{}", uuid::Uuid::new_v4()),
            event_id: event.event_id.clone(),
            endpoint_id: endpoint.endpoint_id.clone(),
            merchant_id: endpoint.merchant_id.clone(),
            payment_id: event.payment_id.clone(),
            event_type: event.event_type.clone(),
            attempt: i64::from(d.attempt),
            status_code,
            error: error.clone(),
            duration_ms,
            created_at: now,
        },
    )
    .await?;
    let outcome = match answer {
        Answer::Status(s, _) if (200..300).contains(&s) => {
            jobs::complete(&mut tx, &job.id).await?;
            "success"
        }
        Answer::Status(410, _) => {
            webhooks::disable_endpoint(
                &mut tx,
                &endpoint.endpoint_id,
                "receiver answered 410 Gone",
                now,
            )
            .await?;
            jobs::complete(&mut tx, &job.id).await?;
            "gone"
        }
        other => match retry_delay(engine, d.attempt, &other) {
            Some(delay) => {
                let payload =
                    serde_json::to_value(&d).map_err(|e| JobError::Permanent(e.to_string()))?;
                let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                jobs::reschedule(&mut tx, &job.id, now.plus_millis(ms), &payload).await?;
                "retry"
            }
            None => {
                jobs::complete(&mut tx, &job.id).await?;
                "failed"
            }
        },
    };
    tx.commit().await.map_err(crate::store::StoreError::from)?;
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
            attempt = d.attempt,
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
    let jitter = engine
        .rng
        .lock()
        .map(|mut r| r.random_range(0.8..=1.2))
        .unwrap_or(1.0);
    Some(base.mul_f64(jitter))
}

async fn send(engine: &Engine, endpoint: &Endpoint, event: &Event, now: Timestamp) -> Answer {
    let target = match egress::resolve(&endpoint.url, engine.cfg.webhook_allow_private).await {
        Ok(t) => t,
        Err(e) => return Answer::NoAnswer(e.to_string()),
    };
    let ts = now.millis().div_euclid(1000);
    let mut signatures = Vec::with_capacity(2);
    if let Ok(s) = Secret::parse(&endpoint.secret) {
        signatures.push(s.sign(&event.event_id, ts, event.body.as_bytes()));
    }
    if let (Some(prev), Some(until)) = (&endpoint.previous_secret, endpoint.previous_secret_until)
        && now < until
        && let Ok(s) = Secret::parse(prev)
    {
        signatures.push(s.sign(&event.event_id, ts, event.body.as_bytes()));
    }
    let client = match engine.delivery_client(&target) {
        Ok(c) => c,
        Err(e) => return Answer::NoAnswer(format!("client: {e}")),
    };
    let result = client
        .post(target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(crate::signing::ID_HEADER, &event.event_id)
        .header(crate::signing::TIMESTAMP_HEADER, ts.to_string())
        .header(crate::signing::SIGNATURE_HEADER, signatures.join(" "))
        .body(event.body.clone())
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

async fn finish(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let Some(mut tx) = engine.begin_held(job).await? else {
        return Ok(());
    };
    jobs::complete(&mut tx, &job.id).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(())
}
