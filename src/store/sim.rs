//! The provider simulator's own records. They live in the database so that a restart loses
//! no transfer (the seed system's in-memory mocks did), and the unique `(payment_id, leg)`
//! makes provider-side idempotency a property of the schema.

use super::Row;

use super::{Conn, Store, StoreResult, col, dynamic, query};
use crate::domain::Timestamp;

/// A simulated transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTransfer {
    /// Provider reference.
    pub reference: String,
    /// Simulator name (`sim-onramp`).
    pub provider: String,
    /// Payment it belongs to.
    pub payment_id: String,
    /// `onramp`, `offramp` or `reversal`.
    pub leg: String,
    /// Amount, minor units of `currency`.
    pub amount: i64,
    /// Currency code.
    pub currency: String,
    /// `COMPLETED` or `FAILED`, as it will settle.
    pub outcome: String,
    /// When it settles.
    pub settle_at: Timestamp,
    /// How many times it was asked for.
    pub initiate_calls: i64,
    /// First ask.
    pub created_at: Timestamp,
}

const COLUMNS: &str = "reference, provider, payment_id, leg, amount, currency, outcome, settle_at, initiate_calls, created_at";

/// Creates the transfer for `(payment_id, leg)`, or — when it exists — counts the repeated
/// ask and returns the existing transfer unchanged.
pub async fn initiate(store: &Store, t: &SimTransfer) -> StoreResult<SimTransfer> {
    // On SQLite the in-process simulator's write rides in the writer's next batch instead of
    // taking the one write connection (and an fsync) for itself.
    if let Some(group) = &store.group {
        return group.sim_initiate(t.clone()).await;
    }
    store.note_write(
        t.created_at,
        async {
            let mut tx = store.begin().await?;
            let out = initiate_in(&mut *tx, t).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await,
        |_| true,
    )
}

pub(super) async fn initiate_in(conn: &mut Conn, t: &SimTransfer) -> StoreResult<SimTransfer> {
    let row = query(dynamic(format!(
        "INSERT INTO sim_transfers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9) \
         ON CONFLICT (payment_id, leg) DO UPDATE SET initiate_calls = sim_transfers.initiate_calls + 1 \
         RETURNING {COLUMNS}"
    )))
    .bind(&t.reference)
    .bind(&t.provider)
    .bind(&t.payment_id)
    .bind(&t.leg)
    .bind(t.amount)
    .bind(&t.currency)
    .bind(&t.outcome)
    .bind(t.settle_at.millis())
    .bind(t.created_at.millis())
    .fetch_one(&mut *conn)
    .await?;
    from_row(&row)
}

/// A transfer by provider and reference.
pub async fn find(
    store: &Store,
    provider: &str,
    reference: &str,
) -> StoreResult<Option<SimTransfer>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(dynamic(format!(
        "SELECT {COLUMNS} FROM sim_transfers WHERE provider = $1 AND reference = $2"
    )))
    .bind(provider)
    .bind(reference)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Whether a transfer with this reference exists (a list cursor must name one).
pub async fn exists(store: &Store, reference: &str) -> StoreResult<bool> {
    let mut conn = store.reader().await?;
    let row = query("SELECT 1 AS one FROM sim_transfers WHERE reference = $1")
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Settles a transfer now with `outcome` (a provider webhook does this). False if unknown.
pub async fn settle(
    store: &Store,
    reference: &str,
    outcome: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    store.note_write(
        at,
        async {
            let mut tx = store.begin().await?;
            let out = settle_in(&mut *tx, reference, outcome, at).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await,
        |_| true,
    )
}

async fn settle_in(
    conn: &mut Conn,
    reference: &str,
    outcome: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let r = query("UPDATE sim_transfers SET outcome = $1, settle_at = $2 WHERE reference = $3")
        .bind(outcome)
        .bind(at.millis())
        .bind(reference)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Settled transfers (`settle_at <= now`) whose status webhook is not done yet, earliest
/// settlement first, so the standalone simulator notifies in the order transfers settled.
pub async fn due_notifications(
    store: &Store,
    now: Timestamp,
    limit: i64,
) -> StoreResult<Vec<SimTransfer>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!(
        "SELECT {COLUMNS} FROM sim_transfers WHERE notified_at IS NULL AND settle_at <= $1 \
         ORDER BY settle_at, reference LIMIT $2"
    )))
    .bind(now.millis())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Records that a transfer's status webhook is done with (delivered, or given up), so it is
/// never sent again. False if unknown or already recorded.
pub async fn mark_notified(store: &Store, reference: &str, at: Timestamp) -> StoreResult<bool> {
    store.note_write(
        at,
        async {
            let mut tx = store.begin().await?;
            let out = mark_notified_in(&mut *tx, reference, at).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await,
        |_| true,
    )
}

async fn mark_notified_in(conn: &mut Conn, reference: &str, at: Timestamp) -> StoreResult<bool> {
    let r = query(
        "UPDATE sim_transfers SET notified_at = $1 WHERE reference = $2 AND notified_at IS NULL",
    )
    .bind(at.millis())
    .bind(reference)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One simulated provider's transfers created in `[from, to)`: its statement.
pub async fn statement(
    store: &Store,
    provider: &str,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<SimTransfer>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!(
        "SELECT {COLUMNS} FROM sim_transfers WHERE provider = $1 AND created_at >= $2 AND created_at < $3"
    )))
    .bind(provider)
    .bind(from.millis())
    .bind(to.millis())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Transfers of one payment (or all, newest first, bounded), oldest first.
pub async fn list(
    store: &Store,
    payment_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<SimTransfer>> {
    let mut conn = store.reader().await?;
    // One payment's transfers oldest first, all of them newest first.
    let filters: Vec<_> = payment_id.map(|p| ("payment_id", p)).into_iter().collect();
    let rows = super::sql::Keyset {
        select: format!("SELECT {COLUMNS} FROM sim_transfers"),
        table: "sim_transfers",
        scope: "1 = 1",
        order: "created_at",
        id: "reference",
        ascending: payment_id.is_some(),
    }
    .page(&filters, after, limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &Row) -> StoreResult<SimTransfer> {
    Ok(SimTransfer {
        reference: col(r, "reference")?,
        provider: col(r, "provider")?,
        payment_id: col(r, "payment_id")?,
        leg: col(r, "leg")?,
        amount: col(r, "amount")?,
        currency: col(r, "currency")?,
        outcome: col(r, "outcome")?,
        settle_at: Timestamp(col(r, "settle_at")?),
        initiate_calls: col(r, "initiate_calls")?,
        created_at: Timestamp(col(r, "created_at")?),
    })
}
