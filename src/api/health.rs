//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "Always `{\"status\":\"ok\"}` while the process runs")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and accepts writes.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "Database reachable and writable"), (status = 503, description = "Database unreachable, or its writes fail (disk full, I/O error)")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.store().writes_failing_since().is_some() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"error": "UNAVAILABLE", "message": "database writes fail (disk full or I/O error)"}),
            ),
        );
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.store().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "UNAVAILABLE", "message": "database unreachable"})),
        ),
    }
}
