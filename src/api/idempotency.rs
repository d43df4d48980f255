//! `Idempotency-Key` handling for `POST /v1/payments`, after the IETF draft and Stripe: the
//! first response (2xx and 4xx except 409-in-use and 429) is stored and replayed byte for
//! byte; a different body under the same key is 422; a concurrent duplicate is 409.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::{ApiError, Code};

/// Request header.
pub const HEADER: &str = "idempotency-key";
/// Response header marking a replay.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long an in-flight claim blocks duplicates before a crashed holder is presumed dead.
pub const CLAIM_MS: i64 = 60_000;

/// A validated key: 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads the optional header.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
        let Some(v) = headers.get(HEADER) else {
            return Ok(None);
        };
        let b = v.as_bytes();
        if b.is_empty() || b.len() > 255 || !b.iter().all(|c| (0x20..=0x7e).contains(c)) {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(Some(IdempotencyKey(
            String::from_utf8_lossy(b).into_owned(),
        )))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hash of the request body as a JSON value, so key order and whitespace do not matter.
pub fn body_hash(body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    hex::encode(Sha256::digest(&canonical))
}

/// Whether an error's response is stored for replay (a 409 other than "in use" is stored).
pub fn error_is_stored(e: &ApiError) -> bool {
    let s = e.status().as_u16();
    (400..500).contains(&s) && e.code != Code::IdempotencyKeyInUse && e.code != Code::RateLimited
}

/// A JSON response from a stored status and body.
pub fn raw_response(status: u16, body: String, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        h.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        assert_eq!(
            body_hash(br#"{"a":1,"b":[1,2]}"#),
            body_hash(b"{ \"b\" : [1, 2],\n \"a\": 1 }")
        );
        assert_ne!(body_hash(br#"{"a":1}"#), body_hash(br#"{"a":2}"#));
    }

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert!(IdempotencyKey::from_headers(&h).unwrap().is_some());
        h.insert(HEADER, HeaderValue::from_str(&"a".repeat(256)).unwrap());
        assert!(IdempotencyKey::from_headers(&h).is_err());
        h.insert(HEADER, HeaderValue::from_bytes(b"a\tb").unwrap());
        assert!(IdempotencyKey::from_headers(&h).is_err());
    }
}
