//! The ledger's transfers: written only by the unit of work of the state change they follow
//! from (so there is never a transition without its postings, nor postings without their
//! transition), and read back per payment and as balances per account.
//!
//! Two guards hold in the database, not in a handler's read-then-write: a payment's transfer
//! of a role is opened once (the key; a second open rejects the unit), and a refund's
//! transfers are opened only while what the payment credits to refunds stays within what its
//! posted transfers drew from the merchant — checked after the insert, inside the unit, with
//! the payment's row locked first so that two refunds of one payment are serialised and the
//! second sees the first.

use std::collections::BTreeMap;

use super::unit::Rejected;
use super::{Conn, Row, Store, StoreResult, col, dynamic, parse_col, query};
use crate::domain::ledger::{EntryStatus, Posting, Role, Transfer, merchant_funding, refunds};
use crate::domain::{Currency, PaymentRecord, Timestamp};

/// A transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransfer {
    /// The payment it belongs to.
    pub payment_id: String,
    /// What it is, with its accounts, amount and status.
    pub transfer: Transfer,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it was posted or voided.
    pub resolved_at: Option<Timestamp>,
}

impl StoredTransfer {
    /// Its id: the payment and the role, which together identify it.
    pub fn id(&self) -> String {
        format!("{}:{}", self.payment_id, self.transfer.role.code())
    }
}

/// One account's sums, in its currency's minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balance {
    /// Account name.
    pub account: String,
    /// Its currency.
    pub currency: String,
    /// Posted debits.
    pub debits_posted: i64,
    /// Posted credits.
    pub credits_posted: i64,
    /// Pending debits.
    pub debits_pending: i64,
    /// Pending credits.
    pub credits_pending: i64,
}

/// Writes `postings` for `payment`: opened, posted or voided transfers.
pub(super) async fn apply(
    conn: &mut Conn,
    payment: &LedgerOwner,
    postings: &[Posting],
    at: Timestamp,
) -> StoreResult<Result<(), Rejected>> {
    for posting in postings {
        let outcome = match posting {
            Posting::Open {
                transfers,
                within_capture,
            } => open(conn, payment, transfers, *within_capture, at).await?,
            Posting::Post(roles) => {
                resolve(conn, &payment.payment_id, roles, EntryStatus::Posted, at).await?
            }
            Posting::Void(roles) => {
                resolve(conn, &payment.payment_id, roles, EntryStatus::Voided, at).await?
            }
        };
        if let Err(rejected) = outcome {
            return Ok(Err(rejected));
        }
    }
    Ok(Ok(()))
}

/// Whose ledger a unit writes: the payment and the accounts its limit is checked on.
#[derive(Debug, Clone)]
pub struct LedgerOwner {
    /// Payment.
    pub payment_id: String,
    /// Owner (its funding account is what a refund is limited by).
    pub merchant_id: String,
    /// Source currency.
    pub currency: Currency,
}

impl LedgerOwner {
    /// The owner of `p`'s ledger.
    pub fn of(p: &PaymentRecord) -> LedgerOwner {
        LedgerOwner {
            payment_id: p.payment_id.clone(),
            merchant_id: p.merchant_id.clone(),
            currency: p.currency,
        }
    }
}

async fn open(
    conn: &mut Conn,
    owner: &LedgerOwner,
    transfers: &[Transfer],
    within_capture: bool,
    at: Timestamp,
) -> StoreResult<Result<(), Rejected>> {
    if transfers.is_empty() {
        return Ok(Ok(()));
    }
    if within_capture {
        // A row lock on both engines (SQLite has one writer anyway): a concurrent refund of
        // the same payment waits here and then sees this one's transfers.
        query("UPDATE payments SET version = version WHERE payment_id = $1")
            .bind(&owner.payment_id)
            .execute(&mut *conn)
            .await?;
    }
    let mut sql = String::from(
        "INSERT INTO ledger_transfers (payment_id, role, debit_account, credit_account, currency, amount, status, created_at) VALUES ",
    );
    for i in 0..transfers.len() {
        let b = i * 8;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8
        ));
    }
    sql.push_str(" ON CONFLICT (payment_id, role) DO NOTHING");
    let mut q = query(dynamic(sql));
    for t in transfers {
        q = q
            .bind(&owner.payment_id)
            .bind(t.role.code())
            .bind(&t.debit)
            .bind(&t.credit)
            .bind(t.currency.code())
            .bind(t.amount)
            .bind(t.status.as_str())
            .bind(at.millis());
    }
    let done = q.execute(&mut *conn).await?;
    if done.rows_affected() != transfers.len() as u64 {
        return Ok(Err(Rejected::TransferExists));
    }
    if within_capture && headroom(conn, owner).await? < 0 {
        return Ok(Err(Rejected::OverCapture));
    }
    Ok(Ok(()))
}

/// What the payment drew from the merchant (posted) less what it credits to refunds (pending
/// or posted): never below zero.
async fn headroom(conn: &mut Conn, owner: &LedgerOwner) -> StoreResult<i64> {
    let row = query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN debit_account = $2 AND status = 'POSTED' THEN amount ELSE 0 END), 0) \
              - COALESCE(SUM(CASE WHEN credit_account = $3 AND status <> 'VOIDED' THEN amount ELSE 0 END), 0) AS BIGINT) AS headroom \
         FROM ledger_transfers WHERE payment_id = $1",
    )
    .bind(&owner.payment_id)
    .bind(merchant_funding(&owner.merchant_id, owner.currency))
    .bind(refunds(owner.currency))
    .fetch_one(&mut *conn)
    .await?;
    col(&row, "headroom")
}

/// Posts or voids the payment's pending transfers of `roles`. A transfer already resolved is
/// left as it is: resolution happens once.
async fn resolve(
    conn: &mut Conn,
    payment_id: &str,
    roles: &[Role],
    to: EntryStatus,
    at: Timestamp,
) -> StoreResult<Result<(), Rejected>> {
    if roles.is_empty() {
        return Ok(Ok(()));
    }
    let placeholders: Vec<String> = (0..roles.len()).map(|i| format!("${}", i + 4)).collect();
    let mut q = query(dynamic(format!(
        "UPDATE ledger_transfers SET status = $1, resolved_at = $2 \
         WHERE payment_id = $3 AND status = 'PENDING' AND role IN ({})",
        placeholders.join(", ")
    )))
    .bind(to.as_str())
    .bind(at.millis())
    .bind(payment_id);
    for r in roles {
        q = q.bind(r.code());
    }
    q.execute(&mut *conn).await?;
    Ok(Ok(()))
}

const COLUMNS: &str = "payment_id, role, debit_account, credit_account, currency, amount, status, created_at, resolved_at";

/// A payment's transfers, in the order they happened (opening time, then the story's order).
pub async fn for_payment(store: &Store, payment_id: &str) -> StoreResult<Vec<StoredTransfer>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!(
        "SELECT {COLUMNS} FROM ledger_transfers WHERE payment_id = $1"
    )))
    .bind(payment_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    out.sort_by_key(|t| (t.created_at, t.transfer.role));
    Ok(out)
}

/// The transfers of the payments with ids in `(after, last]` (the census's pages).
pub(super) async fn in_range(
    conn: &mut Conn,
    after: &str,
    last: &str,
) -> StoreResult<Vec<StoredTransfer>> {
    let rows = query(dynamic(format!(
        "SELECT {COLUMNS} FROM ledger_transfers WHERE payment_id > $1 AND payment_id <= $2"
    )))
    .bind(after)
    .bind(last)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The roles whose transfer is a provider leg's line in a reconciliation (USDC bought, the
/// payout, a refund's source, a returned payout): what opens a leg in a window. The partial
/// index `ledger_transfers_leg_opened` holds these roles only, with this very condition.
const LEG_OPENED: &str =
    "role IN ('onramp.usdc', 'offramp.payout', 'refund.source', 'return.payout')";

/// The payments with a provider leg opened in `[from, to)` (a reconciliation's window; the
/// fees and FX postings of a leg are opened with it or after it, never alone).
pub async fn payments_opened_between(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<String>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!(
        "SELECT DISTINCT payment_id FROM ledger_transfers WHERE created_at >= $1 AND created_at < $2 AND {LEG_OPENED}"
    )))
    .bind(from.millis())
    .bind(to.millis())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| col(r, "payment_id")).collect()
}

/// Every transfer of each of `payment_ids`, read 200 payments at a time.
pub async fn of_payments(
    store: &Store,
    payment_ids: &[String],
) -> StoreResult<Vec<StoredTransfer>> {
    let mut out = Vec::new();
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    for chunk in payment_ids.chunks(200) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let mut q = query(dynamic(format!(
            "SELECT {COLUMNS} FROM ledger_transfers WHERE payment_id IN ({})",
            marks.join(", ")
        )));
        for id in chunk {
            q = q.bind(id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push(from_row(&r)?);
        }
    }
    Ok(out)
}

/// Every account's posted and pending sums.
pub async fn balances(store: &Store) -> StoreResult<Vec<Balance>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(
        "SELECT debit_account, credit_account, currency, status, CAST(SUM(amount) AS BIGINT) AS total \
         FROM ledger_transfers WHERE status <> 'VOIDED' \
         GROUP BY debit_account, credit_account, currency, status",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_account: BTreeMap<String, Balance> = BTreeMap::new();
    for r in &rows {
        let currency: String = col(r, "currency")?;
        let posted = col::<String>(r, "status")? == EntryStatus::Posted.as_str();
        let total: i64 = col(r, "total")?;
        for (account, debit) in [
            (col::<String>(r, "debit_account")?, true),
            (col::<String>(r, "credit_account")?, false),
        ] {
            let b = by_account
                .entry(account.clone())
                .or_insert_with(|| Balance {
                    account,
                    currency: currency.clone(),
                    ..Balance::default()
                });
            let slot = match (debit, posted) {
                (true, true) => &mut b.debits_posted,
                (false, true) => &mut b.credits_posted,
                (true, false) => &mut b.debits_pending,
                (false, false) => &mut b.credits_pending,
            };
            *slot = slot.saturating_add(total);
        }
    }
    Ok(by_account.into_values().collect())
}

fn from_row(r: &Row) -> StoreResult<StoredTransfer> {
    let resolved: Option<i64> = col(r, "resolved_at")?;
    Ok(StoredTransfer {
        payment_id: col(r, "payment_id")?,
        transfer: Transfer {
            role: parse_col(r, "role")?,
            debit: col(r, "debit_account")?,
            credit: col(r, "credit_account")?,
            amount: col(r, "amount")?,
            currency: parse_col(r, "currency")?,
            status: parse_col(r, "status")?,
        },
        created_at: Timestamp(col(r, "created_at")?),
        resolved_at: resolved.map(Timestamp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leg_opened_condition_names_each_legs_line_and_matches_its_index() {
        let codes: Vec<String> = [
            Role::UsdcBought,
            Role::Payout,
            Role::RefundSource,
            Role::ReturnPayout,
        ]
        .iter()
        .map(|r| format!("'{}'", r.code()))
        .collect();
        assert_eq!(LEG_OPENED, format!("role IN ({})", codes.join(", ")));
        // The partial index must say the same, or the window query could not use it.
        let migration = include_str!("../../migrations/0011_lean_indexes.sql");
        assert!(migration.contains(&format!("WHERE {LEG_OPENED};")));
    }
}
