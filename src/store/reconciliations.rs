//! Reconciliation runs (the ledger lines they compare are read through `store::ledger`).

use super::{Conn, Row, Store, StoreResult, col, dynamic, query};
use crate::domain::Timestamp;

/// A reconciliation run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// `recon_<uuid>`.
    pub reconciliation_id: String,
    /// `PENDING`, `COMPLETED` or `FAILED`.
    pub status: String,
    /// Window start (inclusive).
    pub from: Timestamp,
    /// Window end (exclusive).
    pub to: Timestamp,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Pairs compared.
    pub checked: i64,
    /// Pairs that agreed.
    pub matched: i64,
    /// The mismatches, as the API shows them (a JSON array).
    pub mismatches: String,
    /// Why it failed.
    pub error: Option<String>,
}

const COLUMNS: &str = "reconciliation_id, status, window_from, window_to, created_at, finished_at, checked, matched, mismatches, error";

pub(super) async fn insert(conn: &mut Conn, r: &Reconciliation) -> StoreResult<()> {
    query(dynamic(format!(
        "INSERT INTO reconciliations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )))
    .bind(&r.reconciliation_id)
    .bind(&r.status)
    .bind(r.from.millis())
    .bind(r.to.millis())
    .bind(r.created_at.millis())
    .bind(r.finished_at.map(Timestamp::millis))
    .bind(r.checked)
    .bind(r.matched)
    .bind(&r.mismatches)
    .bind(&r.error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Finishes a pending run. False when it is not pending (finished before).
pub(super) async fn finish(
    conn: &mut Conn,
    r: &Reconciliation,
    at: Timestamp,
) -> StoreResult<bool> {
    let done = query(
        "UPDATE reconciliations SET status = $1, finished_at = $2, checked = $3, matched = $4, \
         mismatches = $5, error = $6 WHERE reconciliation_id = $7 AND status = 'PENDING'",
    )
    .bind(&r.status)
    .bind(at.millis())
    .bind(r.checked)
    .bind(r.matched)
    .bind(&r.mismatches)
    .bind(&r.error)
    .bind(&r.reconciliation_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A run by id.
pub async fn get(store: &Store, id: &str) -> StoreResult<Option<Reconciliation>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(dynamic(format!(
        "SELECT {COLUMNS} FROM reconciliations WHERE reconciliation_id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| from_row(&r)).transpose()
}

fn from_row(r: &Row) -> StoreResult<Reconciliation> {
    let finished: Option<i64> = col(r, "finished_at")?;
    Ok(Reconciliation {
        reconciliation_id: col(r, "reconciliation_id")?,
        status: col(r, "status")?,
        from: Timestamp(col(r, "window_from")?),
        to: Timestamp(col(r, "window_to")?),
        created_at: Timestamp(col(r, "created_at")?),
        finished_at: finished.map(Timestamp),
        checked: col(r, "checked")?,
        matched: col(r, "matched")?,
        mismatches: col(r, "mismatches")?,
        error: col(r, "error")?,
    })
}
