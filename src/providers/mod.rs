//! The provider boundary: the onramp buys USDC with fiat, the offramp sells USDC into the
//! payout currency. Corridor talks to providers only through these traits, so the in-process
//! simulator and an HTTP adapter are interchangeable.
//!
//! Every initiating call carries an idempotency key derived from `(payment_id, leg)`: a
//! provider must answer a repeated key with the same transfer, never a second one.

pub mod http;
pub mod sim_server;
pub mod simulator;

use async_trait::async_trait;

/// A request to move money on one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegRequest {
    /// Payment this transfer serves.
    pub payment_id: String,
    /// Provider-side idempotency key: `"{payment_id}:{leg}"`.
    pub idempotency_key: String,
    /// Amount to deliver, in `currency` minor units.
    pub amount: i64,
    /// Currency or asset code of `amount`.
    pub currency: String,
    /// Account debited (onramp) or credited (offramp, reversal).
    pub account: String,
}

/// How a provider call went wrong, which decides what the engine does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider definitively refused the transfer: no retry, the payment fails.
    #[error("refused by provider: {0}")]
    Refused(String),
    /// Timeout, 5xx, an unreadable answer: the provider may have acted; retry later under
    /// the same idempotency key.
    #[error("provider unavailable: {0}")]
    Transient(String),
    /// The request provably never reached the provider (no connection could be made), so
    /// nothing can have happened there; retry later like [`ProviderError::Transient`].
    #[error("provider unreachable: {0}")]
    NotSent(String),
}

pub use crate::domain::TransferStatus;
pub use crate::domain::reconcile::Line as StatementLine;

/// The answer of a provider without statements.
fn no_statement(name: &str) -> ProviderError {
    ProviderError::Refused(format!("{name} offers no statement of its transfers"))
}

/// A transfer Corridor started, as it asks about it: the provider's reference and what was
/// sent, so an answer about another amount or currency is not taken for this transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The provider's reference.
    pub reference: String,
    /// Amount sent, minor units of `currency`.
    pub amount: i64,
    /// Currency or asset code sent.
    pub currency: String,
}

/// Fiat → USDC, and USDC → fiat back to the source when a payment is refunded.
#[async_trait]
pub trait Onramp: Send + Sync + 'static {
    /// Provider name as shown on legs and in webhook URLs.
    fn name(&self) -> &str;
    /// Buys `amount` USDC from the source account. Returns the transfer reference.
    async fn buy(&self, req: &LegRequest) -> Result<String, ProviderError>;
    /// Sells USDC back and returns `amount` of source currency to the account.
    async fn reverse(&self, req: &LegRequest) -> Result<String, ProviderError>;
    /// Current status of a transfer.
    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError>;
    /// The provider's own record of the transfers it was asked for in `[from, to)` (its
    /// purchases and reversals), for reconciliation.
    async fn statement(
        &self,
        from: crate::domain::Timestamp,
        to: crate::domain::Timestamp,
    ) -> Result<Vec<StatementLine>, ProviderError> {
        let _ = (from, to);
        Err(no_statement(self.name()))
    }
}

/// USDC → payout currency.
#[async_trait]
pub trait Offramp: Send + Sync + 'static {
    /// Provider name as shown on legs and in webhook URLs.
    fn name(&self) -> &str;
    /// Pays `amount` (payout currency) to the destination account.
    async fn pay_out(&self, req: &LegRequest) -> Result<String, ProviderError>;
    /// Current status of a transfer.
    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError>;
    /// The provider's own record of the payouts it was asked for in `[from, to)`.
    async fn statement(
        &self,
        from: crate::domain::Timestamp,
        to: crate::domain::Timestamp,
    ) -> Result<Vec<StatementLine>, ProviderError> {
        let _ = (from, to);
        Err(no_statement(self.name()))
    }
}

/// The providers an engine runs with.
#[derive(Clone)]
pub struct Providers {
    /// Fiat → USDC.
    pub onramp: std::sync::Arc<dyn Onramp>,
    /// USDC → payout.
    pub offramp: std::sync::Arc<dyn Offramp>,
}
