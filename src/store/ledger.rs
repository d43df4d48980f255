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
//!
//! Accounts are rows of their own (`ledger_accounts`), and a transfer holds their ids: a
//! merchant's account name alone is 62 bytes, and it was in half of a payment's transfers. An
//! account is created by the first unit that opens a transfer on it, with the next id after
//! the largest. Two writers creating different accounts at once (PostgreSQL, several nodes)
//! may pick the same id: the second's insert waits for the first to commit, then does
//! nothing, and it picks again. Units find the ids of accounts already committed in the
//! store's cache ([`super::cache::AccountIds`]) and learn new ones only once they commit.

use std::collections::BTreeMap;

use super::cache::AccountIds;
use super::unit::Rejected;
use super::{Conn, Row, Store, StoreError, StoreResult, col, dynamic, parse_col, query};
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
    accounts: &mut AccountIndex<'_>,
    payment: &LedgerOwner,
    postings: &[Posting],
    at: Timestamp,
) -> StoreResult<Result<(), Rejected>> {
    for posting in postings {
        let outcome = match posting {
            Posting::Open {
                transfers,
                within_capture,
            } => open(conn, accounts, payment, transfers, *within_capture, at).await?,
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

/// The ids of the accounts a unit of work writes to: the committed ones from the store's
/// cache, the others looked up or created inside the unit and kept in [`AccountIndex::learned`]
/// until the unit commits (then the caller hands them to the cache; if it is undone, they are
/// dropped with it).
pub(super) struct AccountIndex<'a> {
    known: &'a AccountIds,
    learned: Vec<(String, i64)>,
}

impl<'a> AccountIndex<'a> {
    /// An index over the committed accounts of `known`, for one unit.
    pub(super) fn new(known: &'a AccountIds) -> Self {
        AccountIndex {
            known,
            learned: Vec::new(),
        }
    }

    /// What the unit learned: to be remembered once it committed.
    pub(super) fn learned(self) -> Vec<(String, i64)> {
        self.learned
    }

    /// The id of account `name` (of `currency`), created when it does not exist yet.
    async fn id(&mut self, conn: &mut Conn, name: &str, currency: Currency) -> StoreResult<i64> {
        if let Some(id) = self.known.get(name) {
            return Ok(id);
        }
        if let Some((_, id)) = self.learned.iter().find(|(n, _)| n == name) {
            return Ok(*id);
        }
        // A few rounds: each lost race means another writer just committed an account.
        for _ in 0..4 {
            let found = query("SELECT account_id FROM ledger_accounts WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
            let id = match found {
                Some(row) => Some(col::<i64>(&row, "account_id")?),
                // (`WHERE true` tells SQLite's parser the `ON CONFLICT` is the upsert's.)
                None => query(
                    "INSERT INTO ledger_accounts (account_id, name, currency) \
                     SELECT COALESCE(MAX(account_id), 0) + 1, $1, $2 FROM ledger_accounts WHERE true \
                     ON CONFLICT DO NOTHING RETURNING account_id",
                )
                .bind(name)
                .bind(currency.code())
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| col::<i64>(&row, "account_id"))
                .transpose()?,
            };
            if let Some(id) = id {
                self.learned.push((name.to_owned(), id));
                return Ok(id);
            }
        }
        Err(StoreError::Batch {
            unavailable: true,
            reason: format!("ledger account {name}: every id tried was taken at once"),
        })
    }
}

async fn open(
    conn: &mut Conn,
    accounts: &mut AccountIndex<'_>,
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
    let mut ids = Vec::with_capacity(transfers.len());
    for t in transfers {
        let debit = accounts.id(conn, &t.debit, t.currency).await?;
        let credit = accounts.id(conn, &t.credit, t.currency).await?;
        ids.push((debit, credit));
    }
    let mut sql = String::from(
        "INSERT INTO ledger_transfers (payment_id, role, debit_id, credit_id, amount, status, created_at) VALUES ",
    );
    for i in 0..transfers.len() {
        let b = i * 7;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        ));
    }
    sql.push_str(" ON CONFLICT (payment_id, role) DO NOTHING");
    let mut q = query(dynamic(sql));
    for (t, (debit, credit)) in transfers.iter().zip(ids) {
        q = q
            .bind(&owner.payment_id)
            .bind(t.role.code())
            .bind(debit)
            .bind(credit)
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
        "SELECT CAST(COALESCE(SUM(CASE WHEN d.name = $2 AND t.status = 'POSTED' THEN t.amount ELSE 0 END), 0) \
              - COALESCE(SUM(CASE WHEN c.name = $3 AND t.status <> 'VOIDED' THEN t.amount ELSE 0 END), 0) AS BIGINT) AS headroom \
         FROM ledger_transfers t \
         JOIN ledger_accounts d ON d.account_id = t.debit_id \
         JOIN ledger_accounts c ON c.account_id = t.credit_id \
         WHERE t.payment_id = $1",
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

/// A transfer with its accounts' names: `SELECT {NAMED} WHERE …` (the conditions on `t`).
const NAMED: &str = "t.payment_id, t.role, d.name AS debit_account, c.name AS credit_account, \
    d.currency, t.amount, t.status, t.created_at, t.resolved_at \
    FROM ledger_transfers t \
    JOIN ledger_accounts d ON d.account_id = t.debit_id \
    JOIN ledger_accounts c ON c.account_id = t.credit_id";

/// A payment's transfers, in the order they happened (opening time, then the story's order).
pub async fn for_payment(store: &Store, payment_id: &str) -> StoreResult<Vec<StoredTransfer>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!("SELECT {NAMED} WHERE t.payment_id = $1")))
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
        "SELECT {NAMED} WHERE t.payment_id > $1 AND t.payment_id <= $2"
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
            "SELECT {NAMED} WHERE t.payment_id IN ({})",
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
        "SELECT d.name AS debit_account, c.name AS credit_account, d.currency, s.status, s.total \
         FROM (SELECT debit_id, credit_id, status, CAST(SUM(amount) AS BIGINT) AS total \
               FROM ledger_transfers WHERE status <> 'VOIDED' GROUP BY debit_id, credit_id, status) s \
         JOIN ledger_accounts d ON d.account_id = s.debit_id \
         JOIN ledger_accounts c ON c.account_id = s.credit_id",
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
        // The partial index must say the same, or the window query could not use it (made
        // by 0011, and again by 0013 on the rebuilt table).
        for migration in [
            include_str!("../../migrations/0011_lean_indexes.sql"),
            include_str!("../../migrations/0013_compact_ledger_and_history.sql"),
        ] {
            assert!(migration.contains(&format!("WHERE {LEG_OPENED};")));
        }
    }
}
