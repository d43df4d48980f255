//! The operator dashboard at `/dashboard`: server-rendered HTML over the same store queries
//! and operator actions ([`crate::ops`]) as the admin API, for people rather than scripts.
//!
//! Everything it needs is in the binary (one stylesheet and one small script, embedded with
//! `include_str!`); pages work without the script. An operator signs in with the admin key
//! ([`session`]); actions are POST forms with a CSRF token and are audited as `dashboard`.
//! The dashboard answers HTML, also for its errors, so it is merged beside the JSON API's
//! error-format layer rather than under it (see [`router`]).

pub mod actions;
pub mod html;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AppState;
use super::client::FailureLimiter;
use crate::service::Error as ServiceError;
use crate::store::StoreError;
use html::{Nav, Notice, Page};

/// Who the audit log names for actions taken in the dashboard.
pub const ACTOR: &str = "dashboard";

/// Form bodies are a few short fields; anything bigger is refused before it is parsed.
const BODY_LIMIT: usize = 16 * 1024;

/// State of the dashboard's handlers: the application's, plus the sign-in failure counts
/// (per router, so that every app a test process starts has its own).
#[derive(Clone)]
pub struct Dash {
    /// The application state shared with the JSON API.
    pub app: AppState,
    /// Failed sign-ins per client.
    pub limiter: Arc<FailureLimiter>,
}

impl axum::extract::FromRef<Dash> for AppState {
    fn from_ref(dash: &Dash) -> AppState {
        dash.app.clone()
    }
}

/// The dashboard's routes, with their own request id and metrics layers. Merge it into the
/// API router after that router's layers, so its HTML errors are not rewritten to JSON.
pub fn router(state: AppState) -> Router {
    let dash = Dash {
        app: state,
        limiter: Arc::new(FailureLimiter::new(
            session::MAX_FAILURES,
            session::FAILURE_WINDOW,
        )),
    };
    Router::new()
        .route("/dashboard", get(pages::overview))
        .route(
            "/dashboard/login",
            post(session::login).get(|| async { Redirect::to("/dashboard") }),
        )
        .route("/dashboard/logout", post(session::logout))
        .route("/dashboard/payments", get(pages::payments))
        .route("/dashboard/payments/{id}", get(pages::payment))
        .route("/dashboard/payments/{id}/retry", post(actions::retry))
        .route("/dashboard/jobs", get(pages::dead_jobs))
        .route("/dashboard/jobs/{id}/redrive", post(actions::redrive))
        .route("/dashboard/rates", get(pages::rates).post(actions::pin))
        .route("/dashboard/rates/{from}/{to}/unpin", post(actions::unpin))
        .route("/dashboard/assets/style.css", get(style))
        .route("/dashboard/assets/dashboard.js", get(script))
        .route("/dashboard/assets/icon.svg", get(icon))
        .layer(middleware::from_fn(super::edge::refuse_control_characters))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(super::metrics::track))
        .layer(middleware::from_fn(super::request_id::middleware))
        .with_state(dash)
}

const STYLE: &str = include_str!("dashboard/style.css");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const ICON: &str = include_str!("dashboard/icon.svg");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    html::secure_headers(resp.headers_mut(), content_type);
    // Served from the binary: a new release is a new process, an hour of caching is harmless.
    resp.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    resp
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

/// Why a dashboard request did not get its page; each maps to one status and page below.
#[derive(Debug, thiserror::Error)]
pub enum DashError {
    /// No valid session: go to the sign-in form.
    #[error("sign in first")]
    SignIn,
    /// The form or query is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The CSRF token is missing or wrong, or the browser says the request is cross-site.
    #[error(
        "this form has expired or did not come from the dashboard; reload the page and try again"
    )]
    Csrf,
    /// No such payment, job or pin.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The action does not apply now.
    #[error("{0}")]
    InvalidState(String),
    /// Too many failed sign-ins; seconds to wait.
    #[error("too many failed sign-ins")]
    TooManyFailures(u64),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ServiceError> for DashError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => DashError::NotFound(what),
            ServiceError::InvalidState(m) => DashError::InvalidState(m),
            ServiceError::Store(s) => DashError::Store(s),
            other => DashError::InvalidState(other.to_string()),
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            DashError::SignIn => return Redirect::to("/dashboard").into_response(),
            DashError::TooManyFailures(secs) => return session::too_many_failures(*secs),
            DashError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Not understood"),
            DashError::Csrf => (StatusCode::FORBIDDEN, "Refused"),
            DashError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            DashError::InvalidState(_) => (StatusCode::CONFLICT, "Not possible now"),
            DashError::Store(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "Database unavailable")
            }
            DashError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        };
        let message = match &self {
            DashError::Store(e) => {
                tracing::error!(error = %e, "dashboard request failed");
                "The database could not answer. Try again in a moment.".to_owned()
            }
            other => {
                let m = other.to_string();
                let mut c = m.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or(m)
            }
        };
        Page {
            title,
            nav: Nav::None,
            csrf: None,
            notice: Some(Notice::Problem(message)),
            body: r#"<p><a href="/dashboard">Back to the dashboard</a></p>"#.to_owned(),
        }
        .respond(status)
    }
}
