//! Moving a payment: one step against its provider (the workers), a leg settled by a provider
//! webhook, and the single path every state change takes to the store.
//!
//! Whatever moved the payment — a poll, a webhook, a cancel, an operator — the effects come
//! from [`lifecycle::decide`] and are written by [`Service::apply`]: the compare-and-set
//! transition with its history row, its outbox event and the step job's next run in one unit
//! of work, followed by the transition metric and log line. The first writer wins; any other
//! finds the state moved and its unit is rejected whole.

use std::time::Instant;

use super::{Error, Service};
use crate::domain::lifecycle::{self, Answer, Context, Effects, Input, Next};
use crate::domain::task::Task;
use crate::domain::{PaymentRecord, PaymentState, Side, TransferStatus, ledger};
use crate::providers::{LegRequest, ProviderError, Sent};
use crate::store::jobs::Job;
use crate::store::ledger::LedgerOwner;
use crate::store::payments::Transition;
use crate::store::unit::Write;
use crate::store::{Rejected, UnitOfWork, payments, provider_webhooks};
use crate::views;

/// Who moved a payment (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Via {
    /// A worker's poll or initiation.
    Poll,
    /// A provider webhook.
    Webhook,
    /// The merchant (cancel).
    Merchant,
    /// An operator (retry).
    Operator,
}

/// What writing effects did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Committed; the payment as written.
    Written(Box<PaymentRecord>),
    /// A guard of the unit did not hold: nothing was written.
    Rejected(Rejected),
}

/// Why a step did not finish.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying with backoff (provider or database unavailable).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help; the job goes dead at once for an operator to look at.
    #[error("{0}")]
    Permanent(String),
}

impl From<crate::store::StoreError> for StepError {
    fn from(e: crate::store::StoreError) -> Self {
        StepError::Transient(e.to_string())
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Transient(e.to_string())
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum WebhookOutcome {
    /// The payment advanced.
    Applied,
    /// Already settled by polling (or an earlier webhook): nothing changed.
    AlreadyApplied,
    /// The same webhook id was processed before: nothing changed.
    Duplicate,
}

/// A provider's settlement report, verified and parsed by the caller.
#[derive(Debug, Clone)]
pub struct LegReport {
    /// Reporting provider (as on the payment's legs).
    pub provider: String,
    /// Its `webhook-id` (dedupe key).
    pub webhook_id: String,
    /// The side the provider reports on.
    pub side: Side,
    /// The transfer's reference.
    pub reference: String,
    /// The payment the provider says it belongs to.
    pub payment_id: String,
    /// What happened.
    pub status: TransferStatus,
}

impl Service {
    /// The decision context for a step of `p` after `polls` polls.
    pub fn step_context(&self, p: &PaymentRecord, polls: u32) -> Context<'_> {
        Context {
            onramp: self.providers.onramp.name(),
            offramp: self.providers.offramp.name(),
            poll_base_ms: self.settings.poll_interval_ms,
            polls,
            market_mid: self.rates.mid(p.currency, p.payout_currency),
            return_check_ms: self.settings.return_check_ms,
        }
    }

    /// Writes `effects` of a decision on `p`, together with whatever guards and writes `unit`
    /// already holds (a lease fence, a webhook id, an audit row): the transition with its
    /// history row and event, the facts, and the step job's next run — one unit of work. The
    /// transition's metric and log line follow the commit. `running` is the job running the
    /// step, if any; without one the payment's own step job is scheduled.
    pub(crate) async fn apply(
        &self,
        p: &PaymentRecord,
        effects: Effects,
        via: Via,
        unit: UnitOfWork,
    ) -> Result<Applied, Error> {
        self.apply_for(p, effects, via, None, false, unit).await
    }

    /// As [`Service::apply`], for the job `running` the step. `keep`: the next step is due
    /// now and this worker runs it at once, so the job keeps its lease (with the next step's
    /// task, for whoever takes over should this process die) instead of going back to the
    /// queue for a claim.
    async fn apply_for(
        &self,
        p: &PaymentRecord,
        mut effects: Effects,
        via: Via,
        running: Option<&Job>,
        keep: bool,
        mut unit: UnitOfWork,
    ) -> Result<Applied, Error> {
        let now = unit.now();
        let after = lifecycle::applied(p, &effects, now);
        if let Some(m) = &effects.transition {
            unit.push(Write::Transition(Transition {
                payment_id: p.payment_id.clone(),
                from: p.state,
                to: m.to,
                at: now,
                reason: m.reason.to_owned(),
                changes: effects.changes.clone(),
                unclaimed_only: m.unclaimed_only,
            }));
            unit.push(Write::RecordEvent(views::payment_event(
                &after,
                &m.to.event_type(),
                now,
            )));
        } else if !effects.changes.is_empty() {
            unit.push(Write::UpdateInState {
                payment_id: p.payment_id.clone(),
                state: p.state,
                changes: effects.changes.clone(),
            });
        } else {
            // Nothing changes on the payment, but what follows (the step job's next run) was
            // decided on its state: the unit holds only while that state does.
            unit.push(Write::ExpectState {
                payment_id: p.payment_id.clone(),
                state: p.state,
            });
        }
        if !effects.ledger.is_empty() {
            unit.push(Write::Ledger {
                owner: LedgerOwner::of(p),
                postings: std::mem::take(&mut effects.ledger),
            });
        }
        match effects.next {
            Next::Run { state, polls, .. } if let Some(job) = running.filter(|_| keep) => unit
                .push(Write::KeepLease {
                    lease: job.lease.clone(),
                    task: Task::PaymentStep { state, polls },
                }),
            Next::Run {
                state,
                after_ms,
                polls,
            } => unit.push(Write::ScheduleStep {
                payment_id: p.payment_id.clone(),
                running: running.map(|j| j.lease.clone()),
                task: Task::PaymentStep { state, polls },
                run_at: now.plus_millis(after_ms),
                max_attempts: self.settings.job_max_attempts,
            }),
            Next::Done => match running {
                Some(job) => unit.push(Write::CompleteHeld(job.lease.clone())),
                None => unit.push(Write::CompleteSteps {
                    payment_id: p.payment_id.clone(),
                }),
            },
        };
        if let Err(rejected) = self.commit(unit).await? {
            return Ok(Applied::Rejected(rejected));
        }
        if let Some(m) = &effects.transition {
            metrics::counter!("corridor_payment_transitions_total", "from" => p.state.as_str(), "to" => m.to.as_str())
                .increment(1);
            let via: &'static str = via.into();
            tracing::info!(payment_id = %p.payment_id, from = %p.state, to = %m.to, via, "payment transition");
        }
        Ok(Applied::Written(Box::new(after)))
    }

    /// Runs one step of a payment for its job: asks the provider what the payment's state
    /// calls for, decides, and writes the effects fenced by the job's lease.
    pub async fn run_step(
        &self,
        job: &Job,
        expected: PaymentState,
        polls: u32,
    ) -> Result<(), StepError> {
        let payment_id = job
            .payment_id
            .as_deref()
            .ok_or_else(|| StepError::Permanent("step job without payment".into()))?;
        let Some(mut p) = payments::get(&self.store, payment_id).await? else {
            return Err(StepError::Permanent(format!(
                "payment {payment_id} does not exist"
            )));
        };
        tracing::Span::current().record("merchant_id", p.merchant_id.as_str());
        // A completed payment has one more step when returns are watched: the look after
        // settlement; every other terminal state has none.
        let watched = p.state == PaymentState::Completed && expected == PaymentState::Completed;
        if p.state != expected || (p.state.is_terminal() && !watched) {
            // Someone (a webhook, an operator, a duplicate run) moved it on: nothing to do.
            return self.finish(job).await;
        }
        let mut polls = polls;
        // A step whose next step is due at once (the onramp settled: pay out now) runs that
        // one too, under the same lease: no trip through the queue, no claim, no re-read.
        loop {
            let Some(answer) = self.ask_provider(job, &p).await? else {
                return self.finish(job).await;
            };
            let effects =
                lifecycle::decide(&p, Input::Provider(answer), &self.step_context(&p, polls))
                    .map_err(|e| StepError::Transient(e.to_string()))?;
            let now = self.clock.now();
            let chained = match effects.next {
                Next::Run {
                    state,
                    after_ms: 0,
                    polls,
                } if self.lease_left_for_a_call(job, now) => Some((state, polls)),
                _ => None,
            };
            // Fenced by the job's lease in the unit's job write (rescheduled, kept or
            // removed), so a lost lease rejects the whole unit.
            let unit = UnitOfWork::at(now);
            match self
                .apply_for(&p, effects, Via::Poll, Some(job), chained.is_some(), unit)
                .await?
            {
                Applied::Written(after) => match chained {
                    Some((state, next_polls)) if after.state == state => {
                        p = *after;
                        polls = next_polls;
                    }
                    _ => return Ok(()),
                },
                Applied::Rejected(Rejected::LeaseLost) => return Ok(()),
                // The ledger refused the postings (a transfer opened twice, a refund over the
                // capture): a bug to look at, never to retry into or to drop.
                Applied::Rejected(r @ (Rejected::TransferExists | Rejected::OverCapture)) => {
                    return Err(StepError::Permanent(format!("ledger: {r}")));
                }
                // The payment moved on between the read and the write: nothing to do.
                Applied::Rejected(_) => return self.finish(job).await,
            }
        }
    }

    /// Whether `job`'s lease outlasts another provider call started at `now` (with a
    /// second to spare for the write that follows it).
    fn lease_left_for_a_call(&self, job: &Job, now: crate::domain::Timestamp) -> bool {
        let call_ms = i64::try_from(self.settings.provider_timeout.as_millis()).unwrap_or(i64::MAX);
        job.lease.until.millis().saturating_sub(now.millis()) > call_ms.saturating_add(1_000)
    }

    /// Removes a job whose work is done or moot, if this worker still holds it.
    pub async fn finish(&self, job: &Job) -> Result<(), StepError> {
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::CompleteHeld(job.lease.clone()));
        match self.commit(unit).await? {
            Ok(()) | Err(Rejected::LeaseLost) => Ok(()),
            Err(other) => Err(StepError::Transient(other.to_string())),
        }
    }

    /// Calls the provider for the payment's current state. `Ok(None)` means the step no
    /// longer applies (the payment was cancelled before the worker claimed it, or the lease
    /// was lost).
    async fn ask_provider(
        &self,
        job: &Job,
        p: &PaymentRecord,
    ) -> Result<Option<Answer>, StepError> {
        use PaymentState::*;
        let key = |leg: &str| {
            if super::planted::on(&super::planted::KEY_PER_ATTEMPT) {
                format!("{}:{leg}:{}", p.payment_id, self.clock.now().millis())
            } else {
                format!("{}:{leg}", p.payment_id)
            }
        };
        let onramp = &self.providers.onramp;
        let offramp = &self.providers.offramp;
        let result = match p.state {
            Pending => {
                // Claimed (and committed) before calling out, so cancel cannot succeed once
                // a leg may exist.
                let claimed_at = self.clock.now();
                let mut unit = UnitOfWork::at(claimed_at);
                unit.push(Write::HoldLease(job.lease.clone()))
                    .push(Write::ClaimOnramp {
                        payment_id: p.payment_id.clone(),
                    });
                if !super::planted::on(&super::planted::SKIP_ONRAMP_CLAIM)
                    && self.commit(unit).await?.is_err()
                {
                    return Ok(None);
                }
                // No earlier run claimed it, so no earlier request can have reached the
                // provider: if this one provably did not either, the claim is handed back
                // and the payment stays cancellable through a provider outage.
                let first_claim = p.onramp_claimed_at.is_none();
                let usdc = ledger::onramp_usdc(p.amount, p.total_fees, p.currency)
                    .map_err(|e| StepError::Permanent(e.to_string()))?;
                let req = LegRequest {
                    payment_id: p.payment_id.clone(),
                    idempotency_key: key("onramp"),
                    amount: usdc.minor(),
                    currency: usdc.currency().code().to_owned(),
                    account: p.source_account.clone(),
                };
                match self.timed(onramp.name(), onramp.buy(&req)).await {
                    Err(ProviderError::NotSent(msg)) if first_claim => {
                        let mut unit = UnitOfWork::at(self.clock.now());
                        unit.push(Write::HoldLease(job.lease.clone()))
                            .push(Write::ReleaseOnramp {
                                payment_id: p.payment_id.clone(),
                                claimed_at,
                            });
                        // Not released (lease lost, state moved): the claim stays, which
                        // is the safe side.
                        let _ = self.commit(unit).await?;
                        Err(ProviderError::NotSent(msg))
                    }
                    other => other.map(Answer::Initiated),
                }
            }
            OnrampPending => {
                let sent = sent(p, Side::Onramp)?;
                self.timed(onramp.name(), onramp.status(&sent))
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
                self.timed(offramp.name(), offramp.pay_out(&req))
                    .await
                    .map(Answer::Initiated)
            }
            OfframpPending => {
                let sent = sent(p, Side::Offramp)?;
                self.timed(offramp.name(), offramp.status(&sent))
                    .await
                    .map(Answer::Status)
            }
            RefundPending => {
                let refund = ledger::refund_amount(p.amount, p.fees.onramp, p.currency)
                    .map_err(|e| StepError::Permanent(e.to_string()))?;
                match &p.reversal_reference {
                    None => {
                        let req = LegRequest {
                            payment_id: p.payment_id.clone(),
                            idempotency_key: key("reversal"),
                            amount: refund.minor(),
                            currency: refund.currency().code().to_owned(),
                            account: p.source_account.clone(),
                        };
                        self.timed(onramp.name(), onramp.reverse(&req))
                            .await
                            .map(Answer::Initiated)
                    }
                    Some(reference) => {
                        let sent = Sent {
                            reference: reference.clone(),
                            amount: refund.minor(),
                            currency: refund.currency().code().to_owned(),
                        };
                        match self.timed(onramp.name(), onramp.status(&sent)).await {
                            // A reversal must not fail for good: keep retrying and let the
                            // job dead-letter so an operator sees it.
                            Ok(TransferStatus::Failed(msg)) => {
                                return Err(StepError::Transient(format!(
                                    "reversal failed: {msg}"
                                )));
                            }
                            other => other.map(Answer::Status),
                        }
                    }
                }
            }
            Completed => {
                let sent = sent(p, Side::Offramp)?;
                self.timed(offramp.name(), offramp.status(&sent))
                    .await
                    .map(Answer::Status)
            }
            Failed | Cancelled | Refunded => return Ok(None),
        };
        match result {
            Ok(answer) => Ok(Some(answer)),
            Err(ProviderError::Refused(msg)) => Ok(Some(Answer::Refused(msg))),
            Err(ProviderError::Transient(msg) | ProviderError::NotSent(msg)) => {
                Err(StepError::Transient(msg))
            }
        }
    }

    async fn timed<T>(
        &self,
        provider: &str,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let r = tokio::time::timeout(self.settings.provider_timeout, call)
            .await
            .unwrap_or_else(|_| Err(ProviderError::Transient("provider call timed out".into())));
        metrics::histogram!("corridor_provider_request_duration_seconds", "provider" => provider.to_owned())
            .record(started.elapsed().as_secs_f64());
        r
    }

    /// Settles a leg from a provider webhook through the same decision and unit of work as
    /// the poller: whichever reports first advances the payment, the other is a no-op. The
    /// webhook id is remembered in the same unit.
    pub async fn settle_from_webhook(&self, report: LegReport) -> Result<WebhookOutcome, Error> {
        if provider_webhooks::seen(&self.store, &report.provider, &report.webhook_id).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        let found = match payments::find_by_reference(
            &self.store,
            report.side,
            &report.provider,
            &report.reference,
        )
        .await?
        {
            Some(p) if report.side == Side::Onramp => Some((p, ReportedLeg::Onramp)),
            Some(p) => Some((p, ReportedLeg::Offramp)),
            // A refund's reversal runs on the onramp and is reported as an onramp event.
            None if report.side == Side::Onramp => {
                payments::find_by_reversal(&self.store, &report.reference)
                    .await?
                    .map(|p| (p, ReportedLeg::Reversal))
            }
            None => None,
        };
        let (p, leg) = found
            .filter(|(p, _)| p.payment_id == report.payment_id)
            .ok_or(Error::NotFound("transfer"))?;
        tracing::Span::current()
            .record("payment_id", p.payment_id.as_str())
            .record("merchant_id", p.merchant_id.as_str());
        let expected = match leg {
            ReportedLeg::Onramp => PaymentState::OnrampPending,
            // A payout that came back is reported on a completed payment.
            ReportedLeg::Offramp if matches!(report.status, TransferStatus::Returned(_)) => {
                PaymentState::Completed
            }
            ReportedLeg::Offramp => PaymentState::OfframpPending,
            ReportedLeg::Reversal => PaymentState::RefundPending,
        };
        let now = self.clock.now();
        let remember = || {
            let mut unit = UnitOfWork::at(now);
            unit.push(Write::RememberWebhook {
                provider: report.provider.clone(),
                webhook_id: report.webhook_id.clone(),
            });
            unit
        };
        let effects = (p.state == expected)
            .then(|| {
                lifecycle::decide(
                    &p,
                    Input::Provider(Answer::Status(report.status.clone())),
                    &self.step_context(&p, 0),
                )
                .ok()
            })
            .flatten()
            .filter(|e| e.transition.is_some());
        if let Some(effects) = effects {
            match self.apply(&p, effects, Via::Webhook, remember()).await? {
                Applied::Written(_) => return Ok(WebhookOutcome::Applied),
                Applied::Rejected(Rejected::Duplicate) => return Ok(WebhookOutcome::Duplicate),
                // Polling got there first: only the webhook id is remembered.
                Applied::Rejected(_) => {}
            }
        }
        Ok(match self.commit(remember()).await? {
            Ok(()) => WebhookOutcome::AlreadyApplied,
            Err(_) => WebhookOutcome::Duplicate,
        })
    }
}

/// What was sent on the payment's leg on `side`: its reference, amount and currency (USDC
/// bought on the onramp, the payout currency on the offramp).
fn sent(p: &PaymentRecord, side: Side) -> Result<Sent, StepError> {
    let leg = p
        .leg(side)
        .ok_or_else(|| StepError::Permanent("leg has no reference".into()))?;
    let currency = match side {
        Side::Onramp => crate::domain::Currency::Usdc.code().to_owned(),
        Side::Offramp => p.payout_currency.code().to_owned(),
    };
    Ok(Sent {
        reference: leg.reference.clone(),
        amount: leg.amount,
        currency,
    })
}
