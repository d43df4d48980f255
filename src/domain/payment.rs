//! The payment state machine: states, the one transition table, and failure codes.

use std::fmt;
use std::str::FromStr;

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaymentState {
    /// Accepted, nothing moved yet.
    Pending,
    /// Fiat→USDC leg initiated, awaiting settlement.
    OnrampPending,
    /// USDC held.
    OnrampComplete,
    /// USDC→payout leg initiated.
    OfframpPending,
    /// Offramp failed for good; USDC being returned to the source.
    RefundPending,
    /// Paid out (terminal).
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
];

impl PaymentState {
    /// Every state, for exhaustive tests and metrics.
    pub const ALL: [PaymentState; 9] = [
        Pending,
        OnrampPending,
        OnrampComplete,
        OfframpPending,
        RefundPending,
        Completed,
        Failed,
        Cancelled,
        Refunded,
    ];

    /// Whether the table allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: PaymentState) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    /// Terminal states have no way out.
    pub fn is_terminal(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _)| *from == self)
    }

    /// The wire name (`ONRAMP_PENDING`).
    pub fn as_str(self) -> &'static str {
        match self {
            Pending => "PENDING",
            OnrampPending => "ONRAMP_PENDING",
            OnrampComplete => "ONRAMP_COMPLETE",
            OfframpPending => "OFFRAMP_PENDING",
            RefundPending => "REFUND_PENDING",
            Completed => "COMPLETED",
            Failed => "FAILED",
            Cancelled => "CANCELLED",
            Refunded => "REFUNDED",
        }
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not a payment state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for PaymentState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Status of one provider leg as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegStatus {
    /// Initiated, not settled.
    Pending,
    /// Settled.
    Completed,
    /// Failed for good.
    Failed,
    /// Undone by a reversal (the onramp of a refunded payment).
    Reversed,
}

impl LegStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LegStatus::Pending => "PENDING",
            LegStatus::Completed => "COMPLETED",
            LegStatus::Failed => "FAILED",
            LegStatus::Reversed => "REVERSED",
        }
    }

    /// Parses a stored wire name.
    pub fn parse(s: &str) -> Option<LegStatus> {
        [
            LegStatus::Pending,
            LegStatus::Completed,
            LegStatus::Failed,
            LegStatus::Reversed,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// Why a payment did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// The onramp refused or failed: nothing was bought.
    OnrampFailed,
    /// The offramp refused or failed: the USDC is returned.
    OfframpFailed,
}

impl FailureCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::OnrampFailed => "ONRAMP_FAILED",
            FailureCode::OfframpFailed => "OFFRAMP_FAILED",
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
            ("COMPLETED", vec![]),
            ("FAILED", vec![]),
            ("CANCELLED", vec![]),
            ("REFUNDED", vec![]),
        ];
        for (from, tos) in expected {
            let from: PaymentState = from.parse().unwrap();
            let mut allowed: Vec<_> = PaymentState::ALL
                .into_iter()
                .filter(|to| from.can_transition_to(*to))
                .map(|s| s.as_str())
                .collect();
            allowed.sort();
            let mut tos = tos.clone();
            tos.sort();
            assert_eq!(allowed, tos, "from {from}");
            assert_eq!(from.is_terminal(), tos.is_empty());
        }
    }

    #[test]
    fn names_round_trip() {
        for s in PaymentState::ALL {
            assert_eq!(s.as_str().parse::<PaymentState>().unwrap(), s);
        }
        assert!("pending".parse::<PaymentState>().is_err());
    }

    proptest! {
        /// Any walk that only takes allowed steps visits no state twice and ends terminal
        /// after at most five transitions: the graph is acyclic, so no payment loops forever.
        #[test]
        fn allowed_walks_are_acyclic(choices in prop::collection::vec(0usize..9, 0..20)) {
            let mut state = Pending;
            let mut seen = vec![state];
            for c in choices {
                let next: Vec<_> = PaymentState::ALL
                    .into_iter()
                    .filter(|to| state.can_transition_to(*to))
                    .collect();
                if next.is_empty() {
                    prop_assert!(state.is_terminal());
                    break;
                }
                state = next[c % next.len()];
                prop_assert!(!seen.contains(&state));
                seen.push(state);
            }
            prop_assert!(seen.len() <= 6);
        }

        /// No pair outside the table is accepted.
        #[test]
        fn illegal_transitions_are_refused(a in 0usize..9, b in 0usize..9) {
            let (from, to) = (PaymentState::ALL[a], PaymentState::ALL[b]);
            prop_assert_eq!(from.can_transition_to(to), TRANSITIONS.contains(&(from, to)));
            if from.is_terminal() || from == to {
                prop_assert!(!from.can_transition_to(to));
            }
        }
    }
}
