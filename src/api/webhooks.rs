//! Merchant webhook endpoints and the delivery log.

use crate::domain::ids::IdKind;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Merchant;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::domain::PaymentState;
use crate::egress;
use crate::store::payments;
use crate::store::webhooks::{self, Delivery, Endpoint};

/// Every event type Corridor emits.
pub fn event_types() -> Vec<String> {
    std::iter::once("payment.created".to_owned())
        .chain(
            PaymentState::ALL
                .iter()
                .filter(|s| **s != PaymentState::Pending)
                .map(|s| s.event_type()),
        )
        .collect()
}

/// Body of `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `https` URL on a public host.
    pub url: Option<String>,
    /// Event types to receive; omitted = every type.
    pub events: Option<Vec<String>>,
}

/// An endpoint as listed (the secret is only shown at creation and rotation).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// `we_<uuid>`.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Subscribed event types (every type when created without a list).
    pub events: Vec<String>,
    /// Whether deliveries are stopped (the receiver answered `410 Gone`).
    pub disabled: bool,
    /// Creation time.
    pub created_at: String,
}

/// A new endpoint with its signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreated {
    /// `we_<uuid>`.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// `whsec_…`: verify `webhook-signature` with it; shown only now.
    pub secret: String,
}

/// A list of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Endpoints, oldest first.
    pub data: Vec<EndpointView>,
}

/// A rotated secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// The new `whsec_…`; the previous one keeps signing (second signature) for 24 h.
    pub secret: String,
}

fn endpoint_view(e: &Endpoint) -> EndpointView {
    EndpointView {
        id: e.endpoint_id.clone(),
        url: e.url.clone(),
        events: if e.events.is_empty() {
            event_types()
        } else {
            e.events.clone()
        },
        disabled: e.disabled_at.is_some(),
        created_at: e.created_at.to_rfc3339(),
    }
}

/// `POST /v1/webhook-endpoints`.
#[utoipa::path(post, path = "/v1/webhook-endpoints", operation_id = "create_webhook_endpoint", tag = "webhooks", security(("bearer" = [])), request_body = CreateEndpoint,
    responses((status = 201, description = "Created", body = EndpointCreated), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    m: Merchant,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let url = body
        .url
        .ok_or_else(|| ApiError::invalid("url", "`url` is required"))?;
    egress::resolve(&url, state.webhook_allow_private)
        .await
        .map_err(|e| ApiError::invalid("url", e.to_string()))?;
    let known = event_types();
    let events = match body.events {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            return Err(ApiError::invalid(
                "events",
                "`events` must name at least one event type, or be omitted",
            ));
        }
        Some(mut list) => {
            if let Some(bad) = list.iter().find(|e| !known.contains(e)) {
                return Err(ApiError::invalid(
                    "events",
                    format!("unknown event type `{bad}`"),
                ));
            }
            list.sort();
            list.dedup();
            list
        }
    };
    let endpoint = state
        .service
        .create_endpoint(&m.merchant_id, url, events)
        .await?;
    let view = endpoint_view(&endpoint);
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            id: view.id,
            url: view.url,
            events: view.events,
            secret: endpoint.secret.expose_secret().to_owned(),
        }),
    ))
}

/// `GET /v1/webhook-endpoints`.
#[utoipa::path(get, path = "/v1/webhook-endpoints", operation_id = "list_webhook_endpoints", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = EndpointList)))]
pub async fn list(
    State(state): State<AppState>,
    m: Merchant,
) -> Result<Json<EndpointList>, ApiError> {
    let data = webhooks::list_endpoints(state.store(), &m.merchant_id)
        .await?
        .iter()
        .map(endpoint_view)
        .collect();
    Ok(Json(EndpointList { data }))
}

/// `DELETE /v1/webhook-endpoints/{id}`.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", operation_id = "delete_webhook_endpoint", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    m: Merchant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ApiError::check_id(IdKind::Endpoint, &id)?;
    state.service.delete_endpoint(&m.merchant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret`.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", operation_id = "rotate_webhook_endpoint_secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "OK", body = SecretView), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    m: Merchant,
    Path(id): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    ApiError::check_id(IdKind::Endpoint, &id)?;
    let secret = state
        .service
        .rotate_endpoint_secret(&m.merchant_id, &id)
        .await?;
    Ok(Json(SecretView { secret }))
}

/// Query of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only deliveries about this payment.
    pub payment_id: Option<String>,
    /// Page size, 1–100 (default 100).
    pub limit: Option<String>,
    /// Cursor: the last `id` of the previous page.
    pub starting_after: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Attempt id (`whd_<uuid>`).
    pub id: String,
    /// Event sent (also the `webhook-id`).
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Endpoint.
    pub endpoint_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// HTTP status, `null` when no answer came.
    pub status_code: Option<i64>,
    /// What went wrong, `null` on success.
    pub error: Option<String>,
    /// Time to answer.
    pub duration_ms: i64,
    /// When attempted.
    pub created_at: String,
}

/// A list of delivery attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Attempts (oldest first for one payment, newest first otherwise).
    pub data: Vec<DeliveryView>,
    /// Whether another page exists.
    pub has_more: bool,
    /// Pass as `starting_after` for the next page; `null` when none.
    pub next_cursor: Option<String>,
}

fn delivery_view(d: &Delivery) -> DeliveryView {
    DeliveryView {
        id: d.delivery_id.clone(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        endpoint_id: d.endpoint_id.clone(),
        attempt: d.attempt,
        status_code: d.status_code,
        error: d.error.clone(),
        duration_ms: d.duration_ms,
        created_at: d.created_at.to_rfc3339(),
    }
}

/// `GET /v1/webhook-deliveries?payment_id=…`.
#[utoipa::path(get, path = "/v1/webhook-deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", security(("bearer" = [])), params(DeliveryQuery),
    responses((status = 200, description = "OK", body = DeliveryList), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    m: Merchant,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let store = state.store();
    super::extract::payment_id_filter(q.payment_id.as_deref())?;
    if let Some(p) = &q.payment_id
        && payments::find(store, &m.merchant_id, p).await?.is_none()
    {
        return Err(ApiError::not_found("payment"));
    }
    let limit = super::page::limit(q.limit.as_deref(), super::page::MAX_LIMIT)?;
    if let Some(after) = &q.starting_after
        && (!IdKind::Delivery.matches(after)
            || webhooks::find_delivery(store, &m.merchant_id, after)
                .await?
                .is_none())
    {
        return Err(super::page::unknown_cursor("deliveries"));
    }
    let rows = webhooks::list_deliveries(
        store,
        &m.merchant_id,
        q.payment_id.as_deref(),
        q.starting_after.as_deref(),
        limit + 1,
    )
    .await?;
    let (rows, has_more, next_cursor) = super::page::cut(rows, limit, |d| d.delivery_id.clone());
    Ok(Json(DeliveryList {
        data: rows.iter().map(delivery_view).collect(),
        has_more,
        next_cursor,
    }))
}

/// `POST /v1/webhook-deliveries/{id}/retry`: sends that event to that endpoint again.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/retry", operation_id = "retry_webhook_delivery", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 202, description = "Queued"), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody),
        (status = 409, description = "Conflicts with the resource's current state (error format)", body = super::error::ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    m: Merchant,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    ApiError::check_id(IdKind::Delivery, &id)?;
    let (event_id, endpoint_id) = state.service.redeliver(&m.merchant_id, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            serde_json::json!({"event_id": event_id, "endpoint_id": endpoint_id, "status": "queued"}),
        ),
    ))
}
