//! `corridor simulate`: the whole engine under a deterministic simulation, in the spirit of
//! TigerBeetle's VOPR and FoundationDB's simulator.
//!
//! The run drives the real code — the HTTP router and its idempotency layer, the use cases,
//! the decision table, the job queue and its leases, the unit-of-work store on a real SQLite
//! file — against a simulated clock, simulated providers ([`world`]) and crashes injected at
//! the store's commit seam ([`crate::store::unit::CommitFaults`]). One seeded RNG decides
//! everything: when merchants arrive and what they send, provider latency and faults, webhook
//! order, duplicates and losses, which commits a crash swallows or whose answer it loses, and
//! what races a provider call in flight. Work happens one thing at a time on one thread, so
//! the same seed replays the same run, commit for commit, and ends in the same digest.
//!
//! What must hold is code ([`invariants`]): checked as the run goes (a leg started twice, a
//! replay that differs, a payout other than the guarantee) and over the whole database at
//! the end. The first broken one ends the run; it is then replayed from its seed with a
//! trail of everything that touched the payment, which is printed with it.

pub mod invariants;
mod run;
pub mod world;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::store::unit::{CommitFaults, Crash};

pub use run::run;

/// What to simulate: `corridor simulate`'s flags, whose defaults exercise every path of the
/// state table and every fault, a few of each per thousand payments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Decides everything; the same seed replays the same run.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Payments merchants try to make.
    #[arg(long, default_value_t = 1_000)]
    pub payments: u64,
    /// Mean arrivals per simulated second.
    #[arg(long, default_value_t = 20.0)]
    pub arrival_rate: f64,
    /// Chance that a commit (or a provider call) is where the process dies: before the
    /// commit, after it with the answer lost, or after the provider acted.
    #[arg(long, default_value_t = 0.002)]
    pub crash_rate: f64,
    /// Chance that a provider call fails: unreachable, a 503 before acting, or a timeout
    /// after acting, a third each.
    #[arg(long, default_value_t = 0.05)]
    pub provider_fault_rate: f64,
    /// Chance that a provider refuses a new transfer for good.
    #[arg(long, default_value_t = 0.02)]
    pub refusal_rate: f64,
    /// Chance that a started transfer fails at settlement (never a refund's reversal).
    #[arg(long, default_value_t = 0.03)]
    pub settle_failure_rate: f64,
    /// Chance that a settlement webhook is sent twice.
    #[arg(long, default_value_t = 0.1)]
    pub webhook_dup_rate: f64,
    /// Chance that it comes minutes late (after polling settled it, out of order).
    #[arg(long, default_value_t = 0.05)]
    pub webhook_late_rate: f64,
    /// Chance that it never comes (polling must settle the leg).
    #[arg(long, default_value_t = 0.1)]
    pub webhook_loss_rate: f64,
    /// Chance that a payment is made from a quote (else priced at creation).
    #[arg(long, default_value_t = 0.5)]
    pub quote_rate: f64,
    /// Chance that a quoted payment is sent at the quote's expiry (a ms before, at, after).
    #[arg(long, default_value_t = 0.05)]
    pub expiry_boundary_rate: f64,
    /// Chance that the merchant tries to cancel.
    #[arg(long, default_value_t = 0.05)]
    pub cancel_rate: f64,
    /// Chance that the merchant sends the same request again under its Idempotency-Key.
    #[arg(long, default_value_t = 0.05)]
    pub client_retry_rate: f64,
    /// Chance that an operator re-runs a payment's step while it is in flight.
    #[arg(long, default_value_t = 0.01)]
    pub operator_retry_rate: f64,
    /// Chance that a provider call in flight is raced by a cancel, a second worker or a
    /// webhook.
    #[arg(long, default_value_t = 0.05)]
    pub race_rate: f64,
    /// The simulated market's volatility per simulated second (0: the static table): quotes
    /// lock the walk's rate, payouts execute at its mid when they settle.
    #[arg(long, default_value = "0.0005")]
    pub market_volatility: rust_decimal::Decimal,
    /// Plants a known bug, to show the invariants catch it.
    #[arg(long = "plant-bug", value_enum)]
    pub plant: Option<PlantedBug>,
    /// Range of settlement delays, simulated ms.
    #[arg(skip = (200, 20_000))]
    pub settle_ms: (i64, i64),
    /// The payment whose trail to record (set when a failure is replayed).
    #[arg(skip)]
    pub trace: Option<String>,
}

#[derive(clap::Parser)]
struct OnlyOptions {
    #[command(flatten)]
    options: Options,
}

impl Options {
    /// The defaults (those of the flags), for `seed` and `payments`.
    pub fn new(seed: u64, payments: u64) -> Options {
        use clap::Parser;
        let mut o = OnlyOptions::parse_from(["simulate"]).options;
        o.seed = seed;
        o.payments = payments;
        o
    }

    /// Checks the rates and counts.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("--crash-rate", self.crash_rate),
            ("--provider-fault-rate", self.provider_fault_rate),
            ("--refusal-rate", self.refusal_rate),
            ("--settle-failure-rate", self.settle_failure_rate),
            ("--webhook-dup-rate", self.webhook_dup_rate),
            ("--webhook-late-rate", self.webhook_late_rate),
            ("--webhook-loss-rate", self.webhook_loss_rate),
            ("--quote-rate", self.quote_rate),
            ("--expiry-boundary-rate", self.expiry_boundary_rate),
            ("--cancel-rate", self.cancel_rate),
            ("--client-retry-rate", self.client_retry_rate),
            ("--operator-retry-rate", self.operator_retry_rate),
            ("--race-rate", self.race_rate),
        ];
        for (flag, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{flag} must be between 0 and 1, not {r}"));
            }
        }
        if self.crash_rate > 0.2 {
            return Err("--crash-rate above 0.2 leaves no unit a chance to commit".into());
        }
        if self.payments == 0 || self.payments > u64::from(u32::MAX) {
            return Err("--payments must be between 1 and 4294967295".into());
        }
        if !(self.arrival_rate > 0.0 && self.arrival_rate <= 100_000.0) {
            return Err("--arrival-rate must be above 0 and at most 100000".into());
        }
        Ok(())
    }
}

/// `corridor simulate`'s flags: the options of a run, and how many seeds to run.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The run's options (`--seed` is the first seed).
    #[command(flatten)]
    pub options: Options,
    /// Runs this many seeds, from `--seed` up, and stops at the first that fails.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
}

impl SimulateArgs {
    /// The options of the run of `seed`.
    pub fn options(&self, seed: u64) -> Options {
        Options {
            seed,
            ..self.options.clone()
        }
    }

    /// Checks the flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.seeds == 0 {
            return Err("--seeds must be at least 1".into());
        }
        self.options.validate()
    }
}

/// Bugs the run can plant (`--plant-bug`), each behind a switch only the simulator sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlantedBug {
    /// The worker calls the onramp without claiming the payment first.
    SkipOnrampClaim,
    /// Each provider call carries a fresh idempotency key instead of `{payment}:{leg}`.
    KeyPerAttempt,
}

/// What happened in a run, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub crashes_before_commit: u64,
    pub crashes_after_commit: u64,
    pub crashes_in_provider_call: u64,
    pub restarts: u64,
    pub faults_unreachable: u64,
    pub faults_unavailable: u64,
    pub faults_timeout_after_acting: u64,
    pub refusals: u64,
    pub failed_settlements: u64,
    pub webhooks_sent: u64,
    pub webhooks_duplicated: u64,
    pub webhooks_late: u64,
    pub webhooks_lost: u64,
    pub webhooks_applied: u64,
    pub webhooks_already_applied: u64,
    pub webhooks_duplicate: u64,
    pub webhooks_redelivered: u64,
    pub races_cancel: u64,
    pub races_steal: u64,
    pub races_webhook: u64,
    pub quotes: u64,
    pub payments_accepted: u64,
    pub payments_refused: u64,
    pub quotes_paid_at_expiry: u64,
    pub requests_lost: u64,
    pub requests_unavailable: u64,
    pub client_replays: u64,
    pub cancels_won: u64,
    pub cancels_refused: u64,
    pub operator_retries: u64,
    pub operator_redrives: u64,
    pub jobs_run: u64,
    pub commits: u64,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// The payment it broke on (may be empty).
    pub payment_id: String,
    /// What was seen.
    pub detail: String,
    /// Simulated time it was seen at.
    pub at: i64,
}

/// Simulated time: moved only by the run.
#[derive(Debug)]
pub struct SimClock(AtomicI64);

/// Where simulated time starts: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

impl SimClock {
    fn new() -> Arc<SimClock> {
        Arc::new(SimClock(AtomicI64::new(EPOCH_MS)))
    }

    /// Moves to `ms` (never backwards).
    fn set(&self, ms: i64) {
        self.0.fetch_max(ms, Ordering::SeqCst);
    }

    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.ms())
    }
}

/// What the run's parts share: the one RNG, the clock, whether the process is down, the
/// counters and the first violation.
pub struct Ctx {
    /// The run's options.
    pub opts: Options,
    rng: Mutex<StdRng>,
    clock: Arc<SimClock>,
    /// The process has crashed and not been restarted yet: nothing it does takes effect.
    down: AtomicBool,
    /// Crashes are injected only once start-up is done.
    armed: AtomicBool,
    stats: Mutex<Stats>,
    violation: Mutex<Option<Violation>>,
    trail: Mutex<Vec<String>>,
    /// Payments whose cancel was answered 200.
    won: Mutex<std::collections::HashSet<String>>,
    /// Payments a merchant sent a cancel for (answered or not).
    tried: Mutex<std::collections::HashSet<String>>,
}

impl Ctx {
    fn new(opts: Options, clock: Arc<SimClock>) -> Arc<Ctx> {
        Arc::new(Ctx {
            rng: Mutex::new(StdRng::seed_from_u64(opts.seed)),
            opts,
            clock,
            down: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            stats: Mutex::new(Stats::default()),
            violation: Mutex::new(None),
            trail: Mutex::new(Vec::new()),
            won: Mutex::new(std::collections::HashSet::new()),
            tried: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng().random::<f64>() < p
    }

    /// Uniform in `0..n`.
    pub fn below(&self, n: u64) -> u64 {
        self.rng().random_range(0..n.max(1))
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng().random_range(lo..=hi)
        }
    }

    fn seed(&self) -> u64 {
        self.rng().random()
    }

    /// Simulated now, ms.
    pub fn now(&self) -> i64 {
        self.clock.ms()
    }

    /// Whether the process is down (crashed, not yet restarted).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Updates the counters.
    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a broken invariant (the first one is kept).
    pub fn violate(&self, invariant: &'static str, payment_id: &str, detail: String) {
        let mut v = self.violation.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_none() {
            *v = Some(Violation {
                invariant,
                payment_id: payment_id.to_owned(),
                detail,
                at: self.now(),
            });
        }
    }

    fn violation(&self) -> Option<Violation> {
        self.violation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds a line to the trail when `payment_id` is the one being traced.
    pub fn trace(&self, payment_id: &str, line: String) {
        if self.opts.trace.as_deref() == Some(payment_id) {
            let at = self.now() - EPOCH_MS;
            self.trail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{:>10.3}s  {line}", at as f64 / 1000.0));
        }
    }

    fn won_cancel(&self, payment_id: &str) {
        self.won
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payment_id.to_owned());
    }

    fn cancels_won(&self) -> std::collections::HashSet<String> {
        self.won.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn tried_cancel(&self, payment_id: &str) {
        self.tried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payment_id.to_owned());
    }

    fn cancels_tried(&self) -> std::collections::HashSet<String> {
        self.tried.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A provider call may be where the process dies (after the provider acted).
    fn crash_in_call(&self) -> bool {
        if self.armed.load(Ordering::SeqCst) && !self.is_down() && self.chance(self.opts.crash_rate)
        {
            self.down.store(true, Ordering::SeqCst);
            self.count(|s| s.crashes_in_provider_call += 1);
            return true;
        }
        false
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("seed", &self.opts.seed)
            .finish()
    }
}

/// The store's crash seam under simulation.
#[derive(Debug)]
struct Faults(Arc<Ctx>);

impl CommitFaults for Faults {
    fn at_commit(&self) -> Crash {
        let ctx = &self.0;
        if !ctx.armed.load(Ordering::SeqCst) {
            return Crash::No;
        }
        if ctx.is_down() {
            // A dead process commits nothing.
            return Crash::BeforeCommit;
        }
        ctx.count(|s| s.commits += 1);
        if !ctx.chance(ctx.opts.crash_rate) {
            return Crash::No;
        }
        ctx.down.store(true, Ordering::SeqCst);
        if ctx.below(2) == 0 {
            ctx.count(|s| s.crashes_before_commit += 1);
            Crash::BeforeCommit
        } else {
            ctx.count(|s| s.crashes_after_commit += 1);
            Crash::AfterCommit
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The options it ran with.
    pub opts: Options,
    /// Payments by final state (and merchant requests refused at creation).
    pub by_state: BTreeMap<String, u64>,
    /// Simulated time from the first arrival to the end, ms.
    pub simulated_ms: i64,
    /// Counters.
    pub stats: Stats,
    /// Invariant checks made.
    pub checks: u64,
    /// Payments the end-of-run checks covered.
    pub payments_checked: u64,
    /// Merchant orders that arrived (all of `--payments`, unless an invariant broke first).
    pub arrived: u64,
    /// The digest of the final state.
    pub digest: String,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// The trail of the violation's payment (from a traced replay).
    pub trail: Vec<String>,
    /// Wall time of the run, s (not part of the digest: it is the only thing that varies).
    pub wall_secs: f64,
    /// CPU time of the process during the run, s.
    pub cpu_secs: f64,
}

impl Summary {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
}

fn hms(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}h {:02}m {:02}s", s / 3600, (s / 60) % 60, s % 60)
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        let o = &self.opts;
        writeln!(
            f,
            "corridor simulate · seed {} · {} payments · store sqlite · market ±{}/s{}",
            o.seed,
            o.payments,
            o.market_volatility,
            o.plant
                .map(|b| format!(" · planted bug: {b:?}"))
                .unwrap_or_default()
        )?;
        let states: Vec<String> = self
            .by_state
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "  final states      {}", states.join(", "))?;
        writeln!(
            f,
            "  simulated time    {} ({} quotes, {} payments accepted, {} refused at creation, {} quotes paid at their expiry)",
            hms(self.simulated_ms),
            s.quotes,
            s.payments_accepted,
            s.payments_refused,
            s.quotes_paid_at_expiry
        )?;
        writeln!(
            f,
            "  crashes           {} ({} before a commit, {} after a commit with the answer lost, {} during a provider call); {} restarts",
            s.crashes_before_commit + s.crashes_after_commit + s.crashes_in_provider_call,
            s.crashes_before_commit,
            s.crashes_after_commit,
            s.crashes_in_provider_call,
            s.restarts
        )?;
        writeln!(
            f,
            "  provider faults   {} ({} unreachable, {} 503 before acting, {} timeouts after acting); {} refusals, {} failed settlements",
            s.faults_unreachable + s.faults_unavailable + s.faults_timeout_after_acting,
            s.faults_unreachable,
            s.faults_unavailable,
            s.faults_timeout_after_acting,
            s.refusals,
            s.failed_settlements
        )?;
        writeln!(
            f,
            "  webhooks          {} sent, {} duplicated, {} late, {} lost; applied {}, already settled {}, duplicate {}, redelivered {}",
            s.webhooks_sent,
            s.webhooks_duplicated,
            s.webhooks_late,
            s.webhooks_lost,
            s.webhooks_applied,
            s.webhooks_already_applied,
            s.webhooks_duplicate,
            s.webhooks_redelivered
        )?;
        writeln!(
            f,
            "  races             {} cancels, {} lease takeovers, {} webhooks during a provider call",
            s.races_cancel, s.races_steal, s.races_webhook
        )?;
        writeln!(
            f,
            "  merchant          {} requests lost to a crash, {} answered 503, {} replays of an Idempotency-Key, {} cancels won, {} refused",
            s.requests_lost,
            s.requests_unavailable,
            s.client_replays,
            s.cancels_won,
            s.cancels_refused
        )?;
        writeln!(
            f,
            "  operator          {} step retries, {} dead jobs redriven",
            s.operator_retries, s.operator_redrives
        )?;
        writeln!(
            f,
            "  work              {} jobs run, {} commits",
            s.jobs_run, s.commits
        )?;
        match &self.violation {
            None => writeln!(
                f,
                "  invariants        {} checks, {} payments at the end: all hold",
                self.checks, self.payments_checked
            )?,
            Some(v) => {
                writeln!(
                    f,
                    "  INVARIANT BROKEN  {}: payment {} at {:.3}s: {}",
                    v.invariant,
                    if v.payment_id.is_empty() {
                        "-"
                    } else {
                        &v.payment_id
                    },
                    (v.at - EPOCH_MS) as f64 / 1000.0,
                    v.detail
                )?;
                if !self.trail.is_empty() {
                    writeln!(f, "  trail of {} (replayed from the seed):", v.payment_id)?;
                    for line in &self.trail {
                        writeln!(f, "    {line}")?;
                    }
                }
                writeln!(
                    f,
                    "  replay with: corridor simulate --seed {} --payments {}",
                    o.seed, o.payments
                )?;
            }
        }
        writeln!(f, "  digest            {}", self.digest)?;
        write!(
            f,
            "  speed             {:.1} s wall, {:.1} s CPU, {:.0} payments/s of simulation",
            self.wall_secs,
            self.cpu_secs,
            self.arrived as f64 / self.wall_secs.max(1e-9)
        )
    }
}
