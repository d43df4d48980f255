//! `Idempotency-Key` handling, after the IETF draft and Stripe: the first answer (2xx and
//! 4xx except 409-in-use and 429) is stored and replayed byte for byte with
//! `Idempotent-Replayed: true`; a different body under the same key is 422; a 5xx is not
//! stored, so a retry runs again.
//!
//! Any POST opts in by wrapping its use case in [`idempotent`]: the use case receives the
//! key's [`IdempotencySlot`] and stores its answer in the same unit of work as what it did,
//! so the claim and the effect commit together — two concurrent requests with one key race
//! on the key's primary key, exactly one unit commits, and the other replays its answer.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, Code};
pub use crate::service::payments::IdempotencySlot;
use crate::store::idempotency::{self, Stored};

/// Request header.
pub const HEADER: &str = "idempotency-key";
/// Response header marking a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// A validated key: 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads the optional header.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
        let mut all = headers.get_all(HEADER).iter();
        let Some(v) = all.next() else {
            return Ok(None);
        };
        // Two keys on one request: which one is meant cannot be known, so neither is used.
        if all.next().is_some() {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "send one Idempotency-Key header, not several",
            ));
        }
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

/// Runs `op` at most once per `(merchant, Idempotency-Key)`. Without the header `op` just
/// runs. With it: a stored answer is replayed (or refused with 422 for another body);
/// otherwise `op` runs with the slot to store its answer in, and a refusal worth storing is
/// stored; when another request with the key committed first, its answer is replayed.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    merchant_id: &str,
    headers: &HeaderMap,
    body: &[u8],
    op: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<IdempotencySlot>) -> Fut,
    Fut: Future<Output = Result<(u16, String), ApiError>>,
{
    let Some(key) = IdempotencyKey::from_headers(headers)? else {
        let (status, body) = op(None).await?;
        return Ok(raw_response(status, body, false));
    };
    let slot = IdempotencySlot {
        key: key.as_str().to_owned(),
        request_hash: body_hash(body),
    };
    if let Some(answer) = replay(state, merchant_id, &slot).await? {
        return answer;
    }
    match op(Some(slot.clone())).await {
        Ok((status, body)) => Ok(raw_response(status, body, false)),
        Err(e) if e.code == Code::IdempotencyKeyInUse => taken(state, merchant_id, &slot).await,
        Err(e) if error_is_stored(&e) => {
            match state
                .service
                .remember_answer(merchant_id, slot.clone(), e.status().as_u16(), e.body())
                .await
            {
                Ok(()) => Err(e),
                Err(crate::service::Error::IdempotencyKeyTaken) => {
                    taken(state, merchant_id, &slot).await
                }
                Err(other) => Err(other.into()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Another request stored an answer under the key first: send that one.
async fn taken(
    state: &AppState,
    merchant_id: &str,
    slot: &IdempotencySlot,
) -> Result<Response, ApiError> {
    match replay(state, merchant_id, slot).await? {
        Some(answer) => answer,
        // Purged in between: as good as still running.
        None => Err(in_use()),
    }
}

fn in_use() -> ApiError {
    ApiError::new(
        Code::IdempotencyKeyInUse,
        "a request with this Idempotency-Key is still being processed",
    )
}

/// The answer stored under the slot's key, if any.
async fn replay(
    state: &AppState,
    merchant_id: &str,
    slot: &IdempotencySlot,
) -> Result<Option<Result<Response, ApiError>>, ApiError> {
    let mismatch = || {
        ApiError::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request body",
        )
    };
    Ok(
        match idempotency::lookup(state.store(), merchant_id, &slot.key).await? {
            None => None,
            Some(
                Stored::Response { request_hash, .. } | Stored::Unanswered { request_hash, .. },
            ) if request_hash != slot.request_hash => Some(Err(mismatch())),
            Some(Stored::Response { status, body, .. }) => {
                Some(Ok(raw_response(status, body, true)))
            }
            // Its holder may still be at work; once the lock ran out, this request runs and
            // its answer takes the row over.
            Some(Stored::Unanswered { locked_until, .. }) if locked_until > state.now() => {
                Some(Err(in_use()))
            }
            Some(Stored::Unanswered { .. }) => None,
        },
    )
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
