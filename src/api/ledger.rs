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
