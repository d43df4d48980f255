//! Merchant webhook endpoints, the event outbox, and the delivery log.

use std::collections::HashMap;
use std::sync::Arc;

use super::Row;
use secrecy::{ExposeSecret, SecretString};

use super::{Conn, Store, StoreError, StoreResult, col, query};
use crate::domain::{HistoryEntry, PaymentRecord, Timestamp};

/// A merchant's webhook endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `we_<uuid>`.
    pub endpoint_id: String,
    /// Owner.
    pub merchant_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types; empty = all.
    pub events: Vec<String>,
    /// Current signing secret (`whsec_…`).
    pub secret: SecretString,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<SecretString>,
    /// End of the rotation overlap.
    pub previous_secret_until: Option<Timestamp>,
    /// Set when the receiver answered `410 Gone`.
    pub disabled_at: Option<Timestamp>,
    /// Creation.
    pub created_at: Timestamp,
}

impl Endpoint {
    /// Whether this endpoint wants `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.disabled_at.is_none()
            && (self.events.is_empty() || self.events.iter().any(|e| e == event_type))
    }
}

/// An event in the outbox.
#[derive(Debug, Clone)]
pub struct Event {
    /// `evt_<uuid>` (also the `webhook-id`).
    pub event_id: String,
    /// Owner.
    pub merchant_id: String,
    /// Payment concerned.
    pub payment_id: Option<String>,
    /// `payment.completed`, …
    pub event_type: String,
    /// The exact JSON body sent.
    pub body: String,
    /// Creation.
    pub created_at: Timestamp,
}

/// Renders a payment event's JSON body from its id, type and time, the payment after the
/// change and its history up to and including the change.
pub type RenderPayment = fn(&str, &str, Timestamp, &PaymentRecord, &[HistoryEntry]) -> String;

/// An event to record ([`super::Write::RecordEvent`]).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `evt_<uuid>` (also the `webhook-id`).
    pub event_id: String,
    /// Owner.
    pub merchant_id: String,
    /// Payment concerned.
    pub payment_id: Option<String>,
    /// `payment.completed`, …
    pub event_type: String,
    /// Its body.
    pub body: NewBody,
    /// Creation.
    pub created_at: Timestamp,
}

/// What a new event's body is made of.
#[derive(Debug, Clone)]
pub enum NewBody {
    /// The JSON to send, as it is.
    Json(String),
    /// A payment's event, rendered by `render` only when an endpoint wants it, from
    /// `payment` (as it is after the change) and its history read inside the unit — after
    /// the unit's own transition, which the compare-and-set keeps exact. A merchant without
    /// an endpoint costs neither the history read nor the rendering.
    Payment {
        /// The payment after the change.
        payment: Box<PaymentRecord>,
        /// How its body is rendered.
        render: RenderPayment,
    },
}

impl From<Event> for NewEvent {
    fn from(e: Event) -> Self {
        NewEvent {
            event_id: e.event_id,
            merchant_id: e.merchant_id,
            payment_id: e.payment_id,
            event_type: e.event_type,
            body: NewBody::Json(e.body),
            created_at: e.created_at,
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Row id (`whd_<uuid>`).
    pub delivery_id: String,
    /// Event sent.
    pub event_id: String,
    /// Endpoint sent to.
    pub endpoint_id: String,
    /// Owner.
    pub merchant_id: String,
    /// Payment concerned.
    pub payment_id: Option<String>,
    /// Event type.
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// HTTP status, `None` when no answer came.
    pub status_code: Option<i64>,
    /// Transport error or non-2xx summary.
    pub error: Option<String>,
    /// Time to answer.
    pub duration_ms: i64,
    /// When attempted.
    pub created_at: Timestamp,
}

const ENDPOINT_COLUMNS: &str = "endpoint_id, merchant_id, url, events, secret, previous_secret, \
    previous_secret_until, disabled_at, created_at";

fn endpoint_from_row(r: &Row) -> StoreResult<Endpoint> {
    let events: String = col(r, "events")?;
    Ok(Endpoint {
        endpoint_id: col(r, "endpoint_id")?,
        merchant_id: col(r, "merchant_id")?,
        url: col(r, "url")?,
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Corrupt(format!("events: {e}")))?,
        secret: SecretString::from(col::<String>(r, "secret")?),
        previous_secret: col::<Option<String>>(r, "previous_secret")?.map(SecretString::from),
        previous_secret_until: col::<Option<i64>>(r, "previous_secret_until")?.map(Timestamp),
        disabled_at: col::<Option<i64>>(r, "disabled_at")?.map(Timestamp),
        created_at: Timestamp(col(r, "created_at")?),
    })
}

/// Stores a new endpoint.
pub(super) async fn create_endpoint(conn: &mut Conn, e: &Endpoint) -> StoreResult<()> {
    let events =
        serde_json::to_string(&e.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    query(
        "INSERT INTO webhook_endpoints (endpoint_id, merchant_id, url, events, secret, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.endpoint_id)
    .bind(&e.merchant_id)
    .bind(&e.url)
    .bind(events)
    .bind(e.secret.expose_secret())
    .bind(e.created_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A merchant's endpoints, oldest first.
pub async fn list_endpoints(store: &Store, merchant_id: &str) -> StoreResult<Vec<Endpoint>> {
    let mut conn = store.reader().await?;
    list_endpoints_in(&mut *conn, merchant_id).await
}

pub(crate) async fn list_endpoints_in(
    conn: &mut Conn,
    merchant_id: &str,
) -> StoreResult<Vec<Endpoint>> {
    let rows = query(super::dynamic(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY created_at, endpoint_id"
    )))
    .bind(merchant_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(endpoint_from_row).collect()
}

/// One endpoint by id, any merchant (delivery worker).
pub async fn get_endpoint(store: &Store, endpoint_id: &str) -> StoreResult<Option<Endpoint>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(super::dynamic(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE endpoint_id = $1"
    )))
    .bind(endpoint_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| endpoint_from_row(&r)).transpose()
}

/// Deletes a merchant's endpoint. False when unknown or foreign.
pub(super) async fn delete_endpoint(
    conn: &mut Conn,
    merchant_id: &str,
    endpoint_id: &str,
) -> StoreResult<bool> {
    let r = query("DELETE FROM webhook_endpoints WHERE endpoint_id = $1 AND merchant_id = $2")
        .bind(endpoint_id)
        .bind(merchant_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Replaces the secret, keeping the old one signing until `overlap_until`. False when
/// unknown or foreign.
pub(super) async fn rotate_secret(
    conn: &mut Conn,
    merchant_id: &str,
    endpoint_id: &str,
    new_secret: &str,
    overlap_until: Timestamp,
) -> StoreResult<bool> {
    let r = query(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2 \
         WHERE endpoint_id = $3 AND merchant_id = $4",
    )
    .bind(overlap_until.millis())
    .bind(new_secret)
    .bind(endpoint_id)
    .bind(merchant_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Stops deliveries to an endpoint (the receiver said `410 Gone`).
pub(super) async fn disable_endpoint(
    conn: &mut Conn,
    endpoint_id: &str,
    reason: &str,
    at: Timestamp,
) -> StoreResult<()> {
    query("UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 WHERE endpoint_id = $3")
        .bind(at.millis())
        .bind(reason)
        .bind(endpoint_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The SQLite writer's memory of each merchant's endpoint list, so that an event — five per
/// payment — costs no read of `webhook_endpoints` to learn that nobody listens.
///
/// It is right because the writer is the only connection that writes: its own writes to
/// endpoints forget everything as they are applied (and so does a unit or batch rolled back,
/// which may have undone such a write after a refill), and a write by any other connection —
/// another process on the same file, the CLI — is seen at the next batch through SQLite's
/// `PRAGMA data_version`, read under the batch's write lock. Never used on PostgreSQL, where
/// other nodes write.
#[derive(Debug, Default)]
pub(crate) struct EndpointCache {
    by_merchant: HashMap<String, Arc<[Endpoint]>>,
    data_version: Option<i64>,
}

/// Merchants remembered at most (past it the cache starts over: a miss is one read).
const ENDPOINT_CACHE_MERCHANTS: usize = 10_000;

impl EndpointCache {
    fn get(&self, merchant_id: &str) -> Option<Arc<[Endpoint]>> {
        self.by_merchant.get(merchant_id).cloned()
    }

    fn put(&mut self, merchant_id: &str, endpoints: Arc<[Endpoint]>) {
        if self.by_merchant.len() >= ENDPOINT_CACHE_MERCHANTS {
            self.by_merchant.clear();
        }
        self.by_merchant.insert(merchant_id.to_owned(), endpoints);
    }

    /// Forgets every list (an endpoint write was applied, or writes were undone).
    pub(crate) fn forget(&mut self) {
        self.by_merchant.clear();
    }

    /// Keeps the lists only if no other connection committed since the last look:
    /// `data_version` is SQLite's count of other connections' commits, as this connection
    /// sees it.
    pub(crate) fn check(&mut self, data_version: i64) {
        if self.data_version != Some(data_version) {
            self.by_merchant.clear();
            self.data_version = Some(data_version);
        }
    }

    /// Whether it remembers anything (no need to look at `data_version` otherwise).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_merchant.is_empty()
    }
}

/// Writes an event to the outbox.
pub(super) async fn insert_event(conn: &mut Conn, e: &NewEvent, body: &str) -> StoreResult<()> {
    query(
        "INSERT INTO events (event_id, merchant_id, payment_id, event_type, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.event_id)
    .bind(&e.merchant_id)
    .bind(e.payment_id.clone())
    .bind(&e.event_type)
    .bind(body)
    .bind(e.created_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One event by id.
pub async fn get_event(store: &Store, event_id: &str) -> StoreResult<Option<Event>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(
        "SELECT event_id, merchant_id, payment_id, event_type, body, created_at FROM events WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Event {
            event_id: col(&r, "event_id")?,
            merchant_id: col(&r, "merchant_id")?,
            payment_id: col(&r, "payment_id")?,
            event_type: col(&r, "event_type")?,
            body: col(&r, "body")?,
            created_at: Timestamp(col(&r, "created_at")?),
        })
    })
    .transpose()
}

/// Records a delivery attempt.
pub(super) async fn insert_delivery(conn: &mut Conn, d: &Delivery) -> StoreResult<()> {
    query(
        "INSERT INTO webhook_deliveries (delivery_id, event_id, endpoint_id, merchant_id, payment_id, event_type, \
         attempt, status_code, error, duration_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&d.delivery_id)
    .bind(&d.event_id)
    .bind(&d.endpoint_id)
    .bind(&d.merchant_id)
    .bind(d.payment_id.clone())
    .bind(&d.event_type)
    .bind(d.attempt)
    .bind(d.status_code)
    .bind(d.error.clone())
    .bind(d.duration_ms)
    .bind(d.created_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "delivery_id, event_id, endpoint_id, merchant_id, payment_id, event_type, attempt, \
    status_code, error, duration_ms, created_at";

fn delivery_from_row(r: &Row) -> StoreResult<Delivery> {
    Ok(Delivery {
        delivery_id: col(r, "delivery_id")?,
        event_id: col(r, "event_id")?,
        endpoint_id: col(r, "endpoint_id")?,
        merchant_id: col(r, "merchant_id")?,
        payment_id: col(r, "payment_id")?,
        event_type: col(r, "event_type")?,
        attempt: col(r, "attempt")?,
        status_code: col(r, "status_code")?,
        error: col(r, "error")?,
        duration_ms: col(r, "duration_ms")?,
        created_at: Timestamp(col(r, "created_at")?),
    })
}

/// A page of a merchant's delivery attempts, for one payment (oldest first) or all (newest
/// first), after the attempt `after`.
pub async fn list_deliveries(
    store: &Store,
    merchant_id: &str,
    payment_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Delivery>> {
    let mut conn = store.reader().await?;
    // One payment's attempts read oldest first (a story); all of them newest first (a log).
    let mut filters = vec![("merchant_id", merchant_id)];
    filters.extend(payment_id.map(|p| ("payment_id", p)));
    let rows = super::sql::Keyset {
        select: format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"),
        table: "webhook_deliveries",
        scope: "1 = 1",
        order: "created_at",
        id: "delivery_id",
        ascending: payment_id.is_some(),
    }
    .page(&filters, after, limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(delivery_from_row).collect()
}

/// One delivery of a merchant.
pub async fn find_delivery(
    store: &Store,
    merchant_id: &str,
    delivery_id: &str,
) -> StoreResult<Option<Delivery>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(super::dynamic(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE delivery_id = $1 AND merchant_id = $2"
    )))
    .bind(delivery_id)
    .bind(merchant_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| delivery_from_row(&r)).transpose()
}

/// Writes an event into the outbox and a delivery job per endpoint of the merchant that
/// wants it, due now. An event no endpoint wants is not stored: nothing would ever read it
/// (deliveries are the only readers), and most of a database's growth was such rows.
pub(super) async fn record_event(conn: &mut Conn, e: &NewEvent) -> StoreResult<()> {
    let cached = conn
        .endpoint_cache()
        .and_then(|cache| cache.get(&e.merchant_id));
    let all = match cached {
        Some(list) => list,
        None => {
            let list: Arc<[Endpoint]> = list_endpoints_in(conn, &e.merchant_id).await?.into();
            if let Some(cache) = conn.endpoint_cache() {
                cache.put(&e.merchant_id, list.clone());
            }
            list
        }
    };
    let endpoints: Vec<&Endpoint> = all
        .iter()
        .filter(|endpoint| endpoint.wants(&e.event_type))
        .collect();
    if endpoints.is_empty() {
        return Ok(());
    }
    let rendered;
    let body = match &e.body {
        NewBody::Json(body) => body.as_str(),
        NewBody::Payment { payment, render } => {
            let history = super::payments::history_in(conn, &payment.payment_id).await?;
            rendered = render(&e.event_id, &e.event_type, e.created_at, payment, &history);
            rendered.as_str()
        }
    };
    insert_event(conn, e, body).await?;
    for endpoint in endpoints {
        {
            super::jobs::enqueue(
                conn,
                &super::jobs::NewJob::new(
                    crate::domain::task::Task::DeliverWebhook {
                        event_id: e.event_id.clone(),
                        endpoint_id: endpoint.endpoint_id.clone(),
                        attempt: 0,
                    },
                    e.payment_id.clone(),
                    e.created_at,
                    DELIVERY_JOB_ATTEMPTS,
                ),
            )
            .await?;
        }
    }
    Ok(())
}

/// Attempts the queue allows a delivery job for its own (storage) failures; the delivery
/// schedule itself is `CORRIDOR_WEBHOOK_RETRY`.
pub const DELIVERY_JOB_ATTEMPTS: i64 = 20;
