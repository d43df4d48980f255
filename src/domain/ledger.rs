//! How a payment's money moves between legs: the amounts each leg carries, derived once here.

use super::{Currency, Money, MoneyError};

/// USDC the onramp buys: the source amount net of all fees, at 1:1 major-unit parity
/// (95,275 USD cents → 952,750,000 micro-USDC).
pub fn onramp_usdc(amount: i64, total_fees: i64, source: Currency) -> Result<Money, MoneyError> {
    Money::new(amount, source)
        .checked_sub(Money::new(total_fees, source))?
        .at_parity(Currency::Usdc)
}

/// What a refunded source gets back: everything but the onramp's fee, the one cost actually
/// incurred (platform and offramp fees were never earned).
pub fn refund_amount(amount: i64, onramp_fee: i64, source: Currency) -> Result<Money, MoneyError> {
    Money::new(amount, source).checked_sub(Money::new(onramp_fee, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_of_the_documented_example() {
        assert_eq!(
            onramp_usdc(100_000, 4_725, Currency::USD).unwrap().minor(),
            952_750_000
        );
        assert_eq!(
            refund_amount(100_000, 1_050, Currency::USD)
                .unwrap()
                .minor(),
            98_950
        );
    }
}
