//! Simulated providers, realistic enough to exercise every path: settlement after a random
//! delay, random failures, sandbox magic accounts, and provider-side idempotency. Their
//! transfers are rows in the database, so a restart of Corridor loses none.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{LegRequest, Offramp, Onramp, ProviderError, Sent, StatementLine, TransferStatus};
use crate::clock::SharedClock;
use crate::domain::Timestamp;
use crate::domain::reconcile::LineStatus;
use crate::store::sim::{self, SimTransfer};
use crate::store::{Store, StoreError};

/// Source account that makes the onramp fail.
pub const FAIL_ONRAMP: &str = "sim_fail_onramp";
/// Destination account that makes the offramp fail for good.
pub const FAIL_OFFRAMP: &str = "sim_fail_offramp";
/// Destination account whose offramp stays pending for an hour (or until a webhook).
pub const SLOW: &str = "sim_slow";
/// Destination account whose payout settles, then comes back after
/// `CORRIDOR_SIM_RETURN_DELAY` (the beneficiary's bank returned it).
pub const RETURN_OFFRAMP: &str = "sim_return_offramp";
/// Destination account whose payout the provider settles short (1 % less, at least one minor
/// unit): the payment completes, and reconciliation reports the difference.
pub const SHORT_PAYOUT: &str = "sim_short_payout";
/// Name of the simulated onramp.
pub const ONRAMP_NAME: &str = "sim-onramp";
/// Name of the simulated offramp.
pub const OFFRAMP_NAME: &str = "sim-offramp";

/// How the simulator behaves.
#[derive(Debug, Clone, Copy)]
pub struct SimSettings {
    /// Onramp settlement delay range.
    pub onramp_delay: (Duration, Duration),
    /// Offramp settlement delay range.
    pub offramp_delay: (Duration, Duration),
    /// Probability that a leg fails at settlement.
    pub failure_rate: f64,
    /// How long after settling a payout to [`RETURN_OFFRAMP`] comes back.
    pub return_delay: Duration,
}

/// One simulated provider (onramp or offramp side).
pub struct Simulator {
    name: &'static str,
    store: Store,
    clock: SharedClock,
    rng: Arc<Mutex<StdRng>>,
    settings: SimSettings,
}

/// Builds the simulated onramp and offramp sharing one RNG.
pub fn pair(
    store: Store,
    clock: SharedClock,
    settings: SimSettings,
    seed: Option<u64>,
) -> (Arc<Simulator>, Arc<Simulator>) {
    let rng = Arc::new(Mutex::new(match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }));
    let make = |name| {
        Arc::new(Simulator {
            name,
            store: store.clone(),
            clock: clock.clone(),
            rng: rng.clone(),
            settings,
        })
    };
    (make(ONRAMP_NAME), make(OFFRAMP_NAME))
}

fn transient(e: StoreError) -> ProviderError {
    ProviderError::Transient(format!("simulator storage: {e}"))
}

impl Simulator {
    /// The simulator's records, for the sandbox API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn draw(&self, range: (Duration, Duration), forced_failure: bool) -> (i64, bool) {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let (lo, hi) = (range.0.as_millis() as i64, range.1.as_millis() as i64);
        let delay = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        let fails = forced_failure
            || (self.settings.failure_rate > 0.0
                && rng.random::<f64>() < self.settings.failure_rate);
        (delay, fails)
    }

    async fn initiate(
        &self,
        leg: &str,
        req: &LegRequest,
        delay_ms: i64,
        fails: bool,
    ) -> Result<String, ProviderError> {
        let outcome = if fails { "FAILED" } else { "COMPLETED" };
        self.initiate_as(leg, req, delay_ms, outcome).await
    }

    /// Records the transfer, to settle with `outcome` (`COMPLETED`, `FAILED`, or `RETURNED`:
    /// completed, then sent back after the return delay).
    async fn initiate_as(
        &self,
        leg: &str,
        req: &LegRequest,
        delay_ms: i64,
        outcome: &str,
    ) -> Result<String, ProviderError> {
        let now = self.clock.now();
        let transfer = SimTransfer {
            reference: format!("{}_{}", leg, crate::idgen::v4().simple()),
            provider: self.name.to_owned(),
            payment_id: req.payment_id.clone(),
            leg: leg.to_owned(),
            amount: req.amount,
            currency: req.currency.clone(),
            outcome: outcome.to_owned(),
            settle_at: now.plus_millis(delay_ms),
            initiate_calls: 1,
            created_at: now,
        };
        let stored = sim::initiate(&self.store, &transfer)
            .await
            .map_err(transient)?;
        Ok(stored.reference)
    }

    async fn lookup(&self, reference: &str) -> Result<TransferStatus, ProviderError> {
        let t = sim::find(&self.store, self.name, reference)
            .await
            .map_err(transient)?
            .ok_or_else(|| ProviderError::Transient(format!("unknown reference {reference}")))?;
        Ok(self.verdict(&t, self.clock.now()))
    }

    /// Where transfer `t` stands at `now`: the one reading of a stored transfer, for status
    /// answers and statements alike.
    fn verdict(&self, t: &SimTransfer, now: Timestamp) -> TransferStatus {
        let returned_at = t
            .settle_at
            .plus_millis(i64::try_from(self.settings.return_delay.as_millis()).unwrap_or(i64::MAX));
        if now < t.settle_at {
            TransferStatus::Pending
        } else if t.outcome == "RETURNED" && now >= returned_at {
            TransferStatus::Returned("the beneficiary's bank returned the payout".into())
        } else if t.outcome == "FAILED" {
            TransferStatus::Failed(format!("{} declined the {} transfer", self.name, t.leg))
        } else {
            TransferStatus::Completed
        }
    }
}

impl Simulator {
    /// This simulator's transfers created in `[from, to)`, as its statement shows them.
    async fn lines(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StatementLine>, ProviderError> {
        let now = self.clock.now();
        let rows = sim::statement(&self.store, self.name, from, to)
            .await
            .map_err(transient)?;
        Ok(rows
            .into_iter()
            .filter_map(|t| {
                Some(StatementLine {
                    leg: t.leg.parse().ok()?,
                    status: match self.verdict(&t, now) {
                        TransferStatus::Pending => LineStatus::Pending,
                        TransferStatus::Completed => LineStatus::Completed,
                        TransferStatus::Failed(_) => LineStatus::Failed,
                        TransferStatus::Returned(_) => LineStatus::Returned,
                    },
                    payment_id: t.payment_id,
                    amount: t.amount,
                    currency: t.currency,
                })
            })
            .collect())
    }
}

#[async_trait]
impl Onramp for Simulator {
    fn name(&self) -> &str {
        self.name
    }

    async fn buy(&self, req: &LegRequest) -> Result<String, ProviderError> {
        let (delay, fails) = self.draw(self.settings.onramp_delay, req.account == FAIL_ONRAMP);
        self.initiate("onramp", req, delay, fails).await
    }

    async fn reverse(&self, req: &LegRequest) -> Result<String, ProviderError> {
        // A reversal returns funds the provider already holds: it settles, never fails.
        let (delay, _) = self.draw(self.settings.onramp_delay, false);
        self.initiate("reversal", req, delay, false).await
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        self.lookup(&sent.reference).await
    }

    async fn statement(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StatementLine>, ProviderError> {
        self.lines(from, to).await
    }
}

#[async_trait]
impl Offramp for Simulator {
    fn name(&self) -> &str {
        self.name
    }

    async fn pay_out(&self, req: &LegRequest) -> Result<String, ProviderError> {
        let (mut delay, fails) =
            self.draw(self.settings.offramp_delay, req.account == FAIL_OFFRAMP);
        if req.account == SLOW {
            delay = 3_600_000;
        }
        if req.account == RETURN_OFFRAMP && !fails {
            return self.initiate_as("offramp", req, delay, "RETURNED").await;
        }
        if req.account == SHORT_PAYOUT {
            let short = LegRequest {
                amount: req.amount - (req.amount / 100).max(1),
                ..req.clone()
            };
            return self.initiate("offramp", &short, delay, fails).await;
        }
        self.initiate("offramp", req, delay, fails).await
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        self.lookup(&sent.reference).await
    }

    async fn statement(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StatementLine>, ProviderError> {
        self.lines(from, to).await
    }
}
