//! Currencies and their minor-unit exponents.
//!
//! Fiat codes are validated against ISO 4217 (via `iso_currency`) so that "not a currency"
//! and "a currency we have no corridor for" are distinguishable errors. USDC is the one
//! non-ISO asset: the settlement asset between the two legs, with 6 decimals.

use std::fmt;
use std::str::FromStr;

/// A currency or asset that amounts can be denominated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    /// An ISO 4217 currency with a defined minor unit.
    Fiat(iso_currency::Currency),
    /// The USD Coin stablecoin (6 decimals), held between onramp and offramp.
    Usdc,
}

/// The code was not an ISO 4217 currency with minor units, nor a listed asset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency code or a supported asset")]
pub struct UnknownCurrency(pub String);

impl Currency {
    /// Shorthand for the source currency of the default corridors.
    pub const USD: Currency = Currency::Fiat(iso_currency::Currency::USD);

    /// The ISO 4217 (or asset) code, upper case.
    pub fn code(&self) -> &'static str {
        match self {
            Currency::Fiat(c) => c.code(),
            Currency::Usdc => "USDC",
        }
    }

    /// Number of decimal digits in one major unit (USD 2, JPY 0, USDC 6).
    pub fn exponent(&self) -> u32 {
        match self {
            // Parsing only admits currencies with an exponent, so the fallback is unreachable
            // for values built through `FromStr`; 2 is the ISO default for the rest.
            Currency::Fiat(c) => c.exponent().map(u32::from).unwrap_or(2),
            Currency::Usdc => 6,
        }
    }
}

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "USDC" {
            return Ok(Currency::Usdc);
        }
        // Codes are case-sensitive upper case, as ISO 4217 writes them.
        if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(UnknownCurrency(s.to_owned()));
        }
        match iso_currency::Currency::from_code(s) {
            // Funds, precious metals and testing codes have no exponent: not payable.
            Some(c) if c.exponent().is_some() => Ok(Currency::Fiat(c)),
            _ => Err(UnknownCurrency(s.to_owned())),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_iso_4217() {
        for (code, exp) in [
            ("USD", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("INR", 2),
            ("NGN", 2),
            ("PHP", 2),
            ("MXN", 2),
            ("BRL", 2),
            ("JPY", 0),
            ("USDC", 6),
        ] {
            let c: Currency = code.parse().unwrap();
            assert_eq!(c.exponent(), exp, "{code}");
            assert_eq!(c.code(), code);
        }
    }

    #[test]
    fn rejects_non_codes() {
        for bad in ["usd", "US", "USDD", "XXX", "ZZZ", "", "XAU"] {
            assert!(bad.parse::<Currency>().is_err(), "{bad}");
        }
    }
}
