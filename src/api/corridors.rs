//! Corridors and current customer rates.

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Merchant;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::domain::{Corridor, FeeSchedule};
use crate::service::payments::parse_currency;

/// A corridor as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorridorView {
    /// Source currency.
    pub from_currency: String,
    /// Payout currency.
    pub to_currency: String,
    /// Smallest source amount, minor units.
    pub min_amount: i64,
    /// Largest source amount, minor units.
    pub max_amount: i64,
    /// Fee schedule: per leg, tiers of `flat + percentage`, the first tier whose `up_to` the
    /// amount is below applies.
    #[schema(value_type = FeeScheduleView)]
    pub fees: FeeSchedule,
}

/// The document's picture of a corridor's fee schedule (the domain type is serialized as
/// is; these types only describe it, so the domain stays free of documentation concerns).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FeeScheduleView {
    /// The platform's own fee.
    platform: LegFeesView,
    /// The fiat → USDC provider's fee.
    onramp: LegFeesView,
    /// The USDC → payout provider's fee.
    offramp: LegFeesView,
}

/// One leg's fee: the first tier whose `up_to` the amount is below applies.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LegFeesView {
    /// Tiers in ascending `up_to` order; the last is unbounded.
    tiers: Vec<FeeTierView>,
}

/// One band of a leg's fee: `flat + ceil(amount × percentage)`, rounded up to the minor unit.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FeeTierView {
    /// Exclusive upper bound in source minor units; `null`: unbounded (the last tier).
    up_to: Option<i64>,
    /// Flat part, source minor units.
    flat: i64,
    /// Proportional part as a fraction (`0.029` = 2.9 %), a JSON number.
    #[schema(value_type = f64)]
    percentage: rust_decimal::Decimal,
}

/// A list of corridors.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorridorList {
    /// Corridors.
    pub data: Vec<CorridorView>,
}

/// `GET /v1/corridors`.
#[utoipa::path(get, path = "/v1/corridors", operation_id = "list_corridors", tag = "corridors", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = CorridorList)))]
pub async fn list(State(state): State<AppState>, _m: Merchant) -> Json<CorridorList> {
    let data = state
        .service
        .corridors
        .all()
        .iter()
        .map(|c: &Corridor| CorridorView {
            from_currency: c.from.code().to_owned(),
            to_currency: c.to.code().to_owned(),
            min_amount: c.min_amount,
            max_amount: c.max_amount,
            fees: c.fees.clone(),
        })
        .collect();
    Json(CorridorList { data })
}

/// Query of `GET /v1/rates`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RateQuery {
    /// Source currency.
    pub from: Option<String>,
    /// Payout currency.
    pub to: Option<String>,
}

/// A current customer rate (not locked).
#[derive(Debug, Serialize, ToSchema)]
pub struct RateView {
    /// Source currency.
    pub from_currency: String,
    /// Payout currency.
    pub to_currency: String,
    /// Customer rate, spread included, at most 8 decimals.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[schema(value_type = f64)]
    pub rate: Decimal,
    /// When this rate was read.
    pub as_of: String,
}

/// `GET /v1/rates?from=USD&to=EUR`.
#[utoipa::path(get, path = "/v1/rates", operation_id = "get_rate", tag = "corridors", security(("bearer" = [])), params(RateQuery),
    responses((status = 200, description = "OK", body = RateView), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn rate(
    State(state): State<AppState>,
    _m: Merchant,
    ApiQuery(q): ApiQuery<RateQuery>,
) -> Result<Json<RateView>, ApiError> {
    let from = parse_currency("from", q.from.as_deref())?;
    let to = parse_currency("to", q.to.as_deref())?;
    let rate = state.service.current_rate(from, to).await?.customer;
    Ok(Json(RateView {
        from_currency: from.code().to_owned(),
        to_currency: to.code().to_owned(),
        rate,
        as_of: state.now().to_rfc3339(),
    }))
}
