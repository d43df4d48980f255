//! `POST /v1/provider-webhooks/{provider}`: providers report settlement, signed with the
//! Standard Webhooks scheme. The signature is checked before anything is looked up; a
//! duplicate message id changes nothing; the leg is settled through the same decision and
//! compare-and-set as the poller, so whichever reports first wins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, Code};
use super::extract::JsonBytes;
use crate::domain::{Side, TransferStatus};
use crate::providers::http::ProviderWebhook;
use crate::service::settle::LegReport;
use crate::signing::{self, VerifyError};

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /v1/provider-webhooks/{provider}`.
#[utoipa::path(post, path = "/v1/provider-webhooks/{provider}", operation_id = "receive_provider_webhook", tag = "providers", request_body = ProviderWebhook,
    params(("provider" = String, Path, description = "Provider name as on the payment's legs"),
        ("webhook-id" = String, Header, description = "Standard Webhooks message id (deduplicated)"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds; refused more than 5 minutes off"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>` with the provider's secret")),
    responses((status = 200, description = "Processed (or a duplicate, changing nothing)"),
        (status = 401, description = "Missing or invalid credentials (error format)", body = super::error::ErrorBody), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let providers = &state.service.providers;
    // Each provider's own secret: one provider's key cannot sign the other's events.
    let secret = if provider == providers.onramp.name() {
        &state.provider_secrets.onramp
    } else if provider == providers.offramp.name() {
        &state.provider_secrets.offramp
    } else {
        return Err(ApiError::not_found("provider"));
    };
    let Some(secret) = secret else {
        return Err(ApiError::new(
            Code::Unauthorized,
            format!(
                "no webhook secret is configured for provider `{provider}`; its webhooks are refused"
            ),
        ));
    };
    let now_secs = state.now().millis().div_euclid(1000);
    signing::verify(
        secret,
        header(&headers, signing::ID_HEADER),
        header(&headers, signing::TIMESTAMP_HEADER),
        header(&headers, signing::SIGNATURE_HEADER),
        &body.0,
        now_secs,
    )
    .map_err(|e| {
        let why = match e {
            VerifyError::MissingHeaders => "missing or malformed webhook signature headers",
            VerifyError::Stale => "webhook timestamp is more than 5 minutes off",
            VerifyError::BadSignature => "invalid webhook signature",
        };
        ApiError::new(Code::Unauthorized, why)
    })?;
    let webhook_id = header(&headers, signing::ID_HEADER)
        .unwrap_or_default()
        .to_owned();
    let event: ProviderWebhook = body.parse()?;
    let (side, status) = match event.event_type.as_str() {
        "onramp.completed" => (Side::Onramp, TransferStatus::Completed),
        "onramp.failed" => (
            Side::Onramp,
            TransferStatus::Failed(format!("{provider} reported the onramp failed")),
        ),
        "offramp.completed" => (Side::Offramp, TransferStatus::Completed),
        "offramp.failed" => (
            Side::Offramp,
            TransferStatus::Failed(format!("{provider} reported the offramp failed")),
        ),
        "offramp.returned" => (
            Side::Offramp,
            TransferStatus::Returned(format!("{provider} reported the payout returned")),
        ),
        other => {
            return Err(ApiError::invalid(
                "event_type",
                format!("unknown event type `{other}`"),
            ));
        }
    };
    let side_provider = match side {
        Side::Onramp => providers.onramp.name(),
        Side::Offramp => providers.offramp.name(),
    };
    if side_provider != provider {
        return Err(ApiError::not_found("transfer"));
    }
    let outcome = state
        .service
        .settle_from_webhook(LegReport {
            provider: provider.clone(),
            webhook_id,
            side,
            reference: event.reference,
            payment_id: event.payment_id,
            status,
        })
        .await
        .map_err(|e| match e {
            crate::service::Error::NotFound(what) => ApiError::not_found(what),
            other => {
                tracing::warn!(error = %other, "provider webhook not applied");
                ApiError::new(
                    Code::Unavailable,
                    "could not apply the webhook now, please retry",
                )
            }
        })?;
    let status: &'static str = outcome.into();
    tracing::info!(provider = %provider, event_type = %event.event_type, outcome = status, "provider webhook");
    Ok(Json(json!({"status": status})))
}
