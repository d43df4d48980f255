//! `POST /v1/provider-webhooks/{provider}`: providers report settlement, signed with the
//! Standard Webhooks scheme. The signature is checked before anything is looked up; a
//! duplicate message id changes nothing; the leg is settled through the same decision and
//! compare-and-set as the poller, so whichever reports first wins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Code};
use super::extract::JsonBytes;
use crate::engine::JobError;
use crate::engine::steps::{self, ReportedLeg, WebhookOutcome};
use crate::providers::TransferStatus;
use crate::signing::{self, VerifyError};
use crate::store::payments::{self, Side};
use crate::store::provider_webhooks;

/// Body a provider sends.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProviderEvent {
    /// `onramp.completed`, `onramp.failed`, `offramp.completed` or `offramp.failed`.
    pub event_type: String,
    /// The provider's transfer reference.
    pub reference: String,
    /// The payment the transfer belongs to.
    pub payment_id: String,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /v1/provider-webhooks/{provider}`.
#[utoipa::path(post, path = "/v1/provider-webhooks/{provider}", tag = "providers", request_body = ProviderEvent,
    params(("provider" = String, Path, description = "Provider name as on the payment's legs")),
    responses((status = 200, description = "Processed (or a duplicate, changing nothing)"),
        (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let providers = &state.engine.providers;
    if provider != providers.onramp.name() && provider != providers.offramp.name() {
        return Err(ApiError::not_found("provider"));
    }
    let now_secs = state.clock.now().millis().div_euclid(1000);
    signing::verify(
        &state.provider_secret,
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
    {
        let mut conn = state.store.reader().await?;
        if provider_webhooks::seen(&mut conn, &provider, &webhook_id).await? {
            return Ok(Json(json!({"status": "duplicate"})));
        }
    }
    let event: ProviderEvent = body.parse()?;
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
    let found = {
        let mut conn = state.store.reader().await?;
        match payments::find_by_reference(&mut conn, side, &provider, &event.reference).await? {
            Some(p) if side == Side::Onramp => Some((p, ReportedLeg::Onramp)),
            Some(p) => Some((p, ReportedLeg::Offramp)),
            // A refund's reversal runs on the onramp and is reported as an onramp event.
            None if side == Side::Onramp => payments::find_by_reversal(&mut conn, &event.reference)
                .await?
                .map(|p| (p, ReportedLeg::Reversal)),
            None => None,
        }
    };
    let (payment, leg) = found
        .filter(|(p, _)| p.payment_id == event.payment_id)
        .ok_or_else(|| ApiError::not_found("transfer"))?;
    tracing::Span::current()
        .record("payment_id", payment.payment_id.as_str())
        .record("merchant_id", payment.merchant_id.as_str());
    let outcome =
        steps::settle_from_webhook(&state.engine, &payment, leg, status, &provider, &webhook_id)
            .await
            .map_err(|e| match e {
                JobError::Transient(m) | JobError::Permanent(m) => {
                    tracing::warn!(error = %m, "provider webhook not applied");
                    ApiError::new(
                        Code::Unavailable,
                        "could not apply the webhook now, please retry",
                    )
                }
            })?;
    let status = match outcome {
        WebhookOutcome::Applied => "applied",
        WebhookOutcome::AlreadyApplied => "already_applied",
        WebhookOutcome::Duplicate => "duplicate",
    };
    tracing::info!(provider = %provider, event_type = %event.event_type, outcome = status, "provider webhook");
    Ok(Json(json!({"status": status})))
}
