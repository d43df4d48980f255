//! Payments: accept (202, idempotent), read, list with a cursor, cancel.

use crate::domain::ids::IdKind;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Merchant;
use super::error::ApiError;
use super::extract::{ApiQuery, JsonBytes};
use super::idempotency as idem;
use crate::domain::PaymentState;
use crate::service::payments::AcceptPayment;
use crate::store::payments::{self, ListQuery};
pub use crate::views::{
    FailureView, HistoryView, LegView, LegsView, PaymentAccepted, PaymentView, RefundView, view,
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
    /// Up to 20 string values (keys ≤ 40 chars, values ≤ 500), each key once.
    #[serde(default, deserialize_with = "super::extract::unique_string_map")]
    pub metadata: Option<BTreeMap<String, String>>,
}

fn account(field: &str, v: Option<String>) -> Result<String, ApiError> {
    let v = v.ok_or_else(|| ApiError::invalid(field, format!("`{field}` is required")))?;
    if v.trim().is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) {
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
#[utoipa::path(post, path = "/v1/payments", operation_id = "create_payment", tag = "payments", security(("bearer" = [])), request_body = CreatePayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII; replays the first response")),
    responses((status = 202, description = "Accepted: durably stored, processing continues", body = PaymentAccepted),
        (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody),
        (status = 409, description = "Conflicts with the resource's current state (error format)", body = super::error::ErrorBody), (status = 422, description = "Idempotency key reused with another body (error format)", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    m: Merchant,
    headers: HeaderMap,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    idem::idempotent(&state, &m.merchant_id, &headers, &body.0, |slot| async {
        let req: CreatePayment = body.parse()?;
        let source_account = account("source_account", req.source_account)?;
        let destination_account = account("destination_account", req.destination_account)?;
        let metadata = req.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        let accepted = state
            .service
            .accept_payment(
                AcceptPayment {
                    merchant_id: m.merchant_id.clone(),
                    quote_id: req.quote_id,
                    amount: req.amount,
                    currency: req.currency,
                    payout_currency: req.payout_currency,
                    source_account,
                    destination_account,
                    metadata,
                },
                slot,
            )
            .await?;
        Ok((accepted.status, accepted.body))
    })
    .await
}

async fn load_view(
    state: &AppState,
    merchant_id: &str,
    payment_id: &str,
) -> Result<PaymentView, ApiError> {
    let p = payments::find(state.store(), merchant_id, payment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    let h = payments::history(state.store(), payment_id).await?;
    Ok(view(&p, &h))
}

/// `GET /v1/payments/{payment_id}`.
#[utoipa::path(get, path = "/v1/payments/{payment_id}", operation_id = "get_payment", tag = "payments", security(("bearer" = [])),
    params(("payment_id" = String, Path)),
    responses((status = 200, description = "OK", body = PaymentView), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    m: Merchant,
    Path(payment_id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    ApiError::check_id(IdKind::Payment, &payment_id)?;
    tracing::Span::current().record("payment_id", payment_id.as_str());
    load_view(&state, &m.merchant_id, &payment_id)
        .await
        .map(Json)
}

/// Query of the payment list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(get, path = "/v1/payments", operation_id = "list_payments", tag = "payments", security(("bearer" = [])), params(ListParams),
    responses((status = 200, description = "OK", body = PaymentList), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    m: Merchant,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<PaymentList>, ApiError> {
    let limit = super::page::limit(q.limit.as_deref(), 20)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<PaymentState>()
                .map_err(|e| ApiError::invalid("status", e.to_string()))
        })
        .transpose()?;
    let store = state.store();
    let after = match &q.starting_after {
        None => None,
        Some(id) => {
            let p = payments::find(store, &m.merchant_id, id)
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
    let rows = payments::list(
        store,
        &ListQuery {
            merchant_id: &m.merchant_id,
            state: status,
            after,
            limit,
        },
    )
    .await?;
    let (rows, has_more, next_cursor) = super::page::cut(rows, limit, |p| p.payment_id.clone());
    let mut data = Vec::with_capacity(rows.len());
    for p in &rows {
        let h = payments::history(store, &p.payment_id).await?;
        data.push(view(p, &h));
    }
    Ok(Json(PaymentList {
        data,
        has_more,
        next_cursor,
    }))
}

/// `POST /v1/payments/{payment_id}/cancel`: only from `PENDING` before a worker started.
#[utoipa::path(post, path = "/v1/payments/{payment_id}/cancel", operation_id = "cancel_payment", tag = "payments", security(("bearer" = [])),
    params(("payment_id" = String, Path)),
    responses((status = 200, description = "OK", body = PaymentView), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody),
        (status = 409, description = "Conflicts with the resource's current state (error format)", body = super::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    m: Merchant,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    ApiError::check_id(IdKind::Payment, &payment_id)?;
    tracing::Span::current().record("payment_id", payment_id.as_str());
    state
        .service
        .cancel_payment(&m.merchant_id, &payment_id)
        .await?;
    tracing::info!(payment_id = %payment_id, "payment cancelled");
    let v = load_view(&state, &m.merchant_id, &payment_id).await?;
    Ok((StatusCode::OK, Json(v)).into_response())
}
