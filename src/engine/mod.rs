//! The workers: claim due jobs from the database queue, run their handlers, and record
//! the outcome. Any process with workers can run any job; leases and compare-and-set keep
//! each payment moving exactly once.

pub mod alerts;
pub mod backoff;
pub mod events;
pub mod janitor;
pub mod steps;
pub mod webhooks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::domain::RateTable;
use crate::providers::Providers;
use crate::store::jobs::{self, Job};
use crate::store::{Store, StoreError};

/// Engine tunables, derived from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent handlers.
    pub workers: usize,
    /// How long a claimed job is held.
    pub lease: Duration,
    /// First settlement poll delay, ms.
    pub poll_interval_ms: i64,
    /// Timeout of one provider call.
    pub provider_timeout: Duration,
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
    /// Attempts before a failing job is dead-lettered (for jobs the engine creates).
    pub job_max_attempts: i64,
    /// Where new alerts are pushed, if anywhere.
    pub alert_sink: Option<alerts::AlertSink>,
}

/// Why a job run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying with backoff (provider or database unavailable).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help; the job goes dead at once for an operator to look at.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Transient(e.to_string())
    }
}

/// Everything a job handler needs.
pub struct Engine {
    /// Database.
    pub store: Store,
    /// Time.
    pub clock: SharedClock,
    /// Onramp and offramp.
    pub providers: Providers,
    /// Market mid rates (for the executed-rate record).
    pub rates: RateTable,
    /// Tunables.
    pub cfg: EngineConfig,
    /// Signalled when new work is due now (in-process enqueue).
    pub wake: Arc<Notify>,
    rng: Mutex<StdRng>,
    owner: String,
    endpoint_slots: Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    delivery_clients:
        Mutex<std::collections::HashMap<(String, std::net::SocketAddr), reqwest::Client>>,
}

impl Engine {
    /// An engine with a unique lease owner id.
    pub fn new(
        store: Store,
        clock: SharedClock,
        providers: Providers,
        rates: RateTable,
        cfg: EngineConfig,
        wake: Arc<Notify>,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            store,
            clock,
            providers,
            rates,
            cfg,
            wake,
            rng: Mutex::new(StdRng::from_os_rng()),
            owner: format!("worker_{}", uuid::Uuid::new_v4().simple()),
            endpoint_slots: Mutex::new(std::collections::HashMap::new()),
            delivery_clients: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Claims and runs jobs until `shutdown` turns true, then waits for running handlers and
    /// hands back any lease it still holds.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let listener = self.store.listen_for_jobs(self.wake.clone());
        let slots = Arc::new(Semaphore::new(self.cfg.workers.max(1)));
        let mut running = JoinSet::new();
        tracing::info!(workers = self.cfg.workers, owner = %self.owner, "engine started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = running.join_next() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let claimed = match self.claim(free).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                let nap = self.idle_nap().await;
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(nap) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
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
        while running.join_next().await.is_some() {}
        if let Some(l) = listener {
            l.abort();
        }
        if let Ok(mut tx) = self.store.begin().await {
            let _ = jobs::release_owner(&mut tx, &self.owner, self.clock.now()).await;
            let _ = tx.commit().await;
        }
        tracing::info!("engine stopped");
    }

    /// Opens a transaction in which `job` is confirmed still ours; `None` (and nothing
    /// written) when the lease ran out and another worker took the job over.
    pub async fn begin_held(&self, job: &Job) -> Result<Option<crate::store::Tx>, JobError> {
        let mut tx = self.store.begin().await?;
        if jobs::hold(&mut tx, job).await? {
            Ok(Some(tx))
        } else {
            tracing::warn!(job_id = %job.id, "lease lost before the result was written; leaving the job to its new holder");
            tx.rollback().await.map_err(StoreError::from)?;
            Ok(None)
        }
    }

    /// How long to sleep with nothing due: until the next scheduled job, at most the idle poll
    /// (other processes may schedule work we are not told about).
    async fn idle_nap(&self) -> Duration {
        let next = async {
            let mut conn = self.store.reader().await?;
            jobs::next_due(&mut conn).await
        }
        .await;
        match next {
            Ok(Some(at)) => {
                let wait = at.millis().saturating_sub(self.clock.now().millis()).max(1);
                Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX))
                    .min(self.cfg.idle_poll)
            }
            _ => self.cfg.idle_poll,
        }
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let now = self.clock.now();
        let lease_ms = i64::try_from(self.cfg.lease.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.store.begin().await?;
        let jobs = jobs::claim(
            &mut tx,
            self.store.backend(),
            &self.owner,
            now,
            now.plus_millis(lease_ms),
            i64::try_from(limit.min(64)).unwrap_or(64),
        )
        .await?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn handle(&self, job: Job) {
        // Instrumented rather than entered: a guard held across awaits would leave the span
        // on whatever else later runs on this thread.
        let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, payment_id = job.payment_id.as_deref(), merchant_id = tracing::field::Empty);
        self.run_job(job).instrument(span).await;
    }

    async fn run_job(&self, job: Job) {
        let result = match job.kind.as_str() {
            steps::KIND => steps::run(self, &job).await,
            janitor::KIND => janitor::run(self, &job).await,
            events::DELIVER => webhooks::run(self, &job).await,
            alerts::KIND => alerts::run(self, &job).await,
            other => Err(JobError::Permanent(format!("unknown job kind {other}"))),
        };
        let Err(err) = result else { return };
        let now = self.clock.now();
        let mut job = job;
        if matches!(err, JobError::Permanent(_)) {
            job.attempts = job.max_attempts;
        }
        let jitter = self
            .rng
            .lock()
            .map(|mut r| r.random_range(0.8..=1.2))
            .unwrap_or(1.0);
        let retry_at = now.plus_millis(backoff::retry_delay_ms(job.attempts, jitter));
        let recorded = async {
            let mut tx = self.store.begin().await?;
            let dead = jobs::fail(&mut tx, &job, &err.to_string(), now, retry_at).await?;
            tx.commit().await?;
            Ok::<Option<bool>, StoreError>(dead)
        }
        .await;
        match recorded {
            Ok(Some(true)) => {
                metrics::counter!("corridor_jobs_dead_total").increment(1);
                tracing::error!(error = %err, attempts = job.attempts, "job dead-lettered");
            }
            Ok(Some(false)) => {
                metrics::counter!("corridor_job_retries_total").increment(1);
                tracing::warn!(error = %err, attempts = job.attempts, "job failed, will retry");
            }
            Ok(None) => {
                tracing::warn!(error = %err, "job failed after its lease was lost; its new holder runs it")
            }
            // The lease runs out and the job comes back by itself.
            Err(e) => tracing::warn!(error = %e, job_error = %err, "could not record job failure"),
        }
    }
}
