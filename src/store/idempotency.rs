//! Idempotency keys: a claim row per `(merchant, key)`, taken by INSERT under a primary key,
//! so concurrent retries cannot both proceed (the seed systems checked, then inserted).

use super::{Conn, StoreResult, col};
use crate::domain::Timestamp;

/// What a request holding an idempotency key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key: run it.
    Acquired,
    /// A response is stored for the same request: send it again.
    Replay {
        /// Stored HTTP status.
        status: u16,
        /// Stored body, byte for byte.
        body: String,
    },
    /// The key was used with a different request body.
    Mismatch,
    /// Another request with this key is still running.
    InFlight,
}

/// Tries to take `(merchant, key)` for a request with body hash `hash`.
pub async fn claim(
    conn: &mut Conn,
    merchant_id: &str,
    key: &str,
    hash: &str,
    now: Timestamp,
    lock_until: Timestamp,
) -> StoreResult<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, locked_until, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, idem_key) DO NOTHING",
    )
    .bind(merchant_id)
    .bind(key)
    .bind(hash)
    .bind(lock_until.millis())
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Acquired);
    }
    let Some(row) = sqlx::query(
        "SELECT request_hash, locked_until, response_status, response_body FROM idempotency_keys \
         WHERE merchant_id = $1 AND idem_key = $2",
    )
    .bind(merchant_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?
    else {
        // Purged between the insert and the read: the caller may simply retry.
        return Ok(Claim::InFlight);
    };
    let stored_hash: String = col(&row, "request_hash")?;
    if stored_hash != hash {
        return Ok(Claim::Mismatch);
    }
    let status: Option<i64> = col(&row, "response_status")?;
    if let Some(status) = status {
        let body: Option<String> = col(&row, "response_body")?;
        return Ok(Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: body.unwrap_or_default(),
        });
    }
    let locked_until: Option<i64> = col(&row, "locked_until")?;
    let locked_until = locked_until.unwrap_or(0);
    if locked_until > now.millis() {
        return Ok(Claim::InFlight);
    }
    // A claim left by a crashed process: take it over, unless another request just did.
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET locked_until = $1 WHERE merchant_id = $2 AND idem_key = $3 \
         AND response_status IS NULL AND locked_until = $4",
    )
    .bind(lock_until.millis())
    .bind(merchant_id)
    .bind(key)
    .bind(locked_until)
    .execute(&mut *conn)
    .await?;
    Ok(if taken.rows_affected() == 1 {
        Claim::Acquired
    } else {
        Claim::InFlight
    })
}

/// Stores the response for replay (in the transaction that produced it, for 2xx).
pub async fn complete(
    conn: &mut Conn,
    merchant_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2, locked_until = NULL \
         WHERE merchant_id = $3 AND idem_key = $4",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(merchant_id)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops an unfinished claim so a retry runs again (after a 5xx).
pub async fn release(conn: &mut Conn, merchant_id: &str, key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND idem_key = $2 AND response_status IS NULL")
        .bind(merchant_id)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes keys created before `cutoff` (kept at least 24 h).
pub async fn purge_before(conn: &mut Conn, cutoff: Timestamp) -> StoreResult<u64> {
    let r =
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1 AND locked_until IS NULL")
            .bind(cutoff.millis())
            .execute(&mut *conn)
            .await?;
    Ok(r.rows_affected())
}
