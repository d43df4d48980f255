//! The one mapping from every failure to an HTTP status and error code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::service::Error as ServiceError;
use crate::store::StoreError;

/// An error as the API reports it: `{"error": CODE, "message": …, "field"?: …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Machine-readable code.
    pub code: Code,
    /// Human sentence.
    pub message: String,
    /// Offending input field, when one is to blame.
    pub field: Option<String>,
}

/// Every error code of the contract, each with exactly one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
pub enum Code {
    /// 400: malformed input or out-of-range parameter.
    InvalidRequest,
    /// 400: no corridor between two valid currencies.
    UnsupportedCorridor,
    /// 400: amount outside the corridor's limits or payout ≤ 0.
    AmountOutOfRange,
    /// 400: the quote's lock ran out.
    QuoteExpired,
    /// 400: amount or currency differ from the quote's.
    QuoteMismatch,
    /// 401: missing or unknown API key.
    Unauthorized,
    /// 403: the key is valid but not for this route.
    Forbidden,
    /// 404: unknown or foreign resource.
    NotFound,
    /// 404: unknown or foreign quote on payment creation.
    QuoteNotFound,
    /// 405: the route exists with other methods.
    MethodNotAllowed,
    /// 408: the client stopped sending its request body.
    RequestTimeout,
    /// 409: the quote already paid for a payment.
    QuoteAlreadyUsed,
    /// 409: the action does not apply in the resource's current state.
    InvalidState,
    /// 409: a request with this idempotency key is still running.
    IdempotencyKeyInUse,
    /// 413: body over 64 KiB.
    PayloadTooLarge,
    /// 415: body without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// 422: idempotency key reused with another body.
    IdempotencyKeyReused,
    /// 429: too many requests for this key.
    RateLimited,
    /// 500: a bug; the body never says more.
    Internal,
    /// 503: database down or request timed out.
    Unavailable,
}

impl Code {
    /// Status and wire name, in one table.
    pub fn parts(self) -> (StatusCode, &'static str) {
        use Code::*;
        match self {
            InvalidRequest => (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
            UnsupportedCorridor => (StatusCode::BAD_REQUEST, "UNSUPPORTED_CORRIDOR"),
            AmountOutOfRange => (StatusCode::BAD_REQUEST, "AMOUNT_OUT_OF_RANGE"),
            QuoteExpired => (StatusCode::BAD_REQUEST, "QUOTE_EXPIRED"),
            QuoteMismatch => (StatusCode::BAD_REQUEST, "QUOTE_MISMATCH"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            QuoteNotFound => (StatusCode::NOT_FOUND, "QUOTE_NOT_FOUND"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            QuoteAlreadyUsed => (StatusCode::CONFLICT, "QUOTE_ALREADY_USED"),
            InvalidState => (StatusCode::CONFLICT, "INVALID_STATE"),
            IdempotencyKeyInUse => (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_IN_USE"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
            IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.parts().1)
    }
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `QUOTE_EXPIRED`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Longest error message, in characters. Messages quote parts of the input (a field's
/// value, a parser's complaint), and an error must not echo a 60 KiB body back.
pub const MAX_MESSAGE_CHARS: usize = 300;

fn bounded(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: bounded(message.into()),
            field: None,
        }
    }

    /// `400 INVALID_REQUEST` blaming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::InvalidRequest,
            message: bounded(message.into()),
            field: Some(field.to_owned()),
        }
    }

    /// Attaches the field at fault.
    pub fn with_field(mut self, field: &str) -> ApiError {
        self.field = Some(field.to_owned());
        self
    }

    /// `404 NOT_FOUND` for a resource kind.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(Code::NotFound, format!("{what} not found"))
    }

    /// `id` from a path, refused as not found (without a lookup) unless it has `kind`'s shape.
    pub fn check_id(kind: crate::domain::ids::IdKind, id: &str) -> Result<(), ApiError> {
        use crate::domain::ids::IdKind::*;
        if kind.matches(id) {
            return Ok(());
        }
        Err(ApiError::not_found(match kind {
            Payment => "payment",
            Quote => "quote",
            Merchant => "merchant",
            Endpoint => "webhook endpoint",
            Delivery => "webhook delivery",
            Reconciliation => "reconciliation",
            Job => "job",
        }))
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.code.parts().0
    }

    /// The serialised body, as sent (and as stored for idempotent replay).
    pub fn body(&self) -> String {
        let body = ErrorBody {
            error: self.code.parts().1.to_owned(),
            message: self.message.clone(),
            field: self.field.clone(),
        };
        serde_json::to_string(&body)
            .unwrap_or_else(|_| r#"{"error":"INTERNAL","message":"internal error"}"#.to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.code.parts();
        let body = ErrorBody {
            error: code.to_owned(),
            message: self.message,
            field: self.field,
        };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(inner) | StoreError::Storage(inner) => {
                tracing::warn!(error = %inner, "database unavailable");
                ApiError::new(
                    Code::Unavailable,
                    "the service is temporarily unavailable, please retry",
                )
            }
            StoreError::Batch {
                unavailable: true,
                reason,
            } => {
                tracing::warn!(error = %reason, "database unavailable");
                ApiError::new(
                    Code::Unavailable,
                    "the service is temporarily unavailable, please retry",
                )
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::new(Code::Internal, "internal error")
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let message = e.to_string();
        match e {
            ServiceError::Invalid { field, message } => ApiError::invalid(&field, message),
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::QuoteNotFound => {
                ApiError::new(Code::QuoteNotFound, message).with_field("quote_id")
            }
            ServiceError::QuoteExpired => {
                ApiError::new(Code::QuoteExpired, message).with_field("quote_id")
            }
            ServiceError::QuoteUsed => {
                ApiError::new(Code::QuoteAlreadyUsed, message).with_field("quote_id")
            }
            ServiceError::QuoteMismatch(field) => {
                ApiError::new(Code::QuoteMismatch, message).with_field(field)
            }
            ServiceError::UnsupportedCorridor(m) => ApiError::new(Code::UnsupportedCorridor, m),
            ServiceError::AmountOutOfRange(m) => {
                ApiError::new(Code::AmountOutOfRange, m).with_field("amount")
            }
            ServiceError::InvalidState(m) => ApiError::new(Code::InvalidState, m),
            ServiceError::IdempotencyKeyTaken => ApiError::new(
                Code::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still being processed",
            ),
            ServiceError::Unavailable(m) => {
                tracing::warn!(error = %m, "use case could not complete");
                ApiError::new(
                    Code::Unavailable,
                    "the service is temporarily unavailable, please retry",
                )
            }
            ServiceError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_a_client_or_server_status() {
        use Code::*;
        let all = [
            InvalidRequest,
            UnsupportedCorridor,
            AmountOutOfRange,
            QuoteExpired,
            QuoteMismatch,
            Unauthorized,
            Forbidden,
            NotFound,
            QuoteNotFound,
            MethodNotAllowed,
            RequestTimeout,
            QuoteAlreadyUsed,
            InvalidState,
            IdempotencyKeyInUse,
            PayloadTooLarge,
            UnsupportedMediaType,
            IdempotencyKeyReused,
            RateLimited,
            Internal,
            Unavailable,
        ];
        let mut names: Vec<_> = all.iter().map(|c| c.parts().1).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for c in all {
            let s = c.parts().0.as_u16();
            assert!((400..600).contains(&s));
        }
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e: ApiError = StoreError::Corrupt("secret table detail".into()).into();
        assert_eq!(e.code, Code::Internal);
        assert!(!e.body().contains("secret"));
    }
}
