//! Pricing a quote: corridor, rate, fees and the guaranteed payout, then the lock.

use super::{Error, Result, Service};
use crate::domain::{Currency, QuoteError, price_quote};
use crate::store::UnitOfWork;
use crate::store::quotes::QuoteRecord;
use crate::store::unit::Write;

/// What a quote is asked for (currencies already parsed, amount already positive).
#[derive(Debug, Clone, Copy)]
pub struct QuoteRequest {
    /// Source currency.
    pub from: Currency,
    /// Payout currency.
    pub to: Currency,
    /// Source amount, minor units.
    pub amount: i64,
}

impl Service {
    /// The corridor `from → to`, or `UNSUPPORTED_CORRIDOR`.
    pub fn corridor(&self, from: Currency, to: Currency) -> Result<crate::domain::Corridor> {
        self.corridors
            .find(from, to)
            .cloned()
            .ok_or_else(|| Error::UnsupportedCorridor(format!("no corridor from {from} to {to}")))
    }

    /// The customer rate a quote `from → to` would get now.
    pub async fn current_rate(
        &self,
        from: Currency,
        to: Currency,
    ) -> Result<super::rates::QuoteRate> {
        self.corridor(from, to)?;
        self.rates.quote_rate(from, to).await?.ok_or_else(|| {
            Error::UnsupportedCorridor(format!("no rate is available from {from} to {to}"))
        })
    }

    /// Prices a quote for `merchant_id` now (not stored: the caller locks it in its unit).
    pub async fn price_quote(&self, merchant_id: &str, req: QuoteRequest) -> Result<QuoteRecord> {
        let corridor = self.corridor(req.from, req.to)?;
        let rate = self.current_rate(req.from, req.to).await?;
        let terms = price_quote(
            &corridor,
            req.amount,
            rate.customer,
            self.clock.now(),
            self.settings.quote_ttl_ms,
        )
        .map_err(|e| match e {
            QuoteError::AmountOutOfRange(m) => Error::AmountOutOfRange(m),
            QuoteError::Money(m) => Error::AmountOutOfRange(m.to_string()),
        })?;
        Ok(QuoteRecord {
            quote_id: format!("quote_{}", crate::idgen::v7()),
            merchant_id: merchant_id.to_owned(),
            from: req.from,
            to: req.to,
            mid_rate: rate.mid,
            terms,
            payment_id: None,
        })
    }

    /// Prices and stores a quote: the rate is locked for the quote's lifetime.
    pub async fn create_quote(&self, merchant_id: &str, req: QuoteRequest) -> Result<QuoteRecord> {
        let q = self.price_quote(merchant_id, req).await?;
        let mut unit = UnitOfWork::at(q.terms.created_at);
        unit.push(Write::InsertQuote(q.clone()));
        self.commit(unit)
            .await?
            .map_err(|r| Error::Unavailable(r.to_string()))?;
        Ok(q)
    }
}
