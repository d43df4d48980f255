//! The world outside Corridor, simulated: an onramp and an offramp keeping their transfers in
//! memory, answering under the run's faults (unreachable, a 503 before acting, a timeout
//! after acting, a definitive refusal), settling on the simulated clock, and announcing each
//! settlement by a webhook that may come late, twice, or never. At the moments a real
//! deployment is most exposed — a provider call in flight — it lets the run race something
//! against the worker (a cancel, a second worker taking the job over, a webhook).
//!
//! It is also the witness for the invariants Corridor's database cannot show by itself: how
//! many transfers were started for each leg, and for how much.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::Ctx;
use crate::domain::{Side, TransferStatus};
use crate::providers::{LegRequest, Offramp, Onramp, ProviderError, Sent};
use crate::service::settle::LegReport;

/// The simulated onramp's name, as legs record it.
pub const ONRAMP: &str = "world-onramp";
/// The simulated offramp's name.
pub const OFFRAMP: &str = "world-offramp";

/// Which transfer of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegKind {
    /// Fiat → USDC.
    Onramp,
    /// USDC → payout.
    Offramp,
    /// USDC → fiat back to the source (a refund).
    Reversal,
}

impl LegKind {
    /// The leg's name (`onramp`, `offramp`, `reversal`), as in its references.
    pub fn name(self) -> &'static str {
        match self {
            LegKind::Onramp => "onramp",
            LegKind::Offramp => "offramp",
            LegKind::Reversal => "reversal",
        }
    }
}

/// How a transfer ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Refused at initiation: no money moved.
    Refused,
    /// Settles.
    Completed,
    /// Fails at settlement.
    Failed,
}

/// One transfer a provider started.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The provider's reference.
    pub reference: String,
    /// The payment it serves.
    pub payment_id: String,
    /// Which leg.
    pub leg: LegKind,
    /// Amount, minor units of `currency`.
    pub amount: i64,
    /// Currency or asset.
    pub currency: String,
    /// When it settles (simulated ms).
    pub settle_at: i64,
    /// How.
    pub outcome: Outcome,
}

/// Something raced against a provider call in flight.
#[derive(Debug, Clone)]
pub enum Race {
    /// The merchant cancels the payment.
    Cancel(String),
    /// The job's lease runs out and another worker takes it over.
    Steal,
    /// The provider's webhook for this transfer arrives now.
    Webhook(LegReport),
}

/// Runs a race to its end (installed by the run for each process it starts).
pub type Racer = Arc<dyn Fn(Race) -> BoxFuture<'static, ()> + Send + Sync>;

/// A webhook the providers will send, and when.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Simulated ms it is delivered at.
    pub at: i64,
    /// What it says.
    pub report: LegReport,
}

#[derive(Default)]
struct Rails {
    transfers: BTreeMap<String, Transfer>,
    by_key: HashMap<String, String>,
    by_leg: HashMap<(String, LegKind), Vec<String>>,
    outbox: Vec<Outgoing>,
    next_ref: u64,
    next_webhook: u64,
}

/// Both providers.
pub struct World {
    ctx: Arc<Ctx>,
    rails: Mutex<Rails>,
    racer: Mutex<Option<Racer>>,
    racing: AtomicBool,
}

/// A fault drawn for one provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// No connection: provably nothing happened.
    Unreachable,
    /// A 503 before acting.
    Unavailable,
    /// Acted, then the answer was lost (a timeout).
    TimeoutAfterActing,
}

impl World {
    /// An empty world drawing its chances from `ctx`.
    pub fn new(ctx: Arc<Ctx>) -> Arc<World> {
        Arc::new(World {
            ctx,
            rails: Mutex::new(Rails::default()),
            racer: Mutex::new(None),
            racing: AtomicBool::new(false),
        })
    }

    /// The providers Corridor is built with.
    pub fn providers(self: &Arc<Self>) -> crate::providers::Providers {
        crate::providers::Providers {
            onramp: Arc::new(WorldOnramp(self.clone())),
            offramp: Arc::new(WorldOfframp(self.clone())),
        }
    }

    /// Installs what runs races (the current process's).
    pub fn set_racer(&self, racer: Option<Racer>) {
        *self.racer.lock().unwrap_or_else(|p| p.into_inner()) = racer;
    }

    fn rails(&self) -> std::sync::MutexGuard<'_, Rails> {
        self.rails.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Webhooks queued since the last call.
    pub fn take_outbox(&self) -> Vec<Outgoing> {
        std::mem::take(&mut self.rails().outbox)
    }

    /// Every transfer, in reference order.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.rails().transfers.values().cloned().collect()
    }

    /// The transfers of one payment.
    pub fn transfers_of(&self, payment_id: &str) -> Vec<Transfer> {
        let rails = self.rails();
        [LegKind::Onramp, LegKind::Offramp, LegKind::Reversal]
            .into_iter()
            .flat_map(|leg| {
                rails
                    .by_leg
                    .get(&(payment_id.to_owned(), leg))
                    .into_iter()
                    .flatten()
                    .filter_map(|r| rails.transfers.get(r).cloned())
            })
            .collect()
    }

    fn draw_fault(&self) -> Fault {
        let o = &self.ctx.opts;
        if !self.ctx.chance(o.provider_fault_rate) {
            return Fault::None;
        }
        let f = match self.ctx.below(3) {
            0 => Fault::Unreachable,
            1 => Fault::Unavailable,
            _ => Fault::TimeoutAfterActing,
        };
        self.ctx.count(|s| match f {
            Fault::Unreachable => s.faults_unreachable += 1,
            Fault::Unavailable => s.faults_unavailable += 1,
            _ => s.faults_timeout_after_acting += 1,
        });
        f
    }

    /// Maybe races something against the call in flight (never inside a race).
    async fn maybe_race(&self, make: impl FnOnce(&Ctx) -> Option<Race>) {
        if self.racing.load(Ordering::SeqCst) || self.ctx.is_down() {
            return;
        }
        if !self.ctx.chance(self.ctx.opts.race_rate) {
            return;
        }
        let Some(race) = make(&self.ctx) else { return };
        let Some(racer) = self.racer.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        self.ctx.count(|s| match &race {
            Race::Cancel(_) => s.races_cancel += 1,
            Race::Steal => s.races_steal += 1,
            Race::Webhook(_) => s.races_webhook += 1,
        });
        // Reset on drop too: a provider call whose future is dropped mid-race (a timeout)
        // must not leave races switched off for the rest of the run.
        struct Racing<'a>(&'a AtomicBool);
        impl Drop for Racing<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        self.racing.store(true, Ordering::SeqCst);
        let _racing = Racing(&self.racing);
        racer(race).await;
    }

    fn report(&self, rails: &mut Rails, t: &Transfer) -> LegReport {
        rails.next_webhook += 1;
        let (provider, side) = match t.leg {
            LegKind::Offramp => (OFFRAMP, Side::Offramp),
            _ => (ONRAMP, Side::Onramp),
        };
        LegReport {
            provider: provider.to_owned(),
            webhook_id: format!("wh_{}", rails.next_webhook),
            side,
            reference: t.reference.clone(),
            payment_id: t.payment_id.clone(),
            status: match t.outcome {
                Outcome::Completed => TransferStatus::Completed,
                _ => TransferStatus::Failed("declined at settlement".into()),
            },
        }
    }

    /// Queues the settlement webhook(s) of a new transfer: on time, late, twice, or never.
    fn announce(&self, rails: &mut Rails, t: &Transfer) {
        let o = &self.ctx.opts;
        if self.ctx.chance(o.webhook_loss_rate) {
            self.ctx.count(|s| s.webhooks_lost += 1);
            return;
        }
        let report = self.report(rails, t);
        let late = self.ctx.chance(o.webhook_late_rate);
        let delay = if late {
            self.ctx.count(|s| s.webhooks_late += 1);
            self.ctx.between(30_000, 600_000)
        } else {
            self.ctx.between(0, 2_000)
        };
        rails.outbox.push(Outgoing {
            at: t.settle_at + delay,
            report: report.clone(),
        });
        if self.ctx.chance(o.webhook_dup_rate) {
            self.ctx.count(|s| s.webhooks_duplicated += 1);
            let again = self.ctx.between(0, 120_000);
            rails.outbox.push(Outgoing {
                at: t.settle_at + delay + again,
                report,
            });
        }
        self.ctx.count(|s| s.webhooks_sent += 1);
    }

    async fn initiate(&self, leg: LegKind, req: &LegRequest) -> Result<String, ProviderError> {
        if self.ctx.is_down() {
            return Err(ProviderError::NotSent("the caller is down".into()));
        }
        {
            let rails = self.rails();
            let leg_key = (req.payment_id.clone(), leg);
            let started = rails.by_leg.get(&leg_key).map_or(&[][..], Vec::as_slice);
            if let Some(first) = started.first().and_then(|r| rails.transfers.get(r)) {
                if !rails.by_key.contains_key(&req.idempotency_key) {
                    self.ctx.violate(
                        "each leg initiated at most once",
                        &req.payment_id,
                        format!(
                            "a second {leg:?} transfer asked for under key `{}` ({} was started under another)",
                            req.idempotency_key, first.reference
                        ),
                    );
                } else if first.amount != req.amount || first.currency != req.currency {
                    self.ctx.violate(
                        "a repeated initiation asks for the same transfer",
                        &req.payment_id,
                        format!(
                            "{leg:?} asked again for {} {}, first for {} {}",
                            req.amount, req.currency, first.amount, first.currency
                        ),
                    );
                }
            }
        }
        let fault = self.draw_fault();
        match fault {
            Fault::Unreachable => return Err(ProviderError::NotSent("connection refused".into())),
            Fault::Unavailable => return Err(ProviderError::Transient("503 from provider".into())),
            _ => {}
        }
        let now = self.ctx.now();
        let (reference, outcome) = {
            let mut rails = self.rails();
            match rails.by_key.get(&req.idempotency_key).cloned() {
                Some(r) => {
                    let outcome = rails.transfers.get(&r).map(|t| t.outcome.clone());
                    (r, outcome.unwrap_or(Outcome::Completed))
                }
                None => {
                    let leg_key = (req.payment_id.clone(), leg);
                    let o = &self.ctx.opts;
                    let outcome = if leg != LegKind::Reversal && self.ctx.chance(o.refusal_rate) {
                        self.ctx.count(|s| s.refusals += 1);
                        Outcome::Refused
                    } else if leg != LegKind::Reversal && self.ctx.chance(o.settle_failure_rate) {
                        self.ctx.count(|s| s.failed_settlements += 1);
                        Outcome::Failed
                    } else {
                        Outcome::Completed
                    };
                    rails.next_ref += 1;
                    let reference = format!("{}_{:08}", leg.name(), rails.next_ref);
                    let t = Transfer {
                        reference: reference.clone(),
                        payment_id: req.payment_id.clone(),
                        leg,
                        amount: req.amount,
                        currency: req.currency.clone(),
                        settle_at: now + self.ctx.between(o.settle_ms.0, o.settle_ms.1),
                        outcome: outcome.clone(),
                    };
                    if outcome != Outcome::Refused {
                        self.announce(&mut rails, &t);
                    }
                    rails
                        .by_key
                        .insert(req.idempotency_key.clone(), reference.clone());
                    rails
                        .by_leg
                        .entry(leg_key)
                        .or_default()
                        .push(reference.clone());
                    rails.transfers.insert(reference.clone(), t);
                    self.ctx.trace(
                        &req.payment_id,
                        format!(
                            "provider started {leg:?} {reference} for {} {}",
                            req.amount, req.currency
                        ),
                    );
                    (reference, outcome)
                }
            }
        };
        if leg == LegKind::Onramp {
            let id = req.payment_id.clone();
            self.maybe_race(move |ctx| {
                Some(if ctx.below(2) == 0 {
                    Race::Cancel(id)
                } else {
                    Race::Steal
                })
            })
            .await;
        } else {
            self.maybe_race(|_| Some(Race::Steal)).await;
        }
        if self.ctx.crash_in_call() {
            return Err(ProviderError::Transient("the caller died waiting".into()));
        }
        if fault == Fault::TimeoutAfterActing {
            return Err(ProviderError::Transient("provider call timed out".into()));
        }
        match outcome {
            Outcome::Refused => Err(ProviderError::Refused("declined".into())),
            _ => Ok(reference),
        }
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        if self.ctx.is_down() {
            return Err(ProviderError::NotSent("the caller is down".into()));
        }
        match self.draw_fault() {
            Fault::Unreachable => return Err(ProviderError::NotSent("connection refused".into())),
            Fault::None => {}
            _ => return Err(ProviderError::Transient("503 from provider".into())),
        }
        let t = {
            let rails = self.rails();
            let Some(t) = rails.transfers.get(&sent.reference).cloned() else {
                self.ctx.violate(
                    "status of a started transfer",
                    "",
                    format!(
                        "asked about `{}`, which no provider started",
                        sent.reference
                    ),
                );
                return Err(ProviderError::Refused("unknown transfer".into()));
            };
            t
        };
        if sent.amount != t.amount || sent.currency != t.currency {
            self.ctx.violate(
                "a status is asked for what was sent",
                &t.payment_id,
                format!(
                    "asked about {} for {} {}, which was started for {} {}",
                    t.reference, sent.amount, sent.currency, t.amount, t.currency
                ),
            );
        }
        let settled = self.ctx.now() >= t.settle_at;
        if settled {
            // The report is written only when a race is drawn.
            self.maybe_race(|_| Some(Race::Webhook(self.report(&mut self.rails(), &t))))
                .await;
        } else {
            self.maybe_race(|_| Some(Race::Steal)).await;
        }
        if self.ctx.crash_in_call() {
            return Err(ProviderError::Transient("the caller died waiting".into()));
        }
        Ok(match (settled, &t.outcome) {
            (false, _) => TransferStatus::Pending,
            (true, Outcome::Completed) => TransferStatus::Completed,
            (true, _) => TransferStatus::Failed("declined at settlement".into()),
        })
    }
}

struct WorldOnramp(Arc<World>);
struct WorldOfframp(Arc<World>);

#[async_trait]
impl Onramp for WorldOnramp {
    fn name(&self) -> &str {
        ONRAMP
    }

    async fn buy(&self, req: &LegRequest) -> Result<String, ProviderError> {
        self.0.initiate(LegKind::Onramp, req).await
    }

    async fn reverse(&self, req: &LegRequest) -> Result<String, ProviderError> {
        self.0.initiate(LegKind::Reversal, req).await
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        self.0.status(sent).await
    }
}

#[async_trait]
impl Offramp for WorldOfframp {
    fn name(&self) -> &str {
        OFFRAMP
    }

    async fn pay_out(&self, req: &LegRequest) -> Result<String, ProviderError> {
        self.0.initiate(LegKind::Offramp, req).await
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        self.0.status(sent).await
    }
}
