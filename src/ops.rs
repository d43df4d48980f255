//! Operator actions, shared by the admin API and the dashboard. Each is recorded in the
//! admin audit log with who did it and when.

use rust_decimal::Decimal;

use crate::domain::{Currency, PaymentState, Timestamp};
use crate::engine::steps;
use crate::store::jobs;
use crate::store::ops::{self as ops_store, RatePin};
use crate::store::{Store, StoreError, merchants, payments};

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No such payment, job, merchant or pin.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The action does not apply now.
    #[error("{0}")]
    InvalidState(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OpsError {
    fn from(e: sqlx::Error) -> Self {
        OpsError::Store(e.into())
    }
}

/// Re-runs the current step of a non-terminal payment now: its pending step job is made due,
/// a dead one is redriven, and a missing one is recreated.
pub async fn retry_payment(
    store: &Store,
    payment_id: &str,
    actor: &str,
    now: Timestamp,
    max_attempts: i64,
) -> Result<PaymentState, OpsError> {
    let mut tx = store.begin().await?;
    let p = payments::get(&mut tx, payment_id)
        .await?
        .ok_or(OpsError::NotFound("payment"))?;
    if p.state.is_terminal() {
        return Err(OpsError::InvalidState(format!(
            "payment is {} (terminal)",
            p.state
        )));
    }
    match jobs::step_job_any_state(&mut tx, payment_id, steps::KIND).await? {
        Some(id) => jobs::force_due(&mut tx, &id, now, &steps::step_payload(p.state, 0)).await?,
        None => steps::enqueue_step(&mut tx, payment_id, p.state, 0, now, max_attempts).await?,
    }
    jobs::announce(&mut tx).await?;
    ops_store::audit(
        &mut tx,
        actor,
        "payment.retry",
        payment_id,
        &format!("state {}", p.state),
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(payment_id, actor, state = %p.state, "operator retried payment step");
    Ok(p.state)
}

/// Moves a dead job back to the queue with fresh attempts.
pub async fn redrive_job(
    store: &Store,
    job_id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<(), OpsError> {
    let mut tx = store.begin().await?;
    match jobs::redrive(&mut tx, job_id, now).await? {
        None => return Err(OpsError::NotFound("job")),
        Some(false) => {
            return Err(OpsError::InvalidState(
                "only a dead job can be redriven".into(),
            ));
        }
        Some(true) => {}
    }
    jobs::announce(&mut tx).await?;
    ops_store::audit(&mut tx, actor, "job.redrive", job_id, "", now).await?;
    tx.commit().await?;
    tracing::info!(job_id, actor, "operator redrove dead job");
    Ok(())
}

/// Pins the customer rate of one direction for new quotes.
pub async fn pin_rate(
    store: &Store,
    from: Currency,
    to: Currency,
    rate: Decimal,
    actor: &str,
    now: Timestamp,
) -> Result<RatePin, OpsError> {
    let pin = RatePin {
        from,
        to,
        rate: rate.normalize(),
        pinned_at: now,
    };
    let mut tx = store.begin().await?;
    ops_store::pin_rate(&mut tx, &pin).await?;
    ops_store::audit(
        &mut tx,
        actor,
        "rate.pin",
        &format!("{from}/{to}"),
        &pin.rate.to_string(),
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%from, %to, rate = %pin.rate, actor, "rate pinned");
    Ok(pin)
}

/// Removes a pin.
pub async fn unpin_rate(
    store: &Store,
    from: Currency,
    to: Currency,
    actor: &str,
    now: Timestamp,
) -> Result<(), OpsError> {
    let mut tx = store.begin().await?;
    if !ops_store::unpin_rate(&mut tx, from, to).await? {
        return Err(OpsError::NotFound("rate pin"));
    }
    ops_store::audit(
        &mut tx,
        actor,
        "rate.unpin",
        &format!("{from}/{to}"),
        "",
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%from, %to, actor, "rate unpinned");
    Ok(())
}

/// Replaces a merchant's API keys with a new one; returns the new key.
pub async fn rotate_merchant_key(
    store: &Store,
    merchant_id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<String, OpsError> {
    let key = crate::api::auth::generate_key("sk_");
    let mut tx = store.begin().await?;
    let done = merchants::rotate_key(
        &mut tx,
        merchant_id,
        &crate::api::auth::hash_key(&key),
        &crate::api::auth::key_prefix(&key),
        now.millis(),
    )
    .await?;
    if !done {
        return Err(OpsError::NotFound("merchant"));
    }
    ops_store::audit(&mut tx, actor, "merchant.rotate_key", merchant_id, "", now).await?;
    tx.commit().await?;
    tracing::info!(merchant_id, actor, "merchant key rotated");
    Ok(key)
}
