//! Prometheus metrics: the recorder, HTTP request metrics by route template (never ids), and
//! the `/metrics` endpoint, which refreshes database-derived gauges on each scrape.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use super::error::ApiError;
use crate::domain::PaymentState;
use crate::store::{jobs, payments};

/// The process-wide recorder (installed once, shared by every app in the process).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .expect("static bucket list is non-empty");
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (embedding application): render our own.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            // Counters without labels exist from the start at 0, so a rate() or an alert
            // on them works before the first event (an absent series is not a zero).
            for name in ["corridor_job_retries_total", "corridor_jobs_dead_total"] {
                metrics::counter!(name).increment(0);
            }
            handle
        })
        .clone()
}

/// Middleware: counts requests and records latency by method, route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("corridor_http_requests_total", &labels).increment(1);
    metrics::histogram!("corridor_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// A method as a label: the standard ones by name, any other as `OTHER`. A client chooses the
/// method, and an unbounded label is an unbounded number of series (memory and scrape size).
fn method_label(method: &axum::http::Method) -> String {
    use axum::http::Method;
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    if known.contains(method) {
        method.as_str().to_owned()
    } else {
        "OTHER".to_owned()
    }
}

/// How old the terminal states' payment counts may be on a scrape or the dashboard: counting
/// them walks every finished payment, so with a million of them a scrape every second would
/// spend its time there. The in-flight states — what an operator watches — are exact.
pub const TERMINAL_COUNTS_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = state.now();
    let store = state.store();
    let counts = payments::count_by_state_recent(store, TERMINAL_COUNTS_AGE).await?;
    for s in PaymentState::ALL {
        let n = counts
            .iter()
            .find(|(st, _)| *st == *s)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("corridor_payments", "state" => s.as_str()).set(n as f64);
    }
    let open = crate::store::ops::open_alerts(store).await?;
    for kind in [
        crate::store::ops::STUCK_PAYMENT,
        crate::store::ops::WEBHOOK_ENDPOINT_FAILING,
        crate::store::ops::DEAD_JOB,
    ] {
        let n = open.iter().filter(|a| a.kind == kind).count();
        metrics::gauge!("corridor_alerts_open", "kind" => kind).set(n as f64);
    }
    let q = jobs::stats(store, now).await?;
    metrics::gauge!("corridor_jobs_ready").set(q.ready as f64);
    metrics::gauge!("corridor_jobs_scheduled").set(q.scheduled as f64);
    metrics::gauge!("corridor_jobs_dead").set(q.dead as f64);
    metrics::gauge!("corridor_jobs_oldest_due_age_seconds")
        .set(q.oldest_due_age_ms as f64 / 1000.0);
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response())
}
