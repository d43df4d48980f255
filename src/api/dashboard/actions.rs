//! The dashboard's state-changing forms: retry a payment's step, redrive a dead job, pin and
//! unpin a rate. Each is a POST with the session's CSRF token, calls the same operator
//! action as the admin API ([`crate::service::operators`], audited as [`ACTOR`]) and redirects (303) to a
//! page that shows the outcome, so reloading it does not repeat the action.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::html::{Notice, path_segment};
use super::session::{CsrfForm, Session};
use super::{ACTOR, Dash, DashError, pages};
use crate::domain::Currency;
use crate::domain::rates::RATE_DECIMALS;

fn csrf_of(form: Result<Form<CsrfForm>, FormRejection>) -> String {
    form.map(|Form(f)| f.csrf).unwrap_or_default()
}

/// `POST /dashboard/payments/{id}/retry`: re-runs the current step of a non-final payment.
pub async fn retry(
    State(dash): State<Dash>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, DashError> {
    session.verify(&headers, &csrf_of(form))?;
    dash.app.service.retry_payment(&id, ACTOR).await?;
    Ok(Redirect::to(&format!(
        "/dashboard/payments/{}?done=retried",
        path_segment(&id)
    ))
    .into_response())
}

/// `POST /dashboard/jobs/{id}/redrive`: puts a dead job back in the queue.
pub async fn redrive(
    State(dash): State<Dash>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, DashError> {
    session.verify(&headers, &csrf_of(form))?;
    dash.app.service.redrive_job(&id, ACTOR).await?;
    Ok(Redirect::to(&format!(
        "/dashboard/jobs?done=redriven&on={}",
        path_segment(&id)
    ))
    .into_response())
}

/// The pin form.
#[derive(Debug, Deserialize)]
pub struct PinForm {
    /// The session's CSRF token.
    #[serde(default)]
    csrf: String,
    /// `FROM-TO`, e.g. `USD-EUR`.
    #[serde(default)]
    pair: String,
    /// The customer rate, spread included.
    #[serde(default)]
    rate: String,
}

/// The corridor and rate of a pin form, or why it is refused in the operator's words.
fn check_pin(dash: &Dash, form: &PinForm) -> Result<(Currency, Currency, Decimal), String> {
    let (from, to) = form
        .pair
        .split_once('-')
        .and_then(|(f, t)| Some((f.parse::<Currency>().ok()?, t.parse::<Currency>().ok()?)))
        .filter(|(f, t)| dash.app.service.corridors.find(*f, *t).is_some())
        .ok_or_else(|| "Choose one of the corridors offered.".to_owned())?;
    let rate: Decimal = form
        .rate
        .trim()
        .parse()
        .map_err(|_| "The rate must be a decimal number such as 0.91.".to_owned())?;
    if rate <= Decimal::ZERO || rate.normalize().scale() > RATE_DECIMALS {
        return Err("The rate must be positive with at most 8 decimals.".to_owned());
    }
    Ok((from, to, rate))
}

/// `POST /dashboard/rates`: pins the customer rate of one corridor for new quotes.
pub async fn pin(
    State(dash): State<Dash>,
    session: Session,
    headers: HeaderMap,
    form: Result<Form<PinForm>, FormRejection>,
) -> Result<Response, DashError> {
    let form = form.map_err(|e| DashError::BadRequest(e.body_text()))?.0;
    session.verify(&headers, &form.csrf)?;
    let (from, to, rate) = match check_pin(&dash, &form) {
        Ok(v) => v,
        Err(problem) => {
            return pages::rates_page(
                &dash,
                &session,
                Some(Notice::Problem(problem)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    dash.app.service.pin_rate(from, to, rate, ACTOR).await?;
    Ok(Redirect::to(&format!("/dashboard/rates?done=pinned&on={from}-{to}")).into_response())
}

/// `POST /dashboard/rates/{from}/{to}/unpin`: removes a pin.
pub async fn unpin(
    State(dash): State<Dash>,
    session: Session,
    headers: HeaderMap,
    Path((from, to)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, DashError> {
    session.verify(&headers, &csrf_of(form))?;
    let (Ok(from), Ok(to)) = (from.parse::<Currency>(), to.parse::<Currency>()) else {
        return Err(DashError::NotFound("rate pin"));
    };
    dash.app.service.unpin_rate(from, to, ACTOR).await?;
    Ok(Redirect::to(&format!("/dashboard/rates?done=unpinned&on={from}-{to}")).into_response())
}
