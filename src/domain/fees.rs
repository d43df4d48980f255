//! The fee formula: per corridor and per leg, `flat + ceil(amount × percentage)`, optionally
//! tiered by amount. Fees round *up* to the minor unit so the platform never undercharges by
//! a rounding error; this is the only place fees are computed.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::MoneyError;

/// One band of a leg's fee: applies to amounts strictly below `up_to` (or to all amounts
/// when `up_to` is `None`, which only the last tier may be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeTier {
    /// Exclusive upper bound of the band in source minor units; `None` = unbounded.
    pub up_to: Option<i64>,
    /// Flat part in source minor units.
    pub flat: i64,
    /// Proportional part as a fraction (0.029 = 2.9 %).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub percentage: Decimal,
}

/// A leg's fee: the first tier whose bound the amount is below applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegFees {
    /// Tiers in ascending `up_to` order; the last is unbounded.
    pub tiers: Vec<FeeTier>,
}

/// The complete schedule of a corridor: platform, onramp and offramp fees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// The platform's own fee.
    pub platform: LegFees,
    /// The fiat→USDC provider's fee.
    pub onramp: LegFees,
    /// The USDC→payout provider's fee.
    pub offramp: LegFees,
}

/// Fees charged on one amount, all in source minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeBreakdown {
    /// Platform fee.
    pub platform: i64,
    /// Onramp fee.
    pub onramp: i64,
    /// Offramp fee.
    pub offramp: i64,
}

impl FeeBreakdown {
    /// Sum of the three fees.
    pub fn total(&self) -> Result<i64, MoneyError> {
        self.platform
            .checked_add(self.onramp)
            .and_then(|s| s.checked_add(self.offramp))
            .ok_or(MoneyError::Overflow)
    }
}

impl LegFees {
    /// A single-tier fee: `flat + amount × percentage`.
    pub fn flat_plus(flat: i64, percentage: Decimal) -> LegFees {
        LegFees {
            tiers: vec![FeeTier {
                up_to: None,
                flat,
                percentage,
            }],
        }
    }

    /// The fee on `amount` (source minor units), rounded up.
    pub fn fee(&self, amount: i64) -> Result<i64, MoneyError> {
        let tier = self
            .tiers
            .iter()
            .find(|t| t.up_to.is_none_or(|bound| amount < bound))
            .or(self.tiers.last())
            .ok_or(MoneyError::Overflow)?;
        let proportional = (Decimal::from(amount) * tier.percentage).ceil();
        let proportional = proportional.to_i64().ok_or(MoneyError::Overflow)?;
        tier.flat
            .checked_add(proportional)
            .ok_or(MoneyError::Overflow)
    }

    /// Why this fee definition cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.tiers.is_empty() {
            return Err("a fee needs at least one tier".into());
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.flat < 0 || t.percentage.is_sign_negative() || t.percentage >= Decimal::ONE {
                return Err("fees must be non-negative and below 100 %".into());
            }
            let last = i + 1 == self.tiers.len();
            match (t.up_to, last) {
                (None, false) => return Err("only the last tier may be unbounded".into()),
                (Some(_), true) => return Err("the last tier must be unbounded".into()),
                _ => {}
            }
            if let (Some(a), Some(Some(b))) = (t.up_to, self.tiers.get(i + 1).map(|n| n.up_to))
                && a >= b
            {
                return Err("tiers must be in ascending order".into());
            }
        }
        Ok(())
    }
}

impl FeeSchedule {
    /// The seed system's schedule: platform 2.9 % + 30 below 10,000, 2.5 % + 50 below
    /// 100,000, else 2.0 % + 100; onramp 1 % + 50; offramp 1.5 % + 75.
    pub fn seed_default() -> FeeSchedule {
        let tier = |up_to, flat, pct: &str| FeeTier {
            up_to,
            flat,
            percentage: pct.parse().expect("literal decimal"),
        };
        FeeSchedule {
            platform: LegFees {
                tiers: vec![
                    tier(Some(10_000), 30, "0.029"),
                    tier(Some(100_000), 50, "0.025"),
                    tier(None, 100, "0.020"),
                ],
            },
            onramp: LegFees::flat_plus(50, "0.01".parse().expect("literal decimal")),
            offramp: LegFees::flat_plus(75, "0.015".parse().expect("literal decimal")),
        }
    }

    /// All three fees on `amount`.
    pub fn compute(&self, amount: i64) -> Result<FeeBreakdown, MoneyError> {
        Ok(FeeBreakdown {
            platform: self.platform.fee(amount)?,
            onramp: self.onramp.fee(amount)?,
            offramp: self.offramp.fee(amount)?,
        })
    }

    /// Why this schedule cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.platform
            .validate()
            .map_err(|e| format!("platform: {e}"))?;
        self.onramp.validate().map_err(|e| format!("onramp: {e}"))?;
        self.offramp.validate().map_err(|e| format!("offramp: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_schedule_matches_the_documented_example() {
        let f = FeeSchedule::seed_default().compute(100_000).unwrap();
        assert_eq!((f.platform, f.onramp, f.offramp), (2_100, 1_050, 1_575));
        assert_eq!(f.total().unwrap(), 4_725);
    }

    #[test]
    fn tiers_switch_at_their_exclusive_bounds() {
        let s = FeeSchedule::seed_default();
        // (amount, platform fee)
        for (amount, fee) in [
            (1_000, 30 + 29),
            (9_999, 30 + 290),    // 289.971 rounds up
            (10_000, 50 + 250),   // second tier starts at 10,000
            (99_999, 50 + 2_500), // 2499.975 rounds up
            (100_000, 100 + 2_000),
        ] {
            assert_eq!(s.platform.fee(amount).unwrap(), fee, "amount {amount}");
        }
    }

    #[test]
    fn fees_round_up() {
        let leg = LegFees::flat_plus(0, "0.01".parse().unwrap());
        assert_eq!(leg.fee(1).unwrap(), 1);
        assert_eq!(leg.fee(100).unwrap(), 1);
        assert_eq!(leg.fee(101).unwrap(), 2);
    }

    #[test]
    fn validation_rejects_broken_schedules() {
        let mut s = FeeSchedule::seed_default();
        assert!(s.validate().is_ok());
        s.platform.tiers.swap(0, 1);
        assert!(s.validate().is_err());
        let neg = LegFees::flat_plus(-1, Decimal::ZERO);
        assert!(neg.validate().is_err());
        assert!(LegFees { tiers: vec![] }.validate().is_err());
    }
}
