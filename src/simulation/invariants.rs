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
    let mut checks = 0u64;
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
    use crate::domain::{HistoryEntry, Leg, LegStatus, PaymentRecord, Timestamp};
    use PaymentState::*;

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
        let census = Census {
            payment,
            history,
            events,
            step_jobs: Vec::new(),
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
        rt[1] = Transfer {
            reference: "reversal_1".into(),
            leg: LegKind::Reversal,
            amount: 100_000 - 1_050,
            currency: "USD".into(),
            ..rt[1].clone()
        };
        assert_eq!(broken(&r, &rt, &f), "holds");
        rt[1].amount += 1_050;
        assert_eq!(
            broken(&r, &rt, &f),
            "a refunded payment returned amount − onramp fee"
        );
    }
}
