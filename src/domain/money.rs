//! Exact amounts in integer minor units, with checked arithmetic.

use super::Currency;

/// An amount of one currency in its minor units (cents, paise, yen, micro-USDC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// Arithmetic that would lose money: overflow or a currency mix-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflow")]
    Overflow,
    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
}

impl Money {
    /// An amount of `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency the amount is denominated in.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// `self + other`, refusing overflow and mixed currencies.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `self - other`, refusing overflow and mixed currencies.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// The same value expressed in `to`'s minor units at 1:1 major-unit parity
    /// (USD cents → micro-USDC). Refuses to drop precision: converting to a currency with
    /// fewer decimals must divide exactly.
    pub fn at_parity(self, to: Currency) -> Result<Money, MoneyError> {
        let (from_e, to_e) = (self.currency.exponent(), to.exponent());
        let minor = if to_e >= from_e {
            let factor = 10i64
                .checked_pow(to_e - from_e)
                .ok_or(MoneyError::Overflow)?;
            self.minor.checked_mul(factor).ok_or(MoneyError::Overflow)?
        } else {
            let factor = 10i64
                .checked_pow(from_e - to_e)
                .ok_or(MoneyError::Overflow)?;
            if self.minor % factor != 0 {
                return Err(MoneyError::Overflow);
            }
            self.minor / factor
        };
        Ok(Money::new(minor, to))
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_cents_become_micro_usdc() {
        let usd = Money::new(95_275, Currency::USD);
        assert_eq!(usd.at_parity(Currency::Usdc).unwrap().minor(), 952_750_000);
        assert_eq!(
            Money::new(952_750_000, Currency::Usdc)
                .at_parity(Currency::USD)
                .unwrap()
                .minor(),
            95_275
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let max = Money::new(i64::MAX, Currency::USD);
        assert_eq!(
            max.checked_add(Money::new(1, Currency::USD)),
            Err(MoneyError::Overflow)
        );
        assert!(matches!(
            max.checked_sub(Money::new(1, Currency::Usdc)),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert!(
            Money::new(i64::MAX / 10, Currency::USD)
                .at_parity(Currency::Usdc)
                .is_err()
        );
    }
}
