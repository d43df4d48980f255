//! The use cases: everything Corridor does on behalf of a merchant, a provider or an
//! operator, each in one place.
//!
//! A use case reads what it needs through the store's typed queries, asks the domain what
//! follows (prices, the decision table), builds one [`UnitOfWork`] holding every row that must
//! commit together, and hands it to the store. HTTP handlers, the dashboard and the workers
//! call these functions and map their results; none of them writes on its own.
//!
//! - [`quotes`]: price a quote from a [`rates::RateSource`] and lock it.
//! - [`payments`]: accept a payment (with or without a quote), cancel one.
//! - [`settle`]: run a payment's step against its provider, and settle a leg from a provider
//!   webhook — the same decision and the same unit of work either way.
//! - [`operators`]: merchant creation and operator actions, each audited.
//! - [`endpoints`]: merchants' webhook endpoints and redelivery.
//! - [`reports`]: the FX report per corridor.
//! - [`reconcile`]: the ledger against the providers' statements.

pub mod endpoints;
pub mod operators;
pub mod payments;
pub mod quotes;
pub mod rates;
pub mod reconcile;
pub mod reports;
pub mod settle;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::domain::CorridorTable;
use crate::providers::Providers;
use crate::store::{Rejected, Store, StoreError, UnitOfWork};

/// Why a use case did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input is not acceptable (`field` names it).
    #[error("{message}")]
    Invalid {
        /// The input at fault.
        field: String,
        /// Why.
        message: String,
    },
    /// No such resource for this caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The quote named on a payment does not exist for this merchant.
    #[error("quote not found")]
    QuoteNotFound,
    /// The quote's lock ran out.
    #[error("Quote has expired, please request a new quote")]
    QuoteExpired,
    /// The quote already pays for another payment.
    #[error("this quote was already used by another payment")]
    QuoteUsed,
    /// A payment's amount or currency differs from its quote's (`field` names it).
    #[error("`{0}` does not match the quote")]
    QuoteMismatch(&'static str),
    /// No corridor or no rate between the currencies.
    #[error("{0}")]
    UnsupportedCorridor(String),
    /// The amount is outside the corridor's limits or the payout would be ≤ 0.
    #[error("{0}")]
    AmountOutOfRange(String),
    /// The action does not apply in the resource's current state.
    #[error("{0}")]
    InvalidState(String),
    /// Another request stored an answer under the same idempotency key first.
    #[error("idempotency key taken")]
    IdempotencyKeyTaken,
    /// A dependency (provider, database) cannot be reached now: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// An invalid input.
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Result of a use case.
pub type Result<T> = std::result::Result<T, Error>;

/// Tunables of the use cases, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Quote lock, ms.
    pub quote_ttl_ms: i64,
    /// Attempts before a job is dead-lettered.
    pub job_max_attempts: i64,
    /// First settlement poll delay, ms.
    pub poll_interval_ms: i64,
    /// Timeout of one provider call.
    pub provider_timeout: Duration,
    /// How long after a payout settles its offramp is asked once more (a return), ms; 0:
    /// never.
    pub return_check_ms: i64,
}

/// Bugs `corridor simulate --plant-bug` switches on, to show that its invariants catch
/// them. Nothing else sets them; serving, they are always off.
pub mod planted {
    use std::sync::atomic::AtomicBool;

    /// The worker calls the onramp without first claiming the payment, so a cancel can
    /// win while the purchase is under way.
    pub static SKIP_ONRAMP_CLAIM: AtomicBool = AtomicBool::new(false);

    /// Each provider call carries a fresh idempotency key (the payment, the leg and the
    /// time), so a retry after a call whose answer was lost starts a second transfer.
    pub static KEY_PER_ATTEMPT: AtomicBool = AtomicBool::new(false);

    /// Whether `bug` is switched on.
    pub fn on(bug: &AtomicBool) -> bool {
        bug.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What every use case runs with.
pub struct Service {
    /// Database.
    pub store: Store,
    /// Time.
    pub clock: SharedClock,
    /// Offered corridors.
    pub corridors: CorridorTable,
    /// Where quote rates come from.
    pub rates: Arc<dyn rates::RateSource>,
    /// Onramp and offramp.
    pub providers: Providers,
    /// Tunables.
    pub settings: Settings,
}

impl Service {
    /// Commits a unit; a rejected guard becomes `Err(Rejected)` for the caller to map.
    pub(crate) async fn commit(
        &self,
        unit: UnitOfWork,
    ) -> std::result::Result<std::result::Result<(), Rejected>, StoreError> {
        self.store.commit(unit).await
    }
}
