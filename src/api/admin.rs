//! Admin routes (admin key only): merchants, and the simulator's sandbox view.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use secrecy::ExposeSecret;

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use super::operations::ADMIN_ACTOR;
use crate::store::sim;

/// Body of `POST /v1/admin/merchants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchant {
    /// Display name, 1–100 characters.
    pub name: Option<String>,
}

/// A new merchant with its API key (shown only now).
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantCreated {
    /// `mer_<uuid>`.
    pub merchant_id: String,
    /// Display name.
    pub name: String,
    /// The merchant's API key (`sk_…`); store it, it is not shown again.
    pub api_key: String,
}

/// `POST /v1/admin/merchants`.
#[utoipa::path(post, path = "/v1/admin/merchants", operation_id = "create_merchant", tag = "admin", security(("bearer" = [])), request_body = CreateMerchant,
    responses((status = 201, description = "Created", body = MerchantCreated), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody),
        (status = 403, description = "The key may not call this route (error format)", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _a: Admin,
    ApiJson(body): ApiJson<CreateMerchant>,
) -> Result<(StatusCode, Json<MerchantCreated>), ApiError> {
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && n.chars().count() <= 100 && !n.chars().any(char::is_control))
        .ok_or_else(|| ApiError::invalid("name", "`name` must be 1 to 100 characters"))?;
    let created = state.service.create_merchant(&name, ADMIN_ACTOR).await?;
    Ok((
        StatusCode::CREATED,
        Json(MerchantCreated {
            merchant_id: created.merchant_id,
            name: created.name,
            api_key: created.api_key.expose_secret().to_owned(),
        }),
    ))
}

/// Query of the sandbox transfer list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransferQuery {
    /// Only this payment's transfers.
    pub payment_id: Option<String>,
    /// Page size, 1–100 (default 100).
    pub limit: Option<String>,
    /// Cursor: the last `reference` of the previous page.
    pub starting_after: Option<String>,
}

/// A simulated transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    /// Provider reference.
    pub reference: String,
    /// `onramp`, `offramp` or `reversal`.
    pub leg: String,
    /// Payment.
    pub payment_id: String,
    /// Amount, minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// `PENDING`, `COMPLETED` or `FAILED`.
    pub status: String,
    /// How many times Corridor asked for this transfer.
    pub initiate_calls: i64,
    /// First ask.
    pub created_at: String,
}

/// A list of transfers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferList {
    /// Transfers (oldest first for one payment, newest first otherwise).
    pub data: Vec<TransferView>,
    /// Whether another page exists.
    pub has_more: bool,
    /// Pass as `starting_after` for the next page; `null` when none.
    pub next_cursor: Option<String>,
}

/// `GET /v1/sandbox/transfers`: what the simulator was asked to do.
#[utoipa::path(get, path = "/v1/sandbox/transfers", operation_id = "list_sandbox_transfers", tag = "admin", security(("bearer" = [])), params(TransferQuery),
    responses((status = 200, description = "OK", body = TransferList), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn transfers(
    State(state): State<AppState>,
    _a: Admin,
    ApiQuery(q): ApiQuery<TransferQuery>,
) -> Result<Json<TransferList>, ApiError> {
    if !state.simulated {
        return Err(ApiError::not_found("sandbox"));
    }
    super::extract::payment_id_filter(q.payment_id.as_deref())?;
    let now = state.now();
    let store = state.store();
    let limit = super::page::limit(q.limit.as_deref(), super::page::MAX_LIMIT)?;
    if let Some(after) = &q.starting_after
        && (after.is_empty() || after.len() > 255 || !sim::exists(store, after).await?)
    {
        return Err(super::page::unknown_cursor("transfers"));
    }
    let rows = sim::list(
        store,
        q.payment_id.as_deref(),
        q.starting_after.as_deref(),
        limit + 1,
    )
    .await?;
    let (rows, has_more, next_cursor) = super::page::cut(rows, limit, |t| t.reference.clone());
    let data = rows
        .into_iter()
        .map(|t| TransferView {
            status: if now < t.settle_at {
                "PENDING".to_owned()
            } else {
                t.outcome.clone()
            },
            reference: t.reference,
            leg: t.leg,
            payment_id: t.payment_id,
            amount: t.amount,
            currency: t.currency,
            initiate_calls: t.initiate_calls,
            created_at: t.created_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(TransferList {
        data,
        has_more,
        next_cursor,
    }))
}
