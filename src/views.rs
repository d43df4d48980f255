//! The JSON shapes of payments, shared by the API (GET responses) and the event outbox (a
//! webhook's `data` is the payment exactly as GET showed it at the moment of the transition).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{HistoryEntry, Leg, PaymentRecord};
use crate::domain::{PaymentState, Timestamp, ledger};

/// Fees of a quote or payment, in source minor units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeesView {
    /// Platform fee.
    pub platform_fee: i64,
    /// Onramp provider fee.
    pub onramp_fee: i64,
    /// Offramp provider fee.
    pub offramp_fee: i64,
    /// Sum of the three.
    pub total_fees: i64,
    /// Currency of the fees (the source currency).
    pub currency: String,
}

/// One leg of a payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegView {
    /// Provider name.
    pub provider: String,
    /// Provider's transfer reference.
    pub reference: String,
    /// `PENDING`, `COMPLETED`, `FAILED` or `REVERSED`.
    pub status: String,
    /// Amount in the leg currency's minor units.
    pub amount: i64,
    /// Leg currency (`USDC` for the onramp).
    pub currency: String,
}

/// Both legs.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegsView {
    /// Fiat → USDC; `null` until started.
    pub onramp: Option<LegView>,
    /// USDC → payout; `null` until started.
    pub offramp: Option<LegView>,
}

/// One history entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// Previous state (`null` at creation).
    pub from: Option<String>,
    /// New state.
    pub to: String,
    /// When.
    pub at: String,
    /// Why.
    pub reason: String,
}

/// Why a payment did not complete.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureView {
    /// `ONRAMP_FAILED` or `OFFRAMP_FAILED`.
    pub code: String,
    /// Provider's explanation.
    pub message: String,
}

/// Money returned to the source.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    /// Amount, source minor units (`amount − onramp_fee`).
    pub amount: i64,
    /// Source currency.
    pub currency: String,
}

/// An amount of one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct AmountView {
    /// Minor units (negative for a loss).
    pub amount: i64,
    /// Currency code.
    pub currency: String,
}

/// How the payout executed, once the payment is `COMPLETED`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementView {
    /// The market's mid rate when the offramp settled: what the USDC was sold at.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[schema(value_type = f64)]
    pub executed_rate: Decimal,
    /// What the sale yielded beyond the guaranteed payout (negative: the platform's loss),
    /// payout-currency minor units; posted to `platform:fx:{payout currency}`.
    pub fx_gain_loss: AmountView,
}

/// A payment as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// `pay_<uuid>`.
    pub payment_id: String,
    /// Current state.
    pub status: String,
    /// Source amount, minor units.
    pub amount: i64,
    /// Source currency.
    pub currency: String,
    /// Fees.
    pub fees: FeesView,
    /// Locked customer rate.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[schema(value_type = f64)]
    pub exchange_rate: Decimal,
    /// Guaranteed payout.
    pub payout_amount: i64,
    /// Payout currency.
    pub payout_currency: String,
    /// Quote used.
    pub quote_id: String,
    /// Paying account.
    pub source_account: String,
    /// Paid account.
    pub destination_account: String,
    /// Merchant annotations.
    pub metadata: BTreeMap<String, String>,
    /// Accepted at.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Terminal at.
    pub completed_at: Option<String>,
    /// Failure, when failed or refunding.
    pub failure: Option<FailureView>,
    /// Provider legs.
    pub legs: LegsView,
    /// Refund, for refunding and refunded payments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundView>,
    /// How the payout executed, for completed payments whose market had a rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settlement: Option<SettlementView>,
    /// Every transition, oldest first.
    pub history: Vec<HistoryView>,
}

fn leg_view(leg: &Option<Leg>, currency: &str) -> Option<LegView> {
    leg.as_ref().map(|l| LegView {
        provider: l.provider.clone(),
        reference: l.reference.clone(),
        status: l.status.as_str().to_owned(),
        amount: l.amount,
        currency: currency.to_owned(),
    })
}

/// Builds the API view of a payment and its history.
pub fn view(p: &PaymentRecord, history: &[HistoryEntry]) -> PaymentView {
    let refund = matches!(
        p.state,
        PaymentState::RefundPending | PaymentState::Refunded
    )
    .then(|| ledger::refund_amount(p.amount, p.fees.onramp, p.currency).ok())
    .flatten()
    .map(|m| RefundView {
        amount: p.refund_amount.unwrap_or(m.minor()),
        currency: p.currency.code().to_owned(),
    });
    let settlement = (p.state == PaymentState::Completed)
        .then_some(p.executed_rate)
        .flatten()
        .and_then(|rate| {
            Some(SettlementView {
                executed_rate: rate.normalize(),
                fx_gain_loss: AmountView {
                    amount: ledger::fx_gain_loss(p, rate).ok()?,
                    currency: p.payout_currency.code().to_owned(),
                },
            })
        });
    PaymentView {
        payment_id: p.payment_id.clone(),
        status: p.state.as_str().to_owned(),
        amount: p.amount,
        currency: p.currency.code().to_owned(),
        fees: FeesView {
            platform_fee: p.fees.platform,
            onramp_fee: p.fees.onramp,
            offramp_fee: p.fees.offramp,
            total_fees: p.total_fees,
            currency: p.currency.code().to_owned(),
        },
        exchange_rate: p.exchange_rate.normalize(),
        payout_amount: p.payout_amount,
        payout_currency: p.payout_currency.code().to_owned(),
        quote_id: p.quote_id.clone(),
        source_account: p.source_account.clone(),
        destination_account: p.destination_account.clone(),
        metadata: p.metadata.clone(),
        created_at: p.created_at.to_rfc3339(),
        updated_at: p.updated_at.to_rfc3339(),
        completed_at: p.completed_at.map(Timestamp::to_rfc3339),
        failure: p.failure.as_ref().map(|(code, message)| FailureView {
            code: code.clone(),
            message: message.clone(),
        }),
        legs: LegsView {
            onramp: leg_view(&p.onramp, "USDC"),
            offramp: leg_view(&p.offramp, p.payout_currency.code()),
        },
        refund,
        settlement,
        history: history
            .iter()
            .map(|h| HistoryView {
                from: h.from.map(|s| s.as_str().to_owned()),
                to: h.to.as_str().to_owned(),
                at: h.at.to_rfc3339(),
                reason: h.reason.clone(),
            })
            .collect(),
    }
}

/// The `202` answer to a payment request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentAccepted {
    /// `pay_<uuid>`.
    pub payment_id: String,
    /// Always `PENDING`.
    pub status: String,
    /// Human note.
    pub message: String,
    /// The quote whose rate is locked.
    pub quote_id: String,
    /// Payout promised, payout-currency minor units.
    pub guaranteed_payout: i64,
    /// Payout currency.
    pub payout_currency: String,
}

impl PaymentAccepted {
    /// The answer for a just-accepted payment.
    pub fn of(p: &PaymentRecord) -> PaymentAccepted {
        PaymentAccepted {
            payment_id: p.payment_id.clone(),
            status: p.state.as_str().to_owned(),
            message: "Payment accepted for processing".to_owned(),
            quote_id: p.quote_id.clone(),
            guaranteed_payout: p.payout_amount,
            payout_currency: p.payout_currency.code().to_owned(),
        }
    }
}

/// The outbox event announcing `event_type` for payment `p` (as it is after the change) at
/// `at`. Its body — the payment exactly as GET shows it after the change — is rendered by
/// the store only when an endpoint wants the event ([`render_payment_event`]).
pub fn payment_event(
    p: &PaymentRecord,
    event_type: &str,
    at: Timestamp,
) -> crate::store::webhooks::NewEvent {
    crate::store::webhooks::NewEvent {
        event_id: format!("evt_{}", crate::idgen::v7()),
        merchant_id: p.merchant_id.clone(),
        payment_id: Some(p.payment_id.clone()),
        event_type: event_type.to_owned(),
        body: crate::store::webhooks::NewBody::Payment {
            payment: Box::new(p.clone()),
            render: render_payment_event,
        },
        created_at: at,
    }
}

/// A payment event's JSON body: its id, type and time, and the payment with its history.
pub fn render_payment_event(
    event_id: &str,
    event_type: &str,
    at: Timestamp,
    p: &PaymentRecord,
    history: &[HistoryEntry],
) -> String {
    serde_json::json!({
        "id": event_id,
        "type": event_type,
        "created_at": at.to_rfc3339(),
        "data": view(p, history),
    })
    .to_string()
}
