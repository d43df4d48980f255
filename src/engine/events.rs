//! The event outbox: one event per payment state change, written in the same transaction as
//! the change (never lost, never sent for a change that did not commit), fanned out at once
//! into one delivery job per subscribed endpoint.

use serde::{Deserialize, Serialize};

use crate::domain::{PaymentState, Timestamp};
use crate::store::jobs::{self, NewJob};
use crate::store::payments::{HistoryEntry, PaymentRecord};
use crate::store::webhooks::{self, Event};
use crate::store::{Conn, StoreError, StoreResult, payments};
use crate::views;

/// Job kind of one delivery.
pub const DELIVER: &str = "webhook.deliver";
/// Attempts the queue allows a delivery job for its own (storage) failures.
const JOB_ATTEMPTS: i64 = 20;

/// Payload of a [`DELIVER`] job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliverJob {
    /// Event to send.
    pub event_id: String,
    /// Endpoint to send it to.
    pub endpoint_id: String,
    /// Attempts made so far.
    #[serde(default)]
    pub attempt: u32,
}

/// The event type announcing that a payment entered `state` (`payment.onramp_pending`).
pub fn event_type(state: PaymentState) -> String {
    format!("payment.{}", state.as_str().to_ascii_lowercase())
}

/// Writes `event_type` for the payment as it is now (inside the caller's transaction) and a
/// delivery job per subscribed endpoint.
pub async fn record(
    conn: &mut Conn,
    payment_id: &str,
    event_type: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let payment = payments::get(conn, payment_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("event for missing payment {payment_id}")))?;
    let history = payments::history(conn, payment_id).await?;
    record_for(conn, &payment, &history, event_type, now).await
}

/// [`record`] for a payment the caller holds as stored (saves re-reading it).
pub async fn record_for(
    conn: &mut Conn,
    payment: &PaymentRecord,
    history: &[HistoryEntry],
    event_type: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let event_id = format!("evt_{}", uuid::Uuid::new_v4());
    let body = serde_json::json!({
        "id": event_id,
        "type": event_type,
        "created_at": now.to_rfc3339(),
        "data": views::view(payment, history),
    });
    let event = Event {
        event_id: event_id.clone(),
        merchant_id: payment.merchant_id.clone(),
        payment_id: Some(payment.payment_id.clone()),
        event_type: event_type.to_owned(),
        body: body.to_string(),
        created_at: now,
    };
    webhooks::insert_event(conn, &event).await?;
    let mut fanned_out = false;
    for endpoint in webhooks::list_endpoints(conn, &payment.merchant_id).await? {
        if endpoint.wants(event_type) {
            enqueue_delivery(conn, &event, &endpoint.endpoint_id, now).await?;
            fanned_out = true;
        }
    }
    if fanned_out {
        jobs::announce(conn).await?;
    }
    Ok(())
}

/// Schedules (another) delivery of `event` to one endpoint, now; the caller announces it.
pub async fn enqueue_delivery(
    conn: &mut Conn,
    event: &Event,
    endpoint_id: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let payload = DeliverJob {
        event_id: event.event_id.clone(),
        endpoint_id: endpoint_id.to_owned(),
        attempt: 0,
    };
    jobs::enqueue(
        conn,
        &NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            kind: DELIVER.to_owned(),
            payment_id: event.payment_id.clone(),
            payload: serde_json::to_value(payload)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            run_at: now,
            max_attempts: JOB_ATTEMPTS,
        },
    )
    .await
}
