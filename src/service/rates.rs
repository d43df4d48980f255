//! Where quote rates come from: one trait, so the static table, an operator's pin and a
//! simulated market are interchangeable behind the quote use case (and behind the executed
//! rate of a payout, which is the market's mid when the offramp settles).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use crate::clock::SharedClock;
use crate::domain::rates::market_step;
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

/// A market that moves: each direction's mid follows a seeded random walk from the table's
/// rate, one step per second of the injected clock (so a simulation replays it), less the
/// spread for customers. The walk starts at the table's rate the first time a direction is
/// asked for; time that goes backwards (a wall clock stepped back) holds the rate.
pub struct SimulatedMarket {
    table: StaticTable,
    volatility: Decimal,
    seed: u64,
    clock: SharedClock,
    walks: Mutex<HashMap<(Currency, Currency), Walk>>,
}

struct Walk {
    /// The second the walk is at.
    second: i64,
    mid: Decimal,
    rng: StdRng,
}

impl SimulatedMarket {
    /// A market over `table`, moving by `volatility` of itself per second, drawn from `seed`.
    pub fn new(table: StaticTable, volatility: Decimal, seed: u64, clock: SharedClock) -> Self {
        SimulatedMarket {
            table,
            volatility,
            seed,
            clock,
            walks: Mutex::new(HashMap::new()),
        }
    }

    fn mid_now(&self, from: Currency, to: Currency) -> Option<Decimal> {
        let base = self.table.table.mid(from, to)?;
        let second = self.clock.now().millis().div_euclid(1_000);
        let mut walks = self.walks.lock().unwrap_or_else(|p| p.into_inner());
        let walk = walks.entry((from, to)).or_insert_with(|| {
            // One stream per direction, so one corridor's traffic never moves another's.
            let salt = from
                .code()
                .bytes()
                .chain(to.code().bytes())
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
            Walk {
                second,
                mid: base,
                rng: StdRng::seed_from_u64(self.seed ^ salt),
            }
        });
        while walk.second < second {
            // Uniform on ±√3 (variance one), in millionths: exact decimal arithmetic.
            let shock = Decimal::new(walk.rng.random_range(-1_732_051..=1_732_051), 6);
            walk.mid = market_step(walk.mid, base, self.volatility, shock);
            walk.second += 1;
        }
        Some(walk.mid)
    }
}

#[async_trait]
impl RateSource for SimulatedMarket {
    async fn quote_rate(&self, from: Currency, to: Currency) -> StoreResult<Option<QuoteRate>> {
        Ok(self.market(from, to))
    }

    fn market(&self, from: Currency, to: Currency) -> Option<QuoteRate> {
        self.mid_now(from, to).map(|mid| QuoteRate {
            mid,
            customer: customer_rate(mid, self.table.spread_bps),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn market(seed: u64, volatility: &str, clock: SharedClock) -> SimulatedMarket {
        SimulatedMarket::new(
            StaticTable {
                table: RateTable::static_default(),
                spread_bps: 50,
            },
            volatility.parse().unwrap(),
            seed,
            clock,
        )
    }

    fn path(seed: u64, volatility: &str) -> Vec<Decimal> {
        let clock = SystemClock::new();
        let m = market(seed, volatility, clock.clone());
        let eur: Currency = "EUR".parse().unwrap();
        (0..50)
            .map(|_| {
                clock.advance_millis(60_000);
                m.mid(Currency::USD, eur).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_walk_replays_from_its_seed_and_clock_and_moves() {
        let a = path(7, "0.001");
        assert_eq!(a, path(7, "0.001"), "same seed, same clock: same rates");
        assert_ne!(a, path(8, "0.001"), "another seed, another walk");
        let base: Decimal = "0.9251".parse().unwrap();
        assert!(a.iter().any(|m| *m != base), "it moves");
        // Pulled back toward the table: after 50 minutes at 0.1 %/s it is within 20 %.
        assert!(
            a.iter()
                .all(|m| (*m - base).abs() < base / Decimal::from(5)),
            "{a:?}"
        );
        assert!(
            path(7, "0").iter().all(|m| *m == base),
            "no volatility, no move"
        );
    }

    #[test]
    fn a_quote_on_the_walk_is_its_mid_less_the_spread_and_other_pairs_are_untouched() {
        let clock = SystemClock::new();
        let m = market(3, "0.002", clock.clone());
        clock.advance_millis(3_600_000);
        let eur: Currency = "EUR".parse().unwrap();
        let q = m.market(Currency::USD, eur).unwrap();
        assert_eq!(q.customer, customer_rate(q.mid, 50));
        assert!(
            m.market(eur, Currency::USD).is_none(),
            "no table rate, no market"
        );
        // Asking for one pair does not move another's stream.
        let inr: Currency = "INR".parse().unwrap();
        let other = market(3, "0.002", clock.clone());
        let _ = (m.mid(Currency::USD, inr), other.mid(Currency::USD, inr));
        clock.advance_millis(3_600_000);
        let _ = m.mid(Currency::USD, eur);
        let moved = m.mid(Currency::USD, inr);
        assert_eq!(moved, other.mid(Currency::USD, inr));
        assert_ne!(moved, RateTable::static_default().mid(Currency::USD, inr));
    }
}
