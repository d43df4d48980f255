//! Retention of the history tables: what housekeeping purges once it is older than
//! `CORRIDOR_HISTORY_RETENTION`, oldest first and a bounded number of rows at a time, so one
//! pass stays a short transaction however much has piled up.

use super::{Conn, StoreResult, dynamic, query};
use crate::domain::Timestamp;

/// The history tables: name, key and the column the age is measured on. A cleared alert ages
/// from its clearing (an open one has no `cleared_at` and is never purged); a delivery still
/// queued for a purged event finds it gone and completes without sending.
const HISTORY: [(&str, &str, &str); 3] = [
    ("webhook_deliveries", "delivery_id", "created_at"),
    ("events", "event_id", "created_at"),
    ("alerts", "alert_id", "cleared_at"),
];

/// Deletes up to `limit` rows of each history table older than `cutoff`; returns how many of
/// each, in [`HISTORY`]'s order.
pub(super) async fn purge(conn: &mut Conn, cutoff: Timestamp, limit: i64) -> StoreResult<[u64; 3]> {
    let mut purged = [0; 3];
    for (n, (table, key, age)) in HISTORY.iter().enumerate() {
        // Names from the table above, never input.
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {age} < $1 LIMIT $2)"
        );
        purged[n] = query(dynamic(sql))
            .bind(cutoff.millis())
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(purged)
}
