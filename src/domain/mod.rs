//! The pure core: money, currencies, fees, rates, quotes and the payment state machine.
//!
//! Nothing here performs I/O, awaits, or reads a clock: time is passed in as a
//! [`Timestamp`], so every rule can be tested (and later simulated) deterministically.
//! Each business rule lives in exactly one module below.

pub mod backoff;
pub mod corridor;
pub mod currency;
pub mod fees;
pub mod ids;
pub mod ledger;
pub mod lifecycle;
pub mod money;
pub mod payment;
pub mod quote;
pub mod rates;
pub mod reconcile;
pub mod task;
pub mod time;

pub use corridor::{Corridor, CorridorTable};
pub use currency::Currency;
pub use fees::{FeeBreakdown, FeeSchedule, FeeTier, LegFees};
pub use money::{Money, MoneyError};
pub use payment::{
    FailureCode, HistoryEntry, Leg, LegStatus, PaymentRecord, PaymentState, Side, TransferStatus,
};
pub use quote::{QuoteError, QuoteTerms, price_quote};
pub use rates::{RateTable, customer_rate};
pub use time::Timestamp;
