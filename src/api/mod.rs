//! The HTTP API (axum): routes, authentication, idempotency, the error format, OpenAPI.
//!
//! Handlers parse and authenticate, call one use case of [`crate::service`] (or a typed read
//! of the store), and map the result; they never hold SQL or write on their own. Every response, including the framework's own rejections, carries the
//! `{"error", "message"}` format and an `X-Request-Id`.

pub mod admin;
pub mod auth;
pub mod client;
pub mod corridors;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod page;
pub mod payments;
pub mod provider_webhooks;
pub mod quotes;
pub mod rate_limit;
pub mod request_id;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::service::Service;
use crate::store::Store;
use error::{ApiError, Code};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The use cases every handler calls (and through them the store and the clock).
    pub service: Arc<Service>,
    /// SHA-256 (hex) of the admin key.
    pub admin_hash: String,
    /// Prometheus renderer.
    pub prometheus: PrometheusHandle,
    /// Whether the in-process simulator is the provider (enables `/v1/sandbox`).
    pub simulated: bool,
    /// Longest time a request may run before it answers 503.
    pub request_timeout: Duration,
    /// Allow `http` and private addresses as webhook URLs (development only).
    pub webhook_allow_private: bool,
    /// Each provider's inbound webhook secret (none: its webhooks are refused).
    pub provider_secrets: ProviderSecrets,
    /// Per-key request budget (`CORRIDOR_RATE_LIMIT`), checked once a key has authenticated.
    pub rate_limiter: rate_limit::Limiter,
    /// Proxies whose `X-Forwarded-For` names the client (`CORRIDOR_TRUSTED_PROXIES`).
    pub trusted_proxies: client::TrustedProxies,
    /// Unknown API keys per client (`CORRIDOR_AUTH_FAILURE_LIMIT`): a guesser is stopped
    /// before its guesses reach the database.
    pub auth_failures: client::FailureLimiter,
}

/// The secrets providers sign their webhooks with, one per provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderSecrets {
    /// The onramp's (`CORRIDOR_ONRAMP_WEBHOOK_SECRET`).
    pub onramp: Option<crate::signing::Secret>,
    /// The offramp's (`CORRIDOR_OFFRAMP_WEBHOOK_SECRET`).
    pub offramp: Option<crate::signing::Secret>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Wraps the state.
    pub fn new(inner: Inner) -> AppState {
        AppState(Arc::new(inner))
    }

    /// Whether `hash` is the admin key's hash (constant-time).
    pub fn is_admin_hash(&self, hash: &str) -> bool {
        auth::hashes_equal(hash, &self.admin_hash)
    }

    /// The store, for typed reads.
    pub fn store(&self) -> &Store {
        &self.service.store
    }

    /// Now, from the app's clock.
    pub fn now(&self) -> crate::domain::Timestamp {
        self.service.clock.now()
    }

    /// The lock time in whole seconds.
    pub fn quote_ttl_secs(&self) -> i64 {
        self.service.settings.quote_ttl_ms / 1000
    }
}

/// The full router. Each route is registered once, with its handler's OpenAPI operation
/// (`routes!`), so the served document cannot list a route the router lacks or miss one.
pub fn router(state: AppState) -> Router {
    let (v1, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(corridors::list))
        .routes(routes!(corridors::rate))
        .routes(routes!(quotes::create))
        .routes(routes!(quotes::get))
        .routes(routes!(payments::create, payments::list))
        .routes(routes!(payments::get))
        .routes(routes!(payments::cancel))
        .routes(routes!(ledger::payment))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::retry))
        .routes(routes!(provider_webhooks::receive))
        .routes(routes!(admin::create))
        .routes(routes!(operations::rotate_key))
        .routes(routes!(operations::pins))
        .routes(routes!(operations::pin, operations::unpin))
        .routes(routes!(operations::retry_payment))
        .routes(routes!(operations::dead_jobs))
        .routes(routes!(operations::redrive))
        .routes(routes!(operations::alerts))
        .routes(routes!(admin::transfers))
        .routes(routes!(ledger::balances))
        .routes(routes!(ledger::fx_report))
        .routes(routes!(ledger::start_reconciliation))
        .routes(routes!(ledger::get_reconciliation))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .split_for_parts();
    let (ops, ops_doc) = ops_routes().split_for_parts();
    doc.merge(ops_doc);
    let api = Router::new()
        .merge(v1)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::finish(doc)));
    with_common_layers(api.merge(ops), state.clone()).merge(dashboard::router(state))
}

/// The router of a `--role worker` process: health and metrics only.
pub fn ops_router(state: AppState) -> Router {
    with_common_layers(ops_routes().split_for_parts().0, state)
}

fn ops_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
}

fn with_common_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(edge::refuse_control_characters))
        // A declared length over the limit is refused at once, before any of the body is read.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            extract::BODY_LIMIT,
        ))
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn(error_format))
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_id::middleware))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
}

/// An API request still running after the configured timeout answers 503.
async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            ApiError::new(Code::Unavailable, "the request timed out, please retry").into_response()
        }
    }
}

/// Rewrites any error response that is not already JSON (a framework rejection, a panic
/// guard) into the API's error format, so clients see one shape.
async fn error_format(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let code = match status.as_u16() {
        401 => Code::Unauthorized,
        403 => Code::Forbidden,
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        408 => Code::RequestTimeout,
        413 => Code::PayloadTooLarge,
        415 => Code::UnsupportedMediaType,
        429 => Code::RateLimited,
        503 => Code::Unavailable,
        s if s >= 500 => Code::Internal,
        _ => Code::InvalidRequest,
    };
    let message = match code {
        Code::Internal => "internal error".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request rejected")
            .to_lowercase(),
    };
    let mut out = ApiError::new(code, message).into_response();
    *out.status_mut() = status;
    let _ = Body::empty();
    out
}
