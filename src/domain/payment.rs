//! The payment state machine: states, the one transition table, and failure codes.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{Currency, FeeBreakdown, Timestamp};

/// Where a payment is in its life. Wire names (`ONRAMP_PENDING`) come from the derive.
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
    strum::VariantArray,
    serde::Serialize,
    serde::Deserialize,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentState {
    /// Accepted, nothing moved yet.
    Pending,
    /// Fiat→USDC leg initiated, awaiting settlement.
    OnrampPending,
    /// USDC held.
    OnrampComplete,
    /// USDC→payout leg initiated.
    OfframpPending,
    /// Offramp failed for good, or the payout came back; funds being returned to the source.
    RefundPending,
    /// Paid out (terminal — unless the beneficiary's bank returns the payout later).
    Completed,
    /// Onramp failed; nothing moved (terminal).
    Failed,
    /// Cancelled before any leg (terminal).
    Cancelled,
    /// Source refunded after an offramp failure (terminal).
    Refunded,
}

use PaymentState::*;

/// Every allowed `(from, to)` pair. The only statement of the state machine's shape.
pub const TRANSITIONS: &[(PaymentState, PaymentState)] = &[
    (Pending, OnrampPending),
    (Pending, Cancelled),
    (Pending, Failed),
    (OnrampPending, OnrampComplete),
    (OnrampPending, Failed),
    (OnrampComplete, OfframpPending),
    (OnrampComplete, RefundPending),
    (OfframpPending, Completed),
    (OfframpPending, RefundPending),
    (RefundPending, Refunded),
    // Only on the provider's report that the payout came back (`PAYOUT_RETURNED`).
    (Completed, RefundPending),
];

impl PaymentState {
    /// Every state, for exhaustive tests and metrics.
    pub const ALL: &'static [PaymentState] = <PaymentState as strum::VariantArray>::VARIANTS;

    /// Whether the table allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: PaymentState) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    /// Terminal states: the payment's outcome is decided and no step of Corridor's own
    /// moves it on. Only `COMPLETED` has a way out, taken on a provider's report alone (the
    /// payout came back); the others have none.
    pub fn is_terminal(self) -> bool {
        matches!(self, Completed | Failed | Cancelled | Refunded)
    }

    /// The wire name (`ONRAMP_PENDING`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The merchant event announcing that a payment entered this state
    /// (`payment.onramp_pending`).
    pub fn event_type(self) -> String {
        format!("payment.{}", self.as_str().to_ascii_lowercase())
    }
}

/// Status of one provider leg as the API reports it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum LegStatus {
    /// Initiated, not settled.
    Pending,
    /// Settled.
    Completed,
    /// Failed for good.
    Failed,
    /// Undone by a reversal (the onramp of a refunded payment).
    Reversed,
    /// Paid, then sent back by the beneficiary's bank (the offramp of a returned payout).
    Returned,
}

impl LegStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a payment did not complete.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCode {
    /// The onramp refused or failed: nothing was bought.
    OnrampFailed,
    /// The offramp refused or failed: the USDC is returned.
    OfframpFailed,
    /// The payout was made and came back: the source is refunded.
    PayoutReturned,
}

impl FailureCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which provider leg of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Side {
    /// Fiat→USDC.
    Onramp,
    /// USDC→payout.
    Offramp,
}

/// Settlement status of a provider transfer, as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferStatus {
    /// Not settled yet.
    Pending,
    /// Settled.
    Completed,
    /// Failed for good, with the provider's reason.
    Failed(String),
    /// Paid, then returned (a payout the beneficiary's bank sent back), with the reason.
    Returned(String),
}

/// One provider leg of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// Provider name (`sim-onramp`).
    pub provider: String,
    /// The provider's reference for the transfer.
    pub reference: String,
    /// Settlement status.
    pub status: LegStatus,
    /// Amount in the leg's currency minor units.
    pub amount: i64,
}

/// One row of a payment's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// State left (`None` for creation).
    pub from: Option<PaymentState>,
    /// State entered.
    pub to: PaymentState,
    /// When.
    pub at: Timestamp,
    /// Why, in words.
    pub reason: String,
}

/// A `PENDING`-shaped payment of 1,000.00 USD to EUR with the default fees, in `state`, for
/// tests to start from.
#[cfg(test)]
pub(crate) fn example(state: PaymentState) -> PaymentRecord {
    PaymentRecord {
        payment_id: "pay_1".into(),
        merchant_id: "mer_1".into(),
        quote_id: "quote_1".into(),
        state,
        version: 1,
        amount: 100_000,
        currency: Currency::USD,
        payout_amount: 87_700,
        payout_currency: "EUR".parse().expect("EUR"),
        exchange_rate: "0.9205".parse().expect("rate"),
        mid_rate: "0.9251".parse().expect("rate"),
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

/// The reason written on a payment's first history row.
pub const CREATED: &str = "created";

impl HistoryEntry {
    /// The first row of every payment's history.
    pub fn created(at: Timestamp) -> HistoryEntry {
        HistoryEntry {
            from: None,
            to: Pending,
            at,
            reason: CREATED.to_owned(),
        }
    }
}

/// Why a payment failed, as recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Machine-readable code (`ONRAMP_FAILED`).
    pub code: String,
    /// The provider's words.
    pub message: String,
}

/// A payment: what was agreed (amounts, rate, accounts) and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRecord {
    /// `pay_<uuid>`.
    pub payment_id: String,
    /// Owner.
    pub merchant_id: String,
    /// The quote whose rate it locked.
    pub quote_id: String,
    /// Current state.
    pub state: PaymentState,
    /// Bumped on every transition.
    pub version: i64,
    /// Source amount, minor units.
    pub amount: i64,
    /// Source currency.
    pub currency: Currency,
    /// Guaranteed payout, minor units.
    pub payout_amount: i64,
    /// Payout currency.
    pub payout_currency: Currency,
    /// Customer rate locked by the quote.
    pub exchange_rate: Decimal,
    /// Mid rate at quoting.
    pub mid_rate: Decimal,
    /// Fees charged.
    pub fees: FeeBreakdown,
    /// Sum of fees.
    pub total_fees: i64,
    /// Who pays.
    pub source_account: String,
    /// Who is paid.
    pub destination_account: String,
    /// Merchant's key/value annotations.
    pub metadata: BTreeMap<String, String>,
    /// Acceptance instant.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When the current state was entered.
    pub state_since: Timestamp,
    /// When a terminal state was reached.
    pub completed_at: Option<Timestamp>,
    /// Set once a worker has begun initiating the onramp; cancel is refused from then on.
    pub onramp_claimed_at: Option<Timestamp>,
    /// Failure code and message, when failed or refunding.
    pub failure: Option<(String, String)>,
    /// Fiat→USDC leg.
    pub onramp: Option<Leg>,
    /// USDC→payout leg.
    pub offramp: Option<Leg>,
    /// Market rate when the offramp executed.
    pub executed_rate: Option<Decimal>,
    /// Reference of the transfer returning USDC to the source.
    pub reversal_reference: Option<String>,
    /// Refunded source amount, minor units.
    pub refund_amount: Option<i64>,
}

impl PaymentRecord {
    /// The leg on `side`, if initiated.
    pub fn leg(&self, side: Side) -> Option<&Leg> {
        match side {
            Side::Onramp => self.onramp.as_ref(),
            Side::Offramp => self.offramp.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_matches_the_contract() {
        let expected = [
            ("PENDING", vec!["ONRAMP_PENDING", "CANCELLED", "FAILED"]),
            ("ONRAMP_PENDING", vec!["ONRAMP_COMPLETE", "FAILED"]),
            ("ONRAMP_COMPLETE", vec!["OFFRAMP_PENDING", "REFUND_PENDING"]),
            ("OFFRAMP_PENDING", vec!["COMPLETED", "REFUND_PENDING"]),
            ("REFUND_PENDING", vec!["REFUNDED"]),
            ("COMPLETED", vec!["REFUND_PENDING"]),
            ("FAILED", vec![]),
            ("CANCELLED", vec![]),
            ("REFUNDED", vec![]),
        ];
        for (from, tos) in expected {
            let from: PaymentState = from.parse().unwrap();
            let mut allowed: Vec<_> = PaymentState::ALL
                .iter()
                .copied()
                .filter(|to| from.can_transition_to(*to))
                .map(|s| s.as_str())
                .collect();
            allowed.sort();
            let mut tos = tos.clone();
            tos.sort();
            assert_eq!(allowed, tos, "from {from}");
            assert_eq!(
                from.is_terminal(),
                tos.is_empty() || from == Completed,
                "{from}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for &s in PaymentState::ALL {
            assert_eq!(s.as_str().parse::<PaymentState>().unwrap(), s);
        }
        assert!("pending".parse::<PaymentState>().is_err());
    }

    proptest! {
        /// Any walk that only takes allowed steps visits no state twice and ends with no way
        /// out after at most six transitions (a returned payout is the longest): the graph is
        /// acyclic, so no payment loops forever.
        #[test]
        fn allowed_walks_are_acyclic(choices in prop::collection::vec(0usize..9, 0..20)) {
            let mut state = Pending;
            let mut seen = vec![state];
            for c in choices {
                let next: Vec<_> = PaymentState::ALL
                    .iter()
                    .copied()
                    .filter(|to| state.can_transition_to(*to))
                    .collect();
                if next.is_empty() {
                    prop_assert!(state.is_terminal());
                    break;
                }
                prop_assert!(!state.is_terminal() || state == Completed);
                state = next[c % next.len()];
                prop_assert!(!seen.contains(&state));
                seen.push(state);
            }
            prop_assert!(seen.len() <= 7);
        }

        /// No pair outside the table is accepted.
        #[test]
        fn illegal_transitions_are_refused(a in 0usize..9, b in 0usize..9) {
            let (from, to) = (PaymentState::ALL[a], PaymentState::ALL[b]);
            prop_assert_eq!(from.can_transition_to(to), TRANSITIONS.contains(&(from, to)));
            if (from.is_terminal() && (from, to) != (Completed, RefundPending)) || from == to {
                prop_assert!(!from.can_transition_to(to));
            }
        }
    }
}
