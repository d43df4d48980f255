//! The payment state handlers: one per non-terminal state.
//!
//! Each handler splits into a pure decision — `(payment, provider answer, now) → plan` in
//! [`decide`] — and a thin executor that performs the provider call before and writes the
//! plan after, in one transaction: the compare-and-set transition, its history row, and the
//! job's next run (or its removal). A crash anywhere re-runs the step; provider idempotency
//! keys make the re-run return the same transfer, and the compare-and-set makes a duplicate
//! decision a no-op.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Engine, JobError};
use crate::domain::ledger;
use crate::domain::{FailureCode, LegStatus, PaymentState, Timestamp};
use crate::providers::{LegRequest, ProviderError, TransferStatus};
use crate::store::jobs::{self, Job};
use crate::store::payments::{self, Field, Leg, PaymentRecord, Side, Transition};

/// Job kind that advances one payment by one step.
pub const KIND: &str = "payment.step";

/// Payload of a [`KIND`] job: the state it expects the payment in, and how many times it
/// has polled the current transfer (for backoff).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepJob {
    /// Expected payment state (wire name).
    pub state: String,
    /// Polls made so far in this state.
    #[serde(default)]
    pub polls: u32,
}

/// Enqueues a payment's step job for `state` at `run_at` (payment creation, a webhook that
/// finds no job, an operator's retry). The caller announces work due now.
pub async fn enqueue_step(
    conn: &mut crate::store::Conn,
    payment_id: &str,
    state: PaymentState,
    polls: u32,
    run_at: Timestamp,
    max_attempts: i64,
) -> crate::store::StoreResult<()> {
    jobs::enqueue(
        conn,
        &jobs::NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            kind: KIND.to_owned(),
            payment_id: Some(payment_id.to_owned()),
            payload: step_payload(state, polls),
            run_at,
            max_attempts,
        },
    )
    .await
}

/// The payload of a step job expecting `state`.
pub fn step_payload(state: PaymentState, polls: u32) -> serde_json::Value {
    serde_json::json!({ "state": state.as_str(), "polls": polls })
}

/// What the provider said, as the input of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A transfer was initiated (or an existing one returned) with this reference.
    Initiated(String),
    /// The provider refused the transfer for good.
    Refused(String),
    /// The current status of the leg's transfer.
    Status(TransferStatus),
}

/// What happens to the job after the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run again for `state` after `after_ms`.
    Run {
        /// State the next run expects.
        state: PaymentState,
        /// Delay.
        after_ms: i64,
        /// Poll count carried forward.
        polls: u32,
    },
    /// The payment is terminal: remove the job.
    Done,
}

/// The writes a step makes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// A state change with its reason and the columns set with it.
    pub transition: Option<(PaymentState, String, Vec<Field>)>,
    /// Columns to set without a state change (e.g. the reversal reference).
    pub update: Vec<Field>,
    /// The job's fate.
    pub next: Next,
}

/// Inputs of a decision besides the payment and the answer.
#[derive(Debug, Clone)]
pub struct StepContext<'a> {
    /// Onramp provider name.
    pub onramp: &'a str,
    /// Offramp provider name.
    pub offramp: &'a str,
    /// First poll delay.
    pub poll_base_ms: i64,
    /// Polls made so far in this state.
    pub polls: u32,
    /// Market mid rate now (recorded as the offramp's executed rate).
    pub market_mid: Option<Decimal>,
}

impl<'a> StepContext<'a> {
    /// The context an engine gives a step of `p` after `polls` polls.
    pub fn of(engine: &'a Engine, p: &PaymentRecord, polls: u32) -> StepContext<'a> {
        StepContext {
            onramp: engine.providers.onramp.name(),
            offramp: engine.providers.offramp.name(),
            poll_base_ms: engine.cfg.poll_interval_ms,
            polls,
            market_mid: engine.rates.mid(p.currency, p.payout_currency),
        }
    }
}

fn failure(code: FailureCode, message: &str) -> [Field; 2] {
    [
        Field::Text("failure_code", Some(code.as_str().to_owned())),
        Field::Text("failure_message", Some(message.to_owned())),
    ]
}

fn poll_again(state: PaymentState, ctx: &StepContext) -> Plan {
    let polls = ctx.polls + 1;
    Plan {
        transition: None,
        update: vec![],
        next: Next::Run {
            state,
            after_ms: super::backoff::poll_delay_ms(ctx.poll_base_ms, polls),
            polls,
        },
    }
}

fn go(to: PaymentState, reason: &str, fields: Vec<Field>, next: Next) -> Plan {
    Plan {
        transition: Some((to, reason.to_owned(), fields)),
        update: vec![],
        next,
    }
}

fn run_now(state: PaymentState) -> Next {
    Next::Run {
        state,
        after_ms: 0,
        polls: 0,
    }
}

/// The pure state handler: what to write given the payment and what the provider said.
/// `None` when the answer does not fit the state (the step is then retried).
pub fn decide(p: &PaymentRecord, answer: Answer, ctx: &StepContext) -> Option<Plan> {
    use PaymentState::*;
    let first_poll = |state| Next::Run {
        state,
        after_ms: super::backoff::poll_delay_ms(ctx.poll_base_ms, 0),
        polls: 0,
    };
    Some(match (p.state, answer) {
        (Pending, Answer::Initiated(reference)) => {
            let usdc = ledger::onramp_usdc(p.amount, p.total_fees, p.currency).ok()?;
            let leg = Leg {
                provider: ctx.onramp.to_owned(),
                reference,
                status: LegStatus::Pending,
                amount: usdc.minor(),
            };
            go(
                OnrampPending,
                "onramp initiated",
                Field::leg(Side::Onramp, &leg).to_vec(),
                first_poll(OnrampPending),
            )
        }
        (Pending, Answer::Refused(msg)) => go(
            Failed,
            "onramp refused",
            failure(FailureCode::OnrampFailed, &msg).to_vec(),
            Next::Done,
        ),
        (OnrampPending, Answer::Status(TransferStatus::Pending)) => poll_again(OnrampPending, ctx),
        (OnrampPending, Answer::Status(TransferStatus::Completed)) => go(
            OnrampComplete,
            "onramp settled",
            vec![Field::leg_status(Side::Onramp, LegStatus::Completed)],
            run_now(OnrampComplete),
        ),
        (OnrampPending, Answer::Status(TransferStatus::Failed(msg))) => {
            let mut f = failure(FailureCode::OnrampFailed, &msg).to_vec();
            f.push(Field::leg_status(Side::Onramp, LegStatus::Failed));
            go(Failed, "onramp failed", f, Next::Done)
        }
        (OnrampComplete, Answer::Initiated(reference)) => {
            let leg = Leg {
                provider: ctx.offramp.to_owned(),
                reference,
                status: LegStatus::Pending,
                amount: p.payout_amount,
            };
            let mut f = Field::leg(Side::Offramp, &leg).to_vec();
            f.push(Field::Text(
                "executed_rate",
                ctx.market_mid.map(|m| m.normalize().to_string()),
            ));
            go(
                OfframpPending,
                "offramp initiated",
                f,
                first_poll(OfframpPending),
            )
        }
        (OnrampComplete, Answer::Refused(msg)) => go(
            RefundPending,
            "offramp refused",
            failure(FailureCode::OfframpFailed, &msg).to_vec(),
            run_now(RefundPending),
        ),
        (OfframpPending, Answer::Status(TransferStatus::Pending)) => {
            poll_again(OfframpPending, ctx)
        }
        (OfframpPending, Answer::Status(TransferStatus::Completed)) => go(
            Completed,
            "offramp settled",
            vec![Field::leg_status(Side::Offramp, LegStatus::Completed)],
            Next::Done,
        ),
        (OfframpPending, Answer::Status(TransferStatus::Failed(msg))) => {
            let mut f = failure(FailureCode::OfframpFailed, &msg).to_vec();
            f.push(Field::leg_status(Side::Offramp, LegStatus::Failed));
            go(RefundPending, "offramp failed", f, run_now(RefundPending))
        }
        (RefundPending, Answer::Initiated(reference)) => {
            let refund = ledger::refund_amount(p.amount, p.fees.onramp, p.currency).ok()?;
            Plan {
                transition: None,
                update: vec![
                    Field::Text("reversal_reference", Some(reference)),
                    Field::Int("refund_amount", Some(refund.minor())),
                ],
                next: first_poll(RefundPending),
            }
        }
        (RefundPending, Answer::Status(TransferStatus::Pending)) => poll_again(RefundPending, ctx),
        (RefundPending, Answer::Status(TransferStatus::Completed)) => go(
            Refunded,
            "refund settled",
            vec![Field::leg_status(Side::Onramp, LegStatus::Reversed)],
            Next::Done,
        ),
        _ => return None,
    })
}

/// Runs one `payment.step` job.
pub async fn run(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let step: StepJob = serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::Permanent(format!("bad step payload: {e}")))?;
    let expected: PaymentState = step
        .state
        .parse()
        .map_err(|e| JobError::Permanent(format!("{e}")))?;
    let payment_id = job
        .payment_id
        .as_deref()
        .ok_or_else(|| JobError::Permanent("step job without payment".into()))?;
    let payment = {
        let mut conn = engine.store.reader().await?;
        payments::get(&mut conn, payment_id).await?
    };
    let Some(payment) = payment else {
        return Err(JobError::Permanent(format!(
            "payment {payment_id} does not exist"
        )));
    };
    tracing::Span::current().record("merchant_id", payment.merchant_id.as_str());
    if payment.state != expected || payment.state.is_terminal() {
        // Someone (a webhook, an operator, a duplicate run) moved it on: nothing to do.
        return finish(engine, job).await;
    }
    let answer = ask_provider(engine, job, &payment).await?;
    let Some(answer) = answer else {
        return finish(engine, job).await;
    };
    let ctx = StepContext::of(engine, &payment, step.polls);
    let plan = decide(&payment, answer.clone(), &ctx).ok_or_else(|| {
        JobError::Transient(format!(
            "unexpected provider answer {answer:?} in {}",
            payment.state
        ))
    })?;
    apply(engine, job, &payment, plan).await
}

/// Calls the provider for the payment's current state. `Ok(None)` means the step no longer
/// applies (the payment was cancelled before the worker claimed it).
async fn ask_provider(
    engine: &Engine,
    job: &Job,
    p: &PaymentRecord,
) -> Result<Option<Answer>, JobError> {
    use PaymentState::*;
    let key = |leg: &str| format!("{}:{leg}", p.payment_id);
    let result = match p.state {
        Pending => {
            // Claim before calling out, so cancel cannot succeed once a leg may exist.
            let now = engine.clock.now();
            let Some(mut tx) = engine.begin_held(job).await? else {
                return Ok(None);
            };
            let claimed = payments::claim_onramp(&mut tx, &p.payment_id, now).await?;
            tx.commit().await.map_err(crate::store::StoreError::from)?;
            if !claimed {
                return Ok(None);
            }
            let usdc = ledger::onramp_usdc(p.amount, p.total_fees, p.currency)
                .map_err(|e| JobError::Permanent(e.to_string()))?;
            let req = LegRequest {
                payment_id: p.payment_id.clone(),
                idempotency_key: key("onramp"),
                amount: usdc.minor(),
                currency: usdc.currency().code().to_owned(),
                account: p.source_account.clone(),
            };
            timed(
                engine,
                engine.providers.onramp.name(),
                engine.providers.onramp.buy(&req),
            )
            .await
            .map(Answer::Initiated)
        }
        OnrampPending => {
            let reference = leg_reference(p.onramp.as_ref())?;
            timed(
                engine,
                engine.providers.onramp.name(),
                engine.providers.onramp.status(&reference),
            )
            .await
            .map(Answer::Status)
        }
        OnrampComplete => {
            let req = LegRequest {
                payment_id: p.payment_id.clone(),
                idempotency_key: key("offramp"),
                amount: p.payout_amount,
                currency: p.payout_currency.code().to_owned(),
                account: p.destination_account.clone(),
            };
            timed(
                engine,
                engine.providers.offramp.name(),
                engine.providers.offramp.pay_out(&req),
            )
            .await
            .map(Answer::Initiated)
        }
        OfframpPending => {
            let reference = leg_reference(p.offramp.as_ref())?;
            timed(
                engine,
                engine.providers.offramp.name(),
                engine.providers.offramp.status(&reference),
            )
            .await
            .map(Answer::Status)
        }
        RefundPending => match &p.reversal_reference {
            None => {
                let refund = ledger::refund_amount(p.amount, p.fees.onramp, p.currency)
                    .map_err(|e| JobError::Permanent(e.to_string()))?;
                let req = LegRequest {
                    payment_id: p.payment_id.clone(),
                    idempotency_key: key("reversal"),
                    amount: refund.minor(),
                    currency: refund.currency().code().to_owned(),
                    account: p.source_account.clone(),
                };
                timed(
                    engine,
                    engine.providers.onramp.name(),
                    engine.providers.onramp.reverse(&req),
                )
                .await
                .map(Answer::Initiated)
            }
            Some(reference) => {
                match timed(
                    engine,
                    engine.providers.onramp.name(),
                    engine.providers.onramp.status(reference),
                )
                .await
                {
                    // A reversal must not fail for good: keep retrying and let the job
                    // dead-letter so an operator sees it.
                    Ok(TransferStatus::Failed(msg)) => {
                        return Err(JobError::Transient(format!("reversal failed: {msg}")));
                    }
                    other => other.map(Answer::Status),
                }
            }
        },
        Completed | Failed | Cancelled | Refunded => return Ok(None),
    };
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(ProviderError::Refused(msg)) => Ok(Some(Answer::Refused(msg))),
        Err(ProviderError::Transient(msg)) => Err(JobError::Transient(msg)),
    }
}

fn leg_reference(leg: Option<&Leg>) -> Result<String, JobError> {
    leg.map(|l| l.reference.clone())
        .ok_or_else(|| JobError::Permanent("leg has no reference".into()))
}

async fn timed<T>(
    engine: &Engine,
    provider: &str,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(engine.cfg.provider_timeout, call)
        .await
        .unwrap_or_else(|_| Err(ProviderError::Transient("provider call timed out".into())));
    metrics::histogram!("corridor_provider_request_duration_seconds", "provider" => provider.to_owned())
        .record(started.elapsed().as_secs_f64());
    r
}

async fn finish(engine: &Engine, job: &Job) -> Result<(), JobError> {
    let Some(mut tx) = engine.begin_held(job).await? else {
        return Ok(());
    };
    jobs::complete(&mut tx, &job.id).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(())
}

/// What writing a plan did.
enum Written {
    /// The payment had moved on: nothing written.
    Stale,
    /// Written; the state entered, if it changed, and whether work is due now.
    Applied(Option<PaymentState>, bool),
}

/// Writes a plan into `tx`: the compare-and-set transition with its history row and event,
/// column updates, and the step job's next run (or its removal). `job_id` is the running job;
/// `None` (a provider webhook) means "the payment's pending step job, if any".
async fn write_plan(
    tx: &mut crate::store::Conn,
    p: &PaymentRecord,
    plan: Plan,
    job_id: Option<&str>,
    now: Timestamp,
    max_attempts: i64,
) -> Result<Written, JobError> {
    let mut moved = None;
    if let Some((to, reason, fields)) = plan.transition {
        let t = Transition {
            payment_id: p.payment_id.clone(),
            from: p.state,
            to,
            at: now,
            reason,
            fields,
        };
        if !payments::transition(tx, &t).await? {
            return Ok(Written::Stale);
        }
        super::events::record(tx, &p.payment_id, &super::events::event_type(to), now).await?;
        moved = Some(to);
    }
    if !plan.update.is_empty()
        && !payments::update_in_state(tx, &p.payment_id, p.state, now, &plan.update).await?
    {
        return Ok(Written::Stale);
    }
    let job_id = match job_id {
        Some(id) => Some(id.to_owned()),
        None => jobs::step_job_for(tx, &p.payment_id, KIND).await?,
    };
    let wake = match (&plan.next, job_id) {
        (
            Next::Run {
                state,
                after_ms,
                polls,
            },
            job_id,
        ) => {
            let at = now.plus_millis(*after_ms);
            match job_id {
                Some(id) => jobs::reschedule(tx, &id, at, &step_payload(*state, *polls)).await?,
                None => enqueue_step(tx, &p.payment_id, *state, *polls, at, max_attempts).await?,
            }
            if *after_ms == 0 {
                jobs::announce(tx).await?;
            }
            *after_ms == 0
        }
        (Next::Done, Some(id)) => {
            jobs::complete(tx, &id).await?;
            false
        }
        (Next::Done, None) => false,
    };
    Ok(Written::Applied(moved, wake))
}

fn after_commit(engine: &Engine, p: &PaymentRecord, written: &Written, via: &str) {
    if let Written::Applied(moved, wake) = written {
        if let Some(to) = moved {
            metrics::counter!("corridor_payment_transitions_total", "from" => p.state.as_str(), "to" => to.as_str())
                .increment(1);
            tracing::info!(payment_id = %p.payment_id, from = %p.state, to = %to, via, "payment transition");
        }
        if *wake {
            engine.wake.notify_one();
        }
    }
}

/// Writes a plan for a running job in one transaction.
async fn apply(engine: &Engine, job: &Job, p: &PaymentRecord, plan: Plan) -> Result<(), JobError> {
    let now: Timestamp = engine.clock.now();
    let Some(mut tx) = engine.begin_held(job).await? else {
        return Ok(());
    };
    let written = write_plan(
        &mut tx,
        p,
        plan,
        Some(&job.id),
        now,
        engine.cfg.job_max_attempts,
    )
    .await?;
    if let Written::Stale = written {
        // Rolled-back writes are discarded with the transaction; the job has nothing to do.
        tx.rollback()
            .await
            .map_err(crate::store::StoreError::from)?;
        return finish(engine, job).await;
    }
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    after_commit(engine, p, &written, "poll");
    Ok(())
}

/// Which transfer a provider webhook reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedLeg {
    /// The onramp purchase.
    Onramp,
    /// The payout.
    Offramp,
    /// The refund's reversal (announced by the onramp with the reversal's reference).
    Reversal,
}

/// What a provider webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The payment advanced.
    Applied,
    /// Already settled by polling (or an earlier webhook): nothing changed.
    AlreadyApplied,
    /// The same webhook id was processed before: nothing changed.
    Duplicate,
}

/// Settles a leg from a provider webhook through the same decision and transition as the
/// poller: whichever reports first advances the payment, the other is a no-op. The webhook
/// id is remembered in the same transaction.
pub async fn settle_from_webhook(
    engine: &Engine,
    p: &PaymentRecord,
    leg: ReportedLeg,
    status: TransferStatus,
    provider: &str,
    webhook_id: &str,
) -> Result<WebhookOutcome, JobError> {
    let now = engine.clock.now();
    let mut tx = engine.store.begin().await?;
    if !crate::store::provider_webhooks::remember(&mut tx, provider, webhook_id, now).await? {
        tx.rollback()
            .await
            .map_err(crate::store::StoreError::from)?;
        return Ok(WebhookOutcome::Duplicate);
    }
    let expected = match leg {
        ReportedLeg::Onramp => PaymentState::OnrampPending,
        ReportedLeg::Offramp => PaymentState::OfframpPending,
        ReportedLeg::Reversal => PaymentState::RefundPending,
    };
    let plan = if p.state == expected {
        decide(p, Answer::Status(status), &StepContext::of(engine, p, 0))
    } else {
        None
    };
    let written = match plan {
        Some(plan) if plan.transition.is_some() => {
            write_plan(&mut tx, p, plan, None, now, engine.cfg.job_max_attempts).await?
        }
        _ => Written::Stale,
    };
    if let Written::Stale = written {
        // Nothing of the plan may commit; the webhook id is still remembered, so a replay
        // changes nothing either.
        tx.rollback()
            .await
            .map_err(crate::store::StoreError::from)?;
        tx = engine.store.begin().await?;
        crate::store::provider_webhooks::remember(&mut tx, provider, webhook_id, now).await?;
    }
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    after_commit(engine, p, &written, "webhook");
    Ok(match written {
        Written::Applied(..) => WebhookOutcome::Applied,
        Written::Stale => WebhookOutcome::AlreadyApplied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, FeeBreakdown};
    use std::collections::BTreeMap;

    fn payment(state: PaymentState) -> PaymentRecord {
        PaymentRecord {
            payment_id: "pay_1".into(),
            merchant_id: "mer_1".into(),
            quote_id: "quote_1".into(),
            state,
            version: 1,
            amount: 100_000,
            currency: Currency::USD,
            payout_amount: 87_700,
            payout_currency: "EUR".parse().unwrap(),
            exchange_rate: "0.9205".parse().unwrap(),
            mid_rate: "0.9251".parse().unwrap(),
            fees: FeeBreakdown {
                platform: 2_100,
                onramp: 1_050,
                offramp: 1_575,
            },
            total_fees: 4_725,
            source_account: "a".into(),
            destination_account: "b".into(),
            metadata: BTreeMap::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            state_since: Timestamp(0),
            completed_at: None,
            onramp_claimed_at: None,
            failure: None,
            onramp: None,
            offramp: None,
            executed_rate: None,
            reversal_reference: None,
            refund_amount: None,
        }
    }

    fn ctx() -> StepContext<'static> {
        StepContext {
            onramp: "sim-onramp",
            offramp: "sim-offramp",
            poll_base_ms: 100,
            polls: 0,
            market_mid: None,
        }
    }

    /// Every plan's transition is one the domain table allows, for every state and answer.
    #[test]
    fn plans_only_take_allowed_transitions() {
        let answers = [
            Answer::Initiated("r".into()),
            Answer::Refused("no".into()),
            Answer::Status(TransferStatus::Pending),
            Answer::Status(TransferStatus::Completed),
            Answer::Status(TransferStatus::Failed("x".into())),
        ];
        for state in PaymentState::ALL {
            for a in &answers {
                if let Some(plan) = decide(&payment(state), a.clone(), &ctx())
                    && let Some((to, _, _)) = &plan.transition
                {
                    assert!(state.can_transition_to(*to), "{state} -> {to}");
                    assert_eq!(to.is_terminal(), plan.next == Next::Done, "{state} -> {to}");
                }
            }
        }
    }

    #[test]
    fn onramp_initiation_records_the_usdc_leg() {
        let plan = decide(
            &payment(PaymentState::Pending),
            Answer::Initiated("ref".into()),
            &ctx(),
        )
        .unwrap();
        let (to, _, fields) = plan.transition.unwrap();
        assert_eq!(to, PaymentState::OnrampPending);
        assert!(
            fields
                .iter()
                .any(|f| matches!(f, Field::Int("onramp_amount", Some(952_750_000))))
        );
        assert_eq!(
            plan.next,
            Next::Run {
                state: PaymentState::OnrampPending,
                after_ms: 100,
                polls: 0
            }
        );
    }

    #[test]
    fn pending_polls_back_off() {
        let mut c = ctx();
        c.polls = 3;
        let plan = decide(
            &payment(PaymentState::OfframpPending),
            Answer::Status(TransferStatus::Pending),
            &c,
        )
        .unwrap();
        assert!(plan.transition.is_none());
        match plan.next {
            Next::Run {
                polls, after_ms, ..
            } => {
                assert_eq!(polls, 4);
                assert!(after_ms > 100);
            }
            Next::Done => panic!("should poll again"),
        }
    }

    #[test]
    fn offramp_failure_refunds_amount_minus_onramp_fee() {
        let plan = decide(
            &payment(PaymentState::OfframpPending),
            Answer::Status(TransferStatus::Failed("declined".into())),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            plan.transition.as_ref().unwrap().0,
            PaymentState::RefundPending
        );
        let plan = decide(
            &payment(PaymentState::RefundPending),
            Answer::Initiated("rev".into()),
            &ctx(),
        )
        .unwrap();
        assert!(
            plan.update
                .iter()
                .any(|f| matches!(f, Field::Int("refund_amount", Some(98_950))))
        );
    }
}
