//! Payments: accept (202, idempotent), read, list with a cursor, cancel.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Merchant;
use super::error::{ApiError, Code};
use super::extract::{ApiQuery, JsonBytes};
use super::idempotency::{self as idem, IdempotencyKey};
use super::quotes::price;
use crate::domain::quote::is_expired;
use crate::domain::{PaymentState, Timestamp};
use crate::engine::events;
use crate::engine::steps;
use crate::store::idempotency::{self as idem_store, Claim};
use crate::store::jobs;
use crate::store::payments::{self, ListQuery, PaymentRecord};
use crate::store::quotes::{self, QuoteRecord};
pub use crate::views::{
    FailureView, HistoryView, LegView, LegsView, PaymentView, RefundView, view,
};

/// Body of `POST /v1/payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    /// A quote to pay; without it Corridor quotes and locks the rate now.
    pub quote_id: Option<String>,
    /// The account paying.
    pub source_account: Option<String>,
    /// The account paid.
    pub destination_account: Option<String>,
    /// Source amount (must equal the quote's when a quote is given).
    pub amount: Option<i64>,
    /// Source currency (must equal the quote's when a quote is given).
    pub currency: Option<String>,
    /// Payout currency; required without a quote.
    pub payout_currency: Option<String>,
    /// Up to 20 string values (keys ≤ 40 chars, values ≤ 500).
    pub metadata: Option<BTreeMap<String, String>>,
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

fn account(field: &str, v: Option<String>) -> Result<String, ApiError> {
    let v = v.ok_or_else(|| ApiError::invalid(field, format!("`{field}` is required")))?;
    if v.trim().is_empty() || v.len() > 255 || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be 1 to 255 characters without control characters"),
        ));
    }
    Ok(v)
}

fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if m.len() > 20 {
        return Err(ApiError::invalid(
            "metadata",
            "`metadata` holds at most 20 entries",
        ));
    }
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 40 {
            return Err(ApiError::invalid(
                "metadata",
                "metadata keys must be 1 to 40 characters",
            ));
        }
        if v.chars().count() > 500 {
            return Err(ApiError::invalid(
                "metadata",
                "metadata values must be at most 500 characters",
            ));
        }
    }
    Ok(())
}

/// `POST /v1/payments`: accept a payment for processing.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", security(("bearer" = [])), request_body = CreatePayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII; replays the first response")),
    responses((status = 202, body = PaymentAccepted),
        (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    m: Merchant,
    headers: HeaderMap,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let Some(key) = key else {
        let (status, body) = accept(&state, &m.merchant_id, &body, None).await?;
        return Ok(idem::raw_response(status, body, false));
    };
    let now = state.clock.now();
    let claim = {
        let mut tx = state.store.begin().await?;
        let c = idem_store::claim(
            &mut tx,
            &m.merchant_id,
            key.as_str(),
            &idem::body_hash(&body.0),
            now,
            now.plus_millis(idem::CLAIM_MS),
        )
        .await?;
        tx.commit().await?;
        c
    };
    match claim {
        Claim::Replay { status, body } => Ok(idem::raw_response(status, body, true)),
        Claim::Mismatch => Err(ApiError::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request body",
        )),
        Claim::InFlight => Err(ApiError::new(
            Code::IdempotencyKeyInUse,
            "a request with this Idempotency-Key is still being processed",
        )),
        Claim::Acquired => match accept(&state, &m.merchant_id, &body, Some(&key)).await {
            Ok((status, body)) => Ok(idem::raw_response(status, body, false)),
            Err(e) => {
                let mut tx = state.store.begin().await?;
                if idem::error_is_stored(&e) {
                    idem_store::complete(
                        &mut tx,
                        &m.merchant_id,
                        key.as_str(),
                        e.status().as_u16(),
                        &e.body(),
                    )
                    .await?;
                } else {
                    idem_store::release(&mut tx, &m.merchant_id, key.as_str()).await?;
                }
                tx.commit().await?;
                Err(e)
            }
        },
    }
}

/// Validates, locks the quote and stores the payment with its first job (and the
/// idempotent response) in one transaction. Returns the status and body to send.
async fn accept(
    state: &AppState,
    merchant_id: &str,
    raw: &JsonBytes,
    key: Option<&IdempotencyKey>,
) -> Result<(u16, String), ApiError> {
    let req: CreatePayment = raw.parse()?;
    let source_account = account("source_account", req.source_account)?;
    let destination_account = account("destination_account", req.destination_account)?;
    let metadata = req.metadata.unwrap_or_default();
    check_metadata(&metadata)?;
    let now = state.clock.now();

    let (quote, new_quote) = match &req.quote_id {
        Some(quote_id) => {
            let q = {
                let mut conn = state.store.reader().await?;
                quotes::find(&mut conn, merchant_id, quote_id).await?
            };
            let q = q.ok_or_else(|| {
                ApiError::new(Code::QuoteNotFound, "quote not found").with_field("quote_id")
            })?;
            if q.payment_id.is_some() {
                return Err(used());
            }
            if is_expired(q.terms.expires_at, now) {
                return Err(ApiError::new(
                    Code::QuoteExpired,
                    "Quote has expired, please request a new quote",
                )
                .with_field("quote_id"));
            }
            let mismatch = |field: &str| {
                ApiError::new(
                    Code::QuoteMismatch,
                    format!("`{field}` does not match the quote"),
                )
                .with_field(field)
            };
            if req.amount.is_some_and(|a| a != q.terms.amount) {
                return Err(mismatch("amount"));
            }
            if req.currency.as_deref().is_some_and(|c| c != q.from.code()) {
                return Err(mismatch("currency"));
            }
            if req
                .payout_currency
                .as_deref()
                .is_some_and(|c| c != q.to.code())
            {
                return Err(mismatch("payout_currency"));
            }
            (q, false)
        }
        None => {
            let q = price(
                state,
                merchant_id,
                req.currency.as_deref(),
                "currency",
                req.payout_currency.as_deref(),
                "payout_currency",
                req.amount,
            )
            .await?;
            (q, true)
        }
    };

    let payment_id = format!("pay_{}", uuid::Uuid::new_v4());
    let record = new_payment(
        &quote,
        &payment_id,
        source_account,
        destination_account,
        metadata,
        now,
    );
    let accepted = PaymentAccepted {
        payment_id: payment_id.clone(),
        status: PaymentState::Pending.as_str().to_owned(),
        message: "Payment accepted for processing".to_owned(),
        quote_id: quote.quote_id.clone(),
        guaranteed_payout: quote.terms.payout,
        payout_currency: quote.to.code().to_owned(),
    };
    let body = serde_json::to_string(&accepted)
        .map_err(|_| ApiError::new(Code::Internal, "internal error"))?;
    let status = StatusCode::ACCEPTED.as_u16();

    let mut tx = state.store.begin().await?;
    if new_quote {
        let mut q = quote.clone();
        q.payment_id = Some(payment_id.clone());
        quotes::insert(&mut tx, &q).await?;
    } else if !quotes::mark_used(&mut tx, &quote.quote_id, &payment_id).await? {
        return Err(used());
    }
    payments::insert(&mut tx, &record).await?;
    // The payment as just written; no need to read it back for its event.
    events::record_for(
        &mut tx,
        &record,
        &[payments::created_entry(now)],
        "payment.created",
        now,
    )
    .await?;
    steps::enqueue_step(
        &mut tx,
        &payment_id,
        PaymentState::Pending,
        0,
        now,
        state.job_max_attempts,
    )
    .await?;
    jobs::announce(&mut tx).await?;
    if let Some(key) = key {
        idem_store::complete(&mut tx, merchant_id, key.as_str(), status, &body).await?;
    }
    tx.commit().await?;
    state.wake.notify_one();
    tracing::Span::current().record("payment_id", payment_id.as_str());
    tracing::info!(payment_id = %payment_id, quote_id = %quote.quote_id, "payment accepted");
    Ok((status, body))
}

fn used() -> ApiError {
    ApiError::new(
        Code::QuoteAlreadyUsed,
        "this quote was already used by another payment",
    )
    .with_field("quote_id")
}

fn new_payment(
    q: &QuoteRecord,
    payment_id: &str,
    source_account: String,
    destination_account: String,
    metadata: BTreeMap<String, String>,
    now: Timestamp,
) -> PaymentRecord {
    PaymentRecord {
        payment_id: payment_id.to_owned(),
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
        source_account,
        destination_account,
        metadata,
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

async fn load_view(
    state: &AppState,
    merchant_id: &str,
    payment_id: &str,
) -> Result<PaymentView, ApiError> {
    let mut conn = state.store.reader().await?;
    let p = payments::find(&mut conn, merchant_id, payment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    let h = payments::history(&mut conn, payment_id).await?;
    Ok(view(&p, &h))
}

/// `GET /v1/payments/{payment_id}`.
#[utoipa::path(get, path = "/v1/payments/{payment_id}", tag = "payments", security(("bearer" = [])),
    params(("payment_id" = String, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    m: Merchant,
    Path(payment_id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    tracing::Span::current().record("payment_id", payment_id.as_str());
    load_view(&state, &m.merchant_id, &payment_id)
        .await
        .map(Json)
}

/// Query of the payment list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only payments in this state.
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<String>,
    /// Cursor: the last `payment_id` of the previous page.
    pub starting_after: Option<String>,
}

/// A page of payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    /// Payments, newest first.
    pub data: Vec<PaymentView>,
    /// Whether another page exists.
    pub has_more: bool,
    /// Pass as `starting_after` for the next page; `null` when none.
    pub next_cursor: Option<String>,
}

/// `GET /v1/payments`: newest first, cursor-paginated.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = PaymentList), (status = 400, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    m: Merchant,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<PaymentList>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => 20,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    "`limit` must be an integer from 1 to 100",
                ));
            }
        },
    };
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<PaymentState>()
                .map_err(|e| ApiError::invalid("status", e.to_string()))
        })
        .transpose()?;
    let mut conn = state.store.reader().await?;
    let after = match &q.starting_after {
        None => None,
        Some(id) => {
            let p = payments::find(&mut conn, &m.merchant_id, id)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "starting_after",
                        "`starting_after` is not one of your payments",
                    )
                })?;
            Some((p.created_at, p.payment_id))
        }
    };
    let mut rows = payments::list(
        &mut conn,
        &ListQuery {
            merchant_id: &m.merchant_id,
            state: status,
            after,
            limit,
        },
    )
    .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut data = Vec::with_capacity(rows.len());
    for p in &rows {
        let h = payments::history(&mut conn, &p.payment_id).await?;
        data.push(view(p, &h));
    }
    let next_cursor = if has_more {
        rows.last().map(|p| p.payment_id.clone())
    } else {
        None
    };
    Ok(Json(PaymentList {
        data,
        has_more,
        next_cursor,
    }))
}

/// `POST /v1/payments/{payment_id}/cancel`: only from `PENDING` before a worker started.
#[utoipa::path(post, path = "/v1/payments/{payment_id}/cancel", tag = "payments", security(("bearer" = [])),
    params(("payment_id" = String, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    m: Merchant,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("payment_id", payment_id.as_str());
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let exists = payments::find(&mut tx, &m.merchant_id, &payment_id)
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::not_found("payment"));
    }
    let cancelled = payments::cancel(&mut tx, &m.merchant_id, &payment_id, now).await?;
    if cancelled {
        jobs::cancel_for_payment(&mut tx, &payment_id).await?;
        events::record(
            &mut tx,
            &payment_id,
            &events::event_type(PaymentState::Cancelled),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    if !cancelled {
        return Err(ApiError::new(
            Code::InvalidState,
            "only a PENDING payment whose onramp has not started can be cancelled",
        ));
    }
    tracing::info!(payment_id = %payment_id, "payment cancelled");
    let v = load_view(&state, &m.merchant_id, &payment_id).await?;
    Ok((StatusCode::OK, Json(v)).into_response())
}
