//! What must hold, as code: [`check_payment`] over one payment as the database has it and as
//! the providers saw it, and [`at_the_end`] over a whole run (which also computes the digest).
//! The checks made while a run goes — a leg started twice, a replay that differs, a payout
//! other than the guarantee — live where they are seen ([`super::world`], the merchant).

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::run::Sim;
use super::world::{LegKind, Outcome, Transfer};
use crate::domain::{Currency, PaymentState, ledger};
use crate::store::census::{self, Census};

/// What the merchant's side knows about a payment.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The payout the merchant was promised (the 202's `guaranteed_payout`).
    pub guaranteed_payout: Option<i64>,
    /// When the quote the payment was made from expired (ms), if it was made from one.
    pub quote_expires_at: Option<i64>,
    /// The merchant's cancel was answered 200.
    pub cancel_won: bool,
    /// The merchant sent a cancel (answered or not: a crash may have lost the answer).
    pub cancel_tried: bool,
    /// The merchant has a webhook endpoint subscribed to every event.
    pub subscribed: bool,
}

/// A broken invariant: which, and what was seen.
pub type Broken = (&'static str, String);

/// The event a history row's transition records.
fn event_for(state: PaymentState) -> String {
    match state {
        PaymentState::Pending => "payment.created".into(),
        other => other.event_type(),
    }
}

/// Checks one payment; returns how many checks held, or the first that did not.
/// `delivered` tells whether the merchant's endpoint received an event (by id).
pub fn check_payment(
    c: &Census,
    transfers: &[Transfer],
    facts: &Facts,
    delivered: &dyn Fn(&str) -> bool,
) -> Result<u64, Broken> {
    let p = &c.payment;
    let mut checks = check_ledger(c)?;
    let mut ensure = |ok: bool, invariant: &'static str, detail: &dyn Fn() -> String| {
        checks += 1;
        if ok {
            Ok(())
        } else {
            Err((invariant, detail()))
        }
    };

    // The history follows the transition table, from PENDING to the current state, no
    // state twice.
    let h = &c.history;
    ensure(
        h.first()
            .is_some_and(|e| e.from.is_none() && e.to == PaymentState::Pending),
        "history follows the transition table",
        &|| format!("history starts {:?}", h.first().map(|e| (e.from, e.to))),
    )?;
    let mut seen = HashSet::new();
    for (i, e) in h.iter().enumerate() {
        ensure(
            seen.insert(e.to),
            "history follows the transition table",
            &|| format!("{} entered twice", e.to),
        )?;
        if i > 0 {
            let prev = h[i - 1].to;
            ensure(
                e.from == Some(prev) && prev.can_transition_to(e.to),
                "history follows the transition table",
                &|| format!("{:?} → {} after {prev}", e.from, e.to),
            )?;
        }
    }
    ensure(
        h.last().is_some_and(|e| e.to == p.state),
        "history follows the transition table",
        &|| {
            format!(
                "history ends at {:?}, payment is {}",
                h.last().map(|e| e.to),
                p.state
            )
        },
    )?;

    // Every committed transition has its event, for a merchant that subscribed; one that
    // did not costs no event rows at all. Every event reached the endpoint.
    let mut expected: Vec<String> = if facts.subscribed {
        h.iter().map(|e| event_for(e.to)).collect()
    } else {
        Vec::new()
    };
    let mut events: Vec<String> = c.events.iter().map(|(_, t)| t.clone()).collect();
    expected.sort();
    events.sort();
    ensure(
        expected == events,
        "every committed transition has its event",
        &|| format!("history calls for {expected:?}, events are {events:?}"),
    )?;
    for (id, kind) in &c.events {
        ensure(
            delivered(id),
            "every event is delivered at least once",
            &|| format!("{kind} {id} never reached the endpoint"),
        )?;
    }

    // Every payment is terminal or still has a live job.
    let live = c.step_jobs.iter().any(|s| s == "ready");
    ensure(p.state.is_terminal() || live, "no job is lost", &|| {
        format!("{} with step jobs {:?}", p.state, c.step_jobs)
    })?;
    ensure(p.state.is_terminal(), "every payment finishes", &|| {
        format!("still {} at the end of the run", p.state)
    })?;

    // Money: what the providers moved.
    let of =
        |leg: LegKind| -> Vec<&Transfer> { transfers.iter().filter(|t| t.leg == leg).collect() };
    let (on, off, rev) = (
        of(LegKind::Onramp),
        of(LegKind::Offramp),
        of(LegKind::Reversal),
    );
    for (leg, ts) in [("onramp", &on), ("offramp", &off), ("reversal", &rev)] {
        ensure(ts.len() <= 1, "each leg initiated at most once", &|| {
            format!("{} {leg} transfers", ts.len())
        })?;
    }
    let recorded = |side: Option<&crate::domain::Leg>, ts: &[&Transfer]| match (side, ts.first()) {
        (Some(l), Some(t)) => l.reference == t.reference,
        (Some(_), None) => false,
        (None, _) => true,
    };
    ensure(
        recorded(p.onramp.as_ref(), &on) && recorded(p.offramp.as_ref(), &off),
        "legs are the providers' transfers",
        &|| {
            format!(
                "legs {:?} / {:?}, transfers {on:?} / {off:?}",
                p.onramp, p.offramp
            )
        },
    )?;
    let usdc = ledger::onramp_usdc(p.amount, p.total_fees, p.currency)
        .map_err(|e| ("money is exact", e.to_string()))?;
    if let Some(t) = on.first() {
        ensure(
            t.amount == usdc.minor() && t.currency == Currency::Usdc.code(),
            "the onramp buys the amount net of fees",
            &|| {
                format!(
                    "bought {} {}, expected {}",
                    t.amount,
                    t.currency,
                    usdc.minor()
                )
            },
        )?;
    }
    match p.state {
        PaymentState::Cancelled => {
            ensure(
                transfers.is_empty(),
                "a cancelled payment moved no money",
                &|| format!("transfers {transfers:?}"),
            )?;
        }
        PaymentState::Failed => {
            ensure(
                off.is_empty() && rev.is_empty(),
                "a failed payment paid nothing out",
                &|| format!("transfers {transfers:?}"),
            )?;
        }
        PaymentState::Completed => {
            let paid = off.first();
            ensure(
                paid.is_some_and(|t| {
                    t.outcome == Outcome::Completed
                        && t.amount == p.payout_amount
                        && t.currency == p.payout_currency.code()
                }),
                "a completed payment paid exactly its payout",
                &|| {
                    format!(
                        "payout {} {}, transfers {off:?}",
                        p.payout_amount, p.payout_currency
                    )
                },
            )?;
            ensure(
                on.first().is_some_and(|t| t.outcome == Outcome::Completed) && rev.is_empty(),
                "a completed payment was bought and not refunded",
                &|| format!("transfers {transfers:?}"),
            )?;
            if let Some(g) = facts.guaranteed_payout {
                ensure(
                    paid.is_some_and(|t| t.amount == g),
                    "a completed payment paid what its 202 promised",
                    &|| format!("promised {g}, paid {paid:?}"),
                )?;
            }
        }
        PaymentState::Refunded => {
            let refund = ledger::refund_amount(p.amount, p.fees.onramp, p.currency)
                .map_err(|e| ("money is exact", e.to_string()))?;
            ensure(
                rev.first().is_some_and(|t| {
                    t.outcome == Outcome::Completed
                        && t.amount == refund.minor()
                        && t.currency == p.currency.code()
                }),
                "a refunded payment returned amount − onramp fee",
                &|| {
                    format!(
                        "refund {} {}, reversals {rev:?}",
                        refund.minor(),
                        p.currency
                    )
                },
            )?;
            ensure(
                !off.iter().any(|t| t.outcome == Outcome::Completed),
                "a refunded payment paid nothing out",
                &|| format!("offramp {off:?}"),
            )?;
        }
        _ => {}
    }
    if let Some(expires) = facts.quote_expires_at {
        ensure(
            p.created_at.millis() < expires,
            "an expired quote is refused",
            &|| {
                format!(
                    "created {} ms after its quote expired",
                    p.created_at.millis() - expires
                )
            },
        )?;
    }
    ensure(
        !facts.cancel_won || p.state == PaymentState::Cancelled,
        "a cancel answered 200 is the payment's end",
        &|| format!("the cancel was answered 200, the payment ended {}", p.state),
    )?;
    ensure(
        facts.cancel_tried || p.state != PaymentState::Cancelled,
        "only a merchant's cancel cancels",
        &|| "cancelled without a cancel being sent".into(),
    )?;
    Ok(checks)
}

/// The payment's ledger against its state: every transfer balanced within one currency,
/// nothing pending once the payment is terminal, the merchant charged the amount or nothing,
/// the payout and the refund posted as promised, only earned fees kept, the treasury's USDC
/// all sold or returned, the FX result the rate difference on the USDC sold, and refunds
/// within the capture.
pub fn check_ledger(c: &Census) -> Result<u64, Broken> {
    use crate::domain::ledger::{
        EntryStatus, TREASURY, merchant_funding, payouts, platform_fees, platform_fx, refunds,
    };
    let p = &c.payment;
    let mut checks = 0u64;
    let mut ensure = |ok: bool, invariant: &'static str, detail: &dyn Fn() -> String| {
        checks += 1;
        if ok {
            Ok(())
        } else {
            Err((invariant, detail()))
        }
    };
    let shown = || {
        c.ledger
            .iter()
            .map(|t| {
                let t = &t.transfer;
                format!(
                    "{} {} {}→{} {} {}",
                    t.role, t.status, t.debit, t.credit, t.amount, t.currency
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    for t in &c.ledger {
        let t = &t.transfer;
        let cur = t.currency.code();
        ensure(
            t.amount > 0
                && t.debit != t.credit
                && ledger::account_currency(&t.debit) == cur
                && ledger::account_currency(&t.credit) == cur,
            "every transfer is balanced in one currency",
            &|| format!("{} {} {}→{} {}", t.role, t.amount, t.debit, t.credit, cur),
        )?;
    }
    let posted_into = |account: &str| -> i64 {
        c.ledger
            .iter()
            .map(|t| &t.transfer)
            .filter(|t| t.status == EntryStatus::Posted)
            .map(|t| {
                (if t.credit == account { t.amount } else { 0 })
                    - (if t.debit == account { t.amount } else { 0 })
            })
            .sum()
    };
    let pending = c
        .ledger
        .iter()
        .filter(|t| t.transfer.status == EntryStatus::Pending)
        .count();
    ensure(
        !p.state.is_terminal() || pending == 0,
        "no pending transfer on a terminal payment",
        &|| format!("{} with {pending} pending: {}", p.state, shown()),
    )?;
    let (s, out) = (p.currency, p.payout_currency);
    let captured = -posted_into(&merchant_funding(&p.merchant_id, s));
    let charged = matches!(p.state, PaymentState::Completed | PaymentState::Refunded);
    ensure(
        captured == if charged { p.amount } else { 0 } || !p.state.is_terminal(),
        "the merchant is charged the amount, or nothing",
        &|| {
            format!(
                "{} captured {captured} of {}: {}",
                p.state,
                p.amount,
                shown()
            )
        },
    )?;
    let paid = posted_into(&payouts(out));
    ensure(
        paid == if p.state == PaymentState::Completed {
            p.payout_amount
        } else {
            0
        } || !p.state.is_terminal(),
        "the payout posted is the guarantee",
        &|| {
            format!(
                "{} posted {paid} {out} to payouts, promised {}",
                p.state, p.payout_amount
            )
        },
    )?;
    let refund = ledger::refund_amount(p.amount, p.fees.onramp, s)
        .map_err(|e| ("money is exact", e.to_string()))?
        .minor();
    let refunded = posted_into(&refunds(s));
    ensure(
        refunded
            == if p.state == PaymentState::Refunded {
                refund
            } else {
                0
            }
            || !p.state.is_terminal(),
        "the refund posted is amount − onramp fee",
        &|| {
            format!(
                "{} posted {refunded} {s} to refunds, the rule says {refund}",
                p.state
            )
        },
    )?;
    let in_refunds: i64 = c
        .ledger
        .iter()
        .map(|t| &t.transfer)
        .filter(|t| t.status != EntryStatus::Voided && t.credit == refunds(s))
        .map(|t| t.amount)
        .sum();
    ensure(
        in_refunds <= captured,
        "refunds never exceed the capture",
        &|| format!("{in_refunds} toward refunds, {captured} captured"),
    )?;
    let fees = posted_into(&platform_fees(s));
    let earned = match p.state {
        PaymentState::Completed => p.total_fees,
        PaymentState::Refunded => p.fees.onramp,
        _ => 0,
    };
    ensure(
        fees == earned || !p.state.is_terminal(),
        "only earned fees are kept",
        &|| format!("{} kept {fees} in fees, earned {earned}", p.state),
    )?;
    let held = posted_into(TREASURY);
    ensure(
        held == 0 || !p.state.is_terminal(),
        "the USDC bought is sold or returned",
        &|| {
            format!(
                "{} leaves {held} USDC in the treasury: {}",
                p.state,
                shown()
            )
        },
    )?;
    let fx = posted_into(&platform_fx(out));
    // A payout that came back keeps the FX result of its sale (the buy-back's is in USDC).
    let returned = p
        .failure
        .as_ref()
        .is_some_and(|(code, _)| code == "PAYOUT_RETURNED");
    match (p.state, p.executed_rate) {
        (PaymentState::Completed, Some(executed)) | (PaymentState::Refunded, Some(executed))
            if p.state == PaymentState::Completed || returned =>
        {
            use rust_decimal::Decimal;
            let net = Decimal::from(p.amount - p.total_fees);
            let scale =
                Decimal::from(10i64.pow(out.exponent())) / Decimal::from(10i64.pow(s.exponent()));
            let exact = net * (executed - p.exchange_rate) * scale;
            let rule =
                ledger::fx_gain_loss(p, executed).map_err(|e| ("money is exact", e.to_string()))?;
            ensure(
                fx == rule && (Decimal::from(fx) - exact).abs() < Decimal::ONE,
                "the FX result is (executed − locked) on the USDC sold",
                &|| {
                    format!(
                        "posted {fx} {out}, executed {executed} vs locked {}: {exact}",
                        p.exchange_rate
                    )
                },
            )?;
        }
        _ => ensure(
            fx == 0 || !p.state.is_terminal(),
            "only a settled payout has an FX result",
            &|| format!("{} posted {fx} {out} of FX", p.state),
        )?,
    }
    Ok(checks)
}

/// What the end of a run found.
pub(super) struct Checked {
    pub(super) by_state: BTreeMap<String, u64>,
    pub(super) checks: u64,
    pub(super) payments: u64,
    pub(super) digest: String,
}

/// Checks every payment of the run and computes the digest of the final state: each
/// payment (id, state, amounts, fees, times, history), each provider transfer, and the
/// run's counters.
pub(super) async fn at_the_end(sim: &Sim) -> anyhow::Result<Checked> {
    let ctx = sim.ctx();
    let world = sim.world();
    let won = sim.cancels_won();
    let tried = sim.cancels_tried();
    let mut facts: HashMap<&str, Facts> = HashMap::new();
    let mut answered_all = true;
    for o in &sim.orders {
        match &o.payment_id {
            Some(id) => {
                facts.insert(
                    id.as_str(),
                    Facts {
                        guaranteed_payout: o.promised,
                        quote_expires_at: o.quote.as_ref().map(|q| q.2),
                        cancel_won: won.contains(id),
                        cancel_tried: tried.contains(id),
                        subscribed: o.subscribed,
                    },
                );
            }
            None if !o.refused => answered_all = false,
            None => {}
        }
    }
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let refused = sim.orders.iter().filter(|o| o.refused).count() as u64;
    if refused > 0 {
        by_state.insert("refused at creation".into(), refused);
    }
    let mut hash = Sha256::new();
    let mut checks = 0u64;
    let mut payments = 0u64;
    let mut quotes = HashSet::new();
    let mut after = String::new();
    loop {
        let page = census::page(&sim.store, &after, 500).await?;
        let Some(last) = page.last() else { break };
        after = last.payment.payment_id.clone();
        for c in &page {
            let p = &c.payment;
            payments += 1;
            *by_state.entry(p.state.to_string()).or_default() += 1;
            let f = match facts.get(p.payment_id.as_str()) {
                Some(f) => f.clone(),
                None => {
                    if answered_all && ctx.violation().is_none() {
                        ctx.violate(
                            "one payment per Idempotency-Key",
                            &p.payment_id,
                            "a payment no merchant answer named".into(),
                        );
                    }
                    Facts::default()
                }
            };
            checks += 1;
            if !quotes.insert(p.quote_id.clone()) {
                ctx.violate(
                    "a quote pays for at most one payment",
                    &p.payment_id,
                    format!("quote {} paid twice", p.quote_id),
                );
            }
            let transfers = world.transfers_of(&p.payment_id);
            match check_payment(c, &transfers, &f, &|id| sim.delivered(id)) {
                Ok(n) => checks += n,
                Err((invariant, detail)) => ctx.violate(invariant, &p.payment_id, detail),
            }
            hash.update(format!(
                "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n",
                p.payment_id,
                p.state,
                p.amount,
                p.currency,
                p.payout_amount,
                p.payout_currency,
                p.total_fees,
                p.fees.onramp,
                p.created_at.millis(),
                p.onramp.as_ref().map_or("", |l| l.reference.as_str()),
                p.offramp.as_ref().map_or("", |l| l.reference.as_str()),
            ));
            for h in &c.history {
                hash.update(format!("  {}@{}\n", h.to, h.at.millis()));
            }
            for t in &c.ledger {
                let t = &t.transfer;
                hash.update(format!("  {} {} {}\n", t.role, t.status, t.amount));
            }
        }
    }
    let named = facts.len() as u64;
    checks += 1;
    if named > payments {
        ctx.violate(
            "every 202 is on disk",
            "",
            format!("{named} payments were answered 202, {payments} exist"),
        );
    }
    // Per currency, over every account: what was debited was credited, posted and pending.
    let mut totals: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for b in crate::store::ledger::balances(&sim.store).await? {
        let t = totals.entry(b.currency).or_default();
        for (slot, v) in t.iter_mut().zip([
            b.debits_posted,
            b.credits_posted,
            b.debits_pending,
            b.credits_pending,
        ]) {
            *slot += v;
        }
    }
    for (currency, [dp, cp, dpe, cpe]) in &totals {
        checks += 1;
        if dp != cp || dpe != cpe {
            ctx.violate(
                "per-currency totals are zero-sum",
                "",
                format!("{currency}: debits {dp}/{dpe}, credits {cp}/{cpe} (posted/pending)"),
            );
        }
    }
    for t in world.transfers() {
        hash.update(format!(
            "{}|{}|{:?}|{}|{}|{:?}\n",
            t.reference, t.payment_id, t.leg, t.amount, t.currency, t.outcome
        ));
    }
    hash.update(format!("{:?}", ctx.stats()));
    let digest = hex::encode(&hash.finalize()[..16]);
    Ok(Checked {
        by_state,
        checks,
        payments,
        digest,
    })
}

#[cfg(test)]
mod tests {
    //! Each invariant fires on the breach it is written for, and holds on a correct payment:
    //! a check that cannot fail would prove nothing in a run.
    use super::*;
    use crate::domain::ledger::{EntryStatus, Posting};
    use crate::domain::lifecycle::{self, Answer, Context, Input};
    use crate::domain::{HistoryEntry, Leg, LegStatus, PaymentRecord, Timestamp, TransferStatus};
    use crate::store::ledger::StoredTransfer;
    use PaymentState::*;

    /// The ledger `p`'s terms get on the way through `states` (from `PENDING`), decided by the
    /// real decision table and applied as the store would, with the offramp executing at
    /// `executed`.
    fn books(p: &PaymentRecord, states: &[PaymentState], executed: &str) -> Vec<StoredTransfer> {
        let ctx = Context {
            onramp: "world-onramp",
            offramp: "world-offramp",
            poll_base_ms: 100,
            polls: 0,
            market_mid: Some(executed.parse().unwrap()),
            return_check_ms: 0,
        };
        let mut now = PaymentRecord {
            onramp: None,
            offramp: None,
            ..crate::domain::payment::example(Pending)
        };
        now.payment_id = p.payment_id.clone();
        now.payout_amount = p.payout_amount;
        now.exchange_rate = p.exchange_rate;
        let mut out: Vec<StoredTransfer> = Vec::new();
        let status = |s| Input::Provider(Answer::Status(s));
        for pair in states.windows(2) {
            let inputs = match (pair[0], pair[1]) {
                (Pending, Cancelled) => vec![Input::Cancel],
                (OnrampComplete, RefundPending) => {
                    vec![Input::Provider(Answer::Refused("no".into()))]
                }
                (RefundPending, Refunded) => vec![
                    Input::Provider(Answer::Initiated("reversal_1".into())),
                    status(TransferStatus::Completed),
                ],
                (Pending | OnrampComplete, _) => {
                    vec![Input::Provider(Answer::Initiated("ref_1".into()))]
                }
                _ => vec![status(TransferStatus::Completed)],
            };
            for input in inputs {
                let e = lifecycle::decide(&now, input, &ctx).expect("the path is allowed");
                for posting in &e.ledger {
                    match posting {
                        Posting::Open { transfers, .. } => {
                            for t in transfers {
                                let at = Timestamp(out.len() as i64);
                                out.push(StoredTransfer {
                                    payment_id: now.payment_id.clone(),
                                    transfer: t.clone(),
                                    created_at: at,
                                    resolved_at: None,
                                });
                            }
                        }
                        Posting::Post(roles) | Posting::Void(roles) => {
                            let to = if matches!(posting, Posting::Post(_)) {
                                EntryStatus::Posted
                            } else {
                                EntryStatus::Voided
                            };
                            for t in out.iter_mut().filter(|t| roles.contains(&t.transfer.role)) {
                                if t.transfer.status == EntryStatus::Pending {
                                    t.transfer.status = to;
                                }
                            }
                        }
                    }
                }
                now = lifecycle::applied(&now, &e, Timestamp(0));
            }
        }
        out
    }

    fn completed() -> (Census, Vec<Transfer>, Facts) {
        let payment = PaymentRecord {
            version: 5,
            payout_amount: 87_698,
            exchange_rate: "0.9204745".parse().unwrap(),
            mid_rate: "0.925".parse().unwrap(),
            updated_at: Timestamp(4),
            state_since: Timestamp(4),
            completed_at: Some(Timestamp(4)),
            onramp_claimed_at: Some(Timestamp(1)),
            onramp: Some(Leg {
                provider: "world-onramp".into(),
                reference: "onramp_1".into(),
                status: LegStatus::Completed,
                amount: 952_750_000,
            }),
            offramp: Some(Leg {
                provider: "world-offramp".into(),
                reference: "offramp_1".into(),
                status: LegStatus::Completed,
                amount: 87_698,
            }),
            ..crate::domain::payment::example(Completed)
        };
        let states = [
            Pending,
            OnrampPending,
            OnrampComplete,
            OfframpPending,
            Completed,
        ];
        let history = states
            .iter()
            .enumerate()
            .map(|(i, &to)| HistoryEntry {
                from: i.checked_sub(1).map(|j| states[j]),
                to,
                at: Timestamp(i as i64),
                reason: String::new(),
            })
            .collect();
        let events = states
            .iter()
            .enumerate()
            .map(|(i, &s)| (format!("evt_{i}"), event_for(s)))
            .collect();
        let transfer = |reference: &str, leg, amount, currency: &str| Transfer {
            reference: reference.into(),
            payment_id: "pay_1".into(),
            leg,
            amount,
            currency: currency.into(),
            settle_at: 0,
            outcome: Outcome::Completed,
        };
        let transfers = vec![
            transfer("onramp_1", LegKind::Onramp, 952_750_000, "USDC"),
            transfer("offramp_1", LegKind::Offramp, 87_698, "EUR"),
        ];
        let facts = Facts {
            guaranteed_payout: Some(87_698),
            quote_expires_at: Some(60_000),
            cancel_won: false,
            cancel_tried: false,
            subscribed: true,
        };
        let ledger = books(&payment, &states, "0.925");
        let census = Census {
            payment: PaymentRecord {
                executed_rate: Some("0.925".parse().unwrap()),
                ..payment
            },
            history,
            events,
            step_jobs: Vec::new(),
            ledger,
        };
        (census, transfers, facts)
    }

    fn broken(c: &Census, t: &[Transfer], f: &Facts) -> &'static str {
        match check_payment(c, t, f, &|_| true) {
            Ok(_) => "holds",
            Err((invariant, _)) => invariant,
        }
    }

    #[test]
    fn a_correct_completed_payment_holds_every_invariant() {
        let (c, t, f) = completed();
        assert!(check_payment(&c, &t, &f, &|_| true).is_ok_and(|n| n > 10));
    }

    #[test]
    fn each_breach_breaks_its_own_invariant() {
        let (c, t, f) = completed();
        let mut short = t.clone();
        short[1].amount -= 1;
        assert_eq!(
            broken(&c, &short, &f),
            "a completed payment paid exactly its payout"
        );

        let mut twice = t.clone();
        twice.push(Transfer {
            reference: "onramp_2".into(),
            ..t[0].clone()
        });
        assert_eq!(broken(&c, &twice, &f), "each leg initiated at most once");

        let mut skipped = c.clone();
        skipped.history.remove(2);
        assert_eq!(
            broken(&skipped, &t, &f),
            "history follows the transition table"
        );

        let mut eventless = c.clone();
        eventless.events.pop();
        assert_eq!(
            broken(&eventless, &t, &f),
            "every committed transition has its event"
        );
        assert_eq!(
            match check_payment(&c, &t, &f, &|id| id != "evt_3") {
                Err((i, _)) => i,
                Ok(_) => "holds",
            },
            "every event is delivered at least once"
        );

        let promised_more = Facts {
            guaranteed_payout: Some(87_699),
            ..f.clone()
        };
        assert_eq!(
            broken(&c, &t, &promised_more),
            "a completed payment paid what its 202 promised"
        );

        let mut late = c.clone();
        late.payment.created_at = Timestamp(60_000);
        assert_eq!(broken(&late, &t, &f), "an expired quote is refused");

        let mut stuck = c.clone();
        stuck.payment.state = OfframpPending;
        stuck.history.pop();
        stuck.events.pop();
        assert_eq!(broken(&stuck, &t, &f), "no job is lost");
        stuck.step_jobs.push("ready".into());
        assert_eq!(broken(&stuck, &t, &f), "every payment finishes");
    }

    #[test]
    fn each_breach_of_the_books_breaks_its_own_invariant() {
        let (c, t, f) = completed();
        let role = |c: &mut Census, code: &str| -> usize {
            c.ledger
                .iter()
                .position(|x| x.transfer.role.code() == code)
                .unwrap_or_else(|| panic!("no {code}"))
        };
        let mut short = c.clone();
        let i = role(&mut short, "offramp.payout");
        short.ledger[i].transfer.amount -= 1;
        assert_eq!(broken(&short, &t, &f), "the payout posted is the guarantee");

        let mut left = c.clone();
        let i = role(&mut left, "offramp.usdc");
        left.ledger[i].transfer.status = EntryStatus::Pending;
        assert_eq!(
            broken(&left, &t, &f),
            "no pending transfer on a terminal payment"
        );

        let mut mixed = c.clone();
        let i = role(&mut mixed, "fee.platform");
        mixed.ledger[i].transfer.credit = "platform:fees:EUR".into();
        assert_eq!(
            broken(&mixed, &t, &f),
            "every transfer is balanced in one currency"
        );

        let mut greedy = c.clone();
        let i = role(&mut greedy, "fx.gain");
        greedy.ledger[i].transfer.amount += 1;
        assert_eq!(
            broken(&greedy, &t, &f),
            "the FX result is (executed − locked) on the USDC sold"
        );

        let mut uncharged = c.clone();
        let i = role(&mut uncharged, "fee.onramp");
        uncharged.ledger[i].transfer.status = EntryStatus::Voided;
        assert_eq!(
            broken(&uncharged, &t, &f),
            "the merchant is charged the amount, or nothing"
        );

        let mut kept = c.clone();
        let i = role(&mut kept, "offramp.usdc");
        kept.ledger.remove(i);
        assert_eq!(broken(&kept, &t, &f), "the USDC bought is sold or returned");
    }

    #[test]
    fn cancels_and_refunds_are_held_to_what_moved() {
        let (mut c, t, f) = completed();
        c.payment.state = Cancelled;
        c.payment.onramp = None;
        c.payment.offramp = None;
        c.history.truncate(1);
        c.history.push(HistoryEntry {
            from: Some(Pending),
            to: Cancelled,
            at: Timestamp(1),
            reason: String::new(),
        });
        c.events = vec![
            ("evt_0".into(), event_for(Pending)),
            ("evt_1".into(), event_for(Cancelled)),
        ];
        c.ledger.clear();
        let tried = Facts {
            cancel_tried: true,
            cancel_won: true,
            ..f.clone()
        };
        assert_eq!(broken(&c, &[], &tried), "holds");
        assert_eq!(
            broken(&c, &t[..1], &tried),
            "a cancelled payment moved no money"
        );
        assert_eq!(broken(&c, &[], &f), "only a merchant's cancel cancels");

        let (mut r, mut rt, f) = completed();
        r.payment.state = Refunded;
        let states = [
            Pending,
            OnrampPending,
            OnrampComplete,
            RefundPending,
            Refunded,
        ];
        for (h, s) in r.history.iter_mut().zip(states).skip(3) {
            h.to = s;
        }
        r.history[4].from = Some(RefundPending);
        r.events = states
            .iter()
            .enumerate()
            .map(|(i, &s)| (format!("evt_{i}"), event_for(s)))
            .collect();
        r.payment.offramp = None;
        r.payment.executed_rate = None;
        r.ledger = books(&r.payment, &states, "0.925");
        rt[1] = Transfer {
            reference: "reversal_1".into(),
            leg: LegKind::Reversal,
            amount: 100_000 - 1_050,
            currency: "USD".into(),
            ..rt[1].clone()
        };
        assert_eq!(broken(&r, &rt, &f), "holds");
        let mut over = r.clone();
        let i = over
            .ledger
            .iter()
            .position(|x| x.transfer.role.code() == "refund.source")
            .unwrap();
        over.ledger[i].transfer.amount += 1;
        assert_eq!(
            broken(&over, &rt, &f),
            "the refund posted is amount − onramp fee"
        );
        rt[1].amount += 1_050;
        assert_eq!(
            broken(&r, &rt, &f),
            "a refunded payment returned amount − onramp fee"
        );
    }
}
