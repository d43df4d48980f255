//! The workers: claim due jobs from the database queue, dispatch each typed [`Task`] to its
//! handler, and record the outcome. Any process with workers can run any job; leases and
//! compare-and-set keep each payment moving exactly once.
//!
//! Payment steps are the [`crate::service`]'s `run_step` use case; deliveries, the alert
//! sweep and housekeeping live beside this module. Failure bookkeeping — backoff with
//! jitter, dead-lettering, the lease fence on the failure write — is [`Engine::record_failure`],
//! the one place for it. [`Engine::run_due`] runs every due job once, now, for tests and the
//! simulator that cannot wait on timers.

pub mod alerts;
pub mod janitor;
pub mod reconciliations;
pub mod webhooks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::domain::backoff;
use crate::domain::task::Task;
use crate::service::Service;
use crate::service::settle::StepError;
use crate::store::jobs::Lane;
use crate::store::jobs::{self, Job};
use crate::store::unit::Write;
use crate::store::{Rejected, StoreError, UnitOfWork};

/// Engine tunables, derived from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent handlers of payment steps and other work.
    pub workers: usize,
    /// Concurrent webhook deliveries (a lane of their own: steps never wait behind them).
    pub webhook_workers: usize,
    /// How long a claimed job is held.
    pub lease: Duration,
    /// Longest idle wait between claims when nothing wakes the engine.
    pub idle_poll: Duration,
    /// Delays between webhook delivery attempts.
    pub webhook_retry: Vec<Duration>,
    /// How long one delivery may take.
    pub webhook_timeout: Duration,
    /// Allow `http` and private addresses as webhook targets (development only).
    pub webhook_allow_private: bool,
    /// A payment this long in one non-terminal state raises an alert.
    pub stuck_after: Duration,
    /// Where new alerts are pushed, if anywhere.
    pub alert_sink: Option<alerts::AlertSink>,
    /// How long events, delivery attempts and cleared alerts are kept.
    pub history_retention: Duration,
    /// How often the recurring reconciliation starts a run (zero: never).
    pub reconcile_every: Duration,
    /// How long a job failing transiently keeps being retried (once it also failed its
    /// `max_attempts`) before it is dead-lettered.
    pub retry_for: Duration,
}

/// While wake-ups keep coming, how often an idle delivery lane claims again.
const DELIVERY_RECHECK_MS: u64 = 50;

/// Why a job run did not finish.
pub type JobError = StepError;

/// Everything a job handler needs.
pub struct Engine {
    /// The use cases (and through them the store, clock and providers).
    pub service: Arc<Service>,
    /// Tunables.
    pub cfg: EngineConfig,
    rng: Mutex<StdRng>,
    owner: String,
    endpoint_slots: Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    merchant_slots: Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    delivery_clients:
        Mutex<std::collections::HashMap<(String, std::net::SocketAddr), reqwest::Client>>,
}

impl Engine {
    /// An engine with a unique lease owner id; `seed` drives its jitter.
    pub fn new(service: Arc<Service>, cfg: EngineConfig, seed: u64) -> Arc<Engine> {
        let mut rng = StdRng::seed_from_u64(seed);
        let owner = format!(
            "worker_{:016x}{:016x}",
            rng.random::<u64>(),
            rng.random::<u64>()
        );
        Arc::new(Engine {
            service,
            cfg,
            rng: Mutex::new(rng),
            owner,
            endpoint_slots: Mutex::new(std::collections::HashMap::new()),
            merchant_slots: Mutex::new(std::collections::HashMap::new()),
            delivery_clients: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn store(&self) -> &crate::store::Store {
        &self.service.store
    }

    fn now(&self) -> crate::domain::Timestamp {
        self.service.clock.now()
    }

    /// A jitter factor in `[800, 1200]` per mille, from the engine's seeded RNG.
    fn jitter_permille(&self) -> i64 {
        self.rng
            .lock()
            .map(|mut r| r.random_range(800..=1_200))
            .unwrap_or(1_000)
    }

    /// Claims and runs jobs until `shutdown` turns true, then waits for running handlers and
    /// hands back any lease it still holds.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let listener = self.store().listen_for_jobs();
        let wake = self.store().wakeups();
        // Two budgets: payment steps (and housekeeping) never queue behind deliveries to
        // receivers that take their time, and deliveries keep flowing while steps are busy.
        let lanes = [
            (
                Lane::Steps,
                Arc::new(Semaphore::new(self.cfg.workers.max(1))),
            ),
            (
                Lane::Deliveries,
                Arc::new(Semaphore::new(self.cfg.webhook_workers.max(1))),
            ),
        ];
        let mut running = JoinSet::new();
        tracing::info!(workers = self.cfg.workers, webhook_workers = self.cfg.webhook_workers, owner = %self.owner, "engine started");
        // A lane whose last claim came back empty is "dry" until something may have changed
        // (a wake-up, or the idle poll): claims are writes, and on SQLite every one takes a
        // turn of the single writer, so an idle lane must not claim on every loop.
        let mut dry = [false; 2];
        let mut dry_since = std::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            let mut claimed_any = false;
            for (i, (lane, slots)) in lanes.iter().enumerate() {
                let free = slots.available_permits();
                if free == 0 || dry[i] {
                    continue;
                }
                let claimed = match self.claim(*lane, free).await {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed");
                        Vec::new()
                    }
                };
                if claimed.is_empty() {
                    dry[i] = true;
                    continue;
                }
                claimed_any = true;
                for job in claimed {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let engine = self.clone();
                    running.spawn(async move {
                        engine.handle(job).await;
                        drop(permit);
                    });
                }
            }
            if claimed_any {
                continue;
            }
            // Every lane is full or dry: wait for a slot to free up, a wake-up, or the poll
            // (until the next due job, when a lane is dry; a full lane needs no look-up).
            let nap = if dry.contains(&true) {
                self.idle_nap().await
            } else {
                self.cfg.idle_poll
            };
            tokio::select! {
                // A wake-up says work was committed; which lane's, it does not say. Payment
                // steps are retried at once, deliveries (latency-tolerant) at most every
                // DELIVERY_RECHECK_MS while wake-ups keep coming.
                _ = wake.notified() => {
                    dry[0] = false;
                    if dry_since.elapsed() >= Duration::from_millis(DELIVERY_RECHECK_MS) {
                        dry[1] = false;
                        dry_since = std::time::Instant::now();
                    }
                }
                _ = tokio::time::sleep(nap) => {
                    dry = [false; 2];
                    dry_since = std::time::Instant::now();
                }
                _ = shutdown.changed() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        while running.join_next().await.is_some() {}
        if let Some(l) = listener {
            l.abort();
        }
        let mut unit = UnitOfWork::at(self.now());
        unit.push(Write::ReleaseLeases {
            owner: self.owner.clone(),
        });
        if let Err(e) = self.store().commit(unit).await {
            tracing::warn!(error = %e, "could not hand back leases; they run out by themselves");
        }
        tracing::info!("engine stopped");
    }

    /// Runs every job due now, once each, one after another, and returns how many ran. Jobs
    /// a run makes due immediately are picked up too, so a caller can drive payments to the
    /// end without timers (tests, the simulator). Stops after `limit` jobs.
    pub async fn run_due(&self, limit: usize) -> Result<usize, StoreError> {
        let mut ran = 0;
        while ran < limit {
            let batch = self.claim(Lane::Any, (limit - ran).min(64)).await?;
            if batch.is_empty() {
                break;
            }
            for job in batch {
                self.handle(job).await;
                ran += 1;
            }
        }
        Ok(ran)
    }

    /// Runs due jobs, up to `concurrency` at a time, until none is due or `deadline` has
    /// passed (a serverless worker's bounded run: the jobs it claims it finishes, and it
    /// claims no more after the deadline). Returns how many ran and whether it stopped at
    /// the deadline with jobs still due.
    pub async fn run_due_until(
        &self,
        deadline: std::time::Instant,
        concurrency: usize,
    ) -> Result<(usize, bool), StoreError> {
        let mut ran = 0;
        loop {
            if std::time::Instant::now() >= deadline {
                let left = jobs::next_due(self.store())
                    .await?
                    .is_some_and(|at| at <= self.now());
                return Ok((ran, left));
            }
            let batch = self.claim(Lane::Any, concurrency.clamp(1, 64)).await?;
            if batch.is_empty() {
                return Ok((ran, false));
            }
            ran += batch.len();
            futures::future::join_all(batch.into_iter().map(|job| self.handle(job))).await;
        }
    }

    /// How long to sleep with nothing due: until the next scheduled job, at most the idle poll
    /// (other processes may schedule work we are not told about).
    async fn idle_nap(&self) -> Duration {
        match jobs::next_due(self.store()).await {
            Ok(Some(at)) => {
                let wait = at.millis().saturating_sub(self.now().millis()).max(1);
                Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX))
                    .min(self.cfg.idle_poll)
            }
            _ => self.cfg.idle_poll,
        }
    }

    async fn claim(&self, lane: Lane, limit: usize) -> Result<Vec<Job>, StoreError> {
        let now = self.now();
        let lease_ms = i64::try_from(self.cfg.lease.as_millis()).unwrap_or(i64::MAX);
        jobs::claim_lane(
            self.store(),
            lane,
            &self.owner,
            now,
            now.plus_millis(lease_ms),
            i64::try_from(limit.min(64)).unwrap_or(64),
        )
        .await
    }

    async fn handle(&self, job: Job) {
        // Instrumented rather than entered: a guard held across awaits would leave the span
        // on whatever else later runs on this thread.
        let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, payment_id = job.payment_id.as_deref(), merchant_id = tracing::field::Empty);
        self.run_job(job).instrument(span).await;
    }

    /// The one dispatch over job kinds.
    async fn run_job(&self, job: Job) {
        let result = match &job.task {
            Ok(Task::PaymentStep { state, polls }) => {
                self.service.run_step(&job, *state, *polls).await
            }
            Ok(Task::DeliverWebhook {
                event_id,
                endpoint_id,
                attempt,
            }) => webhooks::run(self, &job, event_id, endpoint_id, *attempt).await,
            Ok(Task::Housekeeping {}) => janitor::run(self, &job).await,
            Ok(Task::SweepAlerts {}) => alerts::run(self, &job).await,
            Ok(Task::Reconcile { reconciliation_id }) => {
                reconciliations::run(self, &job, reconciliation_id).await
            }
            Ok(Task::ScheduleReconciliation {}) => reconciliations::schedule(self, &job).await,
            // Redriven by an operator: the work it would have woken runs from the database.
            Ok(Task::DeadLetter { .. }) => self
                .commit_held(&job, vec![Write::CompleteHeld(job.lease.clone())])
                .await
                .map(|_| ()),
            Err(bad) => Err(JobError::Permanent(bad.clone())),
        };
        if let Err(err) = result {
            self.record_failure(job, err).await;
        }
    }

    /// Records a failed run, fenced by its lease: retried after exponential backoff with
    /// jitter, or dead-lettered once its attempts are spent (at once for a permanent error).
    async fn record_failure(&self, job: Job, err: JobError) {
        let now = self.now();
        let attempts = if matches!(err, JobError::Permanent(_)) {
            job.max_attempts
        } else {
            job.attempts
        };
        // A transient failure (a provider or database outage) is retried for the configured
        // window, not a number of attempts: an outage of minutes must not strand payments.
        let window_ms = i64::try_from(self.cfg.retry_for.as_millis()).unwrap_or(i64::MAX);
        let dead = attempts >= job.max_attempts
            && (matches!(err, JobError::Permanent(_))
                || backoff::retried_for_ms(attempts) >= window_ms);
        let retry_at = now.plus_millis(backoff::retry_delay_ms(attempts, self.jitter_permille()));
        let mut unit = UnitOfWork::at(now);
        unit.push(Write::FailJob {
            lease: job.lease.clone(),
            dead,
            error: err.to_string().chars().take(2_000).collect(),
            retry_at,
        });
        match self.store().commit(unit).await {
            Ok(Ok(())) if dead => {
                metrics::counter!("corridor_jobs_dead_total").increment(1);
                tracing::error!(error = %err, attempts, "job dead-lettered");
            }
            Ok(Ok(())) => {
                metrics::counter!("corridor_job_retries_total").increment(1);
                tracing::warn!(error = %err, attempts, "job failed, will retry");
            }
            Ok(Err(Rejected::LeaseLost)) | Ok(Err(_)) => {
                tracing::warn!(error = %err, "job failed after its lease was lost; its new holder runs it")
            }
            // The lease runs out and the job comes back by itself.
            Err(e) => tracing::warn!(error = %e, job_error = %err, "could not record job failure"),
        }
    }

    /// Commits `unit` fenced by `job`'s lease; a lost lease writes nothing and is not an
    /// error (the job's new holder runs it).
    pub(crate) async fn commit_held(
        &self,
        job: &Job,
        writes: Vec<Write>,
    ) -> Result<bool, JobError> {
        let mut unit = UnitOfWork::at(self.now());
        unit.push(Write::HoldLease(job.lease.clone()));
        for w in writes {
            unit.push(w);
        }
        match self.store().commit(unit).await? {
            Ok(()) => Ok(true),
            Err(Rejected::LeaseLost) => {
                tracing::warn!(job_id = %job.id, "lease lost before the result was written; leaving the job to its new holder");
                Ok(false)
            }
            Err(other) => Err(JobError::Transient(other.to_string())),
        }
    }
}
