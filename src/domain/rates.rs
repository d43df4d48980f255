//! Mid-market rates and the customer rate derived from them.
//!
//! The customer rate is `mid × (1 − spread)`, rounded *down* to 8 decimals, so the rate shown
//! is exactly the rate the payout is computed from, and the spread never rounds in the
//! customer's favour by accident.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use super::Currency;

/// Decimal places a rate is written with.
pub const RATE_DECIMALS: u32 = 8;

/// The customer rate for a mid rate and a spread in basis points.
pub fn customer_rate(mid: Decimal, spread_bps: u32) -> Decimal {
    let spread = Decimal::new(i64::from(spread_bps), 4);
    (mid * (Decimal::ONE - spread))
        .round_dp_with_strategy(RATE_DECIMALS, RoundingStrategy::ToZero)
        .normalize()
}

/// How strongly a simulated market is pulled back toward its table rate per step (1/10,000 a
/// second: the walk wanders, but it does not drift off for good over a long run).
pub const MARKET_REVERSION: Decimal = Decimal::from_parts(1, 0, 0, false, 4);

/// One second of a simulated market: the mid moves by `volatility × shock` of itself (the
/// shock drawn uniformly from ±√3, so its variance is one) and is pulled back toward `base`
/// by [`MARKET_REVERSION`]; rounded to 8 decimals like every rate, and never below one
/// hundred-millionth.
pub fn market_step(mid: Decimal, base: Decimal, volatility: Decimal, shock: Decimal) -> Decimal {
    let moved = mid + mid * volatility * shock + (base - mid) * MARKET_REVERSION;
    moved
        .round_dp_with_strategy(RATE_DECIMALS, RoundingStrategy::MidpointNearestEven)
        .max(Decimal::new(1, RATE_DECIMALS))
}

/// A table of mid rates, one per direction (`from → to`).
#[derive(Debug, Clone, Default)]
pub struct RateTable {
    mids: BTreeMap<(Currency, Currency), Decimal>,
}

impl RateTable {
    /// The built-in static table: mid rates for USD to the default payout currencies.
    pub fn static_default() -> RateTable {
        let mut t = RateTable::default();
        for (to, mid) in [
            ("EUR", "0.9251"),
            ("GBP", "0.7912"),
            ("INR", "83.0"),
            ("NGN", "1500"),
            ("PHP", "58"),
            ("MXN", "17.05"),
            ("BRL", "5.02"),
            ("JPY", "151.2"),
        ] {
            let to: Currency = to.parse().expect("literal currency");
            t.set(Currency::USD, to, mid.parse().expect("literal decimal"));
        }
        t
    }

    /// Sets the mid rate for one direction.
    pub fn set(&mut self, from: Currency, to: Currency, mid: Decimal) {
        self.mids.insert((from, to), mid);
    }

    /// The mid rate for one direction, if known.
    pub fn mid(&self, from: Currency, to: Currency) -> Option<Decimal> {
        self.mids.get(&(from, to)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_rounds_down_to_eight_decimals() {
        let r = customer_rate("0.92513333333".parse().unwrap(), 50);
        // 0.92513333333 × 0.995 = 0.920507666663…
        assert_eq!(r.to_string(), "0.92050766");
        assert_eq!(
            customer_rate("83".parse().unwrap(), 50).to_string(),
            "82.585"
        );
        assert_eq!(customer_rate("1".parse().unwrap(), 0).to_string(), "1");
    }
}
