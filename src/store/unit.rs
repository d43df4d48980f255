//! Units of work: everything one use case must commit together, handed to the store whole.
//!
//! A use case builds a [`UnitOfWork`] — a list of typed writes, some of them guards (a
//! compare-and-set, a lease fence, a unique insert) — and calls [`Store::commit`]. The store
//! applies them in order in one transaction; a guard that does not hold rejects the whole
//! unit (nothing of it is written) and says which guard it was. Nothing above the store opens
//! a transaction or names the driver, so the store is free to commit many units at once
//! (group commit), and another backend (an in-memory model for the simulator) can implement
//! the same seam.
//!
//! Every guard but the ledger's is checked by the write's first statement and writes nothing
//! when it fails: SQLite's group commit relies on it to leave a unit rejected by its first
//! write without a savepoint (see `group`).
//!
//! After a successful commit the store wakes this process's workers (and, on PostgreSQL,
//! every node's, by `pg_notify` inside the transaction) when the unit made work due now —
//! the one place that happens.

use crate::domain::task::Task;
use crate::domain::{Currency, PaymentRecord, PaymentState, Timestamp};

use super::idempotency::Response;
use super::jobs::{Lease, NewJob};
use super::merchants::Merchant;
use super::ops::{Alert, RatePin};
use super::payments::Transition;
use super::quotes::QuoteRecord;
use super::webhooks::{Delivery, Endpoint, NewEvent};
use super::{
    Store, StoreError, StoreResult, idempotency, jobs, ledger, merchants, ops, payments,
    provider_webhooks, quotes, settings, webhooks,
};

/// Which guard rejected a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The job's lease ran out and another worker holds it: this run writes nothing.
    #[error("the job's lease was lost")]
    LeaseLost,
    /// The payment (or job) is no longer in the state the use case decided on.
    #[error("the record moved on")]
    Stale,
    /// The quote already pays for another payment.
    #[error("the quote is already used")]
    QuoteUsed,
    /// Another request stored an answer under this idempotency key first.
    #[error("the idempotency key is taken")]
    IdempotencyKeyTaken,
    /// This provider webhook id was processed before.
    #[error("the webhook was already processed")]
    Duplicate,
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The row to create exists already.
    #[error("already exists")]
    Exists,
    /// A transfer of this role is already open for the payment.
    #[error("the payment already has that ledger transfer")]
    TransferExists,
    /// A refund would credit more than the payment captured from the merchant.
    #[error("the refund would exceed what the payment captured")]
    OverCapture,
}

/// One write of a unit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Guard: the running job is still held by this worker (lease fence).
    HoldLease(Lease),
    /// Guard: compare-and-set state change with its history row and typed facts.
    Transition(Transition),
    /// Guard: facts recorded while the payment stays in `state`.
    UpdateInState {
        /// Payment.
        payment_id: String,
        /// Expected state.
        state: PaymentState,
        /// Facts.
        changes: Vec<crate::domain::lifecycle::Change>,
    },
    /// Guard: the payment is still in `state` (decisions that change nothing on the payment
    /// itself — an operator's retry — are fenced by it like every other).
    ExpectState {
        /// Payment.
        payment_id: String,
        /// Expected state.
        state: PaymentState,
    },
    /// Guard: a worker is about to initiate the onramp; cancel can no longer win.
    ClaimOnramp {
        /// Payment (must be `PENDING`).
        payment_id: String,
    },
    /// Hands back this run's onramp claim (its call provably reached no provider), so the
    /// payment can be cancelled again; only the claim made at `claimed_at`, only in `PENDING`.
    ReleaseOnramp {
        /// Payment.
        payment_id: String,
        /// When this run claimed it.
        claimed_at: Timestamp,
    },
    /// Guard: the ledger postings of a payment's state change (transfers opened, posted or
    /// voided), with the ledger's own guards ([`Rejected::TransferExists`],
    /// [`Rejected::OverCapture`]).
    Ledger {
        /// Whose ledger.
        owner: ledger::LedgerOwner,
        /// What changes in it.
        postings: Vec<crate::domain::ledger::Posting>,
    },
    /// A new (pending) reconciliation run.
    InsertReconciliation(super::reconciliations::Reconciliation),
    /// Guard: a pending run finished with its result ([`Rejected::Stale`] if finished before).
    FinishReconciliation(super::reconciliations::Reconciliation),
    /// A new quote.
    InsertQuote(QuoteRecord),
    /// Guard: the quote is unused; it now pays for `payment_id`.
    MarkQuoteUsed {
        /// Quote.
        quote_id: String,
        /// Payment it pays for.
        payment_id: String,
    },
    /// A new payment with its first history row.
    InsertPayment(Box<PaymentRecord>),
    /// Guard: the first answer stored under an idempotency key.
    SaveResponse(Response),
    /// Guard: a provider webhook id not seen before.
    RememberWebhook {
        /// Provider name.
        provider: String,
        /// `webhook-id`.
        webhook_id: String,
    },
    /// An event in the outbox, fanned out into one delivery job per subscribed endpoint.
    RecordEvent(NewEvent),
    /// A payment's step job: the running one rescheduled, or the payment's latest revived,
    /// or a new one.
    ScheduleStep {
        /// Payment.
        payment_id: String,
        /// The hold of the job running this step, if any: that job is rescheduled, fenced by
        /// its lease (a guard: [`Rejected::LeaseLost`] when another worker holds it now), so
        /// a step's unit needs no separate [`Write::HoldLease`].
        running: Option<Lease>,
        /// The step.
        task: Task,
        /// When it is due.
        run_at: Timestamp,
        /// Attempts for a new job.
        max_attempts: i64,
    },
    /// Guard (lease fence): the running job stays leased to this worker with `task`, which it
    /// runs next at once (should it die, the lease runs out and another worker runs `task`).
    KeepLease {
        /// The hold.
        lease: Lease,
        /// The step it runs next.
        task: Task,
    },
    /// Removes a finished payment's idle step jobs.
    CompleteSteps {
        /// Payment.
        payment_id: String,
    },
    /// A new job.
    Enqueue(NewJob),
    /// Guard (lease fence): removes the finished job this worker still holds.
    CompleteHeld(Lease),
    /// Removes a finished job.
    CompleteJob {
        /// Job.
        job_id: String,
    },
    /// Runs a job again later with a new payload.
    Reschedule {
        /// Job.
        job_id: String,
        /// Its task now.
        task: Task,
        /// When.
        run_at: Timestamp,
    },
    /// Guard (lease fence): records a failed run, for a retry at `retry_at` or dead.
    FailJob {
        /// The failed run's hold.
        lease: Lease,
        /// Whether it is dead now.
        dead: bool,
        /// What went wrong.
        error: String,
        /// When it is due again (unused when dead).
        retry_at: Timestamp,
    },
    /// A job recorded dead at once, unless one with its id exists (an outside queue's
    /// dead-lettered message, seen again when the queue redelivers it before it is deleted).
    RecordDead {
        /// The job.
        job: NewJob,
        /// Why it is dead.
        error: String,
    },
    /// Guard: a dead job back in the queue with fresh attempts.
    Redrive {
        /// Job.
        job_id: String,
    },
    /// Hands back every lease `owner` holds (a stopping worker).
    ReleaseLeases {
        /// Worker id.
        owner: String,
    },
    /// Makes sure a recurring job exists.
    EnsureRecurring {
        /// Its fixed id.
        job_id: String,
        /// Its task.
        task: Task,
        /// First due time if created now.
        run_at: Timestamp,
    },
    /// An operator action in the audit log.
    Audit {
        /// Who (`admin-api`, `dashboard`).
        actor: String,
        /// What (`payment.retry`).
        action: String,
        /// On what.
        target: String,
        /// Details.
        detail: String,
    },
    /// Sets (or replaces) a rate pin.
    PinRate(RatePin),
    /// Guard: removes an existing rate pin.
    UnpinRate {
        /// Source.
        from: Currency,
        /// Payout.
        to: Currency,
    },
    /// A new merchant and its first key.
    InsertMerchant {
        /// The merchant.
        merchant: Merchant,
        /// SHA-256 of its key.
        key_hash: String,
        /// Displayable prefix of the key.
        key_prefix: String,
    },
    /// Guard: replaces an existing merchant's keys.
    RotateMerchantKey {
        /// Merchant.
        merchant_id: String,
        /// SHA-256 of the new key.
        key_hash: String,
        /// Its prefix.
        key_prefix: String,
    },
    /// A new webhook endpoint.
    InsertEndpoint(Endpoint),
    /// Guard: deletes an endpoint of this merchant.
    DeleteEndpoint {
        /// Owner.
        merchant_id: String,
        /// Endpoint.
        endpoint_id: String,
    },
    /// Guard: rotates an endpoint's secret (the old one keeps signing until `overlap_until`).
    RotateEndpointSecret {
        /// Owner.
        merchant_id: String,
        /// Endpoint.
        endpoint_id: String,
        /// New `whsec_…`.
        secret: String,
        /// End of the overlap.
        overlap_until: Timestamp,
    },
    /// Stops deliveries to an endpoint.
    DisableEndpoint {
        /// Endpoint.
        endpoint_id: String,
        /// Why.
        reason: String,
    },
    /// One delivery attempt in the log.
    InsertDelivery(Delivery),
    /// A dashboard session.
    CreateSession {
        /// SHA-256 of the session token.
        token_hash: String,
        /// End.
        expires_at: Timestamp,
    },
    /// Ends a dashboard session.
    DeleteSession {
        /// SHA-256 of the session token.
        token_hash: String,
    },
    /// A new open alert.
    RaiseAlert(Alert),
    /// An alert whose condition is gone.
    ClearAlert {
        /// Alert.
        alert_id: String,
    },
    /// Guard (when `required`): a setting inserted unless present.
    InsertSetting {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Reject the unit with [`Rejected::Exists`] when the key is present.
        required: bool,
    },
    /// Purges what is older than `cutoff` (quotes unused past expiry, idempotency keys,
    /// provider webhook ids), expired dashboard sessions, and — older than `history_cutoff`
    /// — events, delivery attempts and cleared alerts (at most [`PURGE_BATCH`] rows of each
    /// per pass, so one pass stays a short transaction however much has piled up).
    Purge {
        /// Retention limit of short-lived records.
        cutoff: Timestamp,
        /// Retention limit of the event and delivery history.
        history_cutoff: Timestamp,
    },
}

/// Rows of each history table one purge pass deletes at most.
pub const PURGE_BATCH: i64 = 10_000;

/// How late an event's deliveries may go out when they ride on another wake-up of their
/// unit (serverless only: wake-ups are whole seconds anyway).
pub const EVENT_WAKE_SLACK_MS: i64 = 1_000;

/// How far ahead a scheduled job still wakes idle workers (their fallback poll is 250 ms).
const WAKE_AHEAD_MS: i64 = 250;

/// Everything one use case commits together, applied in order at one instant.
#[derive(Debug, Clone)]
#[must_use = "a unit of work does nothing until the store commits it"]
pub struct UnitOfWork {
    at: Timestamp,
    writes: Vec<Write>,
    wakes: bool,
    /// When the jobs this unit schedules are due (for a [`WakeupSink`]).
    due: Vec<Timestamp>,
    /// Whether it records an event (which may fan out into deliveries due at once).
    event: bool,
}

/// Where a committed unit's wake-ups go besides this process's workers: an outside queue
/// (SQS, when serverless) that starts a worker when the unit's jobs fall due. The database
/// stays the truth: a wake-up lost only delays a job until a sweep finds it due, a wake-up
/// delivered twice finds it done or leased. Called after the commit returned, with the
/// instants the unit's jobs are due; a failure to send is the sink's to log, never the
/// unit's (it is committed).
pub trait WakeupSink: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one wake-up per instant in `due` (sorted, distinct), `now` being the unit's.
    fn send<'a>(
        &'a self,
        due: &'a [Timestamp],
        now: Timestamp,
    ) -> futures::future::BoxFuture<'a, ()>;
}

impl UnitOfWork {
    /// An empty unit whose writes happen at `at`.
    pub fn at(at: Timestamp) -> UnitOfWork {
        UnitOfWork {
            at,
            writes: Vec::new(),
            wakes: false,
            due: Vec::new(),
            event: false,
        }
    }

    /// The unit's instant.
    pub fn now(&self) -> Timestamp {
        self.at
    }

    /// Adds a write.
    pub fn push(&mut self, w: Write) -> &mut Self {
        // Work due now, or soon enough that an idle worker sleeping its fallback poll would
        // oversleep it: the worker wakes, finds it not yet due and sleeps until it is.
        let due = |run_at: &Timestamp| *run_at <= self.at.plus_millis(WAKE_AHEAD_MS);
        self.wakes |= match &w {
            Write::ScheduleStep { run_at, .. } | Write::Reschedule { run_at, .. } => due(run_at),
            Write::Enqueue(j) => due(&j.run_at),
            Write::Redrive { .. } | Write::RecordEvent(_) => true,
            _ => false,
        };
        let due_at = match &w {
            Write::ScheduleStep { run_at, .. } => Some(*run_at),
            // Recurring jobs are run by the sweeper's schedule, not woken.
            Write::Reschedule { run_at, task, .. } if !task.is_recurring() => Some(*run_at),
            Write::Enqueue(j) => Some(j.run_at),
            Write::FailJob {
                dead: false,
                retry_at,
                ..
            } => Some(*retry_at),
            // Leases handed back are due now.
            Write::Redrive { .. } | Write::ReleaseLeases { .. } => Some(self.at),
            Write::RecordEvent(_) => {
                self.event = true;
                None
            }
            _ => None,
        };
        self.due.extend(due_at);
        self.writes.push(w);
        self
    }

    /// Adds writes, in order.
    pub fn extend(&mut self, writes: impl IntoIterator<Item = Write>) -> &mut Self {
        for w in writes {
            self.push(w);
        }
        self
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Whether committing this unit makes work due now or within the idle poll.
    pub fn wakes_workers(&self) -> bool {
        self.wakes
    }

    /// When the jobs this unit schedules fall due: sorted, distinct, none before the unit's
    /// instant. An event's deliveries (if it fans out into any) are due at once, but a
    /// worker woken for anything runs every job then due, so they need a wake-up of their
    /// own only when the unit has no other within [`EVENT_WAKE_SLACK_MS`]: a transition's
    /// event rides on its next step's wake-up — one message, not two.
    pub fn due_times(&self) -> Vec<Timestamp> {
        let mut due: Vec<Timestamp> = self.due.iter().map(|t| (*t).max(self.at)).collect();
        due.sort();
        due.dedup();
        let covered = due
            .first()
            .is_some_and(|t| t.millis() - self.at.millis() <= EVENT_WAKE_SLACK_MS);
        if self.event && !covered {
            due.insert(0, self.at);
        }
        due
    }

    /// Whether the unit holds no write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

impl Store {
    /// Clears the caches a unit's writes change (after it committed, and — harmless — after
    /// it failed).
    pub(super) fn invalidate_caches(&self, unit: &UnitOfWork) {
        for w in &unit.writes {
            match w {
                Write::RotateMerchantKey { .. } => self.caches.keys.clear(),
                Write::PinRate(_) | Write::UnpinRate { .. } => self.caches.pins.clear(),
                _ => {}
            }
        }
    }

    /// Commits `unit` in one transaction: all of it, or — when a guard does not hold —
    /// none of it, with the guard that failed. A unit is acknowledged only once the commit
    /// returned; any error leaves nothing written.
    pub async fn commit(&self, unit: UnitOfWork) -> StoreResult<Result<(), Rejected>> {
        let Some(sink) = &self.wakeup_sink else {
            return self.around_commit(self.commit_unit(unit)).await;
        };
        let (due, at) = (unit.due_times(), unit.at);
        let outcome = self.around_commit(self.commit_unit(unit)).await;
        if matches!(outcome, Ok(Ok(()))) && !due.is_empty() {
            sink.send(&due, at).await;
        }
        outcome
    }

    /// The same store, telling `sink` when the jobs of each committed unit fall due.
    pub fn with_wakeup_sink(mut self, sink: std::sync::Arc<dyn WakeupSink>) -> Store {
        self.wakeup_sink = Some(sink);
        self
    }

    /// Runs `commit` — a unit's or a claim's — through the simulator's crash seam, when there
    /// is one: the process may die before it (nothing is written) or after it (written, and
    /// the caller never hears).
    pub(super) async fn around_commit<T>(
        &self,
        commit: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        match self.faults.as_ref().map_or(Crash::No, |f| f.at_commit()) {
            Crash::No => commit.await,
            Crash::BeforeCommit => Err(Crash::error()),
            Crash::AfterCommit => {
                let _ = commit.await;
                Err(Crash::error())
            }
        }
    }

    /// The same store, with a simulator deciding where the process crashes.
    pub fn with_faults(mut self, faults: std::sync::Arc<dyn CommitFaults>) -> Store {
        self.faults = Some(faults);
        self
    }

    /// Forgets every cached read, as a restarted process starts without them.
    pub fn forget_caches(&self) {
        self.caches.keys.clear();
        self.caches.pins.clear();
        self.caches.accounts.clear();
    }

    async fn commit_unit(&self, unit: UnitOfWork) -> StoreResult<Result<(), Rejected>> {
        if let Some(group) = &self.group {
            return group.commit(unit).await;
        }
        if let Some(batch) = &self.batch {
            return batch.commit(unit).await;
        }
        self.commit_alone(&unit).await
    }

    /// Commits `unit` in a transaction of its own (and records how that went).
    pub(super) async fn commit_alone(
        &self,
        unit: &UnitOfWork,
    ) -> StoreResult<Result<(), Rejected>> {
        let outcome = self.note_write(unit.at, self.commit_once(unit).await, |o| o.is_ok());
        self.invalidate_caches(unit);
        if matches!(outcome, Ok(Ok(()))) && unit.wakes {
            self.wake.notify_one();
        }
        outcome
    }

    async fn commit_once(&self, unit: &UnitOfWork) -> StoreResult<Result<(), Rejected>> {
        let mut tx = self.begin().await?;
        let at = unit.at;
        let mut accounts = ledger::AccountIndex::new(&self.caches.accounts);
        for w in &unit.writes {
            if let Err(rejected) = apply(&mut *tx, &mut accounts, w, at).await? {
                tx.rollback().await?;
                return Ok(Err(rejected));
            }
        }
        if unit.wakes {
            jobs::announce(&mut *tx).await?;
        }
        tx.commit().await?;
        // Only now do the accounts it created exist for every other connection.
        self.caches.accounts.learn(accounts.learned());
        Ok(Ok(()))
    }
}

/// Where a simulated process dies around one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// It does not.
    No,
    /// Before the commit: the unit is lost, as an uncommitted transaction is.
    BeforeCommit,
    /// After the commit, before its caller heard: written, and nobody knows.
    AfterCommit,
}

impl Crash {
    /// What the dying process's caller gets back (it never reads it: it is dead).
    fn error() -> StoreError {
        StoreError::Unavailable(super::DriverError {
            code: None,
            message: "simulated crash".into(),
        })
    }
}

/// Decides, at each commit — a unit of work or a claim of jobs — whether the process crashes
/// around it: the seam `corridor simulate` injects crashes through (and, once it has crashed,
/// every later commit of the dead process is lost too).
pub trait CommitFaults: Send + Sync + std::fmt::Debug {
    /// Where, if anywhere, the process dies around the commit about to happen.
    fn at_commit(&self) -> Crash;
}

fn guard(held: bool, otherwise: Rejected) -> Result<(), Rejected> {
    if held { Ok(()) } else { Err(otherwise) }
}

pub(super) async fn apply(
    tx: &mut super::Conn,
    accounts: &mut ledger::AccountIndex<'_>,
    w: &Write,
    at: Timestamp,
) -> StoreResult<Result<(), Rejected>> {
    use Rejected::*;
    if matches!(
        w,
        Write::InsertEndpoint(_)
            | Write::DeleteEndpoint { .. }
            | Write::RotateEndpointSecret { .. }
            | Write::DisableEndpoint { .. }
    ) && let Some(cache) = tx.endpoint_cache()
    {
        cache.forget();
    }
    Ok(match w {
        Write::HoldLease(lease) => guard(jobs::hold(tx, lease).await?, LeaseLost),
        Write::Transition(t) => guard(payments::transition(tx, t).await?, Stale),
        Write::UpdateInState {
            payment_id,
            state,
            changes,
        } => guard(
            payments::update_in_state(tx, payment_id, *state, at, changes).await?,
            Stale,
        ),
        Write::ExpectState { payment_id, state } => {
            guard(payments::is_in(tx, payment_id, *state).await?, Stale)
        }
        Write::ClaimOnramp { payment_id } => {
            guard(payments::claim_onramp(tx, payment_id, at).await?, Stale)
        }
        Write::ReleaseOnramp {
            payment_id,
            claimed_at,
        } => {
            payments::release_onramp(tx, payment_id, *claimed_at).await?;
            Ok(())
        }
        Write::Ledger { owner, postings } => {
            ledger::apply(tx, accounts, owner, postings, at).await?
        }
        Write::InsertReconciliation(r) => {
            super::reconciliations::insert(tx, r).await?;
            Ok(())
        }
        Write::FinishReconciliation(r) => {
            guard(super::reconciliations::finish(tx, r, at).await?, Stale)
        }
        Write::InsertQuote(q) => {
            quotes::insert(tx, q).await?;
            Ok(())
        }
        Write::MarkQuoteUsed {
            quote_id,
            payment_id,
        } => guard(
            quotes::mark_used(tx, quote_id, payment_id).await?,
            QuoteUsed,
        ),
        Write::InsertPayment(p) => {
            payments::insert(tx, p).await?;
            Ok(())
        }
        Write::SaveResponse(r) => guard(idempotency::save(tx, r, at).await?, IdempotencyKeyTaken),
        Write::RememberWebhook {
            provider,
            webhook_id,
        } => guard(
            provider_webhooks::remember(tx, provider, webhook_id, at).await?,
            Duplicate,
        ),
        Write::RecordEvent(e) => {
            webhooks::record_event(tx, e).await?;
            Ok(())
        }
        Write::ScheduleStep {
            payment_id,
            running,
            task,
            run_at,
            max_attempts,
        } => match running {
            Some(lease) => guard(
                jobs::reschedule_held(tx, lease, *run_at, task).await?,
                LeaseLost,
            ),
            None => {
                jobs::schedule_step(tx, payment_id, task, *run_at, *max_attempts).await?;
                Ok(())
            }
        },
        Write::CompleteHeld(lease) => guard(jobs::complete_held(tx, lease).await?, LeaseLost),
        Write::KeepLease { lease, task } => {
            guard(jobs::keep_lease(tx, lease, task).await?, LeaseLost)
        }
        Write::CompleteSteps { payment_id } => {
            jobs::complete_steps(tx, payment_id).await?;
            Ok(())
        }
        Write::Enqueue(j) => {
            jobs::enqueue(tx, j).await?;
            Ok(())
        }
        Write::CompleteJob { job_id } => {
            jobs::complete(tx, job_id).await?;
            Ok(())
        }
        Write::Reschedule {
            job_id,
            task,
            run_at,
        } => {
            jobs::reschedule(tx, job_id, *run_at, task).await?;
            Ok(())
        }
        Write::FailJob {
            lease,
            dead,
            error,
            retry_at,
        } => guard(
            jobs::fail(tx, lease, *dead, error, at, *retry_at).await?,
            LeaseLost,
        ),
        Write::Redrive { job_id } => guard(jobs::redrive(tx, job_id, at).await?, Stale),
        Write::RecordDead { job, error } => {
            jobs::record_dead(tx, job, error, at).await?;
            Ok(())
        }
        Write::ReleaseLeases { owner } => {
            jobs::release_owner(tx, owner, at).await?;
            Ok(())
        }
        Write::EnsureRecurring {
            job_id,
            task,
            run_at,
        } => {
            jobs::ensure_recurring(tx, job_id, task, *run_at).await?;
            Ok(())
        }
        Write::Audit {
            actor,
            action,
            target,
            detail,
        } => {
            ops::audit(tx, actor, action, target, detail, at).await?;
            Ok(())
        }
        Write::PinRate(pin) => {
            ops::pin_rate(tx, pin).await?;
            Ok(())
        }
        Write::UnpinRate { from, to } => guard(ops::unpin_rate(tx, *from, *to).await?, NotFound),
        Write::InsertMerchant {
            merchant,
            key_hash,
            key_prefix,
        } => {
            merchants::create(tx, merchant, key_hash, key_prefix).await?;
            Ok(())
        }
        Write::RotateMerchantKey {
            merchant_id,
            key_hash,
            key_prefix,
        } => guard(
            merchants::rotate_key(tx, merchant_id, key_hash, key_prefix, at.millis()).await?,
            NotFound,
        ),
        Write::InsertEndpoint(e) => {
            webhooks::create_endpoint(tx, e).await?;
            Ok(())
        }
        Write::DeleteEndpoint {
            merchant_id,
            endpoint_id,
        } => guard(
            webhooks::delete_endpoint(tx, merchant_id, endpoint_id).await?,
            NotFound,
        ),
        Write::RotateEndpointSecret {
            merchant_id,
            endpoint_id,
            secret,
            overlap_until,
        } => guard(
            webhooks::rotate_secret(tx, merchant_id, endpoint_id, secret, *overlap_until).await?,
            NotFound,
        ),
        Write::DisableEndpoint {
            endpoint_id,
            reason,
        } => {
            webhooks::disable_endpoint(tx, endpoint_id, reason, at).await?;
            Ok(())
        }
        Write::InsertDelivery(d) => {
            webhooks::insert_delivery(tx, d).await?;
            Ok(())
        }
        Write::CreateSession {
            token_hash,
            expires_at,
        } => {
            ops::purge_sessions(tx, at).await?;
            ops::create_session(tx, token_hash, at, *expires_at).await?;
            Ok(())
        }
        Write::DeleteSession { token_hash } => {
            ops::delete_session(tx, token_hash).await?;
            Ok(())
        }
        Write::RaiseAlert(a) => {
            ops::insert_alert(tx, a, at).await?;
            Ok(())
        }
        Write::ClearAlert { alert_id } => {
            ops::clear_alert(tx, alert_id, at).await?;
            Ok(())
        }
        Write::InsertSetting {
            key,
            value,
            required,
        } => {
            let inserted = settings::insert_if_absent(tx, key, value).await?;
            guard(inserted || !required, Exists)
        }
        Write::Purge {
            cutoff,
            history_cutoff,
        } => {
            let q = quotes::purge_unused_before(tx, *cutoff).await?;
            let k = idempotency::purge_before(tx, *cutoff).await?;
            provider_webhooks::purge_before(tx, *cutoff).await?;
            ops::purge_sessions(tx, at).await?;
            let [d, e, a] = super::retention::purge(tx, *history_cutoff, PURGE_BATCH).await?;
            tracing::info!(
                quotes = q,
                idempotency_keys = k,
                deliveries = d,
                events = e,
                alerts = a,
                "housekeeping done"
            );
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at: i64) -> Write {
        Write::ScheduleStep {
            payment_id: "pay_1".into(),
            running: None,
            task: Task::step(PaymentState::Pending),
            run_at: Timestamp(at),
            max_attempts: 8,
        }
    }

    fn event() -> Write {
        Write::RecordEvent(NewEvent {
            event_id: "evt_1".into(),
            merchant_id: "mer_1".into(),
            payment_id: Some("pay_1".into()),
            event_type: "payment.created".into(),
            body: super::webhooks::NewBody::Json("{}".into()),
            created_at: Timestamp(1_000),
        })
    }

    fn due(writes: Vec<Write>) -> Vec<i64> {
        let mut u = UnitOfWork::at(Timestamp(1_000));
        u.extend(writes);
        u.due_times().iter().map(|t| t.millis()).collect()
    }

    #[test]
    fn a_units_wakeups_are_its_jobs_due_times_and_an_event_rides_on_a_near_one() {
        // A step due now and its event: one wake-up.
        assert_eq!(due(vec![event(), step(1_000)]), vec![1_000]);
        // A poll 200 ms out carries the event's deliveries.
        assert_eq!(due(vec![event(), step(1_200)]), vec![1_200]);
        // A step far out does not: the event gets its own.
        assert_eq!(due(vec![event(), step(31_000)]), vec![1_000, 31_000]);
        // An event alone (a cancel), and nothing at all.
        assert_eq!(due(vec![event()]), vec![1_000]);
        assert_eq!(due(vec![]), Vec::<i64>::new());
        // A due time in the past is now; duplicates collapse.
        assert_eq!(due(vec![step(10), step(1_000)]), vec![1_000]);
        // Recurring jobs send none (the sweeper's schedule runs them).
        assert_eq!(
            due(vec![Write::Reschedule {
                job_id: "alerts-sweep".into(),
                task: Task::SweepAlerts {},
                run_at: Timestamp(3_000),
            }]),
            Vec::<i64>::new()
        );
    }
}
