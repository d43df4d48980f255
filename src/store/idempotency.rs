//! Idempotency keys: one row per `(merchant, key)` holding the first answer, inserted in the
//! same unit of work as what the request did. The primary key makes the insert the arbiter:
//! of two concurrent requests with one key, exactly one unit commits, and the other is
//! rejected whole and replays the winner's answer (the seed systems checked, then inserted).

use super::{Conn, Store, StoreResult, col, query};
use crate::domain::Timestamp;

/// The answer stored for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The first request's answer, to send again byte for byte.
    Response {
        /// SHA-256 of the first request's body (a different body is refused).
        request_hash: String,
        /// HTTP status.
        status: u16,
        /// Body.
        body: String,
    },
    /// A claim without an answer (left by an earlier version that claimed before working):
    /// still running until its lock (60 s) runs out; then the next request takes it over.
    Unanswered {
        /// SHA-256 of the request's body.
        request_hash: String,
        /// Until when its holder is presumed alive.
        locked_until: Timestamp,
    },
}

/// An answer to store under a key, as part of a unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Owner of the key.
    pub merchant_id: String,
    /// The key.
    pub key: String,
    /// SHA-256 of the request body.
    pub request_hash: String,
    /// HTTP status.
    pub status: u16,
    /// Body, byte for byte.
    pub body: String,
}

/// What is stored under `(merchant, key)`, if anything.
pub async fn lookup(store: &Store, merchant_id: &str, key: &str) -> StoreResult<Option<Stored>> {
    let mut conn = store.reader().await?;
    let row = query(
        "SELECT request_hash, response_status, response_body, locked_until FROM idempotency_keys \
         WHERE merchant_id = $1 AND idem_key = $2",
    )
    .bind(merchant_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let request_hash: String = col(&row, "request_hash")?;
    let status: Option<i64> = col(&row, "response_status")?;
    Ok(Some(match status {
        Some(status) => Stored::Response {
            request_hash,
            status: u16::try_from(status).unwrap_or(500),
            body: col::<Option<String>>(&row, "response_body")?.unwrap_or_default(),
        },
        None => Stored::Unanswered {
            request_hash,
            locked_until: Timestamp(col::<Option<i64>>(&row, "locked_until")?.unwrap_or(0)),
        },
    }))
}

/// Inserts the answer (or takes over a claim an earlier version left unanswered and whose
/// lock ran out); false when the key is taken (the unit is then rejected).
pub(super) async fn save(conn: &mut Conn, r: &Response, now: Timestamp) -> StoreResult<bool> {
    let inserted = query(
        "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, locked_until, created_at, \
         response_status, response_body) VALUES ($1, $2, $3, NULL, $4, $5, $6) \
         ON CONFLICT (merchant_id, idem_key) DO UPDATE SET request_hash = excluded.request_hash, \
         locked_until = NULL, response_status = excluded.response_status, \
         response_body = excluded.response_body \
         WHERE idempotency_keys.response_status IS NULL AND idempotency_keys.locked_until < $4",
    )
    .bind(&r.merchant_id)
    .bind(&r.key)
    .bind(&r.request_hash)
    .bind(now.millis())
    .bind(i64::from(r.status))
    .bind(&r.body)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Deletes keys created before `cutoff` (kept at least 24 h).
pub(super) async fn purge_before(conn: &mut Conn, cutoff: Timestamp) -> StoreResult<u64> {
    let r = query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(cutoff.millis())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}
