//! Operator actions — shared by the admin API and the dashboard — and merchant creation.
//! Each commits its change and its audit row (who, what, when) in one unit of work.

use rust_decimal::Decimal;
use secrecy::SecretString;

use super::settle::{Applied, Via};
use super::{Error, Result, Service};
use crate::domain::lifecycle::{self, Input};
use crate::domain::{Currency, PaymentState};
use crate::keys::{generate_key, hash_key, key_prefix};
use crate::store::merchants::Merchant;
use crate::store::ops::RatePin;
use crate::store::unit::Write;
use crate::store::{Rejected, UnitOfWork, jobs, payments};

/// A merchant just created, with its key (shown once).
#[derive(Debug, Clone)]
pub struct NewMerchant {
    /// `mer_<uuid>`.
    pub merchant_id: String,
    /// Display name.
    pub name: String,
    /// The API key (`sk_…`), never printed by `Debug`.
    pub api_key: SecretString,
}

/// The writes creating merchant `name` with a fresh key, audited as `actor`.
pub(crate) fn merchant_writes(
    name: &str,
    actor: &str,
    now: crate::domain::Timestamp,
) -> (NewMerchant, Vec<Write>) {
    let merchant_id = format!("mer_{}", crate::idgen::v7());
    let api_key = generate_key("sk_");
    let writes = vec![
        Write::InsertMerchant {
            merchant: Merchant {
                merchant_id: merchant_id.clone(),
                name: name.to_owned(),
                created_at: now.millis(),
            },
            key_hash: hash_key(&api_key),
            key_prefix: key_prefix(&api_key),
        },
        audit(actor, "merchant.create", &merchant_id, name),
    ];
    (
        NewMerchant {
            merchant_id,
            name: name.to_owned(),
            api_key: SecretString::from(api_key),
        },
        writes,
    )
}

fn audit(actor: &str, action: &str, target: &str, detail: &str) -> Write {
    Write::Audit {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_owned(),
    }
}

fn unexpected(r: Rejected) -> Error {
    Error::Unavailable(format!("write rejected: {r}"))
}

/// Creates a merchant with its first API key, audited as `actor` — for callers without a
/// running service (the `corridor merchant create` command).
pub async fn create_merchant(
    store: &crate::store::Store,
    now: crate::domain::Timestamp,
    name: &str,
    actor: &str,
) -> Result<NewMerchant> {
    let mut unit = UnitOfWork::at(now);
    let (created, writes) = merchant_writes(name, actor, now);
    unit.extend(writes);
    store.commit(unit).await?.map_err(unexpected)?;
    tracing::info!(merchant_id = %created.merchant_id, actor, "merchant created");
    Ok(created)
}

/// How far from the market mid (in percent) an operator's pin may be.
pub const PIN_BAND_PERCENT: i64 = 20;

impl Service {
    /// Creates a merchant with its first API key.
    pub async fn create_merchant(&self, name: &str, actor: &str) -> Result<NewMerchant> {
        create_merchant(&self.store, self.clock.now(), name, actor).await
    }

    /// Re-runs the current step of a non-terminal payment now: its step job is made due, a
    /// dead one is redriven, a missing one is recreated.
    pub async fn retry_payment(&self, payment_id: &str, actor: &str) -> Result<PaymentState> {
        let p = payments::get(&self.store, payment_id)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        let effects = lifecycle::decide(&p, Input::OperatorRetry, &self.step_context(&p, 0))
            .map_err(|e| Error::InvalidState(e.to_string()))?;
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(audit(
            actor,
            "payment.retry",
            payment_id,
            &format!("state {}", p.state),
        ));
        match self.apply(&p, effects, Via::Operator, unit).await? {
            Applied::Written(_) => {}
            Applied::Rejected(Rejected::Stale) => {
                return Err(Error::InvalidState(
                    "the payment moved on while the retry was being made; look again".into(),
                ));
            }
            Applied::Rejected(r) => return Err(unexpected(r)),
        }
        tracing::info!(payment_id, actor, state = %p.state, "operator retried payment step");
        Ok(p.state)
    }

    /// Moves a dead job back to the queue with fresh attempts.
    pub async fn redrive_job(&self, job_id: &str, actor: &str) -> Result<()> {
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::Redrive {
            job_id: job_id.to_owned(),
        })
        .push(audit(actor, "job.redrive", job_id, ""));
        match self.commit(unit).await? {
            Ok(()) => {}
            Err(Rejected::Stale) => {
                return Err(if jobs::exists(&self.store, job_id).await? {
                    Error::InvalidState("only a dead job can be redriven".into())
                } else {
                    Error::NotFound("job")
                });
            }
            Err(r) => return Err(unexpected(r)),
        }
        tracing::info!(job_id, actor, "operator redrove dead job");
        Ok(())
    }

    /// Pins the customer rate of one direction for new quotes.
    pub async fn pin_rate(
        &self,
        from: Currency,
        to: Currency,
        rate: Decimal,
        actor: &str,
    ) -> Result<RatePin> {
        // A pin is the exact customer rate; one far from the market is a typo (a shifted
        // decimal point), and every payment quoted on it would pay out that far off.
        if let Some(mid) = self.rates.mid(from, to) {
            let band = mid * Decimal::new(PIN_BAND_PERCENT, 2);
            if (rate - mid).abs() > band {
                return Err(Error::Invalid {
                    field: "rate".into(),
                    message: format!(
                        "rate {rate} is more than {PIN_BAND_PERCENT}% away from the market mid {mid} for {from}/{to}"
                    ),
                });
            }
        }
        let now = self.clock.now();
        let pin = RatePin {
            from,
            to,
            rate: rate.normalize(),
            pinned_at: now,
        };
        let mut unit = UnitOfWork::at(now);
        unit.push(Write::PinRate(pin.clone())).push(audit(
            actor,
            "rate.pin",
            &format!("{from}/{to}"),
            &pin.rate.to_string(),
        ));
        self.commit(unit).await?.map_err(unexpected)?;
        tracing::info!(%from, %to, rate = %pin.rate, actor, "rate pinned");
        Ok(pin)
    }

    /// Removes a pin.
    pub async fn unpin_rate(&self, from: Currency, to: Currency, actor: &str) -> Result<()> {
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::UnpinRate { from, to }).push(audit(
            actor,
            "rate.unpin",
            &format!("{from}/{to}"),
            "",
        ));
        match self.commit(unit).await? {
            Ok(()) => {}
            Err(Rejected::NotFound) => return Err(Error::NotFound("rate pin")),
            Err(r) => return Err(unexpected(r)),
        }
        tracing::info!(%from, %to, actor, "rate unpinned");
        Ok(())
    }

    /// Replaces a merchant's API keys with a new one (the old stops at once); returns it.
    pub async fn rotate_merchant_key(&self, merchant_id: &str, actor: &str) -> Result<String> {
        let key = generate_key("sk_");
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::RotateMerchantKey {
            merchant_id: merchant_id.to_owned(),
            key_hash: hash_key(&key),
            key_prefix: key_prefix(&key),
        })
        .push(audit(actor, "merchant.rotate_key", merchant_id, ""));
        match self.commit(unit).await? {
            Ok(()) => {}
            Err(Rejected::NotFound) => return Err(Error::NotFound("merchant")),
            Err(r) => return Err(unexpected(r)),
        }
        tracing::info!(merchant_id, actor, "merchant key rotated");
        Ok(key)
    }

    /// Starts an operator's dashboard session (the token's hash is stored, valid for
    /// `valid_ms`), purging expired ones on the way.
    pub async fn start_dashboard_session(&self, token_hash: &str, valid_ms: i64) -> Result<()> {
        let now = self.clock.now();
        let mut unit = UnitOfWork::at(now);
        unit.push(Write::CreateSession {
            token_hash: token_hash.to_owned(),
            expires_at: now.plus_millis(valid_ms),
        });
        self.commit(unit).await?.map_err(unexpected)
    }

    /// Ends a dashboard session.
    pub async fn end_dashboard_session(&self, token_hash: &str) -> Result<()> {
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::DeleteSession {
            token_hash: token_hash.to_owned(),
        });
        self.commit(unit).await?.map_err(unexpected)
    }
}
