//! Quote pricing: fees, the locked rate and the guaranteed payout. The one place the payout
//! formula lives:
//!
//! `payout = floor((amount − total_fees) × rate × 10^(e_to − e_from))`
//!
//! Payouts round *down*, so the platform never promises a minor unit it cannot deliver.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::{Corridor, FeeBreakdown, MoneyError, Timestamp};

/// The priced terms of a quote, ready to be stored and locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteTerms {
    /// Source amount, minor units.
    pub amount: i64,
    /// Fees on that amount.
    pub fees: FeeBreakdown,
    /// Sum of the fees.
    pub total_fees: i64,
    /// Customer rate (spread included) the payout is computed from.
    pub rate: Decimal,
    /// Payout in the payout currency's minor units; always > 0.
    pub payout: i64,
    /// When the quote was priced.
    pub created_at: Timestamp,
    /// When the locked rate stops being honoured.
    pub expires_at: Timestamp,
}

/// Why an amount cannot be quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// Outside the corridor's limits, or fees would eat the whole amount.
    #[error("{0}")]
    AmountOutOfRange(String),
    /// The amount is too large to compute with.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The payout for `net` source minor units at `rate`, rounded down.
pub fn payout_for(
    net: i64,
    rate: Decimal,
    from_exponent: u32,
    to_exponent: u32,
) -> Result<i64, MoneyError> {
    let mut value = Decimal::from(net)
        .checked_mul(rate)
        .ok_or(MoneyError::Overflow)?;
    let scale = Decimal::from(10i64.pow(from_exponent.abs_diff(to_exponent)));
    value = if to_exponent >= from_exponent {
        value.checked_mul(scale).ok_or(MoneyError::Overflow)?
    } else {
        value.checked_div(scale).ok_or(MoneyError::Overflow)?
    };
    value.floor().to_i64().ok_or(MoneyError::Overflow)
}

/// Prices `amount` on `corridor` at customer `rate`, locked for `ttl_ms` from `now`.
pub fn price_quote(
    corridor: &Corridor,
    amount: i64,
    rate: Decimal,
    now: Timestamp,
    ttl_ms: i64,
) -> Result<QuoteTerms, QuoteError> {
    if amount < corridor.min_amount || amount > corridor.max_amount {
        return Err(QuoteError::AmountOutOfRange(format!(
            "amount must be between {} and {} {} minor units",
            corridor.min_amount, corridor.max_amount, corridor.from
        )));
    }
    let fees = corridor.fees.compute(amount)?;
    let total_fees = fees.total()?;
    let net = amount - total_fees;
    let payout = if net > 0 {
        payout_for(net, rate, corridor.from.exponent(), corridor.to.exponent())?
    } else {
        0
    };
    if payout <= 0 {
        return Err(QuoteError::AmountOutOfRange(format!(
            "amount is too small: after {total_fees} in fees nothing would be paid out"
        )));
    }
    Ok(QuoteTerms {
        amount,
        fees,
        total_fees,
        rate,
        payout,
        created_at: now,
        expires_at: now.plus_millis(ttl_ms),
    })
}

/// Whether a quote that expires at `expires_at` may still be paid at `now`.
pub fn is_expired(expires_at: Timestamp, now: Timestamp) -> bool {
    now >= expires_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, FeeSchedule};
    use proptest::prelude::*;

    fn corridor(to: &str, min: i64) -> Corridor {
        Corridor {
            from: Currency::USD,
            to: to.parse().unwrap(),
            min_amount: min,
            max_amount: 100_000_000,
            fees: FeeSchedule::seed_default(),
        }
    }

    #[test]
    fn documented_example_pays_87700_eur_cents() {
        let q = price_quote(
            &corridor("EUR", 1_000),
            100_000,
            "0.9205".parse().unwrap(),
            Timestamp(0),
            60_000,
        )
        .unwrap();
        assert_eq!(q.total_fees, 4_725);
        assert_eq!(q.payout, 87_700);
        assert_eq!(q.expires_at, Timestamp(60_000));
    }

    #[test]
    fn jpy_has_no_minor_unit() {
        // 95,275 cents × 150 = 14,291,250 cents of yen = 142,912.5 yen → 142,912.
        let q = price_quote(
            &corridor("JPY", 1_000),
            100_000,
            "150".parse().unwrap(),
            Timestamp(0),
            1,
        )
        .unwrap();
        assert_eq!(q.payout, 142_912);
    }

    #[test]
    fn tiny_amounts_are_refused_not_paid_negative() {
        let c = corridor("EUR", 1);
        for amount in [1, 100, 150, 165] {
            let r = price_quote(&c, amount, "0.92".parse().unwrap(), Timestamp(0), 1);
            assert!(
                matches!(r, Err(QuoteError::AmountOutOfRange(_))),
                "{amount}: {r:?}"
            );
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let c = corridor("EUR", 1_000);
        let rate: Decimal = "0.92".parse().unwrap();
        assert!(price_quote(&c, 1_000, rate, Timestamp(0), 1).is_ok());
        assert!(price_quote(&c, 999, rate, Timestamp(0), 1).is_err());
        assert!(price_quote(&c, 100_000_000, rate, Timestamp(0), 1).is_ok());
        assert!(price_quote(&c, 100_000_001, rate, Timestamp(0), 1).is_err());
    }

    proptest! {
        /// Every amount in range yields a positive payout that is exactly the floor of the
        /// real-valued formula: never negative, never one unit too many or too few.
        #[test]
        fn payout_is_exact_floor(
            amount in 1i64..=100_000_000,
            rate_units in 1i64..=200_000_000_000,
            to in prop::sample::select(vec!["EUR", "INR", "JPY", "NGN"]),
        ) {
            let rate = Decimal::new(rate_units, 8);
            let c = corridor(to, 1);
            match price_quote(&c, amount, rate, Timestamp(0), 1) {
                Ok(q) => {
                    prop_assert!(q.payout > 0);
                    let net = amount - q.total_fees;
                    prop_assert!(net > 0);
                    // Compare in exact integer arithmetic (i128): payout is the largest p with
                    // p × 10^(8 + e_from) ≤ net × rate_units × 10^e_to.
                    let (ef, et) = (2u32, c.to.exponent());
                    let lhs = |p: i128| p * 10i128.pow(8 + ef);
                    let rhs = i128::from(net) * i128::from(rate_units) * 10i128.pow(et);
                    prop_assert!(lhs(i128::from(q.payout)) <= rhs);
                    prop_assert!(lhs(i128::from(q.payout) + 1) > rhs);
                    // Fees are each at least their exact value and less than one unit above.
                    let fees = c.fees.compute(amount).unwrap();
                    prop_assert_eq!(q.total_fees, fees.total().unwrap());
                }
                Err(QuoteError::AmountOutOfRange(_)) => {
                    let fees = c.fees.compute(amount).unwrap().total().unwrap();
                    let net = amount - fees;
                    if net > 0 {
                        prop_assert_eq!(payout_for(net, rate, 2, c.to.exponent()).unwrap(), 0);
                    }
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        /// Each fee is the exact ceiling of flat + amount × percentage.
        #[test]
        fn fees_are_exact_ceilings(amount in 1i64..=1_000_000_000) {
            let f = FeeSchedule::seed_default().compute(amount).unwrap();
            // onramp: 50 + ceil(amount / 100)
            prop_assert_eq!(f.onramp, 50 + (amount + 99) / 100);
            // offramp: 75 + ceil(amount × 15 / 1000)
            prop_assert_eq!(f.offramp, 75 + (amount * 15 + 999) / 1000);
        }
    }
}
