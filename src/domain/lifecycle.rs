//! What happens to a payment when something happens to it: the one decision table.
//!
//! [`decide`] is a pure function of (payment, input, context) — the input being a provider's
//! answer to the current step, a merchant's cancel or an operator's retry — and returns the
//! payment's [`Effects`] as typed values: the transition (checked against
//! [`super::payment::TRANSITIONS`]), the facts recorded with it (legs, failure, refund), and
//! the next step job with its delay. The poller, provider webhooks, cancel and operator
//! retries all go through it, so each rule exists once and the callers only carry effects to
//! the store.

use rust_decimal::Decimal;

use super::backoff::poll_delay_ms;
use super::ledger;
use super::payment::{
    FailureCode, Leg, LegStatus, PaymentRecord, PaymentState, Side, TransferStatus,
};

/// What a provider said in answer to the current step's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A transfer was initiated (or an existing one returned) with this reference.
    Initiated(String),
    /// The provider refused the transfer for good.
    Refused(String),
    /// The current status of the leg's transfer.
    Status(TransferStatus),
}

/// Something that may move a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The provider answered the current step's call (polling or a provider webhook).
    Provider(Answer),
    /// The merchant asks to cancel.
    Cancel,
    /// An operator asks to re-run the current step now.
    OperatorRetry,
}

/// A fact recorded on the payment with (or without) a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A leg was initiated with the provider.
    LegInitiated(Side, Leg),
    /// A leg's settlement status changed.
    LegStatus(Side, LegStatus),
    /// Why the payment did not complete.
    Failure(FailureCode, String),
    /// The market mid rate when the offramp settled — the rate it executed at (none when the
    /// market has no rate).
    ExecutedRate(Option<Decimal>),
    /// The refund's reversal transfer and the source amount it returns.
    Reversal {
        /// Provider reference of the reversal.
        reference: String,
        /// Source minor units returned.
        refund_amount: i64,
    },
}

/// A state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The state entered.
    pub to: PaymentState,
    /// Why, for the history row.
    pub reason: &'static str,
    /// Only while no worker has begun initiating the onramp (cancel's rule: a cancelled
    /// payment never has a leg).
    pub unclaimed_only: bool,
}

/// What happens to the payment's step job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run the step for `state` after `after_ms`, with `polls` polls made in it.
    Run {
        /// State the next run expects.
        state: PaymentState,
        /// Delay, ms.
        after_ms: i64,
        /// Poll count carried forward (for backoff).
        polls: u32,
    },
    /// The payment is terminal: no more step jobs.
    Done,
}

/// Everything a decision changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    /// The state change, if any.
    pub transition: Option<Move>,
    /// Facts recorded on the payment (with the transition, or alone in the current state).
    pub changes: Vec<Change>,
    /// The step job's fate.
    pub next: Next,
    /// What the step does to the payment's ledger ([`ledger::postings`]), committed with it.
    pub ledger: Vec<ledger::Posting>,
}

/// Why an input does not apply to the payment as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The answer does not fit the state (a late or foreign report): the step is retried.
    #[error("{answer:?} does not apply to a payment in {state}")]
    DoesNotApply {
        /// The payment's state.
        state: PaymentState,
        /// What was reported.
        answer: Answer,
    },
    /// Only a `PENDING` payment whose onramp has not started can be cancelled.
    #[error("only a PENDING payment whose onramp has not started can be cancelled")]
    CannotCancel,
    /// The payment is terminal: nothing to retry.
    #[error("payment is {0} (terminal)")]
    Terminal(PaymentState),
    /// An amount could not be derived (overflow or a negative leg): a corrupt payment.
    #[error("amount error: {0}")]
    Amount(String),
}

/// Inputs of a decision besides the payment and what happened.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Onramp provider name (recorded on the leg).
    pub onramp: &'a str,
    /// Offramp provider name.
    pub offramp: &'a str,
    /// First poll delay, ms.
    pub poll_base_ms: i64,
    /// Polls made so far in this state.
    pub polls: u32,
    /// Market mid rate now (recorded as the offramp's executed rate when it settles).
    pub market_mid: Option<Decimal>,
    /// How long after a payout settles Corridor looks again, for a payout that came back
    /// (0: it does not; providers report returns by webhook).
    pub return_check_ms: i64,
}

fn go(to: PaymentState, reason: &'static str, changes: Vec<Change>, next: Next) -> Effects {
    Effects {
        transition: Some(Move {
            to,
            reason,
            unclaimed_only: false,
        }),
        changes,
        next,
        ledger: vec![],
    }
}

fn run_now(state: PaymentState) -> Next {
    Next::Run {
        state,
        after_ms: 0,
        polls: 0,
    }
}

fn amount_error(e: impl std::fmt::Display) -> Refusal {
    Refusal::Amount(e.to_string())
}

/// What `input` does to payment `p`: the decision table's effects, with the ledger postings
/// that follow from them.
pub fn decide(p: &PaymentRecord, input: Input, ctx: &Context) -> Result<Effects, Refusal> {
    let mut effects = table(p, input, ctx)?;
    effects.ledger = ledger::postings(p, &effects, ctx).map_err(amount_error)?;
    Ok(effects)
}

/// The decision table.
fn table(p: &PaymentRecord, input: Input, ctx: &Context) -> Result<Effects, Refusal> {
    use PaymentState::*;
    let answer = match input {
        Input::Cancel => {
            if p.state != Pending || p.onramp_claimed_at.is_some() {
                return Err(Refusal::CannotCancel);
            }
            return Ok(Effects {
                transition: Some(Move {
                    to: Cancelled,
                    reason: "cancelled by merchant",
                    unclaimed_only: true,
                }),
                changes: vec![],
                next: Next::Done,
                ledger: vec![],
            });
        }
        Input::OperatorRetry => {
            if p.state.is_terminal() {
                return Err(Refusal::Terminal(p.state));
            }
            return Ok(Effects {
                transition: None,
                changes: vec![],
                next: run_now(p.state),
                ledger: vec![],
            });
        }
        Input::Provider(answer) => answer,
    };
    let first_poll = |state| Next::Run {
        state,
        after_ms: poll_delay_ms(ctx.poll_base_ms, 0),
        polls: 0,
    };
    let poll_again = |state| {
        let polls = ctx.polls + 1;
        Effects {
            transition: None,
            changes: vec![],
            next: Next::Run {
                state,
                after_ms: poll_delay_ms(ctx.poll_base_ms, polls),
                polls,
            },
            ledger: vec![],
        }
    };
    let failure = |code, msg: &str| Change::Failure(code, msg.to_owned());
    Ok(match (p.state, answer) {
        (Pending, Answer::Initiated(reference)) => {
            let usdc =
                ledger::onramp_usdc(p.amount, p.total_fees, p.currency).map_err(amount_error)?;
            let leg = Leg {
                provider: ctx.onramp.to_owned(),
                reference,
                status: LegStatus::Pending,
                amount: usdc.minor(),
            };
            go(
                OnrampPending,
                "onramp initiated",
                vec![Change::LegInitiated(Side::Onramp, leg)],
                first_poll(OnrampPending),
            )
        }
        (Pending, Answer::Refused(msg)) => go(
            Failed,
            "onramp refused",
            vec![failure(FailureCode::OnrampFailed, &msg)],
            Next::Done,
        ),
        (OnrampPending, Answer::Status(TransferStatus::Pending)) => poll_again(OnrampPending),
        (OnrampPending, Answer::Status(TransferStatus::Completed)) => go(
            OnrampComplete,
            "onramp settled",
            vec![Change::LegStatus(Side::Onramp, LegStatus::Completed)],
            run_now(OnrampComplete),
        ),
        (OnrampPending, Answer::Status(TransferStatus::Failed(msg))) => go(
            Failed,
            "onramp failed",
            vec![
                failure(FailureCode::OnrampFailed, &msg),
                Change::LegStatus(Side::Onramp, LegStatus::Failed),
            ],
            Next::Done,
        ),
        (OnrampComplete, Answer::Initiated(reference)) => {
            let leg = Leg {
                provider: ctx.offramp.to_owned(),
                reference,
                status: LegStatus::Pending,
                amount: p.payout_amount,
            };
            go(
                OfframpPending,
                "offramp initiated",
                vec![Change::LegInitiated(Side::Offramp, leg)],
                first_poll(OfframpPending),
            )
        }
        (OnrampComplete, Answer::Refused(msg)) => go(
            RefundPending,
            "offramp refused",
            vec![failure(FailureCode::OfframpFailed, &msg)],
            run_now(RefundPending),
        ),
        (OfframpPending, Answer::Status(TransferStatus::Pending)) => poll_again(OfframpPending),
        (OfframpPending, Answer::Status(TransferStatus::Completed)) => go(
            Completed,
            "offramp settled",
            vec![
                Change::LegStatus(Side::Offramp, LegStatus::Completed),
                Change::ExecutedRate(ctx.market_mid.map(|m| m.normalize())),
            ],
            // One more look after a while, for a payout that comes back (when configured).
            if ctx.return_check_ms > 0 {
                Next::Run {
                    state: Completed,
                    after_ms: ctx.return_check_ms,
                    polls: 0,
                }
            } else {
                Next::Done
            },
        ),
        (Completed, Answer::Status(TransferStatus::Returned(msg))) => go(
            RefundPending,
            "payout returned",
            vec![
                failure(FailureCode::PayoutReturned, &msg),
                Change::LegStatus(Side::Offramp, LegStatus::Returned),
            ],
            run_now(RefundPending),
        ),
        // Still paid at the look after settlement: nothing more to watch.
        (Completed, Answer::Status(TransferStatus::Completed | TransferStatus::Pending)) => {
            Effects {
                transition: None,
                changes: vec![],
                next: Next::Done,
                ledger: vec![],
            }
        }
        (OfframpPending, Answer::Status(TransferStatus::Failed(msg))) => go(
            RefundPending,
            "offramp failed",
            vec![
                failure(FailureCode::OfframpFailed, &msg),
                Change::LegStatus(Side::Offramp, LegStatus::Failed),
            ],
            run_now(RefundPending),
        ),
        (RefundPending, Answer::Initiated(reference)) => {
            let refund =
                ledger::refund_amount(p.amount, p.fees.onramp, p.currency).map_err(amount_error)?;
            Effects {
                transition: None,
                changes: vec![Change::Reversal {
                    reference,
                    refund_amount: refund.minor(),
                }],
                next: first_poll(RefundPending),
                ledger: vec![],
            }
        }
        (RefundPending, Answer::Status(TransferStatus::Pending)) => poll_again(RefundPending),
        (RefundPending, Answer::Status(TransferStatus::Completed)) => go(
            Refunded,
            "refund settled",
            vec![Change::LegStatus(Side::Onramp, LegStatus::Reversed)],
            Next::Done,
        ),
        (state, answer) => return Err(Refusal::DoesNotApply { state, answer }),
    })
}

/// `p` as it is after `effects` are written at `at` (for event bodies and callers that show
/// the result without reading it back).
pub fn applied(p: &PaymentRecord, effects: &Effects, at: super::Timestamp) -> PaymentRecord {
    let mut next = p.clone();
    next.updated_at = at;
    if let Some(m) = &effects.transition {
        next.state = m.to;
        next.version += 1;
        next.state_since = at;
        next.completed_at = m.to.is_terminal().then_some(at);
    }
    for c in &effects.changes {
        match c {
            Change::LegInitiated(Side::Onramp, leg) => next.onramp = Some(leg.clone()),
            Change::LegInitiated(Side::Offramp, leg) => next.offramp = Some(leg.clone()),
            Change::LegStatus(side, status) => {
                let leg = match side {
                    Side::Onramp => next.onramp.as_mut(),
                    Side::Offramp => next.offramp.as_mut(),
                };
                if let Some(leg) = leg {
                    leg.status = *status;
                }
            }
            Change::Failure(code, msg) => {
                next.failure = Some((code.as_str().to_owned(), msg.clone()));
            }
            Change::ExecutedRate(rate) => next.executed_rate = *rate,
            Change::Reversal {
                reference,
                refund_amount,
            } => {
                next.reversal_reference = Some(reference.clone());
                next.refund_amount = Some(*refund_amount);
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use PaymentState::*;

    fn payment(state: PaymentState) -> PaymentRecord {
        crate::domain::payment::example(state)
    }

    fn ctx() -> Context<'static> {
        Context {
            onramp: "sim-onramp",
            offramp: "sim-offramp",
            poll_base_ms: 100,
            polls: 0,
            market_mid: Some("0.92510000".parse().unwrap()),
            return_check_ms: 0,
        }
    }

    fn initiated() -> Input {
        Input::Provider(Answer::Initiated("ref".into()))
    }
    fn refused() -> Input {
        Input::Provider(Answer::Refused("no".into()))
    }
    fn status(s: TransferStatus) -> Input {
        Input::Provider(Answer::Status(s))
    }
    fn pending() -> Input {
        status(TransferStatus::Pending)
    }
    fn completed() -> Input {
        status(TransferStatus::Completed)
    }
    fn failed() -> Input {
        status(TransferStatus::Failed("declined".into()))
    }

    /// The whole table, row by row: state × input → (state entered, what the step job does).
    /// `None` in the second column: the input does not apply (refused).
    #[test]
    fn the_decision_table() {
        // (state, input, Some((entered, next state job or None for done)))
        type Row = (
            PaymentState,
            Input,
            Option<(Option<PaymentState>, Option<PaymentState>)>,
        );
        let rows: Vec<Row> = vec![
            (
                Pending,
                initiated(),
                Some((Some(OnrampPending), Some(OnrampPending))),
            ),
            (Pending, refused(), Some((Some(Failed), None))),
            (Pending, pending(), None),
            (Pending, completed(), None),
            (Pending, Input::Cancel, Some((Some(Cancelled), None))),
            (Pending, Input::OperatorRetry, Some((None, Some(Pending)))),
            (OnrampPending, pending(), Some((None, Some(OnrampPending)))),
            (
                OnrampPending,
                completed(),
                Some((Some(OnrampComplete), Some(OnrampComplete))),
            ),
            (OnrampPending, failed(), Some((Some(Failed), None))),
            (OnrampPending, initiated(), None),
            (OnrampPending, Input::Cancel, None),
            (
                OnrampComplete,
                initiated(),
                Some((Some(OfframpPending), Some(OfframpPending))),
            ),
            (
                OnrampComplete,
                refused(),
                Some((Some(RefundPending), Some(RefundPending))),
            ),
            (OnrampComplete, completed(), None),
            (
                OfframpPending,
                pending(),
                Some((None, Some(OfframpPending))),
            ),
            (OfframpPending, completed(), Some((Some(Completed), None))),
            (
                OfframpPending,
                failed(),
                Some((Some(RefundPending), Some(RefundPending))),
            ),
            (
                OfframpPending,
                Input::OperatorRetry,
                Some((None, Some(OfframpPending))),
            ),
            (
                RefundPending,
                initiated(),
                Some((None, Some(RefundPending))),
            ),
            (RefundPending, pending(), Some((None, Some(RefundPending)))),
            (RefundPending, completed(), Some((Some(Refunded), None))),
            // The look after settlement (when returns are watched): still paid, done; came
            // back, refunded.
            (Completed, completed(), Some((None, None))),
            (Completed, pending(), Some((None, None))),
            (
                Completed,
                status(TransferStatus::Returned("bounced".into())),
                Some((Some(RefundPending), Some(RefundPending))),
            ),
            (Completed, failed(), None),
            (Completed, Input::OperatorRetry, None),
            (Failed, Input::Cancel, None),
            (Cancelled, initiated(), None),
            (Refunded, completed(), None),
        ];
        for (state, input, want) in rows {
            let got = decide(&payment(state), input.clone(), &ctx())
                .ok()
                .map(|e| {
                    let next = match e.next {
                        Next::Run { state, .. } => Some(state),
                        Next::Done => None,
                    };
                    (e.transition.map(|m| m.to), next)
                });
            assert_eq!(got, want, "{state} × {input:?}");
        }
    }

    /// Every transition a decision takes is one the domain table allows, and a decision ends
    /// the step job exactly when it enters a terminal state.
    #[test]
    fn effects_only_take_allowed_transitions() {
        let inputs = [
            initiated(),
            refused(),
            pending(),
            completed(),
            failed(),
            Input::Cancel,
            Input::OperatorRetry,
        ];
        for &state in PaymentState::ALL {
            for input in &inputs {
                if let Ok(e) = decide(&payment(state), input.clone(), &ctx()) {
                    match &e.transition {
                        Some(m) => {
                            assert!(state.can_transition_to(m.to), "{state} -> {}", m.to);
                            assert_eq!(m.to.is_terminal(), e.next == Next::Done);
                        }
                        // Nothing changes: the step runs again, or (a completed payment's
                        // look after settlement) is over.
                        None => assert!(
                            matches!(e.next, Next::Run { state: s, .. } if s == state)
                                || (state == Completed && e.next == Next::Done)
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn onramp_initiation_records_the_usdc_leg() {
        let e = decide(&payment(Pending), initiated(), &ctx()).unwrap();
        assert_eq!(
            e.changes,
            vec![Change::LegInitiated(
                Side::Onramp,
                Leg {
                    provider: "sim-onramp".into(),
                    reference: "ref".into(),
                    status: LegStatus::Pending,
                    amount: 952_750_000,
                }
            )]
        );
        assert_eq!(
            e.next,
            Next::Run {
                state: OnrampPending,
                after_ms: 100,
                polls: 0
            }
        );
    }

    #[test]
    fn offramp_settlement_records_the_market_rate() {
        let e = decide(&payment(OfframpPending), completed(), &ctx()).unwrap();
        assert!(
            e.changes
                .contains(&Change::ExecutedRate(Some("0.9251".parse().unwrap())))
        );
    }

    #[test]
    fn a_settled_payout_is_looked_at_again_only_when_returns_are_watched() {
        let p = payment(OfframpPending);
        assert_eq!(decide(&p, completed(), &ctx()).unwrap().next, Next::Done);
        let mut c = ctx();
        c.return_check_ms = 30_000;
        assert_eq!(
            decide(&p, completed(), &c).unwrap().next,
            Next::Run {
                state: Completed,
                after_ms: 30_000,
                polls: 0
            }
        );
        let back = decide(
            &payment(Completed),
            status(TransferStatus::Returned("bounced".into())),
            &c,
        )
        .unwrap();
        assert!(back.changes.contains(&Change::Failure(
            FailureCode::PayoutReturned,
            "bounced".into()
        )));
        assert!(!back.ledger.is_empty(), "the return posts its transfers");
    }

    #[test]
    fn pending_polls_back_off() {
        let mut c = ctx();
        c.polls = 3;
        let e = decide(&payment(OfframpPending), pending(), &c).unwrap();
        assert!(e.transition.is_none());
        match e.next {
            Next::Run {
                polls, after_ms, ..
            } => {
                assert_eq!(polls, 4);
                assert_eq!(after_ms, poll_delay_ms(100, 4));
                assert!(after_ms > 100);
            }
            Next::Done => panic!("should poll again"),
        }
    }

    #[test]
    fn offramp_failure_refunds_amount_minus_onramp_fee() {
        let e = decide(&payment(OfframpPending), failed(), &ctx()).unwrap();
        assert_eq!(e.transition.unwrap().to, RefundPending);
        let e = decide(&payment(RefundPending), initiated(), &ctx()).unwrap();
        assert_eq!(
            e.changes,
            vec![Change::Reversal {
                reference: "ref".into(),
                refund_amount: 98_950
            }]
        );
    }

    #[test]
    fn a_claimed_payment_cannot_be_cancelled() {
        let mut p = payment(Pending);
        p.onramp_claimed_at = Some(Timestamp(1));
        assert_eq!(
            decide(&p, Input::Cancel, &ctx()),
            Err(Refusal::CannotCancel)
        );
        let e = decide(&payment(Pending), Input::Cancel, &ctx()).unwrap();
        assert!(e.transition.unwrap().unclaimed_only);
    }

    #[test]
    fn applied_effects_show_the_payment_as_written() {
        let p = payment(OfframpPending);
        let e = decide(&p, completed(), &ctx()).unwrap();
        let mut with_leg = p.clone();
        with_leg.offramp = Some(Leg {
            provider: "x".into(),
            reference: "r".into(),
            status: LegStatus::Pending,
            amount: 1,
        });
        let after = applied(&with_leg, &e, Timestamp(5));
        assert_eq!(after.state, Completed);
        assert_eq!(after.version, 2);
        assert_eq!(after.completed_at, Some(Timestamp(5)));
        assert_eq!(after.offramp.unwrap().status, LegStatus::Completed);
    }
}
