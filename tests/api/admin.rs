//! Operator routes: force retry, dead jobs and redrive, alerts, and their audit.

use std::time::Duration;

use corridor::config::Dur;
use serde_json::{Value, json};

use super::errors::expect_status;
use super::*;

fn payment_body(dst: &str) -> Value {
    json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
           "source_account": "src", "destination_account": dst})
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An app whose offramp is an HTTP provider on a closed port: the offramp step fails
/// transiently and, with one attempt allowed, its job goes dead.
async fn app_with_dead_offramp() -> Option<TestApp> {
    spawn_app_with(|c| {
        c.offramp_url = Some("http://127.0.0.1:9/offramp".into());
        c.job_max_attempts = 1;
        c.job_retry_for = Dur(Duration::ZERO);
        c.provider_timeout = Dur(Duration::from_secs(1));
    })
    .await
}

#[tokio::test]
async fn retrying_a_payment_requires_the_admin_key_and_a_non_terminal_payment() {
    let Some(app) = spawn_app().await else { return };
    let p = app.pay(&app.merchant_key, payment_body("dst")).await;
    let id = p["payment_id"].as_str().unwrap();
    app.wait_for_status(&app.merchant_key, id, &["COMPLETED"]).await;
    let path = format!("/v1/admin/payments/{id}/retry");
    assert_eq!(app.post(&path, &app.merchant_key, json!({})).await.status(), 403);
    let r = app.post(&path, &app.admin_key, json!({})).await;
    let v = expect_status(r, 409).await;
    assert_eq!(v["error"], "INVALID_STATE");
    let r = app.post("/v1/admin/payments/pay_nope/retry", &app.admin_key, json!({})).await;
    assert_eq!(expect_status(r, 404).await["error"], "NOT_FOUND");
}

#[tokio::test]
async fn a_dead_job_is_listed_alerted_and_redriven_by_the_operator() {
    let Some(app) = app_with_dead_offramp().await else { return };
    let p = app.pay(&app.merchant_key, payment_body("dst")).await;
    let id = p["payment_id"].as_str().unwrap().to_owned();
    let mut dead = Value::Null;
    wait_until("a dead job", async || {
        let v = expect_status(app.get("/v1/admin/jobs/dead", &app.admin_key).await, 200).await;
        dead = v["data"].as_array().unwrap().iter().find(|j| j["payment_id"] == id.as_str()).cloned().unwrap_or_default();
        !dead.is_null()
    })
    .await;
    assert_eq!(dead["kind"], "payment.step");
    assert!(dead["last_error"].as_str().unwrap().contains("unreachable"), "{dead}");
    let job_id = dead["id"].as_str().unwrap().to_owned();
    // The payment is held where it was, and an alert names the dead job.
    let pay: Value = app.get(&format!("/v1/payments/{id}"), &app.merchant_key).await.json().await.unwrap();
    assert_eq!(pay["status"], "ONRAMP_COMPLETE");
    wait_until("a DEAD_JOB alert", async || {
        let v = expect_status(app.get("/v1/admin/alerts", &app.admin_key).await, 200).await;
        v["data"].as_array().unwrap().iter().any(|a| a["kind"] == "DEAD_JOB" && a["job_id"] == job_id.as_str())
    })
    .await;
    let metrics = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("corridor_alerts_open{kind=\"DEAD_JOB\"} 1"), "{metrics}");
    assert!(metrics.contains("corridor_jobs_dead 1"));

    // Redrive: 202, then the job is back in the queue (and dies again: the port is still closed).
    let r = app.post(&format!("/v1/admin/jobs/{job_id}/redrive"), &app.merchant_key, json!({})).await;
    assert_eq!(r.status(), 403);
    let r = app.post(&format!("/v1/admin/jobs/{job_id}/redrive"), &app.admin_key, json!({})).await;
    assert_eq!(r.status(), 202);
    let r = app.post("/v1/admin/jobs/nope/redrive", &app.admin_key, json!({})).await;
    assert_eq!(r.status(), 404);
    // Force retry of the stuck payment works too.
    let r = app.post(&format!("/v1/admin/payments/{id}/retry"), &app.admin_key, json!({})).await;
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn redriving_a_job_that_is_not_dead_is_409() {
    let Some(app) = spawn_app_with(|c| c.workers = 0).await else { return };
    // With no workers the first step job of a payment stays ready (never dead).
    app.pay(&app.merchant_key, payment_body("dst")).await;
    let dead = expect_status(app.get("/v1/admin/jobs/dead", &app.admin_key).await, 200).await;
    assert!(dead["data"].as_array().unwrap().is_empty());
    // A ready job's id is not exposed by the API; the sweep job has a fixed id.
    let r = app.post("/v1/admin/jobs/alerts-sweep/redrive", &app.admin_key, json!({})).await;
    assert_eq!(expect_status(r, 409).await["error"], "INVALID_STATE");
}

#[tokio::test]
async fn a_payment_stuck_past_the_threshold_raises_an_alert_that_clears_when_it_moves() {
    let Some(app) = spawn_app_with(|c| c.stuck_after = Dur(Duration::from_secs(1))).await else { return };
    let p = app.pay(&app.merchant_key, payment_body("sim_slow")).await;
    let id = p["payment_id"].as_str().unwrap().to_owned();
    let pending = app.wait_for_status(&app.merchant_key, &id, &["OFFRAMP_PENDING"]).await;
    let mut alert = Value::Null;
    wait_until("a STUCK_PAYMENT alert", async || {
        let v = expect_status(app.get("/v1/admin/alerts", &app.admin_key).await, 200).await;
        alert = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "STUCK_PAYMENT" && a["payment_id"] == id.as_str())
            .cloned()
            .unwrap_or_default();
        !alert.is_null()
    })
    .await;
    assert!(alert["id"].as_str().unwrap().starts_with("alert_"));
    assert!(alert["message"].as_str().unwrap().contains("OFFRAMP_PENDING"));
    assert!(alert["since"].as_str().unwrap().ends_with('Z'));
    // Settle it with a signed provider webhook: the alert clears.
    let body = json!({"event_type": "offramp.completed", "reference": pending["legs"]["offramp"]["reference"], "payment_id": id});
    let raw = body.to_string();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let sig = standardwebhooks::Webhook::new(PROVIDER_SECRET).unwrap().sign("msg_stuck", ts, raw.as_bytes()).unwrap();
    let r = app
        .client
        .post(format!("{}/v1/provider-webhooks/sim-offramp", app.address))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_stuck")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_for_status(&app.merchant_key, &id, &["COMPLETED"]).await;
    wait_until("the alert to clear", async || {
        let v = expect_status(app.get("/v1/admin/alerts", &app.admin_key).await, 200).await;
        !v["data"].as_array().unwrap().iter().any(|a| a["payment_id"] == id.as_str())
    })
    .await;
}

/// A provider outage of hours, compressed: the onramp's port is closed, the clock jumps
/// ahead between runs. The step is retried past its attempts without going dead, and the
/// payment, whose onramp was never reached, can still be cancelled.
#[tokio::test]
async fn an_onramp_outage_neither_dead_letters_the_step_nor_blocks_cancel() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let Some(app) = spawn_app_with(|c| {
        c.onramp_url = Some(format!("http://127.0.0.1:{port}/onramp"));
        c.job_max_attempts = 2;
        c.job_retry_for = Dur(Duration::from_secs(3_600));
        c.workers = 0;
    })
    .await
    else {
        return;
    };
    let payment = app.pay(&app.merchant_key, payment_body("dst")).await;
    let id = payment["payment_id"].as_str().expect("payment_id").to_owned();
    let mut attempts = 0;
    for _ in 0..8 {
        app.app.run_due_jobs(10).await.expect("jobs run");
        app.advance_clock(Duration::from_secs(301));
        let jobs = corridor::store::jobs::for_payment(app.app.store(), &id, 5)
            .await
            .expect("jobs");
        attempts = jobs[0].attempts;
        assert_eq!(jobs[0].state, "ready", "the step went {}", jobs[0].state);
    }
    assert!(attempts >= 5, "the step ran only {attempts} times");
    let dead = expect_status(app.get("/v1/admin/jobs/dead", &app.admin_key).await, 200).await;
    assert_eq!(dead["data"].as_array().map(Vec::len), Some(0), "{dead}");
    let resp = app
        .post(&format!("/v1/payments/{id}/cancel"), &app.merchant_key, json!({}))
        .await;
    let cancelled = expect_status(resp, 200).await;
    assert_eq!(cancelled["status"], "CANCELLED");
}

/// Dead jobs page by cursor, newest first.
#[tokio::test]
async fn dead_jobs_page_by_cursor() {
    let Some(app) = app_with_dead_offramp().await else { return };
    for _ in 0..3 {
        app.pay(&app.merchant_key, payment_body("dst")).await;
    }
    wait_until("three dead jobs", async || {
        let v = expect_status(app.get("/v1/admin/jobs/dead", &app.admin_key).await, 200).await;
        v["data"].as_array().unwrap().len() == 3
    })
    .await;
    let ids = app.page_through("/v1/admin/jobs/dead", &app.admin_key, "id", 2).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
}
