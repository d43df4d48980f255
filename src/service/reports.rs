//! Reports over what has happened: what the rate lock protected customers from and what it
//! cost or earned the platform, per corridor.

use std::collections::BTreeMap;

use super::{Error, Service};
use crate::domain::{Currency, PaymentRecord, Timestamp, ledger};
use crate::store::payments;

/// Payments read per page while a report is built.
const PAGE: i64 = 2_000;

/// One corridor's figures over a report's window (completed payments only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorridorFx {
    /// Source currency.
    pub from: Currency,
    /// Payout currency.
    pub to: Currency,
    /// Payments completed.
    pub payments: u64,
    /// Their source amounts, source minor units.
    pub volume: i64,
    /// Their fees, source minor units.
    pub fees: i64,
    /// What quoting the customer rate instead of the mid at quote time earned, payout minor
    /// units.
    pub spread_revenue: i64,
    /// The FX result posted to the ledger: the sale of the USDC at the executed rate less the
    /// payouts (spread included), payout minor units.
    pub fx_gain_loss: i64,
    /// The payment with the lowest FX result, and that result.
    pub worst: Option<(String, i64)>,
}

impl CorridorFx {
    /// An empty row for `from → to`.
    fn new(from: Currency, to: Currency) -> CorridorFx {
        CorridorFx {
            from,
            to,
            payments: 0,
            volume: 0,
            fees: 0,
            spread_revenue: 0,
            fx_gain_loss: 0,
            worst: None,
        }
    }

    /// What the market's move between quote and settlement did to the platform (the FX
    /// result less the spread): negative when the lock cost the platform, which is what it
    /// protected the customers from.
    pub fn market_move(&self) -> i64 {
        self.fx_gain_loss.saturating_sub(self.spread_revenue)
    }

    fn add(&mut self, p: &PaymentRecord, executed: rust_decimal::Decimal) -> Result<(), Error> {
        // A stored payment whose amounts cannot be computed with is a corrupt row.
        let money = |e: crate::domain::MoneyError| {
            Error::Store(crate::store::StoreError::Corrupt(format!(
                "{}: {e}",
                p.payment_id
            )))
        };
        let fx = ledger::fx_gain_loss(p, executed).map_err(money)?;
        let spread = ledger::spread_revenue(p).map_err(money)?;
        self.payments += 1;
        self.volume = self.volume.saturating_add(p.amount);
        self.fees = self.fees.saturating_add(p.total_fees);
        self.spread_revenue = self.spread_revenue.saturating_add(spread);
        self.fx_gain_loss = self.fx_gain_loss.saturating_add(fx);
        if self.worst.as_ref().is_none_or(|(_, w)| fx < *w) {
            self.worst = Some((p.payment_id.clone(), fx));
        }
        Ok(())
    }
}

impl Service {
    /// The FX report over payments completed in `[from, to)`, one row per corridor in
    /// currency order. Payments whose market had no rate at settlement carry no FX result
    /// and are left out.
    pub async fn fx_report(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CorridorFx>, Error> {
        let mut rows: BTreeMap<(Currency, Currency), CorridorFx> = BTreeMap::new();
        let mut after = String::new();
        loop {
            let page = payments::completed_between(&self.store, from, to, &after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.payment_id.clone();
            for p in &page {
                let Some(executed) = p.executed_rate else {
                    continue;
                };
                rows.entry((p.currency, p.payout_currency))
                    .or_insert_with(|| CorridorFx::new(p.currency, p.payout_currency))
                    .add(p, executed)?;
            }
        }
        Ok(rows.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentState;

    #[test]
    fn a_corridor_adds_up_its_payments_and_keeps_the_worst() {
        let p = crate::domain::payment::example(PaymentState::Completed);
        let mut row = CorridorFx::new(p.currency, p.payout_currency);
        row.add(&p, "0.9251".parse().unwrap()).unwrap();
        let loser = PaymentRecord {
            payment_id: "pay_2".into(),
            ..p.clone()
        };
        row.add(&loser, "0.91".parse().unwrap()).unwrap();
        assert_eq!(row.payments, 2);
        assert_eq!(row.volume, 200_000);
        assert_eq!(row.fees, 9_450);
        // Quoted at mid 0.9251, locked at 0.9205: 4.38 EUR of spread on each.
        assert_eq!(row.spread_revenue, 876);
        // Executed at the mid (+4.38), then at 0.91 (−10.00).
        assert_eq!(row.fx_gain_loss, 438 - 1_000);
        assert_eq!(row.worst, Some(("pay_2".into(), -1_000)));
        assert_eq!(row.market_move(), -1_000 - 438);
    }
}
