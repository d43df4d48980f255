//! `X-Request-Id`: echo the caller's id when it is 1–128 visible ASCII characters, otherwise
//! generate one; every log line of the request carries it.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Header name.
pub const HEADER: &str = "x-request-id";

/// The request's id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(v: &HeaderValue) -> Option<String> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 128 || !b.iter().all(|c| (0x21..=0x7e).contains(c)) {
        return None;
    }
    v.to_str().ok().map(str::to_owned)
}

/// Middleware: assigns the id, opens the request's tracing span, sets the response header.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(acceptable)
        .unwrap_or_else(|| format!("req_{}", crate::idgen::v4().simple()));
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route,
        merchant_id = tracing::field::Empty,
        payment_id = tracing::field::Empty,
    );
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = resp.status().as_u16(), "request finished"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}
