//! Accepting a payment and cancelling one.

use std::collections::BTreeMap;

use super::{Error, Result, Service};
use crate::domain::lifecycle::{self, Input};
use crate::domain::quote::is_expired;
use crate::domain::task::Task;
use crate::domain::{Currency, PaymentRecord, PaymentState};
use crate::store::idempotency::Response;
use crate::store::jobs::NewJob;
use crate::store::quotes::QuoteRecord;
use crate::store::unit::Write;
use crate::store::{Rejected, UnitOfWork, payments, quotes};
use crate::views::{self, PaymentAccepted};

/// A payment request, its free-form fields already validated by the caller.
#[derive(Debug, Clone)]
pub struct AcceptPayment {
    /// Owner.
    pub merchant_id: String,
    /// A quote to pay; without it the payment is quoted and locked now.
    pub quote_id: Option<String>,
    /// Source amount (must equal the quote's when a quote is given).
    pub amount: Option<i64>,
    /// Source currency code (must equal the quote's when a quote is given).
    pub currency: Option<String>,
    /// Payout currency code; required without a quote.
    pub payout_currency: Option<String>,
    /// Who pays.
    pub source_account: String,
    /// Who is paid.
    pub destination_account: String,
    /// Merchant annotations.
    pub metadata: BTreeMap<String, String>,
}

/// An idempotency key the answer is stored under, in the same unit as the payment.
#[derive(Debug, Clone)]
pub struct IdempotencySlot {
    /// The key.
    pub key: String,
    /// SHA-256 of the request body.
    pub request_hash: String,
}

/// The answer to an accepted payment: `202` and its exact body (what a replay sends).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The new payment.
    pub payment_id: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// JSON body, byte for byte.
    pub body: String,
}

/// Validates a positive amount in minor units.
pub fn require_amount(amount: Option<i64>) -> Result<i64> {
    match amount {
        None => Err(Error::invalid("amount", "`amount` is required")),
        Some(a) if a <= 0 => Err(Error::invalid(
            "amount",
            "`amount` must be a positive integer in minor units",
        )),
        Some(a) => Ok(a),
    }
}

/// Parses a required currency code named `field`.
pub fn parse_currency(field: &str, value: Option<&str>) -> Result<Currency> {
    let v = value.ok_or_else(|| Error::invalid(field, format!("`{field}` is required")))?;
    v.parse()
        .map_err(|e: crate::domain::currency::UnknownCurrency| Error::invalid(field, e.to_string()))
}

impl Service {
    /// Accepts a payment: locks its quote (or quotes it now), stores the payment with its
    /// first history row, its `payment.created` event and its first step job — and, with an
    /// idempotency key, the answer — in one unit of work. Nothing calls out in between, so
    /// the key's claim and the payment commit or fail together.
    pub async fn accept_payment(
        &self,
        req: AcceptPayment,
        idem: Option<IdempotencySlot>,
    ) -> Result<Accepted> {
        let now = self.clock.now();
        let (quote, new_quote) = match &req.quote_id {
            Some(quote_id) => (self.quote_to_pay(&req, quote_id).await?, false),
            None => {
                let from = parse_currency("currency", req.currency.as_deref())?;
                let to = parse_currency("payout_currency", req.payout_currency.as_deref())?;
                let amount = require_amount(req.amount)?;
                let q = self
                    .price_quote(
                        &req.merchant_id,
                        super::quotes::QuoteRequest { from, to, amount },
                    )
                    .await?;
                (q, true)
            }
        };
        let payment = new_payment(&quote, req, now);
        let body = serde_json::to_string(&PaymentAccepted::of(&payment))
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let status = 202;

        let mut unit = UnitOfWork::at(now);
        if new_quote {
            let mut q = quote.clone();
            q.payment_id = Some(payment.payment_id.clone());
            unit.push(Write::InsertQuote(q));
        } else {
            unit.push(Write::MarkQuoteUsed {
                quote_id: quote.quote_id.clone(),
                payment_id: payment.payment_id.clone(),
            });
        }
        let event = views::payment_event(&payment, "payment.created", now);
        unit.push(Write::InsertPayment(Box::new(payment.clone())))
            .push(Write::RecordEvent(event))
            .push(Write::Enqueue(NewJob::new(
                Task::step(PaymentState::Pending),
                Some(payment.payment_id.clone()),
                now,
                self.settings.job_max_attempts,
            )));
        if let Some(slot) = idem {
            unit.push(Write::SaveResponse(Response {
                merchant_id: payment.merchant_id.clone(),
                key: slot.key,
                request_hash: slot.request_hash,
                status,
                body: body.clone(),
            }));
        }
        match self.commit(unit).await? {
            Ok(()) => {}
            Err(Rejected::QuoteUsed) => return Err(Error::QuoteUsed),
            Err(Rejected::IdempotencyKeyTaken) => return Err(Error::IdempotencyKeyTaken),
            Err(other) => return Err(Error::Unavailable(other.to_string())),
        }
        tracing::Span::current().record("payment_id", payment.payment_id.as_str());
        tracing::info!(payment_id = %payment.payment_id, quote_id = %quote.quote_id, "payment accepted");
        Ok(Accepted {
            payment_id: payment.payment_id,
            status,
            body,
        })
    }

    /// The merchant's quote `quote_id`, checked to be payable now by `req`.
    async fn quote_to_pay(&self, req: &AcceptPayment, quote_id: &str) -> Result<QuoteRecord> {
        let q = quotes::find(&self.store, &req.merchant_id, quote_id)
            .await?
            .ok_or(Error::QuoteNotFound)?;
        if q.payment_id.is_some() {
            return Err(Error::QuoteUsed);
        }
        if is_expired(q.terms.expires_at, self.clock.now()) {
            return Err(Error::QuoteExpired);
        }
        if req.amount.is_some_and(|a| a != q.terms.amount) {
            return Err(Error::QuoteMismatch("amount"));
        }
        if req.currency.as_deref().is_some_and(|c| c != q.from.code()) {
            return Err(Error::QuoteMismatch("currency"));
        }
        if req
            .payout_currency
            .as_deref()
            .is_some_and(|c| c != q.to.code())
        {
            return Err(Error::QuoteMismatch("payout_currency"));
        }
        Ok(q)
    }

    /// Cancels a merchant's `PENDING` payment before any worker began its onramp, through
    /// the decision table and the same transition path as every other state change.
    ///
    /// A payment already `CANCELLED` is answered as cancelled, writing nothing: a merchant
    /// whose first cancel committed but whose answer was lost (a timeout, a crash) must be
    /// able to ask again and be told the truth — a 409 would say the cancel failed.
    pub async fn cancel_payment(
        &self,
        merchant_id: &str,
        payment_id: &str,
    ) -> Result<PaymentRecord> {
        let p = payments::find(&self.store, merchant_id, payment_id)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        if p.state == PaymentState::Cancelled {
            return Ok(p);
        }
        let cannot = || Error::InvalidState(lifecycle::Refusal::CannotCancel.to_string());
        let effects = lifecycle::decide(&p, Input::Cancel, &self.step_context(&p, 0))
            .map_err(|_| cannot())?;
        match self
            .apply(
                &p,
                effects,
                super::settle::Via::Merchant,
                UnitOfWork::at(self.clock.now()),
            )
            .await?
        {
            super::settle::Applied::Written(after) => Ok(*after),
            super::settle::Applied::Rejected(_) => Err(cannot()),
        }
    }
}

fn new_payment(
    q: &QuoteRecord,
    req: AcceptPayment,
    now: crate::domain::Timestamp,
) -> PaymentRecord {
    PaymentRecord {
        payment_id: format!("pay_{}", crate::idgen::v7()),
        merchant_id: q.merchant_id.clone(),
        quote_id: q.quote_id.clone(),
        state: PaymentState::Pending,
        version: 1,
        amount: q.terms.amount,
        currency: q.from,
        payout_amount: q.terms.payout,
        payout_currency: q.to,
        exchange_rate: q.terms.rate,
        mid_rate: q.mid_rate,
        fees: q.terms.fees,
        total_fees: q.terms.total_fees,
        source_account: req.source_account,
        destination_account: req.destination_account,
        metadata: req.metadata,
        created_at: now,
        updated_at: now,
        state_since: now,
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

impl Service {
    /// Stores an answer that did not come from a committed use case (a refused request's
    /// `4xx`) under an idempotency key, so retries replay it.
    pub async fn remember_answer(
        &self,
        merchant_id: &str,
        slot: IdempotencySlot,
        status: u16,
        body: String,
    ) -> Result<()> {
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::SaveResponse(Response {
            merchant_id: merchant_id.to_owned(),
            key: slot.key,
            request_hash: slot.request_hash,
            status,
            body,
        }));
        match self.commit(unit).await? {
            Ok(()) => Ok(()),
            Err(Rejected::IdempotencyKeyTaken) => Err(Error::IdempotencyKeyTaken),
            Err(other) => Err(Error::Unavailable(other.to_string())),
        }
    }
}
