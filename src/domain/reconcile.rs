//! Reconciliation: the ledger's record of each provider leg against the provider's own
//! statement, one rule for what matches and what does not.
//!
//! Both sides are reduced to [`Line`]s keyed by `(payment, leg)`: ours from the ledger (the
//! USDC bought for an onramp, the payout for an offramp, what the refund credits for a
//! reversal), theirs from the provider's statement. A pair matches when amount, currency and
//! settled status agree; money still in flight on our side (a pending transfer) is compared
//! on amount and currency only, since its settlement may not have been recorded yet.

use super::ledger::{EntryStatus, Role, Transfer};

/// Which provider leg a line is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[strum(serialize_all = "lowercase")]
pub enum LegKind {
    /// The USDC purchase.
    Onramp,
    /// The payout.
    Offramp,
    /// A refund's reversal.
    Reversal,
}

/// Where a transfer stands, on either side.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum LineStatus {
    /// Not settled.
    Pending,
    /// Settled.
    Completed,
    /// Failed (our transfers voided).
    Failed,
    /// Paid, then returned.
    Returned,
}

/// One side's record of one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The payment.
    pub payment_id: String,
    /// The leg.
    pub leg: LegKind,
    /// Minor units of `currency`.
    pub amount: i64,
    /// Currency code.
    pub currency: String,
    /// Settlement.
    pub status: LineStatus,
}

/// How a pair does not match.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// The ledger has it, the provider does not.
    MissingAtProvider,
    /// The provider has it, the ledger does not (and its payment is not in flight).
    MissingInLedger,
    /// Different amounts.
    AmountMismatch,
    /// Different currencies.
    CurrencyMismatch,
    /// Settled differently (or settled on one side only, ours being final).
    StatusMismatch,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The payment.
    pub payment_id: String,
    /// The leg.
    pub leg: LegKind,
    /// How.
    pub kind: Kind,
    /// Our line, if any.
    pub ours: Option<Line>,
    /// Theirs, if any.
    pub theirs: Option<Line>,
}

/// What a comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Pairs looked at.
    pub checked: u64,
    /// Pairs that agree.
    pub matched: u64,
    /// The rest (a provider line for a payment still in flight is neither: skipped).
    pub mismatches: Vec<Mismatch>,
}

/// Our lines for one payment's transfers.
pub fn ours(payment_id: &str, transfers: &[Transfer]) -> Vec<Line> {
    let status = |s: EntryStatus| match s {
        EntryStatus::Pending => LineStatus::Pending,
        EntryStatus::Posted => LineStatus::Completed,
        EntryStatus::Voided => LineStatus::Failed,
    };
    let returned = transfers.iter().any(|t| t.role == Role::ReturnPayout);
    let mut out = Vec::new();
    for t in transfers {
        let leg = match t.role {
            Role::UsdcBought => LegKind::Onramp,
            Role::Payout => LegKind::Offramp,
            _ => continue,
        };
        out.push(Line {
            payment_id: payment_id.to_owned(),
            leg,
            amount: t.amount,
            currency: t.currency.code().to_owned(),
            status: if leg == LegKind::Offramp && returned {
                LineStatus::Returned
            } else {
                status(t.status)
            },
        });
    }
    // A reversal returns what the refund credits: the net and the fees handed back.
    let refund: Vec<&Transfer> = transfers
        .iter()
        .filter(|t| {
            matches!(
                t.role,
                Role::RefundSource | Role::RefundPlatformFee | Role::RefundOfframpFee
            )
        })
        .collect();
    if let Some(source) = refund.iter().find(|t| t.role == Role::RefundSource) {
        out.push(Line {
            payment_id: payment_id.to_owned(),
            leg: LegKind::Reversal,
            amount: refund.iter().map(|t| t.amount).sum(),
            currency: source.currency.code().to_owned(),
            status: status(source.status),
        });
    }
    out
}

/// Compares our lines with the provider's. `in_flight(payment_id)`: whether that payment is
/// still moving (a provider line without ours is then not yet a mismatch: the transfer may
/// have been made and not recorded yet).
pub fn compare(ours: Vec<Line>, theirs: Vec<Line>, in_flight: &dyn Fn(&str) -> bool) -> Outcome {
    use std::collections::BTreeMap;
    let key = |l: &Line| (l.payment_id.clone(), l.leg);
    let mut pairs: BTreeMap<(String, LegKind), (Option<Line>, Option<Line>)> = BTreeMap::new();
    for l in ours {
        let k = key(&l);
        pairs.entry(k).or_default().0 = Some(l);
    }
    for l in theirs {
        let k = key(&l);
        pairs.entry(k).or_default().1 = Some(l);
    }
    let mut out = Outcome::default();
    for ((payment_id, leg), (o, t)) in pairs {
        let kind = match (&o, &t) {
            (Some(_), None) => Some(Kind::MissingAtProvider),
            (None, Some(_)) if in_flight(&payment_id) => continue,
            (None, Some(_)) => Some(Kind::MissingInLedger),
            (Some(a), Some(b)) if a.currency != b.currency => Some(Kind::CurrencyMismatch),
            (Some(a), Some(b)) if a.amount != b.amount => Some(Kind::AmountMismatch),
            (Some(a), Some(b)) if a.status != LineStatus::Pending && a.status != b.status => {
                Some(Kind::StatusMismatch)
            }
            _ => None,
        };
        out.checked += 1;
        match kind {
            None => out.matched += 1,
            Some(kind) => out.mismatches.push(Mismatch {
                payment_id,
                leg,
                kind,
                ours: o,
                theirs: t,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(p: &str, leg: LegKind, amount: i64, status: LineStatus) -> Line {
        Line {
            payment_id: p.into(),
            leg,
            amount,
            currency: "EUR".into(),
            status,
        }
    }

    #[test]
    fn each_kind_of_difference_is_found_and_agreement_matches() {
        use LegKind::*;
        use LineStatus::*;
        let ours = vec![
            line("pay_ok", Offramp, 100, Completed),
            line("pay_short", Offramp, 100, Completed),
            line("pay_gone", Offramp, 100, Completed),
            line("pay_failed", Offramp, 100, Failed),
            line("pay_moving", Offramp, 100, Pending),
            Line {
                currency: "GBP".into(),
                ..line("pay_cur", Offramp, 100, Completed)
            },
        ];
        let theirs = vec![
            line("pay_ok", Offramp, 100, Completed),
            line("pay_short", Offramp, 99, Completed),
            line("pay_failed", Offramp, 100, Completed),
            line("pay_moving", Offramp, 100, Completed),
            line("pay_cur", Offramp, 100, Completed),
            line("pay_unknown", Offramp, 5, Completed),
            line("pay_new", Onramp, 5, Pending),
        ];
        let out = compare(ours, theirs, &|p| p == "pay_new");
        let kinds: Vec<(&str, Kind)> = out
            .mismatches
            .iter()
            .map(|m| (m.payment_id.as_str(), m.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("pay_cur", Kind::CurrencyMismatch),
                ("pay_failed", Kind::StatusMismatch),
                ("pay_gone", Kind::MissingAtProvider),
                ("pay_short", Kind::AmountMismatch),
                ("pay_unknown", Kind::MissingInLedger),
            ]
        );
        // pay_ok and pay_moving (in flight on our side: amounts agree) match; pay_new is
        // skipped while its payment moves.
        assert_eq!((out.checked, out.matched), (7, 2));
    }
}
