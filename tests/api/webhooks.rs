//! Merchant webhooks: endpoints, signed deliveries verified with the Standard Webhooks
//! reference implementation (not Corridor's signer), retries, slow receivers, `410 Gone`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use corridor::config::{Dur, Schedule};
use serde_json::{Value, json};

use super::errors::expect_status;
use super::*;

/// How the test receiver answers.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ok,
    /// 500 for this many requests, then 200.
    FailFirst(usize),
    /// Never answers within the test.
    Hang,
    /// 410 Gone.
    Gone,
}

#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

async fn receiver(mode: Mode) -> Receiver {
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let state = (hits.clone(), mode);
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((hits, mode)): State<(Arc<Mutex<Vec<Hit>>>, Mode)>, headers: HeaderMap, body: Bytes| async move {
                    let n = {
                        let mut h = hits.lock().unwrap();
                        h.push(Hit { headers, body });
                        h.len()
                    };
                    match mode {
                        Mode::Ok => StatusCode::OK,
                        Mode::FailFirst(k) if n <= k => StatusCode::INTERNAL_SERVER_ERROR,
                        Mode::FailFirst(_) => StatusCode::NO_CONTENT,
                        Mode::Hang => {
                            tokio::time::sleep(Duration::from_secs(300)).await;
                            StatusCode::OK
                        }
                        Mode::Gone => StatusCode::GONE,
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        hits,
    }
}

impl Receiver {
    fn bodies(&self) -> Vec<Value> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .map(|h| serde_json::from_slice(&h.body).unwrap())
            .collect()
    }

    async fn wait_for(&self, what: &str, cond: impl Fn(&[Hit]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if cond(&self.hits.lock().unwrap()) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "receiver never saw {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn of_type<'a>(hits: &'a [Hit], ty: &str) -> Vec<&'a Hit> {
    hits.iter()
        .filter(|h| serde_json::from_slice::<Value>(&h.body).unwrap()["type"] == ty)
        .collect()
}

fn fast_webhooks(c: &mut corridor::config::Config) {
    c.webhook_allow_private = true;
    c.webhook_retry = Schedule(vec![Duration::from_millis(50); 4]);
}

async fn add_endpoint(app: &TestApp, url: &str, events: Option<Value>) -> Value {
    let mut body = json!({ "url": url });
    if let Some(e) = events {
        body["events"] = e;
    }
    let r = app.post("/v1/webhook-endpoints", &app.merchant_key, body).await;
    expect_status(r, 201).await
}

async fn completed_payment(app: &TestApp) -> String {
    let p = app
        .pay(
            &app.merchant_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": "src", "destination_account": "dst"}),
        )
        .await;
    let id = p["payment_id"].as_str().unwrap().to_owned();
    app.wait_for_status(&app.merchant_key, &id, &["COMPLETED"]).await;
    id
}

#[tokio::test]
async fn creating_an_endpoint_returns_201_with_a_secret_shown_once() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let created = add_endpoint(&app, "http://127.0.0.1:9/hook", None).await;
    assert!(created["id"].as_str().unwrap().starts_with("we_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(created["events"].as_array().unwrap().iter().any(|e| e == "payment.completed"));
    let list = expect_status(app.get("/v1/webhook-endpoints", &app.merchant_key).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("secret").is_none(), "the secret is only shown at creation");
    // Another merchant sees none of it.
    let other = app.new_merchant("other").await;
    let list = expect_status(app.get("/v1/webhook-endpoints", &other).await, 200).await;
    assert!(list["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn deleting_an_endpoint_returns_204_then_404() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let created = add_endpoint(&app, "http://127.0.0.1:9/hook", None).await;
    let path = format!("/v1/webhook-endpoints/{}", created["id"].as_str().unwrap());
    let other = app.new_merchant("other").await;
    let del = |key: String| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        async move { client.delete(url).bearer_auth(key).send().await.unwrap() }
    };
    assert_eq!(del(other).await.status(), 404, "another merchant's endpoint is 404");
    assert_eq!(del(app.merchant_key.clone()).await.status(), 204);
    assert_eq!(del(app.merchant_key.clone()).await.status(), 404);
}

#[tokio::test]
async fn endpoint_urls_must_be_https_to_public_hosts() {
    let Some(app) = spawn_app().await else { return };
    for url in [
        "http://1.1.1.1/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest",
        "https://100.64.1.1/x",
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:192.168.0.1]/x",
        "ftp://1.1.1.1/x",
        "not a url",
    ] {
        let r = app.post("/v1/webhook-endpoints", &app.merchant_key, json!({"url": url})).await;
        assert_eq!(r.status(), 400, "{url}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "INVALID_REQUEST", "{url}");
    }
    let long = format!("https://1.1.1.1/{}", "a".repeat(2100));
    let r = app.post("/v1/webhook-endpoints", &app.merchant_key, json!({"url": long})).await;
    assert_eq!(r.status(), 400);
    let r = app
        .post("/v1/webhook-endpoints", &app.merchant_key, json!({"url": "https://1.1.1.1/hook", "events": ["payment.nope"]}))
        .await;
    assert_eq!(r.status(), 400);
    let r = app.post("/v1/webhook-endpoints", &app.merchant_key, json!({"url": "https://1.1.1.1/hook"})).await;
    assert_eq!(r.status(), 201, "a public https URL is accepted");
}

#[tokio::test]
async fn every_state_change_is_delivered_signed_and_verifiable_with_the_reference_library() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let rx = receiver(Mode::Ok).await;
    let ep = add_endpoint(&app, &rx.url, None).await;
    let secret = ep["secret"].as_str().unwrap().to_owned();
    let payment_id = completed_payment(&app).await;
    rx.wait_for("payment.completed", |h| !of_type(h, "payment.completed").is_empty()).await;

    let verifier = standardwebhooks::Webhook::new(&secret).expect("secret accepted by the reference library");
    let hits = rx.hits.lock().unwrap().clone();
    let mut types = Vec::new();
    for h in &hits {
        verifier.verify(&h.body, &h.headers).expect("signature verifies with standardwebhooks");
        let v: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(h.headers["webhook-id"].to_str().unwrap(), v["id"].as_str().unwrap());
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(v["data"]["payment_id"], payment_id.as_str());
        let ty = v["type"].as_str().unwrap().to_owned();
        if ty != "payment.created" {
            // data is the payment as it was at that transition
            assert_eq!(format!("payment.{}", v["data"]["status"].as_str().unwrap().to_lowercase()), ty);
        } else {
            assert_eq!(v["data"]["status"], "PENDING");
        }
        // Its history runs up to and including the change it announces, never past it.
        let history = v["data"]["history"].as_array().unwrap();
        assert_eq!(history.last().unwrap()["to"], v["data"]["status"], "{v}");
        if ty == "payment.completed" {
            // The last event's payment is the payment as GET shows it now.
            let now = expect_status(app.get(&format!("/v1/payments/{payment_id}"), &app.merchant_key).await, 200).await;
            assert_eq!(v["data"], now);
        }
        types.push(ty);
    }
    types.sort();
    let mut want = vec![
        "payment.created",
        "payment.onramp_pending",
        "payment.onramp_complete",
        "payment.offramp_pending",
        "payment.completed",
    ];
    want.sort();
    assert_eq!(types, want);
    // A tampered body fails verification: the check above can fail.
    let mut bad = hits[0].body.to_vec();
    bad.push(b' ');
    assert!(verifier.verify(&bad, &hits[0].headers).is_err());

    // The attempt is recorded once the receiver has answered: wait for all five rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = expect_status(
            app.get(&format!("/v1/webhook-deliveries?payment_id={payment_id}"), &app.merchant_key).await,
            200,
        )
        .await;
        if log["data"].as_array().unwrap().len() >= 5 {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "deliveries not recorded: {log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        assert_eq!(r["status_code"], 200);
        assert_eq!(r["attempt"], 1);
        assert!(r["error"].is_null());
        assert_eq!(r["endpoint_id"], ep["id"]);
    }
}

#[tokio::test]
async fn an_endpoint_receives_only_the_event_types_it_subscribed_to() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let rx = receiver(Mode::Ok).await;
    add_endpoint(&app, &rx.url, Some(json!(["payment.completed"]))).await;
    completed_payment(&app).await;
    rx.wait_for("payment.completed", |h| !of_type(h, "payment.completed").is_empty()).await;
    // Give stray deliveries a chance to show up before asserting there were none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let types: Vec<Value> = rx.bodies().iter().map(|b| b["type"].clone()).collect();
    assert_eq!(types, vec![json!("payment.completed")]);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_webhook_id_until_it_recovers() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let rx = receiver(Mode::FailFirst(2)).await;
    add_endpoint(&app, &rx.url, Some(json!(["payment.created"]))).await;
    let p = app
        .pay(
            &app.merchant_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": "src", "destination_account": "dst"}),
        )
        .await;
    let payment_id = p["payment_id"].as_str().unwrap();
    rx.wait_for("three attempts", |h| h.len() >= 3).await;
    let hits = rx.hits.lock().unwrap().clone();
    let ids: Vec<&str> = hits.iter().map(|h| h.headers["webhook-id"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "every attempt carries the same webhook-id: {ids:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = expect_status(
            app.get(&format!("/v1/webhook-deliveries?payment_id={payment_id}"), &app.merchant_key).await,
            200,
        )
        .await;
        let codes: Vec<Value> = log["data"].as_array().unwrap().iter().map(|d| d["status_code"].clone()).collect();
        if codes.len() >= 3 {
            assert_eq!(codes, vec![json!(500), json!(500), json!(204)]);
            let attempts: Vec<Value> = log["data"].as_array().unwrap().iter().map(|d| d["attempt"].clone()).collect();
            assert_eq!(attempts, vec![json!(1), json!(2), json!(3)]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "attempts not recorded: {log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_hanging_receiver_does_not_hold_up_deliveries_to_others() {
    let Some(app) = spawn_app_with(|c| {
        fast_webhooks(c);
        c.webhook_timeout = Dur(Duration::from_secs(120));
    })
    .await
    else {
        return;
    };
    let slow = receiver(Mode::Hang).await;
    let healthy = receiver(Mode::Ok).await;
    add_endpoint(&app, &slow.url, None).await;
    add_endpoint(&app, &healthy.url, None).await;
    for _ in 0..4 {
        completed_payment(&app).await;
    }
    healthy
        .wait_for("four completions", |h| of_type(h, "payment.completed").len() == 4)
        .await;
    // The healthy endpoint got everything while the slow one has not finished a single
    // delivery: its attempts are still hanging (none recorded).
    let log = expect_status(app.get("/v1/webhook-deliveries", &app.merchant_key).await, 200).await;
    let slow_ep = expect_status(app.get("/v1/webhook-endpoints", &app.merchant_key).await, 200).await["data"][0]["id"]
        .clone();
    assert!(
        log["data"].as_array().unwrap().iter().all(|d| d["endpoint_id"] != slow_ep),
        "no delivery to the hanging endpoint has completed"
    );
    assert!(slow.hits.lock().unwrap().len() <= 2, "at most two deliveries in flight per endpoint");
}

#[tokio::test]
async fn a_410_gone_disables_the_endpoint() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let rx = receiver(Mode::Gone).await;
    add_endpoint(&app, &rx.url, Some(json!(["payment.created"]))).await;
    app.pay(
        &app.merchant_key,
        json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
               "source_account": "src", "destination_account": "dst"}),
    )
    .await;
    rx.wait_for("one attempt", |h| !h.is_empty()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = expect_status(app.get("/v1/webhook-endpoints", &app.merchant_key).await, 200).await;
        if list["data"][0]["disabled"] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "endpoint never disabled");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.pay(
        &app.merchant_key,
        json!({"amount": 100_001, "currency": "USD", "payout_currency": "EUR",
               "source_account": "src", "destination_account": "dst"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits.lock().unwrap().len(), 1, "a disabled endpoint gets nothing more");
}

#[tokio::test]
async fn a_delivery_can_be_retried_by_hand_and_foreign_payments_are_404() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let rx = receiver(Mode::Ok).await;
    add_endpoint(&app, &rx.url, Some(json!(["payment.created"]))).await;
    let p = app
        .pay(
            &app.merchant_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": "src", "destination_account": "dst"}),
        )
        .await;
    let payment_id = p["payment_id"].as_str().unwrap();
    rx.wait_for("created", |h| h.len() == 1).await;
    let other = app.new_merchant("other").await;
    let r = app.get(&format!("/v1/webhook-deliveries?payment_id={payment_id}"), &other).await;
    assert_eq!(r.status(), 404);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let delivery_id = loop {
        let log = expect_status(
            app.get(&format!("/v1/webhook-deliveries?payment_id={payment_id}"), &app.merchant_key).await,
            200,
        )
        .await;
        if let Some(id) = log["data"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let r = app
        .post(&format!("/v1/webhook-deliveries/{delivery_id}/retry"), &other, json!({}))
        .await;
    assert_eq!(r.status(), 404, "another merchant cannot retry it");
    let r = app
        .post(&format!("/v1/webhook-deliveries/{delivery_id}/retry"), &app.merchant_key, json!({}))
        .await;
    assert_eq!(r.status(), 202);
    rx.wait_for("the same event again", |h| h.len() == 2).await;
    let hits = rx.hits.lock().unwrap().clone();
    assert_eq!(hits[0].headers["webhook-id"], hits[1].headers["webhook-id"]);
    assert_eq!(hits[0].body, hits[1].body);
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let rx = receiver(Mode::Ok).await;
    let ep = add_endpoint(&app, &rx.url, Some(json!(["payment.created"]))).await;
    let old = ep["secret"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/v1/webhook-endpoints/{}/rotate-secret", ep["id"].as_str().unwrap()), &app.merchant_key, json!({}))
        .await;
    let new = expect_status(r, 200).await["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    app.pay(
        &app.merchant_key,
        json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
               "source_account": "src", "destination_account": "dst"}),
    )
    .await;
    rx.wait_for("created", |h| h.len() == 1).await;
    let hit = rx.hits.lock().unwrap()[0].clone();
    for s in [&old, &new] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&hit.body, &hit.headers)
            .expect("both secrets verify during the overlap");
    }
}

/// One merchant's unanswering endpoints take neither the payment workers nor every delivery
/// slot: another merchant's payment completes and its webhook arrives meanwhile.
#[tokio::test]
async fn one_merchants_silent_endpoints_starve_neither_payments_nor_other_merchants() {
    let Some(app) = spawn_app_with(|c| {
        fast_webhooks(c);
        c.webhook_timeout = Dur(Duration::from_secs(120));
        c.workers = 4;
        c.webhook_workers = 4;
    })
    .await
    else {
        return;
    };
    let silent = receiver(Mode::Hang).await;
    for _ in 0..4 {
        add_endpoint(&app, &silent.url, None).await;
    }
    // The noisy merchant's payments: each of their transitions queues four deliveries that
    // will hang for two minutes.
    for i in 0..6 {
        app.pay(
            &app.merchant_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": format!("noisy{i}"), "destination_account": "dst"}),
        )
        .await;
    }
    silent
        .wait_for("deliveries hanging", |h| !h.is_empty())
        .await;
    // Another merchant, with a healthy endpoint.
    let other_key = app.new_merchant("other").await;
    let healthy = receiver(Mode::Ok).await;
    let r = app
        .post("/v1/webhook-endpoints", &other_key, json!({"url": healthy.url}))
        .await;
    expect_status(r, 201).await;
    let p = app
        .pay(
            &other_key,
            json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                   "source_account": "quiet", "destination_account": "dst"}),
        )
        .await;
    let id = p["payment_id"].as_str().unwrap();
    // Both well inside the silent deliveries' two minutes (the bound only keeps a broken
    // build from hanging the suite).
    app.wait_for_status(&other_key, id, &["COMPLETED"]).await;
    healthy
        .wait_for("the other merchant's completion", |h| {
            !of_type(h, "payment.completed").is_empty()
        })
        .await;
}

/// The delivery log pages by cursor: newest first, or oldest first for one payment.
#[tokio::test]
async fn the_delivery_log_pages_by_cursor() {
    let Some(app) = spawn_app_with(fast_webhooks).await else { return };
    let ok = receiver(Mode::Ok).await;
    add_endpoint(&app, &ok.url, None).await;
    let first = completed_payment(&app).await;
    completed_payment(&app).await;
    ok.wait_for("two completions", |h| of_type(h, "payment.completed").len() == 2)
        .await;
    // Deliveries of the earlier events may still be on their way: wait until the log holds
    // every attempt the receiver got and stops growing, so the pages see one fixed log.
    let logged = async || -> usize {
        let v = expect_status(
            app.get("/v1/webhook-deliveries?limit=100", &app.merchant_key).await,
            200,
        )
        .await;
        v["data"].as_array().map_or(0, Vec::len)
    };
    let mut last = usize::MAX;
    for _ in 0..100 {
        let n = logged().await;
        if n == last && n >= ok.hits.lock().unwrap().len() {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = ok.hits.lock().unwrap().len();
    let all = app
        .page_through("/v1/webhook-deliveries", &app.merchant_key, "id", 2)
        .await;
    assert!(all.len() >= received && received >= 8, "{received} received, {} logged", all.len());
    let one = app
        .page_through(
            &format!("/v1/webhook-deliveries?payment_id={first}"),
            &app.merchant_key,
            "id",
            3,
        )
        .await;
    assert!(one.len() >= 4, "{one:?}");
}
