//! Corridors: the currency pairs Corridor pays along, with their limits and fee schedules.

use serde::Deserialize;

use super::{Currency, FeeSchedule};

/// One payable direction `from → to` with its amount limits and fees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corridor {
    /// Source currency (what the sender pays in).
    pub from: Currency,
    /// Payout currency.
    pub to: Currency,
    /// Smallest accepted source amount, minor units.
    pub min_amount: i64,
    /// Largest accepted source amount, minor units.
    pub max_amount: i64,
    /// Fees charged on this corridor.
    pub fees: FeeSchedule,
}

/// The set of corridors a deployment offers.
#[derive(Debug, Clone)]
pub struct CorridorTable {
    corridors: Vec<Corridor>,
}

/// How a corridor override is written in `corridor.toml` (`[[corridors]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorridorSpec {
    /// Source currency code.
    pub from: String,
    /// Payout currency code.
    pub to: String,
    /// Smallest accepted source amount.
    pub min_amount: i64,
    /// Largest accepted source amount.
    pub max_amount: i64,
    /// Fee schedule; the seed default when absent.
    pub fees: Option<FeeSchedule>,
}

impl CorridorTable {
    /// The default table: USD to each payout currency of the static rate table, $10 to $1M,
    /// with the seed fee schedule. $10 leaves a payout of several units after fees.
    pub fn default_table() -> CorridorTable {
        let corridors = ["EUR", "GBP", "INR", "NGN", "PHP", "MXN", "BRL", "JPY"]
            .into_iter()
            .map(|to| Corridor {
                from: Currency::USD,
                to: to.parse().expect("literal currency"),
                min_amount: 1_000,
                max_amount: 100_000_000,
                fees: FeeSchedule::seed_default(),
            })
            .collect();
        CorridorTable { corridors }
    }

    /// A table from explicit specs, validated.
    pub fn from_specs(specs: &[CorridorSpec]) -> Result<CorridorTable, String> {
        let mut corridors = Vec::with_capacity(specs.len());
        for s in specs {
            let from: Currency = s.from.parse().map_err(|e| format!("{e}"))?;
            let to: Currency = s.to.parse().map_err(|e| format!("{e}"))?;
            if from == to {
                return Err(format!("corridor {from}→{to} pays into its own currency"));
            }
            if s.min_amount <= 0 || s.max_amount < s.min_amount {
                return Err(format!(
                    "corridor {from}→{to}: need 0 < min_amount ≤ max_amount"
                ));
            }
            // The onramp buys USDC (6 decimals) for the whole amount: a limit whose USDC does
            // not fit the integers would be accepted at the API and fail at the leg.
            if super::ledger::onramp_usdc(s.max_amount, 0, from).is_err() {
                return Err(format!(
                    "corridor {from}→{to}: max_amount {} is too large to buy as USDC",
                    s.max_amount
                ));
            }
            let fees = s.fees.clone().unwrap_or_else(FeeSchedule::seed_default);
            fees.validate()
                .map_err(|e| format!("corridor {from}→{to} fees: {e}"))?;
            corridors.push(Corridor {
                from,
                to,
                min_amount: s.min_amount,
                max_amount: s.max_amount,
                fees,
            });
        }
        Ok(CorridorTable { corridors })
    }

    /// The corridor for `from → to`, if offered.
    pub fn find(&self, from: Currency, to: Currency) -> Option<&Corridor> {
        self.corridors.iter().find(|c| c.from == from && c.to == to)
    }

    /// Every corridor, in configuration order.
    pub fn all(&self) -> &[Corridor] {
        &self.corridors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_amount: i64) -> CorridorSpec {
        CorridorSpec {
            from: "USD".into(),
            to: "EUR".into(),
            min_amount: 1_000,
            max_amount,
            fees: None,
        }
    }

    #[test]
    fn a_limit_whose_usdc_would_overflow_is_refused_at_configuration() {
        assert!(CorridorTable::from_specs(&[spec(100_000_000)]).is_ok());
        let err = CorridorTable::from_specs(&[spec(i64::MAX / 100)]).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}
