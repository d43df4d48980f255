//! Payments, their legs and their history.
//!
//! A state change is a compare-and-set on the current state, written together with its
//! history row; callers add the follow-up job in the same transaction. The history table's
//! unique `(payment_id, to_state)` makes a doubled transition impossible even under a bug.

use super::Row;
use rust_decimal::Decimal;

use super::{Conn, Store, StoreError, StoreResult, col, dynamic, parse_col, query};
use crate::domain::lifecycle::Change;
use crate::domain::payment::CREATED;
use crate::domain::{FeeBreakdown, LegStatus, PaymentState, Timestamp};

pub use crate::domain::payment::{HistoryEntry, Leg, PaymentRecord, Side};

/// A column value written with a transition (built here from the domain's typed changes, so
/// no column name leaves this module).
#[derive(Debug, Clone)]
enum Field {
    Int(&'static str, Option<i64>),
    Text(&'static str, Option<String>),
}

fn columns(side: Side) -> [&'static str; 4] {
    match side {
        Side::Onramp => [
            "onramp_provider",
            "onramp_reference",
            "onramp_status",
            "onramp_amount",
        ],
        Side::Offramp => [
            "offramp_provider",
            "offramp_reference",
            "offramp_status",
            "offramp_amount",
        ],
    }
}

/// The columns a domain change sets.
fn fields(changes: &[Change]) -> Vec<Field> {
    let mut out = Vec::new();
    for c in changes {
        match c {
            Change::LegInitiated(side, leg) => {
                let p = columns(*side);
                out.extend([
                    Field::Text(p[0], Some(leg.provider.clone())),
                    Field::Text(p[1], Some(leg.reference.clone())),
                    Field::Text(p[2], Some(leg.status.as_str().to_owned())),
                    Field::Int(p[3], Some(leg.amount)),
                ]);
            }
            Change::LegStatus(side, status) => {
                out.push(Field::Text(
                    columns(*side)[2],
                    Some(status.as_str().to_owned()),
                ));
            }
            Change::Failure(code, message) => out.extend([
                Field::Text("failure_code", Some(code.as_str().to_owned())),
                Field::Text("failure_message", Some(message.clone())),
            ]),
            Change::ExecutedRate(rate) => out.push(Field::Text(
                "executed_rate",
                rate.map(|r| r.normalize().to_string()),
            )),
            Change::Reversal {
                reference,
                refund_amount,
            } => out.extend([
                Field::Text("reversal_reference", Some(reference.clone())),
                Field::Int("refund_amount", Some(*refund_amount)),
            ]),
        }
    }
    out
}

/// A state change to apply with compare-and-set.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Payment.
    pub payment_id: String,
    /// Expected current state.
    pub from: PaymentState,
    /// New state (must be allowed by the domain table; checked here too).
    pub to: PaymentState,
    /// When.
    pub at: Timestamp,
    /// Audit reason.
    pub reason: String,
    /// Facts written in the same statement.
    pub changes: Vec<Change>,
    /// Only if no worker has claimed the onramp (cancel).
    pub unclaimed_only: bool,
}

pub(super) const COLUMNS: &str = "payment_id, merchant_id, quote_id, state, version, amount, currency, payout_amount, \
    payout_currency, exchange_rate, mid_rate, platform_fee, onramp_fee, offramp_fee, total_fees, \
    source_account, destination_account, metadata, created_at, updated_at, state_since, completed_at, \
    onramp_claimed_at, failure_code, failure_message, onramp_provider, onramp_reference, onramp_status, \
    onramp_amount, offramp_provider, offramp_reference, offramp_status, offramp_amount, executed_rate, \
    reversal_reference, refund_amount";

/// Stores a new `PENDING` payment and its first history row.
pub(crate) async fn insert(conn: &mut Conn, p: &PaymentRecord) -> StoreResult<()> {
    let metadata =
        serde_json::to_string(&p.metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    query(
        "INSERT INTO payments (payment_id, merchant_id, quote_id, state, version, amount, currency, \
         payout_amount, payout_currency, exchange_rate, mid_rate, platform_fee, onramp_fee, offramp_fee, \
         total_fees, source_account, destination_account, metadata, created_at, updated_at, state_since) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $18)",
    )
    .bind(&p.payment_id)
    .bind(&p.merchant_id)
    .bind(&p.quote_id)
    .bind(p.state.as_str())
    .bind(p.amount)
    .bind(p.currency.code())
    .bind(p.payout_amount)
    .bind(p.payout_currency.code())
    .bind(p.exchange_rate.to_string())
    .bind(p.mid_rate.to_string())
    .bind(p.fees.platform)
    .bind(p.fees.onramp)
    .bind(p.fees.offramp)
    .bind(p.total_fees)
    .bind(&p.source_account)
    .bind(&p.destination_account)
    .bind(metadata)
    .bind(p.created_at.millis())
    .execute(&mut *conn)
    .await?;
    insert_history(conn, &p.payment_id, 1, None, p.state, p.created_at, CREATED).await
}

async fn insert_history(
    conn: &mut Conn,
    payment_id: &str,
    seq: i64,
    from: Option<PaymentState>,
    to: PaymentState,
    at: Timestamp,
    reason: &str,
) -> StoreResult<()> {
    query(
        "INSERT INTO payment_history (payment_id, seq, from_state, to_state, at, reason) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(payment_id)
    .bind(seq)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(at.millis())
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies a transition if the payment is still in `t.from`. Returns false (and writes
/// nothing) when it is not: someone else moved it first, which callers treat as a no-op.
pub(crate) async fn transition(conn: &mut Conn, t: &Transition) -> StoreResult<bool> {
    if !t.from.can_transition_to(t.to) {
        return Err(StoreError::Corrupt(format!(
            "illegal transition {} -> {} requested for {}",
            t.from, t.to, t.payment_id
        )));
    }
    let mut sql = String::from(
        "UPDATE payments SET state = $1, version = version + 1, updated_at = $2, state_since = $2, completed_at = $3",
    );
    let fields = fields(&t.changes);
    let mut n = 3;
    for f in &fields {
        n += 1;
        let name = match f {
            Field::Int(c, _) | Field::Text(c, _) => c,
        };
        sql.push_str(&format!(", {name} = ${n}"));
    }
    sql.push_str(&format!(
        " WHERE payment_id = ${} AND state = ${}{} RETURNING version",
        n + 1,
        n + 2,
        if t.unclaimed_only {
            " AND onramp_claimed_at IS NULL"
        } else {
            ""
        }
    ));
    let completed = t.to.is_terminal().then_some(t.at.millis());
    let mut q = query(dynamic(sql))
        .bind(t.to.as_str())
        .bind(t.at.millis())
        .bind(completed);
    for f in &fields {
        q = match f {
            Field::Int(_, v) => q.bind(*v),
            Field::Text(_, v) => q.bind(v.clone()),
        };
    }
    let row = q
        .bind(&t.payment_id)
        .bind(t.from.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(false) };
    let version: i64 = col(&row, "version")?;
    insert_history(
        conn,
        &t.payment_id,
        version,
        Some(t.from),
        t.to,
        t.at,
        &t.reason,
    )
    .await?;
    Ok(true)
}

/// Sets columns of a payment that is in `state`, without changing state. False if it moved.
pub(crate) async fn update_in_state(
    conn: &mut Conn,
    payment_id: &str,
    state: PaymentState,
    at: Timestamp,
    changes: &[Change],
) -> StoreResult<bool> {
    let fields = fields(changes);
    let mut sql = String::from("UPDATE payments SET updated_at = $1");
    let mut n = 1;
    for f in &fields {
        n += 1;
        let name = match f {
            Field::Int(c, _) | Field::Text(c, _) => c,
        };
        sql.push_str(&format!(", {name} = ${n}"));
    }
    sql.push_str(&format!(
        " WHERE payment_id = ${} AND state = ${}",
        n + 1,
        n + 2
    ));
    let mut q = query(dynamic(sql)).bind(at.millis());
    for f in &fields {
        q = match f {
            Field::Int(_, v) => q.bind(*v),
            Field::Text(_, v) => q.bind(v.clone()),
        };
    }
    let r = q
        .bind(payment_id)
        .bind(state.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the payment is in `state`, row-locked until the transaction ends (PostgreSQL), so
/// a concurrent transition waits and then finds the state moved.
pub(crate) async fn is_in(
    conn: &mut Conn,
    payment_id: &str,
    state: PaymentState,
) -> StoreResult<bool> {
    let r = query("UPDATE payments SET state = state WHERE payment_id = $1 AND state = $2")
        .bind(payment_id)
        .bind(state.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks a `PENDING` payment as being initiated, so cancel can no longer win. Returns true
/// if the payment is (now or already) claimed and still `PENDING`.
pub(crate) async fn claim_onramp(
    conn: &mut Conn,
    payment_id: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let r = query(
        "UPDATE payments SET onramp_claimed_at = COALESCE(onramp_claimed_at, $1) WHERE payment_id = $2 AND state = 'PENDING'",
    )
    .bind(at.millis())
    .bind(payment_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Clears the onramp claim made at `claimed_at` while the payment is still `PENDING` with no
/// onramp leg (a claim another run made, or a leg that exists, is left alone).
pub(crate) async fn release_onramp(
    conn: &mut Conn,
    payment_id: &str,
    claimed_at: Timestamp,
) -> StoreResult<()> {
    query(
        "UPDATE payments SET onramp_claimed_at = NULL WHERE payment_id = $1 AND state = 'PENDING' \
         AND onramp_claimed_at = $2 AND onramp_reference IS NULL",
    )
    .bind(payment_id)
    .bind(claimed_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The one payment matching `condition` (this module's own SQL, with `$n` placeholders for
/// `binds`), if any.
async fn one_where(
    conn: &mut Conn,
    condition: &str,
    binds: &[&str],
) -> StoreResult<Option<PaymentRecord>> {
    let mut q = query(dynamic(format!(
        "SELECT {COLUMNS} FROM payments WHERE {condition}"
    )));
    for b in binds {
        q = q.bind(b.to_string());
    }
    let row = q.fetch_optional(&mut *conn).await?;
    row.map(|r| from_row(&r)).transpose()
}

/// One payment by id, any merchant (for workers).
pub async fn get(store: &Store, payment_id: &str) -> StoreResult<Option<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    one_where(conn, "payment_id = $1", &[payment_id]).await
}

/// The payment whose `side` leg is `(provider, reference)`.
pub async fn find_by_reference(
    store: &Store,
    side: Side,
    provider: &str,
    reference: &str,
) -> StoreResult<Option<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let c = columns(side);
    one_where(
        conn,
        &format!("{} = $1 AND {} = $2", c[0], c[1]),
        &[provider, reference],
    )
    .await
}

/// The payment whose refund reversal has this reference (reversals run on the onramp).
pub async fn find_by_reversal(
    store: &Store,
    reference: &str,
) -> StoreResult<Option<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    one_where(conn, "reversal_reference = $1", &[reference]).await
}

/// One payment of one merchant (another merchant's payment is `None`).
pub async fn find(
    store: &Store,
    merchant_id: &str,
    payment_id: &str,
) -> StoreResult<Option<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    one_where(
        conn,
        "payment_id = $1 AND merchant_id = $2",
        &[payment_id, merchant_id],
    )
    .await
}

/// A payment's history, oldest first.
pub async fn history(store: &Store, payment_id: &str) -> StoreResult<Vec<HistoryEntry>> {
    let mut conn = store.reader().await?;
    history_in(&mut *conn, payment_id).await
}

/// A payment's history, oldest first, read on `conn` (inside a unit: with its own rows).
pub(super) async fn history_in(
    conn: &mut Conn,
    payment_id: &str,
) -> StoreResult<Vec<HistoryEntry>> {
    let rows = query(
        "SELECT from_state, to_state, at, reason FROM payment_history WHERE payment_id = $1 ORDER BY seq",
    )
    .bind(payment_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(history_from_row).collect()
}

/// A `payment_history` row (`from_state, to_state, at, reason`).
pub(super) fn history_from_row(r: &Row) -> StoreResult<HistoryEntry> {
    let from: Option<String> = col(r, "from_state")?;
    Ok(HistoryEntry {
        from: from
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Corrupt(format!("state {s}")))
            })
            .transpose()?,
        to: parse_col(r, "to_state")?,
        at: Timestamp(col(r, "at")?),
        reason: col(r, "reason")?,
    })
}

/// A page of a merchant's payments, newest first, ties broken by id descending.
pub struct ListQuery<'a> {
    /// Owner.
    pub merchant_id: &'a str,
    /// Only this state.
    pub state: Option<PaymentState>,
    /// Start after this `(created_at, payment_id)` position.
    pub after: Option<(Timestamp, String)>,
    /// Page size (one extra row is read to know whether more exist).
    pub limit: i64,
}

/// Lists payments for a [`ListQuery`]; returns up to `limit + 1` rows.
pub async fn list(store: &Store, q: &ListQuery<'_>) -> StoreResult<Vec<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let mut sql = format!("SELECT {COLUMNS} FROM payments WHERE merchant_id = $1");
    let mut n = 1;
    if q.state.is_some() {
        n += 1;
        sql.push_str(&format!(" AND state = ${n}"));
    }
    if q.after.is_some() {
        sql.push_str(&format!(
            " AND (created_at < ${a} OR (created_at = ${a} AND payment_id < ${b}))",
            a = n + 1,
            b = n + 2
        ));
        n += 2;
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, payment_id DESC LIMIT ${}",
        n + 1
    ));
    let mut query = query(dynamic(sql)).bind(q.merchant_id);
    if let Some(s) = q.state {
        query = query.bind(s.as_str());
    }
    if let Some((at, id)) = &q.after {
        query = query.bind(at.millis()).bind(id.clone());
    }
    let rows = query.bind(q.limit + 1).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Payment counts per state (for metrics and the dashboard).
/// The providers named on the legs of payments that are not finished, with how many
/// payments name each: a leg must be settled (or reversed) by the provider that started it.
pub async fn providers_in_flight(store: &Store) -> StoreResult<Vec<(String, i64)>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let terminal = PaymentState::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = query(super::dynamic(format!(
        "SELECT provider, COUNT(*) AS n FROM ( \
           SELECT onramp_provider AS provider FROM payments \
             WHERE onramp_provider IS NOT NULL AND state NOT IN ({terminal}) \
           UNION ALL \
           SELECT offramp_provider AS provider FROM payments \
             WHERE offramp_provider IS NOT NULL AND state NOT IN ({terminal}) \
         ) legs GROUP BY provider ORDER BY provider"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "provider")?, col(r, "n")?)))
        .collect()
}

/// Payments per state, exactly, for every state (states without payments are left out).
///
/// Counting the terminal states walks every finished payment ever made; a caller that runs
/// often (a metrics scrape, a dashboard refresh) wants [`count_by_state_recent`] instead.
pub async fn count_by_state(store: &Store) -> StoreResult<Vec<(PaymentState, i64)>> {
    count_states(store, |_| true).await
}

/// Payments per in-flight (non-terminal) state, exactly: a range of the state index over
/// the payments still moving, so its cost does not grow with the history of finished ones.
pub async fn count_in_flight(store: &Store) -> StoreResult<Vec<(PaymentState, i64)>> {
    count_states(store, |s| !s.is_terminal()).await
}

/// Payments per state: the in-flight states counted now, the terminal states as counted at
/// most `terminal_age` ago (counting them walks every finished payment ever made, and a
/// gauge of them a few seconds old tells an operator as much). What a metrics scrape or a
/// dashboard refresh reads, so its cost stays flat as the history grows.
pub async fn count_by_state_recent(
    store: &Store,
    terminal_age: std::time::Duration,
) -> StoreResult<Vec<(PaymentState, i64)>> {
    let mut counts = count_in_flight(store).await?;
    let terminal = match store.caches.terminal_counts(terminal_age) {
        Some(t) => t,
        None => {
            let t = count_states(store, PaymentState::is_terminal).await?;
            store.caches.remember_terminal_counts(t.clone());
            t
        }
    };
    counts.extend(terminal);
    Ok(counts)
}

/// Payments per state among the states `which` picks (one query, a range of the state index
/// per state).
async fn count_states(
    store: &Store,
    which: impl Fn(PaymentState) -> bool,
) -> StoreResult<Vec<(PaymentState, i64)>> {
    let states: Vec<String> = PaymentState::ALL
        .iter()
        .filter(|s| which(**s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(count_states_sql(&states.join(", "))))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((parse_col(r, "state")?, col(r, "n")?)))
        .collect()
}

/// The count of payments in the listed states (quoted, comma-separated), by state. Public so
/// a test can hold it to the state index.
pub fn count_states_sql(states: &str) -> String {
    format!("SELECT state, COUNT(*) AS n FROM payments WHERE state IN ({states}) GROUP BY state")
}

fn leg(r: &Row, side: Side) -> StoreResult<Option<Leg>> {
    let c = columns(side);
    let reference: Option<String> = col(r, c[1])?;
    let Some(reference) = reference else {
        return Ok(None);
    };
    let status: Option<String> = col(r, c[2])?;
    let status = status
        .as_deref()
        .and_then(|s| s.parse::<LegStatus>().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{}: bad leg status", c[2])))?;
    Ok(Some(Leg {
        provider: col::<Option<String>>(r, c[0])?.unwrap_or_default(),
        reference,
        status,
        amount: col::<Option<i64>>(r, c[3])?.unwrap_or_default(),
    }))
}

fn opt_decimal(r: &Row, name: &str) -> StoreResult<Option<Decimal>> {
    let s: Option<String> = col(r, name)?;
    s.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("{name}: {s}")))
    })
    .transpose()
}

pub(super) fn from_row(r: &Row) -> StoreResult<PaymentRecord> {
    let metadata: String = col(r, "metadata")?;
    let code: Option<String> = col(r, "failure_code")?;
    let message: Option<String> = col(r, "failure_message")?;
    Ok(PaymentRecord {
        payment_id: col(r, "payment_id")?,
        merchant_id: col(r, "merchant_id")?,
        quote_id: col(r, "quote_id")?,
        state: parse_col(r, "state")?,
        version: col(r, "version")?,
        amount: col(r, "amount")?,
        currency: parse_col(r, "currency")?,
        payout_amount: col(r, "payout_amount")?,
        payout_currency: parse_col(r, "payout_currency")?,
        exchange_rate: parse_col(r, "exchange_rate")?,
        mid_rate: parse_col(r, "mid_rate")?,
        fees: FeeBreakdown {
            platform: col(r, "platform_fee")?,
            onramp: col(r, "onramp_fee")?,
            offramp: col(r, "offramp_fee")?,
        },
        total_fees: col(r, "total_fees")?,
        source_account: col(r, "source_account")?,
        destination_account: col(r, "destination_account")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        created_at: Timestamp(col(r, "created_at")?),
        updated_at: Timestamp(col(r, "updated_at")?),
        state_since: Timestamp(col(r, "state_since")?),
        completed_at: col::<Option<i64>>(r, "completed_at")?.map(Timestamp),
        onramp_claimed_at: col::<Option<i64>>(r, "onramp_claimed_at")?.map(Timestamp),
        failure: code.map(|c| (c, message.unwrap_or_default())),
        onramp: leg(r, Side::Onramp)?,
        offramp: leg(r, Side::Offramp)?,
        executed_rate: opt_decimal(r, "executed_rate")?,
        reversal_reference: col(r, "reversal_reference")?,
        refund_amount: col(r, "refund_amount")?,
    })
}

/// A page of every merchant's payments for operators (the dashboard), newest first.
pub struct AdminListQuery {
    /// Only this state.
    pub state: Option<PaymentState>,
    /// Start after this `(created_at, payment_id)` position.
    pub after: Option<(Timestamp, String)>,
    /// Page size (one extra row is read to know whether more exist).
    pub limit: i64,
}

/// Lists payments across merchants for an [`AdminListQuery`]; returns up to `limit + 1` rows.
/// The keyset condition is a row comparison so that both engines read one index range
/// (`payments_created` or `payments_state_created`) whatever the page depth.
pub async fn list_all(store: &Store, q: &AdminListQuery) -> StoreResult<Vec<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let mut sql = format!("SELECT {COLUMNS} FROM payments WHERE 1 = 1");
    let mut n = 0;
    if q.state.is_some() {
        n += 1;
        sql.push_str(&format!(" AND state = ${n}"));
    }
    if q.after.is_some() {
        sql.push_str(&format!(
            " AND (created_at, payment_id) < (${}, ${})",
            n + 1,
            n + 2
        ));
        n += 2;
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, payment_id DESC LIMIT ${}",
        n + 1
    ));
    let mut query = query(dynamic(sql));
    if let Some(s) = q.state {
        query = query.bind(s.as_str());
    }
    if let Some((at, id)) = &q.after {
        query = query.bind(at.millis()).bind(id.clone());
    }
    let rows = query.bind(q.limit + 1).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// How many payments were accepted at or after `since` (the dashboard's throughput figures).
pub async fn count_created_since(store: &Store, since: Timestamp) -> StoreResult<i64> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query("SELECT COUNT(*) AS n FROM payments WHERE created_at >= $1")
        .bind(since.millis())
        .fetch_one(&mut *conn)
        .await?;
    col(&row, "n")
}

/// Up to `limit` payments that completed in `[from, to)`, with ids after `after` (`""` first),
/// in id order: the FX report's pages.
pub async fn completed_between(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<PaymentRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(dynamic(format!(
        "SELECT {COLUMNS} FROM payments WHERE state = 'COMPLETED' AND completed_at >= $1 \
         AND completed_at < $2 AND payment_id > $3 ORDER BY payment_id LIMIT $4"
    )))
    .bind(from.millis())
    .bind(to.millis())
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}
