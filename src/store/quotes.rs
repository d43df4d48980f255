//! Quotes: priced, rate-locked offers. A quote is used by at most one payment, enforced by a
//! compare-and-set on `payment_id IS NULL` (and a unique index), never by a prior read.

use super::Row;
use rust_decimal::Decimal;

use super::{Conn, Store, StoreResult, col, dynamic, parse_col, query};
use crate::domain::{Currency, FeeBreakdown, QuoteTerms, Timestamp};

/// A quote as stored.
#[derive(Debug, Clone)]
pub struct QuoteRecord {
    /// `quote_<uuid>`.
    pub quote_id: String,
    /// Owner.
    pub merchant_id: String,
    /// Source currency.
    pub from: Currency,
    /// Payout currency.
    pub to: Currency,
    /// Mid rate at pricing (audit trail).
    pub mid_rate: Decimal,
    /// Priced terms.
    pub terms: QuoteTerms,
    /// The payment that used it, if any.
    pub payment_id: Option<String>,
}

const COLUMNS: &str = "quote_id, merchant_id, from_currency, to_currency, amount, platform_fee, \
    onramp_fee, offramp_fee, total_fees, mid_rate, exchange_rate, payout, created_at, expires_at, payment_id";

/// Stores a new quote.
pub(super) async fn insert(conn: &mut Conn, q: &QuoteRecord) -> StoreResult<()> {
    let t = &q.terms;
    query(dynamic(format!(
        "INSERT INTO quotes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )))
    .bind(&q.quote_id)
    .bind(&q.merchant_id)
    .bind(q.from.code())
    .bind(q.to.code())
    .bind(t.amount)
    .bind(t.fees.platform)
    .bind(t.fees.onramp)
    .bind(t.fees.offramp)
    .bind(t.total_fees)
    .bind(q.mid_rate.to_string())
    .bind(t.rate.to_string())
    .bind(t.payout)
    .bind(t.created_at.millis())
    .bind(t.expires_at.millis())
    .bind(q.payment_id.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A merchant's quote by id (another merchant's quote is `None`).
pub async fn find(
    store: &Store,
    merchant_id: &str,
    quote_id: &str,
) -> StoreResult<Option<QuoteRecord>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(dynamic(format!(
        "SELECT {COLUMNS} FROM quotes WHERE quote_id = $1 AND merchant_id = $2"
    )))
    .bind(quote_id)
    .bind(merchant_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Marks the quote used by `payment_id`. False when another payment took it first.
pub(super) async fn mark_used(
    conn: &mut Conn,
    quote_id: &str,
    payment_id: &str,
) -> StoreResult<bool> {
    let r = query("UPDATE quotes SET payment_id = $1 WHERE quote_id = $2 AND payment_id IS NULL")
        .bind(payment_id)
        .bind(quote_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes unused quotes that expired before `cutoff`. Returns how many went.
pub(super) async fn purge_unused_before(conn: &mut Conn, cutoff: Timestamp) -> StoreResult<u64> {
    let r = query("DELETE FROM quotes WHERE expires_at < $1 AND payment_id IS NULL")
        .bind(cutoff.millis())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

fn from_row(r: &Row) -> StoreResult<QuoteRecord> {
    Ok(QuoteRecord {
        quote_id: col(r, "quote_id")?,
        merchant_id: col(r, "merchant_id")?,
        from: parse_col(r, "from_currency")?,
        to: parse_col(r, "to_currency")?,
        mid_rate: parse_col(r, "mid_rate")?,
        terms: QuoteTerms {
            amount: col(r, "amount")?,
            fees: FeeBreakdown {
                platform: col(r, "platform_fee")?,
                onramp: col(r, "onramp_fee")?,
                offramp: col(r, "offramp_fee")?,
            },
            total_fees: col(r, "total_fees")?,
            rate: parse_col(r, "exchange_rate")?,
            payout: col(r, "payout")?,
            created_at: Timestamp(col(r, "created_at")?),
            expires_at: Timestamp(col(r, "expires_at")?),
        },
        payment_id: col(r, "payment_id")?,
    })
}
