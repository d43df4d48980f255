//! Quotes: price an amount on a corridor and lock the rate.

use axum::Json;
use axum::extract::{Path, State};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Merchant;
use super::corridors::{corridor_for, parse_currency};
use super::error::{ApiError, Code};
use super::extract::ApiJson;
use crate::domain::quote::is_expired;
use crate::domain::{QuoteError, Timestamp, price_quote};
use crate::store::quotes::{self, QuoteRecord};
pub use crate::views::FeesView;

/// Body of `POST /v1/quotes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQuote {
    /// Source currency (ISO 4217).
    pub from_currency: Option<String>,
    /// Payout currency (ISO 4217).
    pub to_currency: Option<String>,
    /// Source amount in minor units (positive integer).
    pub amount: Option<i64>,
}

/// A quote as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    /// `quote_<uuid>`.
    pub quote_id: String,
    /// Source amount, minor units.
    pub amount: i64,
    /// Source currency.
    pub currency: String,
    /// Locked customer rate, spread included.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[schema(value_type = f64)]
    pub exchange_rate: Decimal,
    /// Fee breakdown.
    pub fees: FeesView,
    /// Payout the quote guarantees, payout-currency minor units.
    pub guaranteed_payout: i64,
    /// Payout currency.
    pub payout_currency: String,
    /// When priced.
    pub created_at: String,
    /// When the lock ends.
    pub expires_at: String,
    /// The configured lock time (constant).
    pub valid_for_seconds: i64,
    /// `ACTIVE`, `EXPIRED` or `USED`.
    pub status: String,
    /// The payment that used the quote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

/// Builds the view of a stored quote at `now`.
pub fn view(q: &QuoteRecord, now: Timestamp, ttl_secs: i64) -> QuoteView {
    let status = if q.payment_id.is_some() {
        "USED"
    } else if is_expired(q.terms.expires_at, now) {
        "EXPIRED"
    } else {
        "ACTIVE"
    };
    let t = &q.terms;
    QuoteView {
        quote_id: q.quote_id.clone(),
        amount: t.amount,
        currency: q.from.code().to_owned(),
        exchange_rate: t.rate.normalize(),
        fees: FeesView {
            platform_fee: t.fees.platform,
            onramp_fee: t.fees.onramp,
            offramp_fee: t.fees.offramp,
            total_fees: t.total_fees,
            currency: q.from.code().to_owned(),
        },
        guaranteed_payout: t.payout,
        payout_currency: q.to.code().to_owned(),
        created_at: t.created_at.to_rfc3339(),
        expires_at: t.expires_at.to_rfc3339(),
        valid_for_seconds: ttl_secs,
        status: status.to_owned(),
        payment_id: q.payment_id.clone(),
    }
}

/// Validates a positive amount.
pub fn require_amount(amount: Option<i64>) -> Result<i64, ApiError> {
    match amount {
        None => Err(ApiError::invalid("amount", "`amount` is required")),
        Some(a) if a <= 0 => Err(ApiError::invalid(
            "amount",
            "`amount` must be a positive integer in minor units",
        )),
        Some(a) => Ok(a),
    }
}

/// Prices a new quote for `merchant` (not yet stored).
pub async fn price(
    state: &AppState,
    merchant_id: &str,
    from: Option<&str>,
    from_field: &str,
    to: Option<&str>,
    to_field: &str,
    amount: Option<i64>,
) -> Result<QuoteRecord, ApiError> {
    let from = parse_currency(from_field, from)?;
    let to = parse_currency(to_field, to)?;
    let amount = require_amount(amount)?;
    let corridor = corridor_for(state, from, to)?;
    let (mid, rate) = state.customer_rate(&corridor).await?;
    let terms = price_quote(
        &corridor,
        amount,
        rate,
        state.clock.now(),
        state.quote_ttl_ms,
    )
    .map_err(|e| match e {
        QuoteError::AmountOutOfRange(m) => {
            ApiError::new(Code::AmountOutOfRange, m).with_field("amount")
        }
        QuoteError::Money(m) => {
            ApiError::new(Code::AmountOutOfRange, m.to_string()).with_field("amount")
        }
    })?;
    Ok(QuoteRecord {
        quote_id: format!("quote_{}", uuid::Uuid::new_v4()),
        merchant_id: merchant_id.to_owned(),
        from,
        to,
        mid_rate: mid,
        terms,
        payment_id: None,
    })
}

/// `POST /v1/quotes`: price and lock a rate.
#[utoipa::path(post, path = "/v1/quotes", tag = "quotes", security(("bearer" = [])), request_body = CreateQuote,
    responses((status = 200, body = QuoteView), (status = 400, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    m: Merchant,
    ApiJson(body): ApiJson<CreateQuote>,
) -> Result<Json<QuoteView>, ApiError> {
    let q = price(
        &state,
        &m.merchant_id,
        body.from_currency.as_deref(),
        "from_currency",
        body.to_currency.as_deref(),
        "to_currency",
        body.amount,
    )
    .await?;
    let mut tx = state.store.begin().await?;
    quotes::insert(&mut tx, &q).await?;
    tx.commit().await?;
    Ok(Json(view(&q, state.clock.now(), state.quote_ttl_secs())))
}

/// `GET /v1/quotes/{quote_id}`.
#[utoipa::path(get, path = "/v1/quotes/{quote_id}", tag = "quotes", security(("bearer" = [])),
    params(("quote_id" = String, Path)),
    responses((status = 200, body = QuoteView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    m: Merchant,
    Path(quote_id): Path<String>,
) -> Result<Json<QuoteView>, ApiError> {
    let mut conn = state.store.reader().await?;
    let q = quotes::find(&mut conn, &m.merchant_id, &quote_id)
        .await?
        .ok_or_else(|| ApiError::not_found("quote"))?;
    Ok(Json(view(&q, state.clock.now(), state.quote_ttl_secs())))
}
