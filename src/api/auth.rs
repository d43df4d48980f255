//! API keys: generation, hashing, and the extractors that authenticate a request as a
//! merchant or as the admin. Keys are high-entropy, so a fast SHA-256 with an indexed lookup
//! is safe (a slow password hash would cap throughput); the admin comparison is constant-time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use std::time::Instant;

use super::AppState;
use super::client::ClientKey;
use super::error::{ApiError, Code};
use super::rate_limit;
use crate::store::merchants;

pub use crate::keys::{generate_key, hash_key, hashes_equal, key_prefix};

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(|| {
            ApiError::new(
                Code::Unauthorized,
                "missing or malformed `Authorization: Bearer <key>` header",
            )
        })
}

fn unauthorized() -> ApiError {
    ApiError::new(Code::Unauthorized, "invalid API key")
}

/// Who a valid bearer key belongs to.
enum Caller {
    Admin,
    Merchant(String),
}

/// Authenticates the bearer key (`401` when missing or unknown), then spends one request of
/// that key's rate-limit budget (`429` with `Retry-After` when spent). The limiter is keyed by
/// the hash of an authenticated key only, so unknown keys cannot grow its state.
///
/// Unknown keys are counted per client address: past `CORRIDOR_AUTH_FAILURE_LIMIT` the client
/// is answered 429 before its key is even looked up, so guessing keys costs a guesser the
/// window and costs the database nothing.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, Response> {
    let hash = hash_key(bearer(parts).map_err(IntoResponse::into_response)?);
    let client = ClientKey::from_parts(parts, &state.trusted_proxies);
    if let Some(wait) = state.auth_failures.blocked_for(client, Instant::now()) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(%client, retry_after = secs, "too many unknown API keys");
        return Err(too_many_failures(secs));
    }
    let caller = match identify(state, &hash).await {
        Ok(caller) => caller,
        Err(e) => {
            if e.code == Code::Unauthorized {
                state.auth_failures.record_failure(client, Instant::now());
            }
            return Err(e.into_response());
        }
    };
    if let Err(secs) = state.rate_limiter.check(&hash) {
        tracing::debug!(retry_after = secs, "rate limited");
        return Err(rate_limit::too_many_requests(secs));
    }
    Ok(caller)
}

/// `429 RATE_LIMITED` for a client that sent too many unknown keys.
fn too_many_failures(secs: u64) -> Response {
    rate_limit::refused(
        format!("too many requests with unknown API keys from this address, retry in {secs} s"),
        secs,
    )
}

async fn identify(state: &AppState, hash: &str) -> Result<Caller, ApiError> {
    if state.is_admin_hash(hash) {
        return Ok(Caller::Admin);
    }
    let merchant_id = merchants::by_key_hash(state.store(), hash)
        .await?
        .ok_or_else(unauthorized)?;
    tracing::Span::current().record("merchant_id", merchant_id.as_str());
    Ok(Caller::Merchant(merchant_id))
}

/// An authenticated merchant (the admin key is refused: the admin is not a merchant).
#[derive(Debug, Clone)]
pub struct Merchant {
    /// The merchant the key belongs to.
    pub merchant_id: String,
}

impl FromRequestParts<AppState> for Merchant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await? {
            Caller::Merchant(merchant_id) => Ok(Merchant { merchant_id }),
            Caller::Admin => Err(ApiError::new(
                Code::Forbidden,
                "the admin key cannot call merchant routes",
            )
            .into_response()),
        }
    }
}

/// An authenticated admin.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::Merchant(_) => Err(ApiError::new(
                Code::Forbidden,
                "this route needs the admin key",
            )
            .into_response()),
        }
    }
}
