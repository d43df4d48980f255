//! The unit-of-work seam, on real SQLite and real PostgreSQL: a unit commits whole, a guard
//! that does not hold rejects it whole (nothing of it is written), and the guards that keep
//! payments exact — the quote's single use, the idempotency key, the state compare-and-set,
//! cancel's unclaimed rule and the lease fence — hold against a second writer.

mod testdb;

use std::collections::BTreeMap;

use corridor::domain::lifecycle::Change;
use corridor::domain::task::Task;
use corridor::domain::{
    Currency, FeeBreakdown, Leg, LegStatus, PaymentRecord, PaymentState, QuoteTerms, Side,
    Timestamp,
};
use corridor::store::idempotency::{self, Response, Stored};
use corridor::store::jobs;
use corridor::store::payments::{self, Transition};
use corridor::store::quotes::{self, QuoteRecord};
use corridor::store::unit::Write;
use corridor::store::{PoolConfig, Rejected, Store, UnitOfWork};

const NOW: Timestamp = Timestamp(1_800_000_000_000);

/// The stores under test: a temporary SQLite file, and a fresh PostgreSQL database unless
/// PostgreSQL tests are skipped on purpose. The guards keep the SQLite directory and the
/// PostgreSQL database alive.
struct Backends {
    stores: Vec<(&'static str, Store)>,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
    _pg: Option<testdb::PgDatabase>,
}

async fn backends() -> Backends {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("corridor.db").display());
    let mut stores = vec![("sqlite", connect(&sqlite).await)];
    let mut urls = vec![sqlite];
    let pg = testdb::PgDatabase::create().await;
    if let Some(db) = &pg {
        stores.push(("postgres", connect(&db.url).await));
        urls.push(db.url.clone());
    }
    Backends {
        stores,
        urls,
        _dir: dir,
        _pg: pg,
    }
}

async fn connect(url: &str) -> Store {
    let store = Store::connect(
        url,
        PoolConfig {
            max_connections: 3,
            ..PoolConfig::default()
        },
    )
    .await
    .expect("store connects");
    store.migrate().await.expect("migrations apply");
    store
}

fn quote(id: &str) -> QuoteRecord {
    QuoteRecord {
        quote_id: id.to_owned(),
        merchant_id: "mer_1".into(),
        from: Currency::USD,
        to: "EUR".parse().unwrap(),
        mid_rate: "0.9251".parse().unwrap(),
        terms: QuoteTerms {
            amount: 100_000,
            fees: FeeBreakdown {
                platform: 2_100,
                onramp: 1_050,
                offramp: 1_575,
            },
            total_fees: 4_725,
            rate: "0.9204745".parse().unwrap(),
            payout: 87_698,
            created_at: NOW,
            expires_at: NOW.plus_millis(60_000),
        },
        payment_id: None,
    }
}

fn payment(id: &str, quote_id: &str) -> PaymentRecord {
    PaymentRecord {
        payment_id: id.to_owned(),
        merchant_id: "mer_1".into(),
        quote_id: quote_id.to_owned(),
        state: PaymentState::Pending,
        version: 1,
        amount: 100_000,
        currency: Currency::USD,
        payout_amount: 87_698,
        payout_currency: "EUR".parse().unwrap(),
        exchange_rate: "0.9204745".parse().unwrap(),
        mid_rate: "0.9251".parse().unwrap(),
        fees: FeeBreakdown {
            platform: 2_100,
            onramp: 1_050,
            offramp: 1_575,
        },
        total_fees: 4_725,
        source_account: "src".into(),
        destination_account: "dst".into(),
        metadata: BTreeMap::new(),
        created_at: NOW,
        updated_at: NOW,
        state_since: NOW,
        completed_at: None,
        onramp_claimed_at: None,
        failure: None,
        onramp: None,
        offramp: None,
        executed_rate: None,
        reversal_reference: None,
        refund_amount: None,
    }
}

fn answer(key: &str, body: &str) -> Write {
    Write::SaveResponse(Response {
        merchant_id: "mer_1".into(),
        key: key.to_owned(),
        request_hash: "h".into(),
        status: 202,
        body: body.to_owned(),
    })
}

/// The unit payment creation builds: quote used, payment, first step job, idempotent answer.
fn accept(payment_id: &str, quote_id: &str, key: &str) -> UnitOfWork {
    let mut unit = UnitOfWork::at(NOW);
    unit.push(Write::MarkQuoteUsed {
        quote_id: quote_id.to_owned(),
        payment_id: payment_id.to_owned(),
    })
    .push(Write::InsertPayment(Box::new(payment(
        payment_id, quote_id,
    ))))
    .push(Write::ScheduleStep {
        payment_id: payment_id.to_owned(),
        running: None,
        task: Task::step(PaymentState::Pending),
        run_at: NOW,
        max_attempts: 8,
    })
    .push(answer(key, payment_id));
    unit
}

async fn commit(store: &Store, unit: UnitOfWork) -> Result<(), Rejected> {
    store.commit(unit).await.expect("the database answers")
}

async fn insert_quote(store: &Store, id: &str) {
    let mut unit = UnitOfWork::at(NOW);
    unit.push(Write::InsertQuote(quote(id)));
    commit(store, unit).await.expect("a new quote is inserted");
}

#[tokio::test]
async fn a_committed_unit_is_all_there() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_a").await;
        let unit = accept("pay_a", "quote_a", "key-a");
        assert!(unit.wakes_workers(), "{name}: a due step job wakes workers");
        commit(store, unit).await.unwrap();

        let p = payments::get(store, "pay_a")
            .await
            .unwrap()
            .expect("payment");
        assert_eq!(p.state, PaymentState::Pending, "{name}");
        assert_eq!(p.amount, 100_000, "{name}");
        let h = payments::history(store, "pay_a").await.unwrap();
        assert_eq!(h.len(), 1, "{name}: the first history row");
        let q = quotes::find(store, "mer_1", "quote_a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.payment_id.as_deref(), Some("pay_a"), "{name}");
        assert_eq!(jobs::count_for_payment(store, "pay_a").await.unwrap(), 1);
        assert_eq!(
            idempotency::lookup(store, "mer_1", "key-a").await.unwrap(),
            Some(Stored::Response {
                request_hash: "h".into(),
                status: 202,
                body: "pay_a".into()
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_unit_whose_guard_fails_writes_nothing() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_b").await;
        commit(store, accept("pay_b1", "quote_b", "key-b1"))
            .await
            .unwrap();
        // A second payment for the same quote: the quote guard fails after nothing else did,
        // and every write of the unit — even the ones before the guard — is gone.
        let mut unit = UnitOfWork::at(NOW);
        unit.push(Write::InsertQuote(quote("quote_c")))
            .push(Write::InsertPayment(Box::new(payment("pay_b2", "quote_c"))))
            .push(Write::MarkQuoteUsed {
                quote_id: "quote_b".into(),
                payment_id: "pay_b2".into(),
            });
        assert_eq!(
            commit(store, unit).await,
            Err(Rejected::QuoteUsed),
            "{name}"
        );
        assert!(
            payments::get(store, "pay_b2").await.unwrap().is_none(),
            "{name}"
        );
        assert!(
            quotes::find(store, "mer_1", "quote_c")
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        let q = quotes::find(store, "mer_1", "quote_b")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.payment_id.as_deref(), Some("pay_b1"), "{name}");
    }
}

#[tokio::test]
async fn of_two_units_with_one_idempotency_key_exactly_one_commits() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_d1").await;
        insert_quote(store, "quote_d2").await;
        let (first, second) = tokio::join!(
            commit(store, accept("pay_d1", "quote_d1", "same-key")),
            commit(store, accept("pay_d2", "quote_d2", "same-key")),
        );
        let mut outcomes = [first, second];
        outcomes.sort_by_key(|o| o.is_err());
        assert_eq!(
            outcomes,
            [Ok(()), Err(Rejected::IdempotencyKeyTaken)],
            "{name}"
        );
        let d1 = payments::get(store, "pay_d1").await.unwrap().is_some();
        let d2 = payments::get(store, "pay_d2").await.unwrap().is_some();
        assert!(d1 ^ d2, "{name}: exactly one payment exists");
        let loser_quote = if d1 { "quote_d2" } else { "quote_d1" };
        let q = quotes::find(store, "mer_1", loser_quote)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.payment_id, None, "{name}: the loser's quote stays unused");
    }
}

fn transition(payment_id: &str, from: PaymentState, to: PaymentState) -> Transition {
    Transition {
        payment_id: payment_id.to_owned(),
        from,
        to,
        at: NOW.plus_millis(10),
        reason: "test".into(),
        changes: vec![Change::LegInitiated(
            Side::Onramp,
            Leg {
                provider: "sim-onramp".into(),
                reference: "ref_1".into(),
                status: LegStatus::Pending,
                amount: 952_750_000,
            },
        )],
        unclaimed_only: false,
    }
}

#[tokio::test]
async fn a_transition_commits_once_and_cancel_loses_to_a_claimed_onramp() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_e").await;
        commit(store, accept("pay_e", "quote_e", "key-e"))
            .await
            .unwrap();
        // A worker claims the onramp: cancel's compare-and-set can no longer win.
        let mut claim = UnitOfWork::at(NOW);
        claim.push(Write::ClaimOnramp {
            payment_id: "pay_e".into(),
        });
        commit(store, claim).await.unwrap();
        let mut cancel = UnitOfWork::at(NOW);
        cancel.push(Write::Transition(Transition {
            unclaimed_only: true,
            changes: vec![],
            ..transition("pay_e", PaymentState::Pending, PaymentState::Cancelled)
        }));
        assert_eq!(commit(store, cancel).await, Err(Rejected::Stale), "{name}");

        let go = || {
            let mut unit = UnitOfWork::at(NOW);
            unit.push(Write::Transition(transition(
                "pay_e",
                PaymentState::Pending,
                PaymentState::OnrampPending,
            )));
            unit
        };
        commit(store, go()).await.unwrap();
        assert_eq!(commit(store, go()).await, Err(Rejected::Stale), "{name}");
        let p = payments::get(store, "pay_e").await.unwrap().unwrap();
        assert_eq!(p.state, PaymentState::OnrampPending, "{name}");
        assert_eq!(p.version, 2, "{name}");
        assert_eq!(p.onramp.unwrap().reference, "ref_1", "{name}");
        let h = payments::history(store, "pay_e").await.unwrap();
        assert_eq!(
            h.iter().map(|e| e.to).collect::<Vec<_>>(),
            [PaymentState::Pending, PaymentState::OnrampPending],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_writes_nothing() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_f").await;
        commit(store, accept("pay_f", "quote_f", "key-f"))
            .await
            .unwrap();
        let lease_end = NOW.plus_millis(30_000);
        let mut claimed = jobs::claim(store, "worker_a", NOW, lease_end, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{name}");
        let job = claimed.remove(0);
        assert_eq!(job.task, Ok(Task::step(PaymentState::Pending)), "{name}");
        // The lease runs out and another worker takes the job over.
        let later = lease_end.plus_millis(1);
        let taken = jobs::claim(store, "worker_b", later, later.plus_millis(30_000), 10)
            .await
            .unwrap();
        assert_eq!(taken.len(), 1, "{name}");

        let mut stale = UnitOfWork::at(later);
        stale
            .push(Write::HoldLease(job.lease.clone()))
            .push(Write::Transition(transition(
                "pay_f",
                PaymentState::Pending,
                PaymentState::OnrampPending,
            )))
            .push(Write::CompleteJob {
                job_id: job.id.clone(),
            });
        assert_eq!(
            commit(store, stale).await,
            Err(Rejected::LeaseLost),
            "{name}"
        );
        let p = payments::get(store, "pay_f").await.unwrap().unwrap();
        assert_eq!(
            p.state,
            PaymentState::Pending,
            "{name}: nothing was written"
        );
        assert_eq!(jobs::count_for_payment(store, "pay_f").await.unwrap(), 1);

        let mut held = UnitOfWork::at(later);
        held.push(Write::HoldLease(taken[0].lease.clone()))
            .push(Write::CompleteJob {
                job_id: taken[0].id.clone(),
            });
        commit(store, held).await.unwrap();
        assert_eq!(jobs::count_for_payment(store, "pay_f").await.unwrap(), 0);
    }
}

/// A step's unit carries no separate lease check: the job write at its end (reschedule,
/// removal) is fenced by the lease in its own `WHERE`, and a lost lease there undoes the whole
/// unit — the transition written before it included.
#[tokio::test]
async fn a_lease_fence_in_the_job_write_undoes_the_whole_unit() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_g").await;
        commit(store, accept("pay_g", "quote_g", "key-g"))
            .await
            .unwrap();
        let lease_end = NOW.plus_millis(30_000);
        let job = jobs::claim(store, "worker_a", NOW, lease_end, 10)
            .await
            .unwrap()
            .remove(0);
        let later = lease_end.plus_millis(1);
        let taken = jobs::claim(store, "worker_b", later, later.plus_millis(30_000), 10)
            .await
            .unwrap()
            .remove(0);
        let step = |lease: &jobs::Lease, done: bool| {
            let mut unit = UnitOfWork::at(later);
            unit.push(Write::Transition(transition(
                "pay_g",
                PaymentState::Pending,
                PaymentState::OnrampPending,
            )));
            if done {
                unit.push(Write::CompleteHeld(lease.clone()));
            } else {
                unit.push(Write::ScheduleStep {
                    payment_id: "pay_g".into(),
                    running: Some(lease.clone()),
                    task: Task::step(PaymentState::OnrampPending),
                    run_at: later.plus_millis(1_000),
                    max_attempts: 8,
                });
            }
            unit
        };
        for done in [false, true] {
            assert_eq!(
                commit(store, step(&job.lease, done)).await,
                Err(Rejected::LeaseLost),
                "{name}: the old holder (done: {done})"
            );
            let p = payments::get(store, "pay_g").await.unwrap().unwrap();
            assert_eq!(
                p.state,
                PaymentState::Pending,
                "{name}: nothing was written"
            );
            assert_eq!(jobs::count_for_payment(store, "pay_g").await.unwrap(), 1);
        }
        // The new holder's unit commits, and its job is rescheduled with the next step.
        commit(store, step(&taken.lease, false)).await.unwrap();
        let p = payments::get(store, "pay_g").await.unwrap().unwrap();
        assert_eq!(p.state, PaymentState::OnrampPending, "{name}");
        assert_eq!(jobs::count_for_payment(store, "pay_g").await.unwrap(), 1);
    }
}

/// Many units committed at once (on SQLite they share one group commit): each rejected or
/// failing unit is undone alone, every other one is written — and exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_crowd_of_units_each_one_commits_or_fails_alone() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_dup").await;
        let units = (0..60).map(|i| {
            let mut unit = UnitOfWork::at(NOW);
            match i % 4 {
                // A fresh quote: commits.
                0 => unit.push(Write::InsertQuote(quote(&format!("quote_g{i}")))),
                // A guard that fails: the quote it inserted first goes with it.
                1 => unit
                    .push(Write::InsertQuote(quote(&format!("quote_g{i}"))))
                    .push(Write::UnpinRate {
                        from: Currency::USD,
                        to: "EUR".parse().unwrap(),
                    }),
                // A constraint violation (the quote id exists): an error for this unit only.
                2 => unit
                    .push(Write::InsertQuote(quote(&format!("quote_g{i}"))))
                    .push(Write::InsertQuote(quote("quote_dup"))),
                // A write the store refuses outright (a transition the table forbids): the
                // unit fails alone, the rest of its batch commits without it.
                _ => unit
                    .push(Write::InsertQuote(quote(&format!("quote_g{i}"))))
                    .push(Write::Transition(transition(
                        "pay_nope",
                        PaymentState::Completed,
                        PaymentState::Pending,
                    ))),
            };
            let store = store.clone();
            tokio::spawn(async move { store.commit(unit).await })
        });
        let outcomes = futures::future::join_all(units).await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome.expect("task");
            match i % 4 {
                0 => assert!(
                    matches!(outcome, Ok(Ok(()))),
                    "{name} unit {i}: {outcome:?}"
                ),
                1 => assert!(
                    matches!(outcome, Ok(Err(Rejected::NotFound))),
                    "{name} unit {i}: {outcome:?}"
                ),
                _ => assert!(outcome.is_err(), "{name} unit {i}: {outcome:?}"),
            }
            let exists = quotes::find(store, "mer_1", &format!("quote_g{i}"))
                .await
                .unwrap()
                .is_some();
            assert_eq!(exists, i % 4 == 0, "{name}: quote of unit {i}");
        }
    }
}

/// Units that wait together commit together (SQLite's group commit, PostgreSQL's batching),
/// and a unit rejected by its first write stays in its batch without spoiling it: each gets
/// its own answer, and exactly the accepted ones are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_waiting_together_share_a_commit_and_a_clean_rejection_stays_apart() {
    let b = backends().await;
    for (name, store) in &b.stores {
        let before = store.units_committed_together();
        let units = (0..200).map(|i| {
            let mut unit = UnitOfWork::at(NOW);
            if i % 5 == 4 {
                // Rejected by its first (and only) write: nothing of it was written.
                unit.push(Write::UnpinRate {
                    from: Currency::USD,
                    to: "EUR".parse().unwrap(),
                });
            } else {
                unit.push(Write::InsertQuote(quote(&format!("quote_t{i}"))));
            }
            let store = store.clone();
            tokio::spawn(async move { store.commit(unit).await })
        });
        let outcomes = futures::future::join_all(units).await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome.expect("task");
            if i % 5 == 4 {
                assert!(
                    matches!(outcome, Ok(Err(Rejected::NotFound))),
                    "{name} unit {i}: {outcome:?}"
                );
            } else {
                assert!(
                    matches!(outcome, Ok(Ok(()))),
                    "{name} unit {i}: {outcome:?}"
                );
            }
            let exists = quotes::find(store, "mer_1", &format!("quote_t{i}"))
                .await
                .unwrap()
                .is_some();
            assert_eq!(exists, i % 5 != 4, "{name}: quote of unit {i}");
        }
        assert!(
            store.units_committed_together() > before,
            "{name}: 200 units sent at once never shared a commit"
        );
    }
}

/// A decision that changes nothing on the payment (an operator's retry) holds only while the
/// payment is in the state it was decided on.
#[tokio::test]
async fn a_unit_expecting_a_state_the_payment_left_is_rejected() {
    let b = backends().await;
    for (name, store) in &b.stores {
        insert_quote(store, "quote_h").await;
        commit(store, accept("pay_h", "quote_h", "key-h"))
            .await
            .unwrap();
        let expect = |state| {
            let mut unit = UnitOfWork::at(NOW);
            unit.push(Write::ExpectState {
                payment_id: "pay_h".into(),
                state,
            })
            .push(Write::ScheduleStep {
                payment_id: "pay_h".into(),
                running: None,
                task: Task::step(state),
                run_at: NOW,
                max_attempts: 8,
            });
            unit
        };
        assert_eq!(
            commit(store, expect(PaymentState::OnrampPending)).await,
            Err(Rejected::Stale),
            "{name}"
        );
        let claimed = jobs::claim(store, "w", NOW, NOW.plus_millis(1_000), 10)
            .await
            .unwrap();
        assert_eq!(
            claimed[0].task,
            Ok(Task::step(PaymentState::Pending)),
            "{name}: the step job was left as it was"
        );
        assert_eq!(
            commit(store, expect(PaymentState::Pending)).await,
            Ok(()),
            "{name}"
        );
    }
}

/// A key claimed by the previous version and never answered (its holder crashed) blocks
/// retries only until its lock runs out; then the next request's answer takes it over.
#[tokio::test]
async fn an_unanswered_claim_left_by_the_previous_version_is_taken_over_after_its_lock() {
    let b = backends().await;
    for ((name, store), url) in b.stores.iter().zip(&b.urls) {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        for (key, locked_until) in [("stale", NOW.millis() - 1), ("live", NOW.millis() + 60_000)] {
            sqlx::query(
                "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, locked_until, created_at) \
                 VALUES ('mer_1', $1, 'h', $2, $3)",
            )
            .bind(key)
            .bind(locked_until)
            .bind(NOW.millis())
            .execute(&mut conn)
            .await
            .unwrap();
        }
        let save = |key: &str| {
            let mut unit = UnitOfWork::at(NOW);
            unit.push(answer(key, "taken over"));
            unit
        };
        assert_eq!(commit(store, save("stale")).await, Ok(()), "{name}");
        assert!(
            matches!(
                idempotency::lookup(store, "mer_1", "stale").await.unwrap(),
                Some(Stored::Response { status: 202, .. })
            ),
            "{name}"
        );
        assert_eq!(
            commit(store, save("live")).await,
            Err(Rejected::IdempotencyKeyTaken),
            "{name}"
        );
    }
}

/// Housekeeping purges events, delivery attempts and cleared alerts past their retention
/// and keeps everything younger (and every open alert).
#[tokio::test]
async fn the_history_past_its_retention_is_purged_and_the_rest_kept() {
    use corridor::store::ops::{self, Alert};
    use corridor::store::webhooks::{self, Delivery, Endpoint, Event};
    let b = backends().await;
    let day = 86_400_000;
    for (name, store) in &b.stores {
        let mut unit = UnitOfWork::at(NOW);
        unit.push(Write::InsertEndpoint(Endpoint {
            endpoint_id: "we_1".into(),
            merchant_id: "mer_1".into(),
            url: "https://example.com/hook".into(),
            events: vec![],
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned().into(),
            previous_secret: None,
            previous_secret_until: None,
            disabled_at: None,
            created_at: NOW,
        }));
        for (id, age) in [("old", 40 * day), ("new", day)] {
            let at = Timestamp(NOW.millis() - age);
            unit.push(Write::RecordEvent(
                Event {
                    event_id: format!("evt_{id}"),
                    merchant_id: "mer_1".into(),
                    payment_id: None,
                    event_type: "payment.completed".into(),
                    body: "{}".into(),
                    created_at: at,
                }
                .into(),
            ))
            .push(Write::InsertDelivery(Delivery {
                delivery_id: format!("whd_{id}"),
                event_id: format!("evt_{id}"),
                endpoint_id: "we_1".into(),
                merchant_id: "mer_1".into(),
                payment_id: None,
                event_type: "payment.completed".into(),
                attempt: 1,
                status_code: Some(200),
                error: None,
                duration_ms: 5,
                created_at: at,
            }));
        }
        commit(store, unit).await.expect("history written");
        for (id, age) in [
            ("cleared_old", 40 * day),
            ("cleared_new", day),
            ("open_old", 40 * day),
        ] {
            let mut raise = UnitOfWork::at(Timestamp(NOW.millis() - age));
            raise.push(Write::RaiseAlert(Alert {
                alert_id: format!("alert_{id}"),
                kind: ops::STUCK_PAYMENT.into(),
                subject: id.into(),
                payment_id: None,
                endpoint_id: None,
                job_id: None,
                message: "stuck".into(),
                since: Timestamp(NOW.millis() - age),
            }));
            if id.starts_with("cleared") {
                raise.push(Write::ClearAlert {
                    alert_id: format!("alert_{id}"),
                });
            }
            commit(store, raise).await.expect("alert written");
        }
        let mut purge = UnitOfWork::at(NOW);
        purge.push(Write::Purge {
            cutoff: Timestamp(NOW.millis() - day / 2),
            history_cutoff: Timestamp(NOW.millis() - 30 * day),
        });
        commit(store, purge).await.expect("purge commits");

        assert!(
            webhooks::get_event(store, "evt_old")
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(
            webhooks::get_event(store, "evt_new")
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        let log = webhooks::list_deliveries(store, "mer_1", None, None, 10)
            .await
            .unwrap();
        let ids: Vec<_> = log.iter().map(|d| d.delivery_id.as_str()).collect();
        assert_eq!(ids, ["whd_new"], "{name}");
        let url = &b.urls[b.stores.iter().position(|(n, _)| n == name).unwrap()];
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let mut left: Vec<String> = sqlx::query_scalar("SELECT alert_id FROM alerts")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        left.sort();
        assert_eq!(left, ["alert_cleared_new", "alert_open_old"], "{name}");
    }
}

/// The claims are the queue's hot queries: each lane's must be a range of an index, never a
/// walk through the other lane's backlog (a delivery claim scanning every due payment step
/// slowed the single SQLite writer to a crawl under a backlog).
#[tokio::test]
async fn each_lanes_claim_is_an_index_range_on_sqlite() {
    use corridor::store::Backend;
    use corridor::store::jobs::{Lane, claim_sql};
    let b = backends().await;
    let url = &b.urls[0];
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    for (lane, index) in [
        (Lane::Deliveries, "jobs_delivery_ready"),
        (Lane::Steps, "jobs_ready"),
        (Lane::Any, "jobs_ready"),
    ] {
        let sql = format!("EXPLAIN QUERY PLAN {}", claim_sql(lane, Backend::Sqlite));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|l| l.contains(&format!("USING INDEX {index} "))),
            "{lane:?}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|l| l.starts_with("SCAN jobs")),
            "{lane:?} scans the jobs table: {plan:?}"
        );
    }
}

/// `EXPLAIN QUERY PLAN` of `sql` on the SQLite file at `url`, one line per step.
async fn sqlite_plan(url: &str, sql: &str) -> Vec<String> {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
        .collect()
}

#[tokio::test]
async fn lookups_by_reference_and_the_reconciliation_window_use_the_partial_indexes() {
    // The indexes hold only rows with a reference (a leg's line, for the ledger): the
    // lookups must still be able to use them, or they would scan every payment.
    let b = backends().await;
    for (sql, index) in [
        (
            "SELECT payment_id FROM payments WHERE onramp_provider = $1 AND onramp_reference = $2",
            "payments_onramp_reference",
        ),
        (
            "SELECT payment_id FROM payments WHERE offramp_provider = $1 AND offramp_reference = $2",
            "payments_offramp_reference",
        ),
        (
            "SELECT payment_id FROM payments WHERE reversal_reference = $1",
            "payments_reversal_reference",
        ),
        (
            "SELECT DISTINCT payment_id FROM ledger_transfers WHERE created_at >= $1 AND created_at < $2 \
             AND role IN ('onramp.usdc', 'offramp.payout', 'refund.source', 'return.payout')",
            "ledger_transfers_leg_opened",
        ),
    ] {
        let plan = sqlite_plan(&b.urls[0], sql).await;
        assert!(
            plan.iter().any(|l| l.contains(&format!("INDEX {index} "))),
            "{sql}: {plan:?}"
        );
    }
}

/// A metrics scrape counts the in-flight payments on every call: that count must be a range
/// of the state index over them alone, not a walk over every finished payment.
#[tokio::test]
async fn counting_in_flight_payments_is_a_range_of_the_state_index() {
    let b = backends().await;
    let sql = corridor::store::payments::count_states_sql("'PENDING', 'ONRAMP_PENDING'");
    let plan = sqlite_plan(&b.urls[0], &sql).await;
    assert!(
        plan.iter()
            .any(|l| l.starts_with("SEARCH payments") && l.contains("payments_state_created")),
        "{plan:?}"
    );
    for (name, store) in &b.stores {
        insert_quote(store, &format!("quo_count_{name}")).await;
        commit(
            store,
            accept(
                &format!("pay_count_{name}"),
                &format!("quo_count_{name}"),
                &format!("k_count_{name}"),
            ),
        )
        .await
        .expect("accepted");
        let all = corridor::store::payments::count_by_state(store)
            .await
            .unwrap();
        let recent = corridor::store::payments::count_by_state_recent(
            store,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        let sorted = |mut v: Vec<(corridor::domain::PaymentState, i64)>| {
            v.sort_by_key(|(s, _)| s.as_str());
            v
        };
        assert_eq!(sorted(all), sorted(recent), "{name}");
        let in_flight = corridor::store::payments::count_in_flight(store)
            .await
            .unwrap();
        assert!(
            in_flight
                .iter()
                .any(|(s, n)| *s == corridor::domain::PaymentState::Pending && *n >= 1),
            "{name}: {in_flight:?}"
        );
    }
}

/// A database written before accounts had ids (migration 13): its transfers keep their
/// accounts, amounts and states, its history its order and its one-row-per-state guard.
#[tokio::test]
async fn an_older_ledger_and_history_are_carried_into_the_compact_tables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("old.db").display());
    let pg = testdb::PgDatabase::create().await;
    let mut urls = vec![sqlite];
    urls.extend(pg.iter().map(|db| db.url.clone()));
    for url in &urls {
        let mut before = sqlx::migrate!("./migrations");
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < 13)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        let raw = |sql: &'static str| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            before.run(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            before.run(&pool).await.unwrap();
            pool.close().await;
        }
        let old = Store::connect(url, PoolConfig::default()).await.unwrap();
        insert_quote(&old, "quo_old").await;
        commit(&old, accept("pay_old", "quo_old", "k_old"))
            .await
            .unwrap();
        drop(old);
        let rows = "INSERT INTO payment_history (payment_id, seq, from_state, to_state, at, reason) \
                VALUES ('pay_old', 2, 'PENDING', 'ONRAMP_PENDING', 1800000000100, 'onramp initiated'); \
            INSERT INTO ledger_transfers (payment_id, role, debit_account, credit_account, currency, amount, status, created_at, resolved_at) VALUES \
                ('pay_old', 'onramp.source', 'merchant:mer_1:funding:USD', 'provider:p:onramp:USD', 'USD', 95275, 'POSTED', 1800000000100, 1800000000200), \
                ('pay_old', 'fee.platform', 'merchant:mer_1:funding:USD', 'platform:fees:USD', 'USD', 2100, 'PENDING', 1800000000100, NULL), \
                ('pay_old', 'onramp.usdc', 'provider:p:onramp:USDC', 'platform:treasury:USDC', 'USDC', 952750000, 'VOIDED', 1800000000100, 1800000000200);";
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            raw(rows).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            raw(rows).execute(&pool).await.unwrap();
            pool.close().await;
        }

        let store = connect(url).await;
        let mut t = corridor::store::ledger::for_payment(&store, "pay_old")
            .await
            .unwrap();
        t.sort_by_key(|t| t.transfer.role.code());
        let got: Vec<_> = t
            .iter()
            .map(|t| {
                (
                    t.transfer.role.code(),
                    t.transfer.debit.as_str(),
                    t.transfer.credit.as_str(),
                    t.transfer.currency.code(),
                    t.transfer.amount,
                    t.transfer.status.as_str(),
                    t.resolved_at.map(|r| r.millis()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "fee.platform",
                    "merchant:mer_1:funding:USD",
                    "platform:fees:USD",
                    "USD",
                    2_100,
                    "PENDING",
                    None
                ),
                (
                    "onramp.source",
                    "merchant:mer_1:funding:USD",
                    "provider:p:onramp:USD",
                    "USD",
                    95_275,
                    "POSTED",
                    Some(1_800_000_000_200)
                ),
                (
                    "onramp.usdc",
                    "provider:p:onramp:USDC",
                    "platform:treasury:USDC",
                    "USDC",
                    952_750_000,
                    "VOIDED",
                    Some(1_800_000_000_200)
                ),
            ],
            "{url}"
        );
        // A new transfer on a carried account lands on it, and a new account gets an id of
        // its own.
        let mut unit = UnitOfWork::at(NOW);
        unit.push(Write::Ledger {
            owner: corridor::store::ledger::LedgerOwner {
                payment_id: "pay_old".into(),
                merchant_id: "mer_1".into(),
                currency: Currency::USD,
            },
            postings: vec![corridor::domain::ledger::Posting::Open {
                transfers: vec![corridor::domain::ledger::Transfer {
                    role: corridor::domain::ledger::Role::OnrampFee,
                    debit: "merchant:mer_1:funding:USD".into(),
                    credit: "platform:new:USD".into(),
                    amount: 1_050,
                    currency: Currency::USD,
                    status: corridor::domain::ledger::EntryStatus::Posted,
                }],
                within_capture: false,
            }],
        });
        commit(&store, unit).await.unwrap();
        let balances = corridor::store::ledger::balances(&store).await.unwrap();
        let funding = balances
            .iter()
            .find(|b| b.account == "merchant:mer_1:funding:USD")
            .expect("funding account");
        assert_eq!(
            (funding.debits_posted, funding.debits_pending),
            (95_275 + 1_050, 2_100),
            "{url}"
        );
        assert!(
            balances
                .iter()
                .any(|b| b.account == "platform:new:USD" && b.credits_posted == 1_050),
            "{url}: {balances:?}"
        );
        let history = payments::history(&store, "pay_old").await.unwrap();
        let states: Vec<_> = history.iter().map(|h| h.to).collect();
        assert_eq!(
            states,
            [PaymentState::Pending, PaymentState::OnrampPending],
            "{url}"
        );
        // The guard is the key now: a payment enters a state once.
        let again = "INSERT INTO payment_history (payment_id, seq, from_state, to_state, at, reason) \
             VALUES ('pay_old', 3, 'PENDING', 'ONRAMP_PENDING', 1800000000300, 'twice')";
        let twice = if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            raw(again).execute(&pool).await.map(|_| ())
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            raw(again).execute(&pool).await.map(|_| ())
        };
        assert!(twice.is_err(), "{url}: a second row for one state");
    }
}

#[tokio::test]
async fn sqlite_stores_history_and_ledger_on_their_key_and_rebuilds_an_older_file_intact() {
    let b = backends().await;
    let (_, store) = &b.stores[0];
    let url = &b.urls[0];
    let path = url.trim_start_matches("sqlite://").to_owned();
    let layout = |path: &str| {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut q = c
            .prepare("SELECT name, sql FROM sqlite_schema WHERE name IN ('payment_history', 'ledger_transfers') ORDER BY name")
            .unwrap();
        q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    let tables = layout(&path);
    assert_eq!(tables.len(), 2, "{tables:?}");
    assert!(
        tables.iter().all(|(_, sql)| sql.contains("WITHOUT ROWID")),
        "{tables:?}"
    );
    // A file from before (history as a rowid table, with rows): the next start rebuilds it
    // with every row and index kept.
    insert_quote(store, "quo_layout").await;
    commit(store, accept("pay_layout", "quo_layout", "k_layout"))
        .await
        .expect("accepted");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE history_old (payment_id TEXT NOT NULL REFERENCES payments (payment_id), \
             seq BIGINT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, at BIGINT NOT NULL, \
             reason TEXT NOT NULL, PRIMARY KEY (payment_id, to_state)); \
             INSERT INTO history_old SELECT * FROM payment_history; DROP TABLE payment_history; \
             ALTER TABLE history_old RENAME TO payment_history;",
        )
        .unwrap();
    }
    assert!(!layout(&path)[1].1.contains("WITHOUT ROWID"));
    let again = connect(url).await;
    assert!(
        layout(&path)
            .iter()
            .all(|(_, sql)| sql.contains("WITHOUT ROWID"))
    );
    let history = payments::history(&again, "pay_layout").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].to, PaymentState::Pending);
    let c = rusqlite::Connection::open(&path).unwrap();
    let index: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'ledger_transfers_leg_opened'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1, "the ledger's index survives its table's rebuild");
}

#[tokio::test]
async fn an_event_fans_out_to_an_endpoint_added_here_or_by_another_connection() {
    // The SQLite writer remembers who listens; an endpoint added through a unit, or written
    // into the file by another connection (another process, the CLI), must be seen by the
    // next event all the same. On PostgreSQL every event reads the endpoints.
    use corridor::store::webhooks::{self, Endpoint, Event};
    let b = backends().await;
    for ((name, store), url) in b.stores.iter().zip(&b.urls) {
        let event = |id: &str, merchant: &str| {
            let mut unit = UnitOfWork::at(NOW);
            unit.push(Write::RecordEvent(
                Event {
                    event_id: id.to_owned(),
                    merchant_id: merchant.to_owned(),
                    payment_id: None,
                    event_type: "payment.created".into(),
                    body: "{}".into(),
                    created_at: NOW,
                }
                .into(),
            ));
            unit
        };
        let stored = |id: &'static str| async move {
            webhooks::get_event(store, id).await.unwrap().is_some()
        };
        // Nobody listens: nothing is stored, and the writer now remembers that.
        commit(store, event("evt_a1", "mer_a")).await.unwrap();
        commit(store, event("evt_b1", "mer_b")).await.unwrap();
        assert!(!stored("evt_a1").await && !stored("evt_b1").await, "{name}");
        // By another connection, behind the store's back.
        let mut other = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO webhook_endpoints (endpoint_id, merchant_id, url, events, secret, created_at) \
             VALUES ('we_b', 'mer_b', 'https://example.com/b', '[]', 'whsec_b', 0)",
        )
        .execute(&mut other)
        .await
        .unwrap();
        commit(store, event("evt_b2", "mer_b")).await.unwrap();
        assert!(
            stored("evt_b2").await,
            "{name}: an endpoint added by another connection"
        );
        // Through a unit of this store, for a merchant remembered as unheard.
        commit(store, event("evt_a1b", "mer_a")).await.unwrap();
        assert!(!stored("evt_a1b").await, "{name}");
        let mut unit = UnitOfWork::at(NOW);
        unit.push(Write::InsertEndpoint(Endpoint {
            endpoint_id: "we_a".into(),
            merchant_id: "mer_a".into(),
            url: "https://example.com/hook".into(),
            events: vec![],
            secret: "whsec_a".to_owned().into(),
            previous_secret: None,
            previous_secret_until: None,
            disabled_at: None,
            created_at: NOW,
        }));
        commit(store, unit).await.unwrap();
        commit(store, event("evt_a2", "mer_a")).await.unwrap();
        assert!(
            stored("evt_a2").await,
            "{name}: an endpoint added by a unit"
        );
    }
}

mod ledger {
    //! The ledger's guards in the store: a refund never exceeds what its payment captured —
    //! alone or raced by another refund of the same payment — and a transition's postings
    //! commit or vanish with it.

    use super::*;
    use corridor::domain::ledger::{self as books, EntryStatus, Posting, Role, Transfer};
    use corridor::store::ledger::{self, LedgerOwner};

    fn owner(payment_id: &str) -> LedgerOwner {
        LedgerOwner {
            payment_id: payment_id.to_owned(),
            merchant_id: "mer_1".into(),
            currency: Currency::USD,
        }
    }

    fn usd(
        role: Role,
        debit: String,
        credit: String,
        amount: i64,
        status: EntryStatus,
    ) -> Transfer {
        Transfer {
            role,
            debit,
            credit,
            amount,
            currency: Currency::USD,
            status,
        }
    }

    /// The onramp's source and fee transfers of a 1,000.00 USD payment, in `status`.
    fn capture(payment_id: &str, status: EntryStatus) -> Write {
        let funding = books::merchant_funding("mer_1", Currency::USD);
        Write::Ledger {
            owner: owner(payment_id),
            postings: vec![Posting::Open {
                transfers: vec![
                    usd(
                        Role::OnrampSource,
                        funding.clone(),
                        "provider:p:onramp:USD".into(),
                        95_275,
                        status,
                    ),
                    usd(
                        Role::PlatformFee,
                        funding,
                        books::platform_fees(Currency::USD),
                        4_725,
                        status,
                    ),
                ],
                within_capture: false,
            }],
        }
    }

    /// A refund transfer of `amount` in `role`, checked against the capture.
    fn refund(payment_id: &str, role: Role, amount: i64) -> Write {
        Write::Ledger {
            owner: owner(payment_id),
            postings: vec![Posting::Open {
                transfers: vec![usd(
                    role,
                    "provider:p:onramp:USD".into(),
                    books::refunds(Currency::USD),
                    amount,
                    EntryStatus::Pending,
                )],
                within_capture: true,
            }],
        }
    }

    async fn paid(store: &Store, n: &str) -> String {
        let (payment_id, quote_id) = (format!("pay_{n}"), format!("quote_{n}"));
        insert_quote(store, &quote_id).await;
        commit(store, accept(&payment_id, &quote_id, &format!("key-{n}")))
            .await
            .unwrap();
        payment_id
    }

    async fn one(store: &Store, w: Write) -> Result<(), Rejected> {
        let mut unit = UnitOfWork::at(NOW);
        unit.push(w);
        commit(store, unit).await
    }

    #[tokio::test]
    async fn a_refund_beyond_the_posted_capture_is_refused_whole() {
        let b = backends().await;
        for (name, store) in &b.stores {
            let id = paid(store, "cap").await;
            one(store, capture(&id, EntryStatus::Pending))
                .await
                .unwrap();
            // Nothing is captured while the onramp is in flight: no refund at all.
            assert_eq!(
                one(store, refund(&id, Role::RefundSource, 1)).await,
                Err(Rejected::OverCapture),
                "{name}"
            );
            let mut unit = UnitOfWork::at(NOW);
            unit.push(Write::Ledger {
                owner: owner(&id),
                postings: vec![Posting::Post(vec![Role::OnrampSource, Role::PlatformFee])],
            });
            commit(store, unit).await.unwrap();
            assert_eq!(
                one(store, refund(&id, Role::RefundSource, 100_001)).await,
                Err(Rejected::OverCapture),
                "{name}: one minor unit over"
            );
            one(store, refund(&id, Role::RefundSource, 95_275))
                .await
                .unwrap();
            assert_eq!(
                one(store, refund(&id, Role::RefundSource, 1)).await,
                Err(Rejected::TransferExists),
                "{name}: a role is opened once"
            );
            assert_eq!(
                one(store, refund(&id, Role::RefundPlatformFee, 4_726)).await,
                Err(Rejected::OverCapture),
                "{name}: together over the capture"
            );
            one(store, refund(&id, Role::RefundPlatformFee, 4_725))
                .await
                .unwrap();
            let t = ledger::for_payment(store, &id).await.unwrap();
            let refunded: i64 = t
                .iter()
                .filter(|t| t.transfer.credit == "refunds:USD")
                .map(|t| t.transfer.amount)
                .sum();
            assert_eq!(
                refunded, 100_000,
                "{name}: exactly the capture, nothing refused left behind"
            );
        }
    }

    /// Two refunds of one payment, each within the capture alone and over it together, raced:
    /// one commits, the other is refused, on every round.
    #[tokio::test]
    async fn two_concurrent_refunds_of_one_payment_never_both_succeed() {
        let b = backends().await;
        for (name, store) in &b.stores {
            for round in 0..12 {
                let id = paid(store, &format!("race{round}")).await;
                one(store, capture(&id, EntryStatus::Posted)).await.unwrap();
                let (a, c) = tokio::join!(
                    one(store, refund(&id, Role::RefundSource, 60_000)),
                    one(store, refund(&id, Role::RefundPlatformFee, 60_000)),
                );
                let won = [a, c].iter().filter(|r| r.is_ok()).count();
                assert_eq!(won, 1, "{name} round {round}: {a:?} {c:?}");
                assert!(
                    [a, c].contains(&Err(Rejected::OverCapture)),
                    "{name} round {round}: the loser is refused by the limit: {a:?} {c:?}"
                );
            }
        }
    }

    /// A transfer of `amount` USD from `debit` to `credit`, posted at once.
    fn move_usd(payment_id: &str, role: Role, debit: &str, credit: &str) -> Write {
        Write::Ledger {
            owner: owner(payment_id),
            postings: vec![Posting::Open {
                transfers: vec![usd(
                    role,
                    debit.into(),
                    credit.into(),
                    1_000,
                    EntryStatus::Posted,
                )],
                within_capture: false,
            }],
        }
    }

    /// Accounts get their ids from the unit that first uses them; a unit that is undone takes
    /// its new accounts with it, and the id it had picked goes to the next new account. Had the
    /// store remembered the undone unit's id, the account's next transfer would be filed
    /// under the other account.
    #[tokio::test]
    async fn an_account_first_used_by_an_undone_unit_is_not_remembered_by_its_id() {
        let b = backends().await;
        for (name, store) in &b.stores {
            let (first, second) = (paid(store, "acct1").await, paid(store, "acct2").await);
            let mut undone = UnitOfWork::at(NOW);
            undone
                .push(move_usd(
                    &first,
                    Role::OnrampSource,
                    "acct:undone:USD",
                    "acct:sink:USD",
                ))
                .push(Write::ExpectState {
                    payment_id: first.clone(),
                    state: PaymentState::Completed,
                });
            assert_eq!(commit(store, undone).await, Err(Rejected::Stale), "{name}");
            one(
                store,
                move_usd(
                    &second,
                    Role::OnrampSource,
                    "acct:other:USD",
                    "acct:sink:USD",
                ),
            )
            .await
            .unwrap();
            one(
                store,
                move_usd(
                    &first,
                    Role::OnrampSource,
                    "acct:undone:USD",
                    "acct:sink:USD",
                ),
            )
            .await
            .unwrap();
            for (payment, debit) in [(&first, "acct:undone:USD"), (&second, "acct:other:USD")] {
                let t = ledger::for_payment(store, payment).await.unwrap();
                assert_eq!(t.len(), 1, "{name}");
                assert_eq!(t[0].transfer.debit, debit, "{name}");
                assert_eq!(t[0].transfer.credit, "acct:sink:USD", "{name}");
                assert_eq!(t[0].transfer.currency, Currency::USD, "{name}");
            }
            let balances = ledger::balances(store).await.unwrap();
            let of = |account: &str| {
                balances
                    .iter()
                    .find(|b| b.account == account)
                    .map(|b| (b.debits_posted, b.credits_posted))
            };
            assert_eq!(of("acct:undone:USD"), Some((1_000, 0)), "{name}");
            assert_eq!(of("acct:other:USD"), Some((1_000, 0)), "{name}");
            assert_eq!(of("acct:sink:USD"), Some((0, 2_000)), "{name}");
        }
    }

    #[tokio::test]
    async fn a_transitions_postings_vanish_with_a_rejected_unit() {
        let b = backends().await;
        for (name, store) in &b.stores {
            let id = paid(store, "gone").await;
            let mut unit = UnitOfWork::at(NOW);
            unit.push(Write::Transition(Transition {
                payment_id: id.clone(),
                from: PaymentState::Pending,
                to: PaymentState::OnrampPending,
                at: NOW,
                reason: "onramp initiated".into(),
                changes: vec![],
                unclaimed_only: false,
            }))
            .push(capture(&id, EntryStatus::Pending))
            .push(Write::ExpectState {
                payment_id: id.clone(),
                state: PaymentState::Completed,
            });
            assert_eq!(commit(store, unit).await, Err(Rejected::Stale), "{name}");
            assert!(
                ledger::for_payment(store, &id).await.unwrap().is_empty(),
                "{name}"
            );
            let p = payments::get(store, &id).await.unwrap().unwrap();
            assert_eq!(p.state, PaymentState::Pending, "{name}");
        }
    }
}

/// SQLite's log is checkpointed by a thread of its own, not inside the writer's commits (whose
/// automatic checkpoint is only a fallback, far off): pages committed through the writer
/// reach the database file itself while the writer does nothing but commit.
#[tokio::test]
async fn sqlite_checkpoints_the_log_off_the_writers_commits() {
    let b = backends().await;
    let (_, store) = &b.stores[0];
    let path = b.urls[0].trim_start_matches("sqlite://").to_owned();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    for i in 0..200 {
        insert_quote(store, &format!("quo_ckpt_{i}")).await;
        commit(
            store,
            accept(
                &format!("pay_ckpt_{i}"),
                &format!("quo_ckpt_{i}"),
                &format!("k_ckpt_{i}"),
            ),
        )
        .await
        .expect("accepted");
    }
    // Far fewer pages than the writer's fallback (20,000): only the checkpointer moves them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while size() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {before} bytes: nothing checkpointed the log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
