//! Quotes: price an amount on a corridor and lock the rate.

use crate::domain::ids::IdKind;
use axum::Json;
use axum::extract::{Path, State};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Merchant;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::Timestamp;
use crate::domain::quote::is_expired;
use crate::service::payments::{parse_currency, require_amount};
use crate::service::quotes::QuoteRequest;
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

/// `POST /v1/quotes`: price and lock a rate.
#[utoipa::path(post, path = "/v1/quotes", operation_id = "create_quote", tag = "quotes", security(("bearer" = [])), request_body = CreateQuote,
    responses((status = 200, description = "OK", body = QuoteView), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    m: Merchant,
    ApiJson(body): ApiJson<CreateQuote>,
) -> Result<Json<QuoteView>, ApiError> {
    let req = QuoteRequest {
        from: parse_currency("from_currency", body.from_currency.as_deref())?,
        to: parse_currency("to_currency", body.to_currency.as_deref())?,
        amount: require_amount(body.amount)?,
    };
    let q = state.service.create_quote(&m.merchant_id, req).await?;
    Ok(Json(view(&q, state.now(), state.quote_ttl_secs())))
}

/// `GET /v1/quotes/{quote_id}`.
#[utoipa::path(get, path = "/v1/quotes/{quote_id}", operation_id = "get_quote", tag = "quotes", security(("bearer" = [])),
    params(("quote_id" = String, Path)),
    responses((status = 200, description = "OK", body = QuoteView), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    m: Merchant,
    Path(quote_id): Path<String>,
) -> Result<Json<QuoteView>, ApiError> {
    ApiError::check_id(IdKind::Quote, &quote_id)?;
    let q = quotes::find(state.store(), &m.merchant_id, &quote_id)
        .await?
        .ok_or_else(|| ApiError::not_found("quote"))?;
    Ok(Json(view(&q, state.now(), state.quote_ttl_secs())))
}
