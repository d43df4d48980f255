//! The ledger as a merchant and an operator read it: a payment's transfers, and every
//! account's balances with their per-currency totals.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Admin, Merchant};
use super::error::ApiError;
use crate::domain::ids::IdKind;
use crate::domain::ledger::account_currency;
use crate::store::ledger::{self, Balance, StoredTransfer};
use crate::store::payments;

/// One transfer of a payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerTransferView {
    /// `{payment_id}:{role}` (`pay_…:fee.platform`): a payment has one transfer per role.
    pub id: String,
    /// The account money leaves.
    pub debit_account: String,
    /// The account money enters.
    pub credit_account: String,
    /// Minor units of `currency` (always > 0).
    pub amount: i64,
    /// The currency of both accounts.
    pub currency: String,
    /// `PENDING` (in flight), `POSTED` or `VOIDED` (both final).
    pub status: String,
    /// What it is for.
    pub reason: String,
    /// When it was opened.
    pub created_at: String,
    /// When it was posted or voided; `null` while pending.
    pub resolved_at: Option<String>,
}

/// A payment's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentLedger {
    /// The payment.
    pub payment_id: String,
    /// Whether, in every currency, what its transfers debit equals what they credit.
    pub balanced: bool,
    /// Its transfers, in the order they were opened.
    pub transfers: Vec<LedgerTransferView>,
}

fn transfer_view(t: &StoredTransfer) -> LedgerTransferView {
    LedgerTransferView {
        id: t.id(),
        debit_account: t.transfer.debit.clone(),
        credit_account: t.transfer.credit.clone(),
        amount: t.transfer.amount,
        currency: t.transfer.currency.code().to_owned(),
        status: t.transfer.status.as_str().to_owned(),
        reason: t.transfer.role.reason().to_owned(),
        created_at: t.created_at.to_rfc3339(),
        resolved_at: t.resolved_at.map(|r| r.to_rfc3339()),
    }
}

/// Whether every transfer stays within its currency (both accounts of it) and moves a
/// positive amount: then each currency's debits equal its credits.
fn balanced<'a>(transfers: impl IntoIterator<Item = &'a crate::domain::ledger::Transfer>) -> bool {
    transfers.into_iter().all(|t| {
        let c = t.currency.code();
        t.amount > 0 && account_currency(&t.debit) == c && account_currency(&t.credit) == c
    })
}

/// `GET /v1/payments/{payment_id}/ledger`.
#[utoipa::path(get, path = "/v1/payments/{payment_id}/ledger", operation_id = "get_payment_ledger", tag = "payments", security(("bearer" = [])),
    params(("payment_id" = String, Path)),
    responses((status = 200, description = "OK", body = PaymentLedger), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn payment(
    State(state): State<AppState>,
    m: Merchant,
    Path(payment_id): Path<String>,
) -> Result<Json<PaymentLedger>, ApiError> {
    ApiError::check_id(IdKind::Payment, &payment_id)?;
    tracing::Span::current().record("payment_id", payment_id.as_str());
    payments::find(state.store(), &m.merchant_id, &payment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    let transfers = ledger::for_payment(state.store(), &payment_id).await?;
    Ok(Json(PaymentLedger {
        balanced: balanced(transfers.iter().map(|t| &t.transfer)),
        transfers: transfers.iter().map(transfer_view).collect(),
        payment_id,
    }))
}

/// One account's sums.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceView {
    /// Account (`platform:fees:USD`).
    pub account: String,
    /// Its currency.
    pub currency: String,
    /// Posted debits, minor units.
    pub debits_posted: i64,
    /// Posted credits.
    pub credits_posted: i64,
    /// Pending debits (money in flight).
    pub debits_pending: i64,
    /// Pending credits.
    pub credits_pending: i64,
}

/// One currency's totals over every account: debits equal credits, posted and pending.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct TotalsView {
    /// Posted debits.
    pub debits_posted: i64,
    /// Posted credits.
    pub credits_posted: i64,
    /// Pending debits.
    pub debits_pending: i64,
    /// Pending credits.
    pub credits_pending: i64,
}

/// Every account's balances.
#[derive(Debug, Serialize, ToSchema)]
pub struct Balances {
    /// Accounts, by name.
    pub data: Vec<BalanceView>,
    /// Per currency code.
    pub totals: BTreeMap<String, TotalsView>,
}

/// `GET /v1/admin/ledger/balances`.
#[utoipa::path(get, path = "/v1/admin/ledger/balances", operation_id = "ledger_balances", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = Balances)))]
pub async fn balances(
    State(state): State<AppState>,
    _a: Admin,
) -> Result<Json<Balances>, ApiError> {
    let rows = ledger::balances(state.store()).await?;
    Ok(Json(summarise(rows)))
}

fn summarise(rows: Vec<Balance>) -> Balances {
    let mut totals: BTreeMap<String, TotalsView> = BTreeMap::new();
    for b in &rows {
        let t = totals.entry(b.currency.clone()).or_default();
        t.debits_posted = t.debits_posted.saturating_add(b.debits_posted);
        t.credits_posted = t.credits_posted.saturating_add(b.credits_posted);
        t.debits_pending = t.debits_pending.saturating_add(b.debits_pending);
        t.credits_pending = t.credits_pending.saturating_add(b.credits_pending);
    }
    Balances {
        data: rows
            .into_iter()
            .map(|b| BalanceView {
                account: b.account,
                currency: b.currency,
                debits_posted: b.debits_posted,
                credits_posted: b.credits_posted,
                debits_pending: b.debits_pending,
                credits_pending: b.credits_pending,
            })
            .collect(),
        totals,
    }
}

/// Query of the FX report.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FxReportParams {
    /// Start of the window (RFC 3339, inclusive): payments completed from then. Default:
    /// the beginning.
    pub from: Option<String>,
    /// End of the window (RFC 3339, exclusive). Default: now.
    pub to: Option<String>,
}

/// An amount of one currency.
pub use crate::views::AmountView;

/// The payment with the lowest FX result in a corridor.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorstPayment {
    /// `pay_…`.
    pub payment_id: String,
    /// Its FX result, payout minor units.
    pub fx_gain_loss: AmountView,
}

/// One corridor's FX figures over the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorridorFxView {
    /// `USD-EUR`.
    pub corridor: String,
    /// Payments completed in the window.
    pub payments: u64,
    /// Their source amounts.
    pub volume: AmountView,
    /// Their fees.
    pub fees: AmountView,
    /// The spread: customer rate vs the mid at quote time, on the payouts.
    pub spread_revenue: AmountView,
    /// The FX result posted to the ledger (the USDC sold at the executed rate less the
    /// payouts): the spread plus the market's move between quote and settlement.
    pub fx_gain_loss: AmountView,
    /// The market's move alone (`fx_gain_loss − spread_revenue`): negative is what the rate
    /// lock cost the platform — and spared the customers.
    pub market_move: AmountView,
    /// The payment with the lowest FX result.
    pub worst_payment: Option<WorstPayment>,
}

/// The FX report.
#[derive(Debug, Serialize, ToSchema)]
pub struct FxReport {
    /// Window start (RFC 3339), as applied.
    pub from: String,
    /// Window end (RFC 3339), as applied.
    pub to: String,
    /// One row per corridor with completed payments in the window.
    pub data: Vec<CorridorFxView>,
}

fn instant(field: &str, text: Option<&str>) -> Result<Option<crate::domain::Timestamp>, ApiError> {
    text.map(|t| {
        crate::domain::Timestamp::parse_rfc3339(t).ok_or_else(|| {
            ApiError::invalid(
                field,
                "must be an RFC 3339 timestamp (2026-11-23T17:41:36Z)",
            )
        })
    })
    .transpose()
}

/// A `[from, to)` window from optional RFC 3339 instants: from the beginning, up to now
/// (this millisecond included), `to` not before `from`.
fn window(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(crate::domain::Timestamp, crate::domain::Timestamp), ApiError> {
    let from = instant("from", from)?.unwrap_or(crate::domain::Timestamp(0));
    let to = instant("to", to)?.unwrap_or_else(|| state.now().plus_millis(1));
    if to < from {
        return Err(ApiError::invalid("to", "must not be before `from`"));
    }
    Ok((from, to))
}

/// `GET /v1/admin/reports/fx`.
#[utoipa::path(get, path = "/v1/admin/reports/fx", operation_id = "fx_report", tag = "admin", security(("bearer" = [])), params(FxReportParams),
    responses((status = 200, description = "OK", body = FxReport), (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn fx_report(
    State(state): State<AppState>,
    _a: Admin,
    super::extract::ApiQuery(q): super::extract::ApiQuery<FxReportParams>,
) -> Result<Json<FxReport>, ApiError> {
    let (from, to) = window(&state, q.from.as_deref(), q.to.as_deref())?;
    let rows = state.service.fx_report(from, to).await?;
    let amount = |amount: i64, c: crate::domain::Currency| AmountView {
        amount,
        currency: c.code().to_owned(),
    };
    Ok(Json(FxReport {
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        data: rows
            .iter()
            .map(|r| CorridorFxView {
                corridor: format!("{}-{}", r.from, r.to),
                payments: r.payments,
                volume: amount(r.volume, r.from),
                fees: amount(r.fees, r.from),
                spread_revenue: amount(r.spread_revenue, r.to),
                fx_gain_loss: amount(r.fx_gain_loss, r.to),
                market_move: amount(r.market_move(), r.to),
                worst_payment: r.worst.as_ref().map(|(id, fx)| WorstPayment {
                    payment_id: id.clone(),
                    fx_gain_loss: amount(*fx, r.to),
                }),
            })
            .collect(),
    }))
}

/// `POST /v1/admin/reconciliations` body: the window (both optional).
#[derive(Debug, Default, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReconciliation {
    /// Window start (RFC 3339, inclusive). Default: the beginning.
    pub from: Option<String>,
    /// Window end (RFC 3339, exclusive). Default: now.
    pub to: Option<String>,
}

/// A run, as started.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationStarted {
    /// `recon_…`.
    pub id: String,
    /// `PENDING`.
    pub status: String,
}

/// `POST /v1/admin/reconciliations`: runs a reconciliation now (performed by a job; poll
/// its id).
#[utoipa::path(post, path = "/v1/admin/reconciliations", operation_id = "start_reconciliation", tag = "admin", security(("bearer" = [])),
    request_body(content = Option<StartReconciliation>, description = "Optional: an empty body reconciles everything up to now"),
    responses((status = 202, description = "Accepted: the run is stored with the job that performs it", body = ReconciliationStarted),
        (status = 400, description = "The request is invalid (error format)", body = super::error::ErrorBody)))]
pub async fn start_reconciliation(
    State(state): State<AppState>,
    _a: Admin,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<ReconciliationStarted>), ApiError> {
    let req: StartReconciliation = if body.iter().all(u8::is_ascii_whitespace) {
        StartReconciliation::default()
    } else {
        if !super::extract::is_json(&headers) {
            return Err(ApiError::new(
                super::error::Code::UnsupportedMediaType,
                "request bodies must be sent with Content-Type: application/json",
            ));
        }
        // serde would read a struct from an array too (`[null, null]`): only an object is a
        // window.
        let v: serde_json::Value = super::extract::parse_json(&body)?;
        if !v.is_object() {
            return Err(ApiError::invalid("body", "the body must be a JSON object"));
        }
        super::extract::parse_json(&body)?
    };
    let (from, to) = window(&state, req.from.as_deref(), req.to.as_deref())?;
    let r = state.service.start_reconciliation(from, to).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(ReconciliationStarted {
            id: r.reconciliation_id,
            status: r.status,
        }),
    ))
}

/// One side of a mismatched pair.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ReconciledLine {
    /// Minor units of `currency`.
    pub amount: i64,
    /// Currency code.
    pub currency: String,
    /// `PENDING`, `COMPLETED` or `FAILED`.
    pub status: String,
}

/// A difference between the ledger and a provider.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct MismatchView {
    /// The payment.
    pub payment_id: String,
    /// `onramp`, `offramp` or `reversal`.
    pub leg: String,
    /// `MISSING_AT_PROVIDER`, `MISSING_IN_LEDGER`, `AMOUNT_MISMATCH`, `CURRENCY_MISMATCH` or
    /// `STATUS_MISMATCH`.
    pub kind: String,
    /// The ledger's record (`null` when it has none).
    pub ours: Option<ReconciledLine>,
    /// The provider's (`null` when it has none).
    pub theirs: Option<ReconciledLine>,
}

/// A reconciliation run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationView {
    /// `recon_…`.
    pub id: String,
    /// `PENDING`, `COMPLETED` or `FAILED`.
    pub status: String,
    /// Window start.
    pub from: String,
    /// Window end.
    pub to: String,
    /// When it was asked for.
    pub created_at: String,
    /// When it finished; `null` while pending.
    pub finished_at: Option<String>,
    /// Pairs of (payment, leg) compared.
    pub checked: i64,
    /// Pairs that agreed.
    pub matched: i64,
    /// The rest.
    pub mismatches: Vec<MismatchView>,
    /// Why a `FAILED` run could not compare (a provider without statements).
    pub error: Option<String>,
}

/// `GET /v1/admin/reconciliations/{id}`.
#[utoipa::path(get, path = "/v1/admin/reconciliations/{id}", operation_id = "get_reconciliation", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "OK", body = ReconciliationView), (status = 404, description = "Not found (error format)", body = super::error::ErrorBody)))]
pub async fn get_reconciliation(
    State(state): State<AppState>,
    _a: Admin,
    Path(id): Path<String>,
) -> Result<Json<ReconciliationView>, ApiError> {
    ApiError::check_id(IdKind::Reconciliation, &id)?;
    let r = crate::store::reconciliations::get(state.store(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("reconciliation"))?;
    let mismatches: Vec<MismatchView> = serde_json::from_str(&r.mismatches)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("reconciliation {id}: {e}")))?;
    Ok(Json(ReconciliationView {
        id: r.reconciliation_id,
        status: r.status,
        from: r.from.to_rfc3339(),
        to: r.to.to_rfc3339(),
        created_at: r.created_at.to_rfc3339(),
        finished_at: r.finished_at.map(|t| t.to_rfc3339()),
        checked: r.checked,
        matched: r.matched,
        mismatches,
        error: r.error,
    }))
}
