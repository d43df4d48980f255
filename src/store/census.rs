//! Whole-database reads for `corridor simulate`: every payment with its history, the types
//! of its events and the states of its step jobs, a page at a time in payment-id order, so
//! the invariants and the run's digest can be computed over millions of payments without
//! holding them all.

use super::payments::{COLUMNS, from_row, history_from_row};
use super::sql::{dynamic, query};
use super::{Store, StoreResult, col};
use crate::domain::{HistoryEntry, PaymentRecord};

/// One payment as the census sees it.
#[derive(Debug, Clone)]
pub struct Census {
    /// The payment row.
    pub payment: PaymentRecord,
    /// Its history, in order.
    pub history: Vec<HistoryEntry>,
    /// Its events (id, type), in the order they were recorded.
    pub events: Vec<(String, String)>,
    /// The states (`ready`, `dead`) of its step jobs.
    pub step_jobs: Vec<String>,
    /// Its ledger transfers, in the order they were opened.
    pub ledger: Vec<super::ledger::StoredTransfer>,
}

/// Up to `limit` payments with ids after `after` (`""` for the first page), in id order.
pub async fn page(store: &Store, after: &str, limit: i64) -> StoreResult<Vec<Census>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!(
        "SELECT {COLUMNS} FROM payments WHERE payment_id > $1 ORDER BY payment_id LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut page = rows
        .iter()
        .map(|r| {
            Ok(Census {
                payment: from_row(r)?,
                history: Vec::new(),
                events: Vec::new(),
                step_jobs: Vec::new(),
                ledger: Vec::new(),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let Some(last) = page.last().map(|c| c.payment.payment_id.clone()) else {
        return Ok(page);
    };
    let index: std::collections::HashMap<String, usize> = page
        .iter()
        .enumerate()
        .map(|(i, c)| (c.payment.payment_id.clone(), i))
        .collect();
    let history = query(
        "SELECT payment_id, from_state, to_state, at, reason FROM payment_history \
         WHERE payment_id > $1 AND payment_id <= $2 ORDER BY payment_id, seq",
    )
    .bind(after)
    .bind(&last)
    .fetch_all(&mut *conn)
    .await?;
    for r in &history {
        let id: String = col(r, "payment_id")?;
        if let Some(&i) = index.get(&id) {
            page[i].history.push(history_from_row(r)?);
        }
    }
    let events = query(
        "SELECT payment_id, event_id, event_type FROM events \
         WHERE payment_id > $1 AND payment_id <= $2 ORDER BY payment_id, created_at, event_id",
    )
    .bind(after)
    .bind(&last)
    .fetch_all(&mut *conn)
    .await?;
    for r in &events {
        let id: String = col(r, "payment_id")?;
        if let Some(&i) = index.get(&id) {
            page[i]
                .events
                .push((col(r, "event_id")?, col(r, "event_type")?));
        }
    }
    let jobs = query(
        "SELECT payment_id, state FROM jobs \
         WHERE kind = $3 AND payment_id > $1 AND payment_id <= $2 ORDER BY payment_id, id",
    )
    .bind(after)
    .bind(&last)
    .bind(crate::domain::task::Task::STEP_KIND)
    .fetch_all(&mut *conn)
    .await?;
    for r in &jobs {
        let id: String = col(r, "payment_id")?;
        if let Some(&i) = index.get(&id) {
            page[i].step_jobs.push(col(r, "state")?);
        }
    }
    for t in super::ledger::in_range(conn, after, &last).await? {
        if let Some(&i) = index.get(&t.payment_id) {
            page[i].ledger.push(t);
        }
    }
    for c in &mut page {
        c.ledger.sort_by_key(|t| (t.created_at, t.transfer.role));
    }
    Ok(page)
}

/// Payment-scoped jobs still ready to run (steps, deliveries): a run is over when none are.
pub async fn pending_work(store: &Store) -> StoreResult<i64> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row =
        query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'ready' AND payment_id IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    col(&row, "n")
}
