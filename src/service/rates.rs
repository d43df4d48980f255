//! Where quote rates come from: one trait, so the static table, an operator's pin and (later)
//! a simulated market are interchangeable behind the quote use case.

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::domain::{Currency, RateTable, customer_rate};
use crate::store::{Store, StoreResult, ops};

/// The rates a new quote gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteRate {
    /// Mid-market rate now (kept on the quote for the audit trail).
    pub mid: Decimal,
    /// The customer rate the payout is computed from.
    pub customer: Decimal,
}

/// A source of rates for one direction.
#[async_trait]
pub trait RateSource: Send + Sync + 'static {
    /// The rates a quote `from → to` gets now; `None` when there is no rate.
    async fn quote_rate(&self, from: Currency, to: Currency) -> StoreResult<Option<QuoteRate>>;
    /// The market's rates now, before any operator override.
    fn market(&self, from: Currency, to: Currency) -> Option<QuoteRate>;
    /// The market mid rate now (recorded as a payout's executed rate).
    fn mid(&self, from: Currency, to: Currency) -> Option<Decimal> {
        self.market(from, to).map(|r| r.mid)
    }
}

/// A static mid table less a spread.
#[derive(Debug, Clone)]
pub struct StaticTable {
    /// Mid rates.
    pub table: RateTable,
    /// Spread in basis points: customer rate = mid × (1 − spread), rounded down.
    pub spread_bps: u32,
}

#[async_trait]
impl RateSource for StaticTable {
    async fn quote_rate(&self, from: Currency, to: Currency) -> StoreResult<Option<QuoteRate>> {
        Ok(self.market(from, to))
    }

    fn market(&self, from: Currency, to: Currency) -> Option<QuoteRate> {
        self.table.mid(from, to).map(|mid| QuoteRate {
            mid,
            customer: customer_rate(mid, self.spread_bps),
        })
    }
}

/// Another source, with operators' pins taking precedence: a pinned direction quotes exactly
/// the pinned customer rate (the mid still comes from the market, for the audit trail).
pub struct WithPins<S> {
    /// The market.
    pub market: S,
    /// Where pins are kept.
    pub store: Store,
}

#[async_trait]
impl<S: RateSource> RateSource for WithPins<S> {
    async fn quote_rate(&self, from: Currency, to: Currency) -> StoreResult<Option<QuoteRate>> {
        let Some(market) = self.market.quote_rate(from, to).await? else {
            return Ok(None);
        };
        Ok(Some(match ops::rate_pin(&self.store, from, to).await? {
            Some(pin) => QuoteRate {
                mid: market.mid,
                customer: pin.rate,
            },
            None => market,
        }))
    }

    fn market(&self, from: Currency, to: Currency) -> Option<QuoteRate> {
        self.market.market(from, to)
    }
}
