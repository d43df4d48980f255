//! Provider webhook ids already processed, so a redelivered message changes nothing.

use super::{Conn, Store, StoreResult, query};
use crate::domain::Timestamp;

/// Records `(provider, webhook_id)`; false when it was already there (a duplicate).
pub(super) async fn remember(
    conn: &mut Conn,
    provider: &str,
    webhook_id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let r = query(
        "INSERT INTO provider_webhooks (provider, webhook_id, received_at) VALUES ($1, $2, $3) \
         ON CONFLICT (provider, webhook_id) DO NOTHING",
    )
    .bind(provider)
    .bind(webhook_id)
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether `(provider, webhook_id)` was processed.
pub async fn seen(store: &Store, provider: &str, webhook_id: &str) -> StoreResult<bool> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let r =
        query("SELECT webhook_id FROM provider_webhooks WHERE provider = $1 AND webhook_id = $2")
            .bind(provider)
            .bind(webhook_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(r.is_some())
}

/// Forgets ids received before `cutoff` (kept 24 h).
pub(super) async fn purge_before(conn: &mut Conn, cutoff: Timestamp) -> StoreResult<u64> {
    let r = query("DELETE FROM provider_webhooks WHERE received_at < $1")
        .bind(cutoff.millis())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}
