//! Admin operations: rate pins, force retry, dead jobs and redrive, alerts, key rotation.
//! The actions themselves are use cases of [`crate::service::operators`] (shared with the
//! dashboard).

use crate::domain::ids::IdKind;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::service::payments::parse_currency;
use crate::store::jobs;
use crate::store::ops::{self as ops_store, RatePin};

/// Who the audit log names for actions taken with the admin key.
pub const ADMIN_ACTOR: &str = "admin-key";

/// `{"api_key"}` after a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The merchant's new key; the old one stopped working.
    pub api_key: String,
}

/// `POST /v1/admin/merchants/{merchant_id}/rotate-key`.
#[utoipa::path(post, path = "/v1/admin/merchants/{merchant_id}/rotate-key", operation_id = "rotate_merchant_key", tag = "admin", security(("bearer" = [])),
    params(("merchant_id" = String, Path)),
    responses((status = 200, description = "OK", body = RotatedKey), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    _a: Admin,
    Path(merchant_id): Path<String>,
) -> Result<Json<RotatedKey>, ApiError> {
    ApiError::check_id(IdKind::Merchant, &merchant_id)?;
    let api_key = state
        .service
        .rotate_merchant_key(&merchant_id, ADMIN_ACTOR)
        .await?;
    Ok(Json(RotatedKey { api_key }))
}

/// Body of a rate pin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// The exact customer rate (spread included), positive, at most 8 decimals.
    #[schema(value_type = f64)]
    #[serde(deserialize_with = "super::extract::json_number_decimal", default)]
    pub rate: Option<Decimal>,
}

/// A pinned rate.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinView {
    /// Source currency.
    pub from_currency: String,
    /// Payout currency.
    pub to_currency: String,
    /// The pinned customer rate.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[schema(value_type = f64)]
    pub rate: Decimal,
    /// When pinned.
    pub pinned_at: String,
}

fn pin_view(p: &RatePin) -> PinView {
    PinView {
        from_currency: p.from.code().to_owned(),
        to_currency: p.to.code().to_owned(),
        rate: p.rate.normalize(),
        pinned_at: p.pinned_at.to_rfc3339(),
    }
}

/// A list of pins.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinList {
    /// Pins.
    pub data: Vec<PinView>,
}

/// `PUT /v1/admin/rates/{from}/{to}`: new quotes for that direction use exactly this rate.
#[utoipa::path(put, path = "/v1/admin/rates/{from}/{to}", operation_id = "pin_rate", tag = "admin", security(("bearer" = [])), request_body = PinBody,
    params(("from" = String, Path), ("to" = String, Path)),
    responses((status = 200, description = "OK", body = PinView), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn pin(
    State(state): State<AppState>,
    _a: Admin,
    Path((from, to)): Path<(String, String)>,
    ApiJson(body): ApiJson<PinBody>,
) -> Result<Json<PinView>, ApiError> {
    let from = parse_currency("from", Some(&from))?;
    let to = parse_currency("to", Some(&to))?;
    state.service.corridor(from, to)?;
    let rate = body
        .rate
        .ok_or_else(|| ApiError::invalid("rate", "`rate` is required"))?;
    if rate <= Decimal::ZERO || rate.normalize().scale() > crate::domain::rates::RATE_DECIMALS {
        return Err(ApiError::invalid(
            "rate",
            "`rate` must be positive with at most 8 decimals",
        ));
    }
    let pin = state.service.pin_rate(from, to, rate, ADMIN_ACTOR).await?;
    Ok(Json(pin_view(&pin)))
}

/// `DELETE /v1/admin/rates/{from}/{to}`.
#[utoipa::path(delete, path = "/v1/admin/rates/{from}/{to}", operation_id = "unpin_rate", tag = "admin", security(("bearer" = [])),
    params(("from" = String, Path), ("to" = String, Path)),
    responses((status = 204, description = "Unpinned"), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn unpin(
    State(state): State<AppState>,
    _a: Admin,
    Path((from, to)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let from = parse_currency("from", Some(&from))?;
    let to = parse_currency("to", Some(&to))?;
    state.service.unpin_rate(from, to, ADMIN_ACTOR).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/admin/rates`.
#[utoipa::path(get, path = "/v1/admin/rates", operation_id = "list_rate_pins", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = PinList)))]
pub async fn pins(State(state): State<AppState>, _a: Admin) -> Result<Json<PinList>, ApiError> {
    let data = ops_store::rate_pins(state.store())
        .await?
        .iter()
        .map(pin_view)
        .collect();
    Ok(Json(PinList { data }))
}

/// `POST /v1/admin/payments/{id}/retry`: re-run the current step now.
#[utoipa::path(post, path = "/v1/admin/payments/{id}/retry", operation_id = "retry_payment", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 202, description = "Step queued"), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody),
        (status = 409, description = "Conflicts with the resource's current state (error format)", body = super::error::ErrorBody)))]
pub async fn retry_payment(
    State(state): State<AppState>,
    _a: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    ApiError::check_id(IdKind::Payment, &id)?;
    let s = state.service.retry_payment(&id, ADMIN_ACTOR).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            serde_json::json!({"payment_id": id, "status": s.as_str(), "message": "current step queued"}),
        ),
    ))
}

/// A dead job.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobView {
    /// Job id.
    pub id: String,
    /// Handler (`payment.step`, `webhook.deliver`, …).
    pub kind: String,
    /// Payment it belongs to (`null` when none).
    pub payment_id: Option<String>,
    /// Attempts made.
    pub attempts: i64,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// When it died.
    pub failed_at: String,
}

/// A list of dead jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobList {
    /// Dead jobs, newest first.
    pub data: Vec<DeadJobView>,
    /// Whether another page exists.
    pub has_more: bool,
    /// Pass as `starting_after` for the next page; `null` when none.
    pub next_cursor: Option<String>,
}

/// A page of dead jobs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadJobQuery {
    /// Page size, 1–100 (default 100).
    pub limit: Option<String>,
    /// Cursor: the last `id` of the previous page.
    pub starting_after: Option<String>,
}

/// `GET /v1/admin/jobs/dead`.
#[utoipa::path(get, path = "/v1/admin/jobs/dead", operation_id = "list_dead_jobs", tag = "admin", security(("bearer" = [])), params(DeadJobQuery),
    responses((status = 200, description = "OK", body = DeadJobList)))]
pub async fn dead_jobs(
    State(state): State<AppState>,
    _a: Admin,
    super::extract::ApiQuery(q): super::extract::ApiQuery<DeadJobQuery>,
) -> Result<Json<DeadJobList>, ApiError> {
    let store = state.store();
    let limit = super::page::limit(q.limit.as_deref(), super::page::MAX_LIMIT)?;
    if let Some(after) = &q.starting_after
        && (!crate::domain::ids::IdKind::Job.matches(after) || !jobs::exists(store, after).await?)
    {
        return Err(super::page::unknown_cursor("dead jobs"));
    }
    let rows = jobs::dead(store, q.starting_after.as_deref(), limit + 1).await?;
    let (rows, has_more, next_cursor) = super::page::cut(rows, limit, |j| j.id.clone());
    let data = rows
        .into_iter()
        .map(|j| DeadJobView {
            id: j.id,
            kind: j.kind,
            payment_id: j.payment_id,
            attempts: j.attempts,
            last_error: j.last_error,
            failed_at: j.failed_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(DeadJobList {
        data,
        has_more,
        next_cursor,
    }))
}

/// `POST /v1/admin/jobs/{id}/redrive`.
#[utoipa::path(post, path = "/v1/admin/jobs/{id}/redrive", operation_id = "redrive_job", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 202, description = "Back in the queue"), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody),
        (status = 409, description = "Conflicts with the resource's current state (error format)", body = super::error::ErrorBody)))]
pub async fn redrive(
    State(state): State<AppState>,
    _a: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    ApiError::check_id(IdKind::Job, &id)?;
    state.service.redrive_job(&id, ADMIN_ACTOR).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "status": "ready"})),
    ))
}

/// An open alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// `alert_<uuid>`.
    pub id: String,
    /// `STUCK_PAYMENT`, `WEBHOOK_ENDPOINT_FAILING`, `DEAD_JOB` or `RECONCILIATION_MISMATCH`.
    pub kind: String,
    /// Payment concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Endpoint concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// Job concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// What is wrong.
    pub message: String,
    /// When the condition began.
    pub since: String,
}

/// Open alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Alerts, oldest condition first.
    pub data: Vec<AlertView>,
}

/// `GET /v1/admin/alerts`.
#[utoipa::path(get, path = "/v1/admin/alerts", operation_id = "list_alerts", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = AlertList)))]
pub async fn alerts(State(state): State<AppState>, _a: Admin) -> Result<Json<AlertList>, ApiError> {
    // A failing disk cannot be written down as an alert row: it is shown from memory.
    let storage = state.store().writes_failing_since().map(|since| AlertView {
        id: "alert_storage".to_owned(),
        kind: "STORAGE_FAILING".to_owned(),
        payment_id: None,
        endpoint_id: None,
        job_id: None,
        message: "database writes fail (disk full or I/O error); new work answers 503".to_owned(),
        since: since.to_rfc3339(),
    });
    let data = storage
        .into_iter()
        .chain(
            ops_store::open_alerts(state.store())
                .await?
                .into_iter()
                .map(|a| AlertView {
                    id: a.alert_id,
                    kind: a.kind,
                    payment_id: a.payment_id,
                    endpoint_id: a.endpoint_id,
                    job_id: a.job_id,
                    message: a.message,
                    since: a.since.to_rfc3339(),
                }),
        )
        .collect();
    Ok(Json(AlertList { data }))
}
