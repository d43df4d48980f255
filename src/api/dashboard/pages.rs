//! The dashboard's pages: overview, payments, one payment's timeline, dead jobs, rate pins.
//!
//! Every read is bounded and indexed — counts per state, recent creations by the
//! `created_at` index, payments a page of [`PAGE_SIZE`] at a time by keyset — so the pages
//! answer as fast with millions of payments as with ten.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{
    Nav, Notice, Page, badge, csrf_field, esc, maybe_time, money, path_segment, time,
};
use super::session::{Session, sign_in_page};
use super::{Dash, DashError};
use crate::domain::{PaymentState, Timestamp};
use crate::store::payments::{self, AdminListQuery, PaymentRecord};
use crate::store::{jobs, ops as ops_store, webhooks};

/// Payments per page of the list.
pub const PAGE_SIZE: i64 = 50;

/// Dead jobs listed at most.
const DEAD_JOBS_SHOWN: i64 = 200;

/// Open alerts listed on the overview at most.
const ALERTS_SHOWN: i64 = 50;

/// Webhook deliveries listed on a timeline at most.
const DELIVERIES_SHOWN: i64 = 200;

/// Query parameters that carry the outcome of an action after its redirect. Only fixed
/// messages are shown, naming an id only when it looks like one.
#[derive(Debug, Default, Deserialize)]
pub struct Outcome {
    /// Which action went through.
    done: Option<String>,
    /// The job or corridor it concerned.
    on: Option<String>,
}

impl Outcome {
    fn notice(&self) -> Option<Notice> {
        let on = self.on.as_deref().filter(|s| {
            (1..=100).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
        let message = match (self.done.as_deref()?, on) {
            ("retried", _) => "Current step queued: a worker runs it now.".to_owned(),
            ("redriven", Some(job)) => format!("Job {job} is back in the queue."),
            ("redriven", None) => "The job is back in the queue.".to_owned(),
            ("pinned", Some(pair)) => {
                format!(
                    "Rate pinned: new quotes for {pair} use it; quotes already given keep theirs."
                )
            }
            ("unpinned", Some(pair)) => {
                format!("Pin removed: new quotes for {pair} use the market rate again.")
            }
            _ => return None,
        };
        Some(Notice::Done(message))
    }
}

fn query<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, DashError> {
    q.map(|Query(v)| v)
        .map_err(|e| DashError::BadRequest(e.body_text()))
}

/// `GET /dashboard`: the sign-in form without a session, else the overview.
pub async fn overview(State(dash): State<Dash>, headers: HeaderMap) -> Result<Response, DashError> {
    let Some(session) = Session::load(&dash, &headers).await? else {
        return Ok(sign_in_page(None, StatusCode::OK));
    };
    let now = dash.app.now();
    let store = dash.app.store();
    let counts =
        payments::count_by_state_recent(store, crate::api::metrics::TERMINAL_COUNTS_AGE).await?;
    let mut recent = Vec::new();
    for (label, ms) in [
        ("last 5 minutes", 5 * 60_000),
        ("last hour", 60 * 60_000),
        ("last 24 hours", 24 * 60 * 60_000),
    ] {
        let n = payments::count_created_since(store, now.plus_millis(-ms)).await?;
        recent.push((label, n));
    }
    let queue = jobs::stats(store, now).await?;
    let (alerts, open_alerts) = ops_store::open_alerts_page(store, ALERTS_SHOWN).await?;
    let audit = ops_store::recent_audit(store, 10).await?;

    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let mut b = String::new();
    b.push_str(r#"<div data-autorefresh="15"></div><section class="cards">"#);
    let _ = write!(
        b,
        r#"<a class="card stat" href="/dashboard/payments"><b>{total}</b><span>payments in all</span></a>"#
    );
    for (label, n) in &recent {
        let _ = write!(
            b,
            r#"<div class="card stat"><b>{n}</b><span>created in the {label}</span></div>"#
        );
    }
    let dead_class = if queue.dead > 0 { " warn" } else { "" };
    let _ = write!(
        b,
        r#"<a class="card stat{dead_class}" href="/dashboard/jobs"><b>{}</b><span>dead jobs</span></a>"#,
        queue.dead
    );
    let waiting = if queue.oldest_due_age_ms > 0 {
        format!(", oldest waiting {}", duration(queue.oldest_due_age_ms))
    } else {
        String::new()
    };
    let _ = write!(
        b,
        r#"<div class="card stat"><b>{}</b><span>jobs due now{waiting}</span></div></section>"#,
        queue.ready
    );

    b.push_str(
        r#"<div class="columns"><section><h2>Payments by state</h2><table><thead><tr><th>State</th><th class="num">Payments</th></tr></thead><tbody>"#,
    );
    for s in PaymentState::ALL {
        let n = counts
            .iter()
            .find(|(st, _)| *st == *s)
            .map_or(0, |(_, n)| *n);
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td class="num"><a href="/dashboard/payments?status={}">{n}</a></td></tr>"#,
            badge(s.as_str()),
            s.as_str()
        );
    }
    b.push_str("</tbody></table></section>");

    let _ = write!(b, "<section><h2>Open alerts ({open_alerts})</h2>");
    if alerts.is_empty() {
        b.push_str(r#"<p class="empty">No open alerts.</p>"#);
    } else {
        b.push_str(
            "<table><thead><tr><th>Kind</th><th>About</th><th>What</th><th>Since</th></tr></thead><tbody>",
        );
        for a in &alerts {
            let about = match (&a.payment_id, &a.job_id, &a.endpoint_id) {
                (Some(p), _, _) => payment_link(p),
                (None, Some(j), _) => {
                    format!(r#"<a href="/dashboard/jobs" class="mono">{}</a>"#, esc(j))
                }
                (None, None, Some(e)) => format!(r#"<span class="mono">{}</span>"#, esc(e)),
                _ => format!(r#"<span class="mono">{}</span>"#, esc(&a.subject)),
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{about}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.kind),
                esc(&a.message),
                time(a.since)
            );
        }
        b.push_str("</tbody></table>");
        if open_alerts > ALERTS_SHOWN {
            let _ = write!(
                b,
                r#"<p class="hint">Showing the {ALERTS_SHOWN} oldest of {open_alerts}.</p>"#
            );
        }
    }
    b.push_str("</section></div>");

    b.push_str("<section><h2>Recent operator actions</h2>");
    if audit.is_empty() {
        b.push_str(r#"<p class="empty">None yet.</p>"#);
    } else {
        b.push_str("<table><thead><tr><th>When</th><th>Who</th><th>Action</th><th>On</th><th>Detail</th></tr></thead><tbody>");
        for e in &audit {
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td><td>{}</td></tr>"#,
                time(e.at),
                esc(&e.actor),
                esc(&e.action),
                esc(&e.target),
                esc(&e.detail)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
    Ok(Page {
        title: "Overview",
        nav: Nav::Overview,
        csrf: Some(session.csrf()),
        notice: None,
        body: b,
    }
    .respond(StatusCode::OK))
}

fn payment_link(id: &str) -> String {
    format!(
        r#"<a class="mono" href="/dashboard/payments/{}">{}</a>"#,
        path_segment(id),
        esc(id)
    )
}

/// Filters and position of the payment list.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// A payment id to open.
    q: Option<String>,
    /// Only payments in this state.
    status: Option<String>,
    /// Continue after this `"{created_at millis}.{payment_id}"` position.
    after: Option<String>,
}

fn parse_cursor(s: &str) -> Result<(Timestamp, String), DashError> {
    s.split_once('.')
        .and_then(|(ms, id)| Some((Timestamp(ms.parse().ok()?), id.to_owned())))
        .filter(|(_, id)| !id.is_empty() && id.len() <= 100)
        .ok_or_else(|| DashError::BadRequest("the page position is not valid".into()))
}

/// `GET /dashboard/payments`: every merchant's payments, newest first, by state, in pages;
/// `q` opens one payment by id.
pub async fn payments(
    State(dash): State<Dash>,
    session: Session,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, DashError> {
    let params = query(params)?;
    let mut notice = None;
    let store = dash.app.store();
    if let Some(q) = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.len() <= 100 && payments::get(store, q).await?.is_some() {
            return Ok(
                Redirect::to(&format!("/dashboard/payments/{}", path_segment(q))).into_response(),
            );
        }
        notice = Some(Notice::Problem(format!("No payment has the id “{q}”.")));
    }
    let state = match params.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<PaymentState>()
                .map_err(|_| DashError::BadRequest(format!("unknown payment state `{s}`")))?,
        ),
        None => None,
    };
    let after = params.after.as_deref().map(parse_cursor).transpose()?;
    let mut rows = payments::list_all(
        store,
        &AdminListQuery {
            state,
            after: after.clone(),
            limit: PAGE_SIZE,
        },
    )
    .await?;
    let more = rows.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));

    let mut b = String::new();
    b.push_str(
        r#"<form class="filters" method="get" action="/dashboard/payments"><label>Payment id <input name="q" placeholder="pay_…" size="44" spellcheck="false"></label><label>State <select name="status"><option value="">any</option>"#,
    );
    for s in PaymentState::ALL {
        let selected = if state == Some(*s) { " selected" } else { "" };
        let _ = write!(
            b,
            r#"<option value="{0}"{selected}>{0}</option>"#,
            s.as_str()
        );
    }
    b.push_str(r#"</select></label><button type="submit">Show</button></form>"#);
    if rows.is_empty() {
        b.push_str(r#"<p class="empty">No payments here.</p>"#);
    } else {
        b.push_str(r#"<table class="payments"><thead><tr><th>Payment</th><th>Merchant</th><th>State</th><th class="num">Amount</th><th class="num">Payout</th><th>Created</th></tr></thead><tbody>"#);
        for p in &rows {
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td class="mono">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                payment_link(&p.payment_id),
                esc(&p.merchant_id),
                badge(p.state.as_str()),
                esc(&money(p.amount, p.currency)),
                esc(&money(p.payout_amount, p.payout_currency)),
                time(p.created_at)
            );
        }
        b.push_str("</tbody></table>");
    }
    let status_param = state.map_or(String::new(), |s| format!("status={}&", s.as_str()));
    b.push_str(r#"<nav class="pager">"#);
    if after.is_some() {
        let _ = write!(
            b,
            r#"<a href="/dashboard/payments?{}">« Newest</a>"#,
            status_param.trim_end_matches('&')
        );
    }
    if let (true, Some(last)) = (more, rows.last()) {
        let cursor = format!("{}.{}", last.created_at.millis(), last.payment_id);
        let _ = write!(
            b,
            r#"<a rel="next" href="/dashboard/payments?{status_param}after={}">Older »</a>"#,
            path_segment(&cursor)
        );
    }
    b.push_str("</nav>");
    Ok(Page {
        title: "Payments",
        nav: Nav::Payments,
        csrf: Some(session.csrf()),
        notice,
        body: b,
    }
    .respond(StatusCode::OK))
}

fn dl_row(b: &mut String, label: &str, value_html: &str) {
    let _ = write!(b, "<dt>{}</dt><dd>{value_html}</dd>", esc(label));
}

fn summary(b: &mut String, p: &PaymentRecord) {
    b.push_str(r#"<section class="card"><h2>Payment</h2><dl class="facts">"#);
    dl_row(
        b,
        "Merchant",
        &format!(r#"<span class="mono">{}</span>"#, esc(&p.merchant_id)),
    );
    dl_row(
        b,
        "Quote",
        &format!(r#"<span class="mono">{}</span>"#, esc(&p.quote_id)),
    );
    dl_row(b, "Amount", &esc(&money(p.amount, p.currency)).to_string());
    dl_row(
        b,
        "Fees",
        &format!(
            "{} (platform {}, onramp {}, offramp {})",
            esc(&money(p.total_fees, p.currency)),
            esc(&money(p.fees.platform, p.currency)),
            esc(&money(p.fees.onramp, p.currency)),
            esc(&money(p.fees.offramp, p.currency))
        ),
    );
    dl_row(
        b,
        "Rate",
        &format!(
            "{} locked (mid {}){}",
            esc(&p.exchange_rate.normalize().to_string()),
            esc(&p.mid_rate.normalize().to_string()),
            p.executed_rate.map_or(String::new(), |r| format!(
                ", market {} when the payout settled",
                esc(&r.normalize().to_string())
            ))
        ),
    );
    dl_row(
        b,
        "Payout",
        &esc(&money(p.payout_amount, p.payout_currency)).to_string(),
    );
    dl_row(
        b,
        "From account",
        &format!(r#"<span class="mono">{}</span>"#, esc(&p.source_account)),
    );
    dl_row(
        b,
        "To account",
        &format!(
            r#"<span class="mono">{}</span>"#,
            esc(&p.destination_account)
        ),
    );
    dl_row(b, "Created", &time(p.created_at));
    dl_row(b, "In this state since", &time(p.state_since));
    dl_row(b, "Updated", &time(p.updated_at));
    dl_row(b, "Finished", &maybe_time(p.completed_at));
    dl_row(b, "Onramp claimed", &maybe_time(p.onramp_claimed_at));
    b.push_str("</dl></section>");
}

/// The payment's ledger transfers, oldest first, and the FX result of its payout.
fn ledger_section(
    b: &mut String,
    transfers: &[crate::store::ledger::StoredTransfer],
    settlement: Option<&crate::views::SettlementView>,
    payout_currency: crate::domain::Currency,
) {
    b.push_str(r#"<section id="ledger"><h2>Ledger</h2>"#);
    if transfers.is_empty() {
        b.push_str(r#"<p class="empty">No transfers: no money has moved for this payment.</p>"#);
    } else {
        b.push_str(r#"<table><thead><tr><th>Transfer</th><th>Debit</th><th>Credit</th><th class="num">Amount</th><th>Status</th><th>Opened</th></tr></thead><tbody>"#);
        for t in transfers {
            let x = &t.transfer;
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td class="mono">{}</td><td class="mono">{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(x.role.reason()),
                esc(&x.debit),
                esc(&x.credit),
                esc(&money(x.amount, x.currency)),
                badge(x.status.as_str()),
                time(t.created_at)
            );
        }
        b.push_str("</tbody></table>");
    }
    if let Some(s) = settlement {
        let _ = write!(
            b,
            r#"<p>Executed at <b>{}</b>: FX {} <b>{}</b></p>"#,
            esc(&s.executed_rate.to_string()),
            if s.fx_gain_loss.amount >= 0 {
                "gain"
            } else {
                "loss"
            },
            esc(&money(s.fx_gain_loss.amount.abs(), payout_currency))
        );
    }
    b.push_str("</section>");
}

/// `GET /dashboard/payments/{id}`: one payment's amounts, legs, failure, state history, jobs
/// and webhook deliveries, with a retry button while it is not final.
pub async fn payment(
    State(dash): State<Dash>,
    session: Session,
    Path(id): Path<String>,
    outcome: Result<Query<Outcome>, QueryRejection>,
) -> Result<Response, DashError> {
    let outcome = query(outcome)?;
    let store = dash.app.store();
    let p = payments::get(store, &id)
        .await?
        .ok_or(DashError::NotFound("payment"))?;
    let history = payments::history(store, &id).await?;
    let job_rows = jobs::for_payment(store, &id, 20).await?;
    let transfers = crate::store::ledger::for_payment(store, &id).await?;
    let deliveries =
        webhooks::list_deliveries(store, &p.merchant_id, Some(&id), None, DELIVERIES_SHOWN).await?;
    let view = crate::views::view(&p, &history);

    let mut b = String::new();
    let _ = write!(
        b,
        r#"<p class="lead"><span class="mono">{}</span> {}</p>"#,
        esc(&p.payment_id),
        badge(p.state.as_str())
    );
    if p.state.is_terminal() {
        b.push_str(r#"<p class="hint">This payment is final; there is no step to retry.</p>"#);
    } else {
        let _ = write!(
            b,
            r#"<form class="inline" method="post" action="/dashboard/payments/{}/retry" data-confirm="Run the current step of this payment again now?">{}<button type="submit">Retry current step</button></form>"#,
            path_segment(&p.payment_id),
            csrf_field(session.csrf())
        );
    }
    if let Some((code, message)) = &p.failure {
        let _ = write!(
            b,
            r#"<section class="card failure"><h2>Failure</h2><p><b>{}</b>: {}</p></section>"#,
            esc(code),
            esc(message)
        );
    }
    b.push_str(r#"<div class="columns">"#);
    summary(&mut b, &p);

    b.push_str(r#"<section class="card"><h2>Timeline</h2><ol class="timeline">"#);
    for (i, h) in history.iter().enumerate() {
        let stayed = history
            .get(i + 1)
            .map(|next| {
                format!(
                    r#" <span class="hint">for {}</span>"#,
                    duration(next.at.millis() - h.at.millis())
                )
            })
            .unwrap_or_default();
        let from = h
            .from
            .map_or(String::new(), |f| format!("{} → ", badge(f.as_str())));
        let _ = write!(
            b,
            "<li>{}<div>{from}{}{stayed}</div><div>{}</div></li>",
            time(h.at),
            badge(h.to.as_str()),
            esc(&h.reason)
        );
    }
    b.push_str("</ol></section></div>");

    b.push_str(r#"<section><h2>Legs</h2><table><thead><tr><th>Leg</th><th>Provider</th><th>Reference</th><th>Status</th><th class="num">Amount</th></tr></thead><tbody>"#);
    for (name, leg) in [
        ("onramp", &view.legs.onramp),
        ("offramp", &view.legs.offramp),
    ] {
        match leg {
            Some(l) => {
                let _ = write!(
                    b,
                    r#"<tr><td>{name}</td><td>{}</td><td class="mono">{}</td><td>{}</td><td class="num">{} {}</td></tr>"#,
                    esc(&l.provider),
                    esc(&l.reference),
                    badge(&l.status),
                    esc(&leg_amount(l.amount, &l.currency)),
                    esc(&l.currency)
                );
            }
            None => {
                let _ = write!(
                    b,
                    r#"<tr><td>{name}</td><td colspan="4" class="empty">not started</td></tr>"#
                );
            }
        }
    }
    if let Some(r) = &p.reversal_reference {
        let _ = write!(
            b,
            r#"<tr><td>reversal</td><td></td><td class="mono">{}</td><td></td><td></td></tr>"#,
            esc(r)
        );
    }
    b.push_str("</tbody></table>");
    if let Some(r) = &view.refund {
        let _ = write!(
            b,
            r#"<p>Refund to the source: <b>{}</b></p>"#,
            esc(&money(r.amount, p.currency))
        );
    }
    b.push_str("</section>");

    ledger_section(
        &mut b,
        &transfers,
        view.settlement.as_ref(),
        p.payout_currency,
    );

    b.push_str("<section><h2>Jobs</h2>");
    if job_rows.is_empty() {
        b.push_str(r#"<p class="empty">No jobs: nothing is scheduled for this payment.</p>"#);
    } else {
        b.push_str(r#"<table><thead><tr><th>Job</th><th>Kind</th><th>State</th><th class="num">Attempts</th><th>Runs</th><th>Last error</th></tr></thead><tbody>"#);
        for j in &job_rows {
            let state = if j.state == "dead" {
                format!(r#"<a href="/dashboard/jobs">{}</a>"#, badge(&j.state))
            } else {
                badge(&j.state)
            };
            let _ = write!(
                b,
                r#"<tr><td class="mono">{}</td><td>{}</td><td>{state}</td><td class="num">{}/{}</td><td>{}</td><td class="error">{}</td></tr>"#,
                esc(&j.id),
                esc(&j.kind),
                j.attempts,
                j.max_attempts,
                if j.state == "dead" {
                    "—".to_owned()
                } else {
                    time(j.run_at)
                },
                esc(j.last_error.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    b.push_str("<section><h2>Webhook deliveries</h2>");
    if deliveries.is_empty() {
        b.push_str(r#"<p class="empty">No deliveries: the merchant has no endpoint for these events, or none was due yet.</p>"#);
    } else {
        b.push_str(r#"<table><thead><tr><th>When</th><th>Event</th><th>Endpoint</th><th class="num">Attempt</th><th>Answer</th><th class="num">Took</th></tr></thead><tbody>"#);
        for d in &deliveries {
            let answer = match (d.status_code, &d.error) {
                (Some(c), None) => format!("HTTP {c}"),
                (Some(c), Some(e)) => format!("HTTP {c}: {e}"),
                (None, Some(e)) => e.clone(),
                (None, None) => "no answer".to_owned(),
            };
            let ok = d.status_code.is_some_and(|c| (200..300).contains(&c));
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td>{}</td><td class="mono">{}</td><td class="num">{}</td><td class="{}">{}</td><td class="num">{} ms</td></tr>"#,
                time(d.created_at),
                esc(&d.event_type),
                esc(&d.endpoint_id),
                d.attempt,
                if ok { "ok" } else { "error" },
                esc(&answer),
                d.duration_ms
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    b.push_str("<section><h2>Metadata</h2>");
    if p.metadata.is_empty() {
        b.push_str(r#"<p class="empty">None.</p>"#);
    } else {
        b.push_str(r#"<table class="metadata"><tbody>"#);
        for (k, v) in &p.metadata {
            let _ = write!(
                b,
                r#"<tr><th class="mono">{}</th><td>{}</td></tr>"#,
                esc(k),
                esc(v)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    Ok(Page {
        title: "Payment",
        nav: Nav::Payments,
        csrf: Some(session.csrf()),
        notice: outcome.notice(),
        body: b,
    }
    .respond(StatusCode::OK))
}

fn leg_amount(minor: i64, currency: &str) -> String {
    let exponent = currency
        .parse::<crate::domain::Currency>()
        .map_or(2, |c| c.exponent());
    rust_decimal::Decimal::new(minor, exponent).to_string()
}

/// A span of time in words: `850 ms`, `42 s`, `3 min 5 s`, `2 h 4 min`.
fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{} s", ms / 1_000),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1_000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `GET /dashboard/jobs`: dead-lettered jobs, newest first, each with a redrive button.
pub async fn dead_jobs(
    State(dash): State<Dash>,
    session: Session,
    outcome: Result<Query<Outcome>, QueryRejection>,
) -> Result<Response, DashError> {
    let outcome = query(outcome)?;
    let now = dash.app.now();
    let store = dash.app.store();
    let dead = jobs::dead(store, None, DEAD_JOBS_SHOWN).await?;
    let total = jobs::stats(store, now).await?.dead;
    let mut b = String::new();
    if dead.is_empty() {
        b.push_str(r#"<p class="empty">No dead jobs.</p>"#);
    } else {
        b.push_str(r#"<p class="hint">A job is dead after its last attempt failed. Redriving puts it back in the queue with fresh attempts; it runs at once.</p>"#);
        b.push_str(r#"<table class="dead"><thead><tr><th>Job</th><th>Kind</th><th>Payment</th><th class="num">Attempts</th><th>Last error</th><th>Died</th><th></th></tr></thead><tbody>"#);
        for j in &dead {
            let payment = j
                .payment_id
                .as_deref()
                .map_or_else(|| "—".to_owned(), payment_link);
            let _ = write!(
                b,
                r#"<tr data-job="{id}"><td class="mono">{id}</td><td>{}</td><td>{payment}</td><td class="num">{}</td><td class="error">{}</td><td>{}</td><td><form method="post" action="/dashboard/jobs/{}/redrive" data-confirm="Put this job back in the queue?">{}<button type="submit">Redrive</button></form></td></tr>"#,
                esc(&j.kind),
                j.attempts,
                esc(j.last_error.as_deref().unwrap_or("")),
                time(j.failed_at),
                path_segment(&j.id),
                csrf_field(session.csrf()),
                id = esc(&j.id),
            );
        }
        b.push_str("</tbody></table>");
        if total > DEAD_JOBS_SHOWN {
            let _ = write!(
                b,
                r#"<p class="hint">Showing the newest {DEAD_JOBS_SHOWN} of {total}.</p>"#
            );
        }
    }
    Ok(Page {
        title: "Dead jobs",
        nav: Nav::Jobs,
        csrf: Some(session.csrf()),
        notice: outcome.notice(),
        body: b,
    }
    .respond(StatusCode::OK))
}

/// `GET /dashboard/rates`: the corridors with their market and pinned rates, a form to pin
/// one, and an unpin button per pin.
pub async fn rates(
    State(dash): State<Dash>,
    session: Session,
    outcome: Result<Query<Outcome>, QueryRejection>,
) -> Result<Response, DashError> {
    let outcome = query(outcome)?;
    rates_page(&dash, &session, outcome.notice(), StatusCode::OK).await
}

/// The rate pins page with `notice` on top (also answered when a pin form is refused).
pub async fn rates_page(
    dash: &Dash,
    session: &Session,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, DashError> {
    let store = dash.app.store();
    let pins = ops_store::rate_pins(store).await?;
    let mut b = String::new();
    b.push_str(r#"<p class="hint">A pin makes new quotes of one direction use exactly that customer rate (spread included) until it is removed. Quotes already given keep their rate.</p>"#);
    b.push_str(r#"<table class="rates"><thead><tr><th>Corridor</th><th class="num">Mid rate</th><th class="num">Quoted without pin</th><th class="num">Pinned rate</th><th>Pinned</th><th></th></tr></thead><tbody>"#);
    for c in dash.app.service.corridors.all() {
        let rates = dash.app.service.rates.market(c.from, c.to);
        let mid = rates.map(|r| r.mid);
        let market = rates.map(|r| r.customer);
        let pin = pins.iter().find(|p| p.from == c.from && p.to == c.to);
        let shown = |d: Option<rust_decimal::Decimal>| {
            d.map_or("—".to_owned(), |d| {
                esc(&d.normalize().to_string()).to_string()
            })
        };
        let unpin = pin.map_or(String::new(), |_| {
            format!(
                r#"<form method="post" action="/dashboard/rates/{}/{}/unpin" data-confirm="Remove the pin on {} → {}?">{}<button type="submit">Unpin</button></form>"#,
                c.from.code(),
                c.to.code(),
                c.from.code(),
                c.to.code(),
                csrf_field(session.csrf())
            )
        });
        let _ = write!(
            b,
            r#"<tr><td>{} → {}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{unpin}</td></tr>"#,
            c.from.code(),
            c.to.code(),
            shown(mid),
            shown(market),
            shown(pin.map(|p| p.rate)),
            maybe_time(pin.map(|p| p.pinned_at)),
        );
    }
    b.push_str("</tbody></table>");
    b.push_str(
        r#"<form class="card pin" method="post" action="/dashboard/rates"><h2>Pin a rate</h2>"#,
    );
    b.push_str(&csrf_field(session.csrf()));
    b.push_str(r#"<label>Corridor <select name="pair" required>"#);
    for c in dash.app.service.corridors.all() {
        let _ = write!(
            b,
            r#"<option value="{0}-{1}">{0} → {1}</option>"#,
            c.from.code(),
            c.to.code()
        );
    }
    b.push_str(r#"</select></label><label>Customer rate <input name="rate" required inputmode="decimal" pattern="[0-9]+(\.[0-9]{1,8})?" placeholder="0.91" spellcheck="false"></label><button type="submit">Pin rate</button></form>"#);
    Ok(Page {
        title: "Rate pins",
        nav: Nav::Rates,
        csrf: Some(session.csrf()),
        notice,
        body: b,
    }
    .respond(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let (at, id) = parse_cursor("1700000000000.pay_abc").unwrap();
        assert_eq!(at, Timestamp(1_700_000_000_000));
        assert_eq!(id, "pay_abc");
        assert!(parse_cursor("x.pay").is_err());
        assert!(parse_cursor("12.").is_err());
        assert!(parse_cursor("12").is_err());
    }

    #[test]
    fn outcomes_show_fixed_messages_and_only_id_like_subjects() {
        let o = Outcome {
            done: Some("redriven".into()),
            on: Some("<script>".into()),
        };
        assert!(
            matches!(o.notice(), Some(Notice::Done(m)) if m == "The job is back in the queue.")
        );
        let o = Outcome {
            done: Some("anything".into()),
            on: None,
        };
        assert!(o.notice().is_none());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(42_000), "42 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(duration(7_440_000), "2 h 4 min");
    }
}
