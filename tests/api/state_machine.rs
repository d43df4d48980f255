//! The payment state machine end to end, with workers and the fast in-process simulator:
//! the happy path, onramp failure, offramp failure with refund, and the simulator's record
//! that no leg ever moved money twice.

use futures::future::join_all;
use serde_json::{Value, json};

use super::errors::{expect_error, expect_status};
use super::*;
use super::quotes::instant;

const TERMINAL: &[&str] = &["COMPLETED", "FAILED", "CANCELLED", "REFUNDED"];

/// The states a payment that completes enters, in order.
const HAPPY_PATH: [&str; 5] = [
    "PENDING",
    "ONRAMP_PENDING",
    "ONRAMP_COMPLETE",
    "OFFRAMP_PENDING",
    "COMPLETED",
];

fn body(quote: &Value, source: &str, destination: &str) -> Value {
    json!({
        "quote_id": quote["quote_id"],
        "source_account": source,
        "destination_account": destination,
    })
}

/// Pays a fresh 100000 USD quote to `to` and waits until the payment is terminal.
async fn run_payment(app: &TestApp, to: &str, source: &str, destination: &str) -> (Value, Value) {
    let quote = app.quote(&app.merchant_key, to, 100_000).await;
    let created = app
        .pay(&app.merchant_key, body(&quote, source, destination))
        .await;
    let id = created["payment_id"].as_str().expect("payment_id");
    let payment = app.wait_for_status(&app.merchant_key, id, TERMINAL).await;
    (quote, payment)
}

/// The states a payment entered, in order.
fn states(payment: &Value) -> Vec<String> {
    payment["history"]
        .as_array()
        .expect("history array")
        .iter()
        .map(|h| h["to"].as_str().expect("history `to`").to_owned())
        .collect()
}

/// Each history entry starts where the previous one ended, at a time no earlier.
fn assert_history_is_a_chain(payment: &Value) {
    let history = payment["history"].as_array().expect("history array");
    assert_eq!(history[0].get("from"), Some(&Value::Null), "{payment}");
    for pair in history.windows(2) {
        assert_eq!(
            pair[1]["from"], pair[0]["to"],
            "history is not a chain: {payment}"
        );
        assert!(
            instant(&pair[1]["at"]) >= instant(&pair[0]["at"]),
            "history goes back in time: {payment}"
        );
        assert!(pair[1]["reason"].is_string(), "{payment}");
    }
}

/// The simulator's transfers for a payment, as the admin sees them.
async fn transfers(app: &TestApp, payment_id: &str) -> Vec<Value> {
    let resp = app
        .get(
            &format!("/v1/sandbox/transfers?payment_id={payment_id}"),
            &app.admin_key,
        )
        .await;
    let body = expect_status(resp, 200).await;
    let data = body["data"].as_array().expect("`data` array").clone();
    for t in &data {
        assert_eq!(t["payment_id"], payment_id, "{t}");
        assert!(
            t["initiate_calls"].as_i64().is_some_and(|n| n >= 1),
            "initiate_calls: {t}"
        );
    }
    data
}

/// The `leg` names of the transfers, sorted.
fn leg_names(transfers: &[Value]) -> Vec<String> {
    let mut legs: Vec<String> = transfers
        .iter()
        .map(|t| t["leg"].as_str().expect("leg").to_owned())
        .collect();
    legs.sort();
    legs
}

#[tokio::test]
async fn a_payment_completes_through_every_state_in_order() {
    let Some(app) = spawn_app().await else { return };
    let (quote, p) = run_payment(&app, "EUR", "user123", "merchant456").await;
    assert_eq!(p["status"], "COMPLETED", "{p}");
    assert_eq!(states(&p), HAPPY_PATH);
    assert_history_is_a_chain(&p);
    instant(&p["completed_at"]);
    assert_eq!(p.get("failure"), Some(&Value::Null), "{p}");
    assert_eq!(p["payout_amount"], quote["guaranteed_payout"]);
}

#[tokio::test]
async fn a_completed_payment_has_both_legs_settled_for_the_exact_amounts() {
    let Some(app) = spawn_app().await else { return };
    let (quote, p) = run_payment(&app, "EUR", "user123", "merchant456").await;
    assert_eq!(p["status"], "COMPLETED", "{p}");
    let net = 100_000 - quote["fees"]["total_fees"].as_i64().expect("total_fees");

    let onramp = &p["legs"]["onramp"];
    assert_eq!(onramp["provider"], "sim-onramp", "{p}");
    assert_eq!(onramp["status"], "COMPLETED", "{p}");
    assert_eq!(onramp["currency"], "USDC", "{p}");
    assert_eq!(onramp["amount"], net * 10_000, "micro-USDC at 1:1: {p}");
    assert!(onramp["reference"].as_str().is_some_and(|r| !r.is_empty()));

    let offramp = &p["legs"]["offramp"];
    assert_eq!(offramp["provider"], "sim-offramp", "{p}");
    assert_eq!(offramp["status"], "COMPLETED", "{p}");
    assert_eq!(offramp["currency"], "EUR", "{p}");
    assert_eq!(offramp["amount"], p["payout_amount"], "{p}");
    assert!(offramp["reference"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn a_jpy_payment_pays_out_whole_yen() {
    let Some(app) = spawn_app().await else { return };
    let (quote, p) = run_payment(&app, "JPY", "user123", "merchant456").await;
    assert_eq!(p["status"], "COMPLETED", "{p}");
    assert_eq!(p["payout_currency"], "JPY");
    assert_eq!(p["payout_amount"], quote["guaranteed_payout"]);
    assert_eq!(p["legs"]["offramp"]["currency"], "JPY");
    assert_eq!(p["legs"]["offramp"]["amount"], quote["guaranteed_payout"]);
}

#[tokio::test]
async fn a_failing_onramp_fails_the_payment_with_onramp_failed() {
    let Some(app) = spawn_app().await else { return };
    let (_, p) = run_payment(&app, "EUR", "sim_fail_onramp", "merchant456").await;
    assert_eq!(p["status"], "FAILED", "{p}");
    assert_eq!(p["failure"]["code"], "ONRAMP_FAILED", "{p}");
    assert!(p["failure"]["message"].is_string(), "{p}");
    let entered = states(&p);
    assert_eq!(entered.first().map(String::as_str), Some("PENDING"));
    assert_eq!(entered.last().map(String::as_str), Some("FAILED"));
    assert!(!entered.iter().any(|s| s == "ONRAMP_COMPLETE"), "{p}");
    assert_history_is_a_chain(&p);
    assert_eq!(p["legs"]["offramp"], Value::Null, "{p}");

    let id = p["payment_id"].as_str().expect("payment_id");
    let legs = leg_names(&transfers(&app, id).await);
    assert!(
        legs.iter().all(|l| l == "onramp") && legs.len() <= 1,
        "a failed onramp moves nothing else: {legs:?}"
    );
}

#[tokio::test]
async fn a_failing_offramp_refunds_the_source_less_the_onramp_fee() {
    let Some(app) = spawn_app().await else { return };
    let (quote, p) = run_payment(&app, "EUR", "user123", "sim_fail_offramp").await;
    assert_eq!(p["status"], "REFUNDED", "{p}");
    let entered = states(&p);
    assert_eq!(
        entered[..3],
        ["PENDING", "ONRAMP_PENDING", "ONRAMP_COMPLETE"],
        "{p}"
    );
    assert_eq!(
        entered[entered.len() - 2..],
        ["REFUND_PENDING", "REFUNDED"],
        "{p}"
    );
    assert_history_is_a_chain(&p);
    assert_eq!(p["failure"]["code"], "OFFRAMP_FAILED", "{p}");
    assert!(p["failure"]["message"].is_string(), "{p}");

    let onramp_fee = quote["fees"]["onramp_fee"].as_i64().expect("onramp_fee");
    assert_eq!(p["refund"]["amount"], 100_000 - onramp_fee, "{p}");
    assert_eq!(p["refund"]["currency"], "USD", "{p}");
    assert_eq!(p["legs"]["onramp"]["status"], "REVERSED", "{p}");
    assert_eq!(p["legs"]["offramp"]["status"], "FAILED", "{p}");
}

#[tokio::test]
async fn the_sandbox_shows_one_transfer_per_leg_of_a_completed_payment() {
    let Some(app) = spawn_app().await else { return };
    let (_, p) = run_payment(&app, "EUR", "user123", "merchant456").await;
    assert_eq!(p["status"], "COMPLETED", "{p}");
    let id = p["payment_id"].as_str().expect("payment_id");
    let data = transfers(&app, id).await;
    assert_eq!(leg_names(&data), ["offramp", "onramp"]);
    for t in &data {
        let leg = t["leg"].as_str().expect("leg");
        let shown = &p["legs"][leg];
        assert_eq!(t["reference"], shown["reference"], "{leg}: {t} vs {p}");
        assert_eq!(t["amount"], shown["amount"], "{leg}: {t} vs {p}");
        assert_eq!(t["currency"], shown["currency"], "{leg}: {t} vs {p}");
        instant(&t["created_at"]);
    }
}

#[tokio::test]
async fn the_sandbox_shows_at_most_one_transfer_per_leg_of_a_refunded_payment() {
    let Some(app) = spawn_app().await else { return };
    let (_, p) = run_payment(&app, "EUR", "user123", "sim_fail_offramp").await;
    assert_eq!(p["status"], "REFUNDED", "{p}");
    let id = p["payment_id"].as_str().expect("payment_id");
    let legs = leg_names(&transfers(&app, id).await);
    let mut unique = legs.clone();
    unique.dedup();
    assert_eq!(unique, legs, "a leg was transferred twice");
    for needed in ["onramp", "reversal"] {
        assert!(
            legs.iter().any(|l| l == needed),
            "no {needed} transfer: {legs:?}"
        );
    }
}

#[tokio::test]
async fn payments_in_flight_together_each_complete_exactly_once() {
    let Some(app) = spawn_app().await else { return };
    let quotes = join_all((0..8).map(|_| app.quote(&app.merchant_key, "EUR", 100_000))).await;
    let created = join_all(
        quotes
            .iter()
            .map(|q| app.pay(&app.merchant_key, body(q, "user123", "merchant456"))),
    )
    .await;
    for c in &created {
        let id = c["payment_id"].as_str().expect("payment_id");
        let p = app.wait_for_status(&app.merchant_key, id, TERMINAL).await;
        assert_eq!(p["status"], "COMPLETED", "{p}");
        assert_eq!(states(&p).len(), 5, "{p}");
        assert_eq!(leg_names(&transfers(&app, id).await), ["offramp", "onramp"]);
    }
}

#[tokio::test]
async fn the_sandbox_is_forbidden_to_merchants() {
    let Some(app) = spawn_app().await else { return };
    let created = app
        .pay(
            &app.merchant_key,
            json!({
                "amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                "source_account": "user123", "destination_account": "merchant456",
            }),
        )
        .await;
    let id = created["payment_id"].as_str().expect("payment_id");
    let resp = app
        .get(
            &format!("/v1/sandbox/transfers?payment_id={id}"),
            &app.merchant_key,
        )
        .await;
    expect_error(resp, 403, "FORBIDDEN", "merchant key on the sandbox").await;
}

/// An app whose worker loop is off and whose simulated providers settle at once (polls
/// `poll` apart), with one payment just created; `None` when its backend is skipped.
async fn one_payment_by_hand(poll: std::time::Duration) -> Option<(TestApp, String)> {
    let zero = corridor::config::DurRange {
        min: std::time::Duration::ZERO,
        max: std::time::Duration::ZERO,
    };
    let app = spawn_app_with(|c| {
        c.workers = 0;
        c.sim_onramp_delay = zero;
        c.sim_offramp_delay = zero;
        c.poll_interval = corridor::config::Dur(poll);
    })
    .await?;
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let created = app
        .pay(&app.merchant_key, body(&quote, "user123", "merchant456"))
        .await;
    let id = created["payment_id"].as_str().expect("payment_id").to_owned();
    Some((app, id))
}

/// With the worker loop off, running the due jobs by hand drives a payment to the end: the
/// entry point tests and the simulator use instead of waiting on timers.
#[tokio::test]
async fn running_due_jobs_by_hand_drives_a_payment_to_completed() {
    let Some((app, id)) = one_payment_by_hand(std::time::Duration::from_millis(1)).await else {
        return;
    };
    let id = id.as_str();
    let mut status = String::new();
    for _ in 0..200 {
        app.app.run_due_jobs(100).await.expect("jobs run");
        let p = expect_status(
            app.get(&format!("/v1/payments/{id}"), &app.merchant_key).await,
            200,
        )
        .await;
        status = p["status"].as_str().unwrap_or_default().to_owned();
        if status == "COMPLETED" {
            assert_eq!(states(&p), HAPPY_PATH);
            return;
        }
        // Polls are scheduled a millisecond ahead: let them come due.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("payment did not complete by running due jobs; last status {status}");
}

/// Once the onramp has settled, the worker that saw it pays out in the same run: one job takes
/// the payment from ONRAMP_PENDING through ONRAMP_COMPLETE to OFFRAMP_PENDING, with no trip
/// through the queue (and no claim) in between.
#[tokio::test]
async fn a_settled_onramp_is_paid_out_in_the_same_job_run() {
    let Some((app, id)) = one_payment_by_hand(std::time::Duration::from_secs(5)).await else {
        return;
    };
    let status = |p: &Value| p["status"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/payments/{id}");
    let get = || app.get(&path, &app.merchant_key);

    // Each stage runs the alerts sweep (due every 2 s of the app's clock) and one payment job.
    let sweep_and_one_step = 2;
    // The payment's first step initiates the onramp; its poll is 5 s away on the app's clock.
    assert_eq!(
        app.app.run_due_jobs(100).await.expect("jobs run"),
        sweep_and_one_step
    );
    assert_eq!(status(&expect_status(get().await, 200).await), "ONRAMP_PENDING");

    // The poll finds the onramp settled and, in the same run, initiates the payout.
    app.advance_clock(std::time::Duration::from_secs(6));
    assert_eq!(
        app.app.run_due_jobs(100).await.expect("jobs run"),
        sweep_and_one_step
    );
    let p = expect_status(get().await, 200).await;
    assert_eq!(status(&p), "OFFRAMP_PENDING");
    assert!(states(&p).iter().any(|s| s == "ONRAMP_COMPLETE"), "{p}");
    assert_history_is_a_chain(&p);

    // The payout's poll completes it.
    app.advance_clock(std::time::Duration::from_secs(6));
    assert_eq!(
        app.app.run_due_jobs(100).await.expect("jobs run"),
        sweep_and_one_step
    );
    let p = expect_status(get().await, 200).await;
    assert_eq!(status(&p), "COMPLETED");
    assert_eq!(states(&p), HAPPY_PATH);
}

/// The sandbox's transfers page by cursor: newest first, or oldest first for one payment.
#[tokio::test]
async fn sandbox_transfers_page_by_cursor() {
    let Some(app) = spawn_app().await else { return };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
        let p = app
            .pay(&app.merchant_key, body(&quote, "user123", "merchant456"))
            .await;
        let id = p["payment_id"].as_str().expect("payment_id").to_owned();
        app.wait_for_status(&app.merchant_key, &id, &["COMPLETED"]).await;
        ids.push(id);
    }
    let all = app
        .page_through("/v1/sandbox/transfers", &app.admin_key, "reference", 1)
        .await;
    assert_eq!(all.len(), 4, "an onramp and an offramp per payment: {all:?}");
    let one = app
        .page_through(
            &format!("/v1/sandbox/transfers?payment_id={}", ids[0]),
            &app.admin_key,
            "reference",
            1,
        )
        .await;
    assert_eq!(one.len(), 2, "{one:?}");
    // Newest first overall: the second payment's transfers come first.
    assert!(one.iter().all(|r| all[2..].contains(r)), "{all:?} / {one:?}");
}
