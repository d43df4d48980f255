//! Inbound provider webhooks: signed with Standard Webhooks (signed here by the reference
//! library), deduplicated by `webhook-id`, racing safely with the poller.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Sends a provider webhook signed with `secret` at `timestamp`.
async fn send(app: &TestApp, provider: &str, id: &str, timestamp: i64, secret: &str, body: &Value) -> reqwest::Response {
    let raw = body.to_string();
    let sig = standardwebhooks::Webhook::new(secret).unwrap().sign(id, timestamp, raw.as_bytes()).unwrap();
    app.client
        .post(format!("{}/v1/provider-webhooks/{provider}", app.address))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .body(raw)
        .send()
        .await
        .unwrap()
}

/// A payment whose offramp stays pending (sandbox `sim_slow`), returned once it is there.
async fn slow_payment(app: &TestApp) -> Value {
    let p = app
        .pay(
            &app.merchant_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": "src", "destination_account": "sim_slow"}),
        )
        .await;
    app.wait_for_status(&app.merchant_key, p["payment_id"].as_str().unwrap(), &["OFFRAMP_PENDING"])
        .await
}

fn offramp_event(p: &Value, kind: &str) -> Value {
    json!({"event_type": kind, "reference": p["legs"]["offramp"]["reference"], "payment_id": p["payment_id"]})
}

#[tokio::test]
async fn a_signed_webhook_settles_a_pending_offramp() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let r = send(&app, "sim-offramp", "msg_1", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.completed")).await;
    assert_eq!(r.status(), 200);
    let done = app
        .wait_for_status(&app.merchant_key, p["payment_id"].as_str().unwrap(), &["COMPLETED"])
        .await;
    assert_eq!(done["legs"]["offramp"]["status"], "COMPLETED");
    let last = done["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to"], "COMPLETED");
}

#[tokio::test]
async fn a_failed_offramp_webhook_refunds_the_payment() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let r = send(&app, "sim-offramp", "msg_f", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.failed")).await;
    assert_eq!(r.status(), 200);
    let done = app
        .wait_for_status(&app.merchant_key, p["payment_id"].as_str().unwrap(), &["REFUNDED"])
        .await;
    assert_eq!(done["failure"]["code"], "OFFRAMP_FAILED");
}

/// A payout the beneficiary's bank sends back, reported by the provider after the payment
/// completed: the payment is refunded (amount − onramp fee) with `PAYOUT_RETURNED`.
#[tokio::test]
async fn a_returned_payout_webhook_refunds_a_completed_payment() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let id = p["payment_id"].as_str().unwrap();
    // Too early: the payout has not completed yet, so nothing can come back.
    let r = send(&app, "sim-offramp", "msg_r0", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.returned")).await;
    assert_eq!(r.status(), 200);
    let r = send(&app, "sim-offramp", "msg_c", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.completed")).await;
    assert_eq!(r.status(), 200);
    app.wait_for_status(&app.merchant_key, id, &["COMPLETED"]).await;
    let r = send(&app, "sim-offramp", "msg_r", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.returned")).await;
    assert_eq!(r.status(), 200);
    let done = app.wait_for_status(&app.merchant_key, id, &["REFUNDED"]).await;
    assert_eq!(done["failure"]["code"], "PAYOUT_RETURNED", "{done}");
    assert_eq!(done["legs"]["offramp"]["status"], "RETURNED", "{done}");
    let to: Vec<&str> = done["history"].as_array().unwrap().iter().map(|h| h["to"].as_str().unwrap()).collect();
    assert_eq!(to[to.len() - 3..], ["COMPLETED", "REFUND_PENDING", "REFUNDED"], "{done}");
    let fee = done["fees"]["onramp_fee"].as_i64().unwrap();
    assert_eq!(done["refund"]["amount"], done["amount"].as_i64().unwrap() - fee, "{done}");
}

#[tokio::test]
async fn forged_stale_or_unsigned_webhooks_are_401_and_change_nothing() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let body = offramp_event(&p, "offramp.completed");
    let forged = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY";
    let r = send(&app, "sim-offramp", "msg_a", now_secs(), forged, &body).await;
    assert_eq!(r.status(), 401);
    let r = send(&app, "sim-offramp", "msg_b", now_secs() - 600, PROVIDER_SECRET, &body).await;
    assert_eq!(r.status(), 401, "a timestamp 10 minutes old is a replay");
    let r = app
        .client
        .post(format!("{}/v1/provider-webhooks/sim-offramp", app.address))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "UNAUTHORIZED");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now = app.get(&format!("/v1/payments/{}", p["payment_id"].as_str().unwrap()), &app.merchant_key).await;
    let now: Value = now.json().await.unwrap();
    assert_eq!(now["status"], "OFFRAMP_PENDING");
}

#[tokio::test]
async fn a_replayed_webhook_id_is_accepted_and_changes_nothing() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let body = offramp_event(&p, "offramp.completed");
    let r = send(&app, "sim-offramp", "msg_dup", now_secs(), PROVIDER_SECRET, &body).await;
    assert_eq!(r.status(), 200);
    let id = p["payment_id"].as_str().unwrap();
    app.wait_for_status(&app.merchant_key, id, &["COMPLETED"]).await;
    // The same message again, and a failure report under the same id: both no-ops.
    let r = send(&app, "sim-offramp", "msg_dup", now_secs(), PROVIDER_SECRET, &body).await;
    assert_eq!(r.status(), 200);
    let r = send(&app, "sim-offramp", "msg_dup", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.failed")).await;
    assert_eq!(r.status(), 200);
    let v: Value = app.get(&format!("/v1/payments/{id}"), &app.merchant_key).await.json().await.unwrap();
    assert_eq!(v["status"], "COMPLETED");
    assert_eq!(v["history"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn unknown_providers_references_and_mismatched_payments_are_404() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let body = offramp_event(&p, "offramp.completed");
    let r = send(&app, "no-such-provider", "m1", now_secs(), PROVIDER_SECRET, &body).await;
    assert_eq!(r.status(), 404);
    let wrong_ref = json!({"event_type": "offramp.completed", "reference": "nope", "payment_id": p["payment_id"]});
    let r = send(&app, "sim-offramp", "m2", now_secs(), PROVIDER_SECRET, &wrong_ref).await;
    assert_eq!(r.status(), 404);
    let wrong_payment = json!({"event_type": "offramp.completed", "reference": p["legs"]["offramp"]["reference"], "payment_id": "pay_other"});
    let r = send(&app, "sim-offramp", "m3", now_secs(), PROVIDER_SECRET, &wrong_payment).await;
    assert_eq!(r.status(), 404);
    // The offramp reference reported as an onramp event does not match that leg either.
    let wrong_leg = json!({"event_type": "onramp.completed", "reference": p["legs"]["offramp"]["reference"], "payment_id": p["payment_id"]});
    let r = send(&app, "sim-onramp", "m4", now_secs(), ONRAMP_SECRET, &wrong_leg).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_webhook_after_the_poller_settled_the_leg_is_a_no_op() {
    let Some(app) = spawn_app().await else { return };
    let p = app
        .pay(
            &app.merchant_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": "src", "destination_account": "dst"}),
        )
        .await;
    let id = p["payment_id"].as_str().unwrap();
    let done = app.wait_for_status(&app.merchant_key, id, &["COMPLETED"]).await;
    for (n, (provider, kind, leg)) in [
        ("sim-onramp", "onramp.completed", "onramp"),
        ("sim-offramp", "offramp.completed", "offramp"),
        ("sim-offramp", "offramp.failed", "offramp"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"event_type": kind, "reference": done["legs"][leg]["reference"], "payment_id": id});
        let secret = if provider == "sim-onramp" { ONRAMP_SECRET } else { PROVIDER_SECRET };
        let r = send(&app, provider, &format!("late_{n}"), now_secs(), secret, &body).await;
        assert_eq!(r.status(), 200, "{kind}");
    }
    let v: Value = app.get(&format!("/v1/payments/{id}"), &app.merchant_key).await.json().await.unwrap();
    assert_eq!(v["status"], "COMPLETED");
    assert_eq!(v["history"], done["history"], "late webhooks add nothing to the history");
}

#[tokio::test]
async fn a_webhook_with_an_unknown_field_is_refused_and_changes_nothing() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let mut event = offramp_event(&p, "offramp.completed");
    event["amount_paid"] = json!(1);
    let r = send(&app, "sim-offramp", "msg_unknown", now_secs(), PROVIDER_SECRET, &event).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "INVALID_REQUEST", "{body}");
    let id = p["payment_id"].as_str().unwrap();
    let now = app.get(&format!("/v1/payments/{id}"), &app.merchant_key).await;
    let now: Value = now.json().await.unwrap();
    assert_eq!(now["status"], "OFFRAMP_PENDING");
}

#[tokio::test]
async fn each_provider_signs_with_its_own_secret() {
    let Some(app) = spawn_app().await else { return };
    let p = slow_payment(&app).await;
    let event = offramp_event(&p, "offramp.completed");
    // The onramp's secret cannot sign the offramp's events.
    let r = send(&app, "sim-offramp", "msg_cross", now_secs(), ONRAMP_SECRET, &event).await;
    assert_eq!(r.status(), 401);
    let id = p["payment_id"].as_str().unwrap();
    let now: Value = app.get(&format!("/v1/payments/{id}"), &app.merchant_key).await.json().await.unwrap();
    assert_eq!(now["status"], "OFFRAMP_PENDING");
    let r = send(&app, "sim-offramp", "msg_own", now_secs(), PROVIDER_SECRET, &event).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_provider_without_a_configured_secret_has_its_webhooks_refused() {
    let Some(app) = spawn_app_with(|c| c.offramp_webhook_secret = None).await else { return };
    let p = slow_payment(&app).await;
    let r = send(&app, "sim-offramp", "msg_x", now_secs(), PROVIDER_SECRET, &offramp_event(&p, "offramp.completed")).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("no webhook secret"), "{body}");
}
