//! Reconciliation: compare what the ledger says each provider leg moved with what the
//! providers' statements say (the rule is `domain::reconcile`), as a run an operator asks for
//! or the recurring job starts, performed by a queue job.

use std::collections::BTreeSet;

use super::{Error, Service};
use crate::domain::Timestamp;
use crate::domain::reconcile::{self, Line, Outcome};
use crate::domain::task::Task;
use crate::providers::ProviderError;
use crate::store::jobs::NewJob;
use crate::store::payments;
use crate::store::reconciliations::Reconciliation;
use crate::store::unit::Write;
use crate::store::{UnitOfWork, ledger};

/// How far beyond the window a provider's statement is read: a transfer the provider dated
/// just outside it whose ledger side is inside is still paired, not reported missing.
const STATEMENT_MARGIN_MS: i64 = 3_600_000;

/// A new pending run over `[from, to)` and the job that performs it, as one unit's writes.
pub fn start_writes(
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    max_attempts: i64,
) -> (Reconciliation, Vec<Write>) {
    let r = Reconciliation {
        reconciliation_id: format!("recon_{}", crate::idgen::v7()),
        status: "PENDING".into(),
        from,
        to,
        created_at: now,
        finished_at: None,
        checked: 0,
        matched: 0,
        mismatches: "[]".into(),
        error: None,
    };
    let job = NewJob::new(
        Task::Reconcile {
            reconciliation_id: r.reconciliation_id.clone(),
        },
        None,
        now,
        max_attempts,
    );
    (
        r.clone(),
        vec![Write::InsertReconciliation(r), Write::Enqueue(job)],
    )
}

/// Why a run could not compare.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A provider cannot give a statement at all: the run fails with this reason.
    #[error("{0}")]
    Unsupported(String),
    /// A provider or the database is unavailable now: the job retries.
    #[error("{0}")]
    Unavailable(String),
}

impl From<Error> for ReconcileError {
    fn from(e: Error) -> Self {
        ReconcileError::Unavailable(e.to_string())
    }
}

impl From<crate::store::StoreError> for ReconcileError {
    fn from(e: crate::store::StoreError) -> Self {
        ReconcileError::Unavailable(e.to_string())
    }
}

fn statement_error(e: ProviderError) -> ReconcileError {
    match e {
        ProviderError::Refused(m) => ReconcileError::Unsupported(m),
        other => ReconcileError::Unavailable(other.to_string()),
    }
}

impl Service {
    /// Starts a reconciliation of `[from, to)`: the run and its job commit together, so a
    /// run that is acknowledged is performed.
    pub async fn start_reconciliation(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Reconciliation, Error> {
        let now = self.clock.now();
        let (r, writes) = start_writes(from, to, now, self.settings.job_max_attempts);
        let mut unit = UnitOfWork::at(now);
        unit.extend(writes);
        self.commit(unit)
            .await?
            .map_err(|r| Error::Unavailable(r.to_string()))?;
        Ok(r)
    }

    /// Compares the ledger's legs of the payments touched in `[from, to)` with both
    /// providers' statements.
    pub async fn reconcile(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Outcome, ReconcileError> {
        let (wide_from, wide_to) = (
            Timestamp(from.millis().saturating_sub(STATEMENT_MARGIN_MS)),
            to.plus_millis(STATEMENT_MARGIN_MS),
        );
        let mut theirs: Vec<Line> = self
            .providers
            .onramp
            .statement(wide_from, wide_to)
            .await
            .map_err(statement_error)?;
        theirs.extend(
            self.providers
                .offramp
                .statement(wide_from, wide_to)
                .await
                .map_err(statement_error)?,
        );
        let mut ids: BTreeSet<String> = ledger::payments_opened_between(&self.store, from, to)
            .await?
            .into_iter()
            .collect();
        ids.extend(theirs.iter().map(|l| l.payment_id.clone()));
        let ids: Vec<String> = ids.into_iter().collect();
        let mut by_payment: std::collections::BTreeMap<
            String,
            Vec<crate::domain::ledger::Transfer>,
        > = std::collections::BTreeMap::new();
        for t in ledger::of_payments(&self.store, &ids).await? {
            by_payment.entry(t.payment_id).or_default().push(t.transfer);
        }
        let ours: Vec<Line> = by_payment
            .iter()
            .flat_map(|(id, ts)| reconcile::ours(id, ts))
            .collect();
        // A provider line without ours is in flight while its payment is not final (the
        // transfer may be made and its step not yet committed).
        let recorded: BTreeSet<(&str, reconcile::LegKind)> = ours
            .iter()
            .map(|o| (o.payment_id.as_str(), o.leg))
            .collect();
        let unpaired: BTreeSet<String> = theirs
            .iter()
            .filter(|l| !recorded.contains(&(l.payment_id.as_str(), l.leg)))
            .map(|l| l.payment_id.clone())
            .collect();
        let mut moving = BTreeSet::new();
        for id in unpaired {
            if payments::get(&self.store, &id)
                .await?
                .is_some_and(|p| !p.state.is_terminal())
            {
                moving.insert(id);
            }
        }
        Ok(reconcile::compare(ours, theirs, &|id| moving.contains(id)))
    }
}
