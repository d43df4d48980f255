//! Payments: creation against a quote (and its errors, in the documented order), creation
//! without one, metadata limits, reading, tenancy, listing with cursors, and cancelling.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::errors::{expect_error, expect_status};
use super::*;
use super::quotes::{assert_prefixed_uuid, instant, rate_of};

/// A payment body paying `quote_id`.
pub fn pay_body(quote_id: &Value) -> Value {
    json!({
        "quote_id": quote_id,
        "source_account": "user123",
        "destination_account": "merchant456",
    })
}

/// A payment body that quotes `amount` USD→EUR in the same request.
fn unquoted_body(amount: i64) -> Value {
    json!({
        "amount": amount,
        "currency": "USD",
        "payout_currency": "EUR",
        "source_account": "user123",
        "destination_account": "merchant456",
    })
}

/// Creates a payment of `amount` USD→EUR for `key`, returning its id.
async fn create_payment(app: &TestApp, key: &str, amount: i64) -> String {
    let created = app.pay(key, unquoted_body(amount)).await;
    created["payment_id"]
        .as_str()
        .expect("payment_id")
        .to_owned()
}

/// `GET /v1/payments{query}` as the merchant.
async fn list(app: &TestApp, key: &str, query: &str) -> Value {
    expect_status(app.get(&format!("/v1/payments{query}"), key).await, 200).await
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("`data` array")
        .iter()
        .map(|p| p["payment_id"].as_str().expect("payment_id").to_owned())
        .collect()
}

async fn cancel(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.post(&format!("/v1/payments/{id}/cancel"), key, json!({}))
        .await
}

async fn no_workers() -> Option<TestApp> {
    spawn_app_with(|c| c.workers = 0).await
}

#[tokio::test]
async fn creating_a_payment_with_a_quote_returns_202_and_the_guaranteed_payout() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let resp = app
        .post(
            "/v1/payments",
            &app.merchant_key,
            pay_body(&quote["quote_id"]),
        )
        .await;
    let payment = expect_status(resp, 202).await;
    assert_prefixed_uuid(&payment["payment_id"], "pay_");
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["message"], "Payment accepted for processing");
    assert_eq!(payment["quote_id"], quote["quote_id"]);
    assert_eq!(payment["guaranteed_payout"], quote["guaranteed_payout"]);
    assert_eq!(payment["payout_currency"], "EUR");
}

#[tokio::test]
async fn creating_a_payment_with_an_already_used_quote_returns_409() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    app.pay(&app.merchant_key, pay_body(&quote["quote_id"]))
        .await;
    let mut again = pay_body(&quote["quote_id"]);
    again["source_account"] = json!("someone-else");
    let resp = app.post("/v1/payments", &app.merchant_key, again).await;
    expect_error(resp, 409, "QUOTE_ALREADY_USED", "second payment").await;
    let page = list(&app, &app.merchant_key, "").await;
    assert_eq!(ids(&page).len(), 1);
}

#[tokio::test]
async fn creating_a_payment_with_an_expired_quote_returns_400() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    app.advance_clock(Duration::from_secs(61));
    let resp = app
        .post(
            "/v1/payments",
            &app.merchant_key,
            pay_body(&quote["quote_id"]),
        )
        .await;
    let body = expect_error(resp, 400, "QUOTE_EXPIRED", "expired quote").await;
    assert_eq!(
        body["message"],
        "Quote has expired, please request a new quote"
    );
    let page = list(&app, &app.merchant_key, "").await;
    assert!(ids(&page).is_empty());
}

#[tokio::test]
async fn creating_a_payment_with_a_used_and_expired_quote_returns_409_quote_already_used() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    app.pay(&app.merchant_key, pay_body(&quote["quote_id"]))
        .await;
    app.advance_clock(Duration::from_secs(61));
    let resp = app
        .post(
            "/v1/payments",
            &app.merchant_key,
            pay_body(&quote["quote_id"]),
        )
        .await;
    expect_error(resp, 409, "QUOTE_ALREADY_USED", "used and expired").await;
}

#[tokio::test]
async fn creating_a_payment_with_an_unknown_quote_returns_404() {
    let Some(app) = spawn_app().await else { return };
    let unknown = json!(format!("quote_{}", uuid::Uuid::new_v4()));
    let resp = app
        .post("/v1/payments", &app.merchant_key, pay_body(&unknown))
        .await;
    expect_error(resp, 404, "QUOTE_NOT_FOUND", "unknown quote").await;
}

#[tokio::test]
async fn creating_a_payment_with_another_merchants_quote_returns_404() {
    let Some(app) = spawn_app().await else { return };
    let other = app.new_merchant("other").await;
    let quote = app.quote(&other, "EUR", 100_000).await;
    let resp = app
        .post(
            "/v1/payments",
            &app.merchant_key,
            pay_body(&quote["quote_id"]),
        )
        .await;
    expect_error(resp, 404, "QUOTE_NOT_FOUND", "another merchant's quote").await;
    // The quote was not consumed: its owner can still pay it.
    app.pay(&other, pay_body(&quote["quote_id"])).await;
}

#[tokio::test]
async fn creating_a_payment_that_differs_from_its_quote_returns_400_quote_mismatch() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    for (case, field, value) in [
        ("amount", "amount", json!(99_999)),
        ("currency", "currency", json!("EUR")),
    ] {
        let mut body = pay_body(&quote["quote_id"]);
        body[field] = value;
        let resp = app.post("/v1/payments", &app.merchant_key, body).await;
        expect_error(resp, 400, "QUOTE_MISMATCH", case).await;
    }
    // Neither attempt used the quote.
    let mut body = pay_body(&quote["quote_id"]);
    body["amount"] = json!(100_000);
    body["currency"] = json!("USD");
    let payment = app.pay(&app.merchant_key, body).await;
    assert_eq!(payment["quote_id"], quote["quote_id"]);
}

#[tokio::test]
async fn an_expired_quote_is_reported_before_a_mismatch() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    app.advance_clock(Duration::from_secs(61));
    let mut body = pay_body(&quote["quote_id"]);
    body["amount"] = json!(5_000);
    let resp = app.post("/v1/payments", &app.merchant_key, body).await;
    expect_error(resp, 400, "QUOTE_EXPIRED", "expired and mismatched").await;
}

#[tokio::test]
async fn creating_a_payment_without_a_quote_locks_a_new_quote() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post("/v1/payments", &app.merchant_key, unquoted_body(100_000))
        .await;
    let payment = expect_status(resp, 202).await;
    assert_prefixed_uuid(&payment["payment_id"], "pay_");
    assert_prefixed_uuid(&payment["quote_id"], "quote_");
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["payout_currency"], "EUR");
    assert!(payment["guaranteed_payout"].as_i64().is_some_and(|p| p > 0));

    let quote_id = payment["quote_id"].as_str().expect("quote_id");
    let quote = expect_status(
        app.get(&format!("/v1/quotes/{quote_id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(quote["status"], "USED");
    assert_eq!(quote["payment_id"], payment["payment_id"]);
    assert_eq!(quote["amount"], 100_000);
    assert_eq!(quote["guaranteed_payout"], payment["guaranteed_payout"]);
    assert_eq!(quote["fees"]["total_fees"], 4725);
}

#[tokio::test]
async fn creating_a_payment_without_a_quote_requires_amount_currency_and_payout_currency() {
    let Some(app) = spawn_app().await else { return };
    for field in ["amount", "currency", "payout_currency"] {
        let mut body = unquoted_body(100_000);
        body.as_object_mut().expect("object").remove(field);
        let resp = app.post("/v1/payments", &app.merchant_key, body).await;
        expect_error(resp, 400, "INVALID_REQUEST", &format!("without {field}")).await;
    }
    assert!(ids(&list(&app, &app.merchant_key, "").await).is_empty());
}

#[tokio::test]
async fn creating_a_payment_without_a_quote_reports_the_quote_errors() {
    let Some(app) = spawn_app().await else { return };
    let mut reversed = unquoted_body(100_000);
    reversed["currency"] = json!("EUR");
    reversed["payout_currency"] = json!("USD");
    let resp = app.post("/v1/payments", &app.merchant_key, reversed).await;
    expect_error(resp, 400, "UNSUPPORTED_CORRIDOR", "EUR→USD").await;

    let resp = app
        .post("/v1/payments", &app.merchant_key, unquoted_body(999))
        .await;
    expect_error(resp, 400, "AMOUNT_OUT_OF_RANGE", "below the minimum").await;

    let mut lower = unquoted_body(100_000);
    lower["payout_currency"] = json!("eur");
    let resp = app.post("/v1/payments", &app.merchant_key, lower).await;
    expect_error(resp, 400, "INVALID_REQUEST", "lowercase currency").await;

    let resp = app
        .post("/v1/payments", &app.merchant_key, unquoted_body(-5))
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "negative amount").await;
}

#[tokio::test]
async fn metadata_of_twenty_entries_at_the_size_limits_is_accepted_and_returned() {
    let Some(app) = spawn_app().await else { return };
    let metadata: Map<String, Value> = (0..20)
        .map(|i| (format!("{i:0>40}"), json!("v".repeat(500))))
        .collect();
    let mut body = unquoted_body(100_000);
    body["metadata"] = Value::Object(metadata.clone());
    let created = app.pay(&app.merchant_key, body).await;
    let id = created["payment_id"].as_str().expect("payment_id");
    let payment = expect_status(
        app.get(&format!("/v1/payments/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["metadata"], Value::Object(metadata));
}

#[tokio::test]
async fn metadata_beyond_the_limits_returns_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let too_many: Map<String, Value> = (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        ("21 entries", Value::Object(too_many)),
        ("41-character key", json!({ "k".repeat(41): "v" })),
        ("501-character value", json!({"k": "v".repeat(501)})),
        ("number value", json!({"k": 5})),
        ("null value", json!({"k": null})),
        ("object value", json!({"k": {"nested": "x"}})),
        ("array", json!(["a"])),
        ("string", json!("order A-17")),
    ];
    for (case, metadata) in cases {
        let mut body = pay_body(&quote["quote_id"]);
        body["metadata"] = metadata;
        let resp = app.post("/v1/payments", &app.merchant_key, body).await;
        expect_error(resp, 400, "INVALID_REQUEST", case).await;
    }
    // The refusals left the quote unused.
    let id = quote["quote_id"].as_str().expect("quote_id");
    let got = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(got["status"], "ACTIVE");
}

#[tokio::test]
async fn getting_a_new_payment_returns_the_documented_shape() {
    let Some(app) = no_workers().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let created = app
        .pay(&app.merchant_key, pay_body(&quote["quote_id"]))
        .await;
    let id = created["payment_id"].as_str().expect("payment_id");
    let p = expect_status(
        app.get(&format!("/v1/payments/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(p["payment_id"], id);
    assert_eq!(p["status"], "PENDING");
    assert_eq!(p["amount"], 100_000);
    assert_eq!(p["currency"], "USD");
    for fee in ["platform_fee", "onramp_fee", "offramp_fee", "total_fees"] {
        assert_eq!(p["fees"][fee], quote["fees"][fee], "{fee}");
    }
    assert_eq!(
        rate_of(&p["exchange_rate"]),
        rate_of(&quote["exchange_rate"])
    );
    assert_eq!(p["payout_amount"], quote["guaranteed_payout"]);
    assert_eq!(p["payout_currency"], "EUR");
    assert_eq!(p["quote_id"], quote["quote_id"]);
    assert_eq!(p["source_account"], "user123");
    assert_eq!(p["destination_account"], "merchant456");
    assert_eq!(
        p["metadata"],
        json!({}),
        "metadata is {{}} when none was given"
    );
    instant(&p["created_at"]);
    instant(&p["updated_at"]);
    assert_eq!(p.get("completed_at"), Some(&Value::Null), "{p}");
    assert_eq!(p.get("failure"), Some(&Value::Null), "{p}");
    assert_eq!(
        p["legs"],
        json!({"onramp": null, "offramp": null}),
        "legs not yet started are null"
    );
    let history = p["history"].as_array().expect("history array");
    assert_eq!(history.len(), 1, "{p}");
    assert_eq!(history[0].get("from"), Some(&Value::Null));
    assert_eq!(history[0]["to"], "PENDING");
    instant(&history[0]["at"]);
    assert!(history[0]["reason"].is_string());
}

#[tokio::test]
async fn getting_an_unknown_payment_returns_404() {
    let Some(app) = spawn_app().await else { return };
    let path = format!("/v1/payments/pay_{}", uuid::Uuid::new_v4());
    let resp = app.get(&path, &app.merchant_key).await;
    expect_error(resp, 404, "NOT_FOUND", "unknown payment").await;
}

#[tokio::test]
async fn getting_another_merchants_payment_returns_404() {
    let Some(app) = spawn_app().await else { return };
    let other = app.new_merchant("other").await;
    let id = create_payment(&app, &other, 100_000).await;
    let resp = app
        .get(&format!("/v1/payments/{id}"), &app.merchant_key)
        .await;
    expect_error(resp, 404, "NOT_FOUND", "another merchant's payment").await;
}

#[tokio::test]
async fn listing_payments_returns_the_merchants_own_newest_first() {
    let Some(app) = no_workers().await else { return };
    let other = app.new_merchant("other").await;
    let foreign = create_payment(&app, &other, 100_000).await;
    let mut created = Vec::new();
    for amount in [10_000, 20_000, 30_000] {
        app.advance_clock(Duration::from_secs(2));
        created.push(create_payment(&app, &app.merchant_key, amount).await);
    }
    let page = list(&app, &app.merchant_key, "").await;
    created.reverse();
    assert_eq!(ids(&page), created);
    assert!(!ids(&page).contains(&foreign));
    assert_eq!(page["has_more"], false);
    assert_eq!(page.get("next_cursor"), Some(&Value::Null));
    assert_eq!(page["data"][0]["amount"], 30_000);
    assert_eq!(page["data"][0]["status"], "PENDING");
    assert_eq!(ids(&list(&app, &other, "").await), vec![foreign]);
}

#[tokio::test]
async fn listing_payments_returns_20_by_default() {
    let Some(app) = no_workers().await else { return };
    for _ in 0..21 {
        create_payment(&app, &app.merchant_key, 100_000).await;
    }
    let page = list(&app, &app.merchant_key, "").await;
    assert_eq!(ids(&page).len(), 20);
    assert_eq!(page["has_more"], true);
    assert!(page["next_cursor"].is_string());
    let all = list(&app, &app.merchant_key, "?limit=100").await;
    assert_eq!(ids(&all).len(), 21);
    assert_eq!(all["has_more"], false);
}

#[tokio::test]
async fn listing_payments_with_a_limit_outside_1_to_100_returns_400() {
    let Some(app) = spawn_app().await else { return };
    for limit in ["0", "101", "-1", "abc", "1.5"] {
        let resp = app
            .get(&format!("/v1/payments?limit={limit}"), &app.merchant_key)
            .await;
        expect_error(resp, 400, "INVALID_REQUEST", &format!("limit={limit}")).await;
    }
    for limit in ["1", "100"] {
        list(&app, &app.merchant_key, &format!("?limit={limit}")).await;
    }
}

#[tokio::test]
async fn paging_through_payments_with_a_cursor_never_repeats_or_skips() {
    let Some(app) = no_workers().await else { return };
    for _ in 0..7 {
        // Several payments share a timestamp: the tie-break must keep pages stable.
        create_payment(&app, &app.merchant_key, 100_000).await;
    }
    let everything = ids(&list(&app, &app.merchant_key, "?limit=100").await);
    assert_eq!(everything.len(), 7);

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let page = list(&app, &app.merchant_key, &query).await;
        let page_ids = ids(&page);
        sizes.push(page_ids.len());
        seen.extend(page_ids.iter().cloned());
        if page["has_more"] == false {
            assert_eq!(page.get("next_cursor"), Some(&Value::Null), "{page}");
            break;
        }
        let cursor = page["next_cursor"]
            .as_str()
            .expect("next_cursor")
            .to_owned();
        assert_eq!(Some(&cursor), page_ids.last(), "cursor is the last id");
        query = format!("?limit=3&starting_after={cursor}");
        assert!(sizes.len() < 10, "paging does not end");
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen, everything, "pages repeat or skip payments");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
}

#[tokio::test]
async fn listing_payments_filters_by_status() {
    let Some(app) = no_workers().await else { return };
    let kept = [
        create_payment(&app, &app.merchant_key, 100_000).await,
        create_payment(&app, &app.merchant_key, 100_000).await,
    ];
    let cancelled = create_payment(&app, &app.merchant_key, 100_000).await;
    expect_status(cancel(&app, &app.merchant_key, &cancelled).await, 200).await;

    let page = list(&app, &app.merchant_key, "?status=CANCELLED").await;
    assert_eq!(ids(&page), vec![cancelled]);
    assert_eq!(page["data"][0]["status"], "CANCELLED");

    let page = list(&app, &app.merchant_key, "?status=PENDING").await;
    let pending: HashSet<_> = ids(&page).into_iter().collect();
    assert_eq!(pending, kept.iter().cloned().collect());

    let page = list(&app, &app.merchant_key, "?status=COMPLETED").await;
    assert!(ids(&page).is_empty());

    let resp = app
        .get("/v1/payments?status=NOT_A_STATE", &app.merchant_key)
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "unknown status").await;
}

#[tokio::test]
async fn listing_payments_after_an_unknown_or_foreign_cursor_returns_400() {
    let Some(app) = no_workers().await else { return };
    let other = app.new_merchant("other").await;
    let foreign = create_payment(&app, &other, 100_000).await;
    create_payment(&app, &app.merchant_key, 100_000).await;
    let unknown = format!("pay_{}", uuid::Uuid::new_v4());
    for (case, cursor) in [("unknown", unknown.as_str()), ("foreign", foreign.as_str())] {
        let resp = app
            .get(
                &format!("/v1/payments?starting_after={cursor}"),
                &app.merchant_key,
            )
            .await;
        expect_error(resp, 400, "INVALID_REQUEST", case).await;
    }
}

#[tokio::test]
async fn cancelling_a_pending_payment_returns_200_cancelled_without_legs() {
    let Some(app) = no_workers().await else { return };
    let id = create_payment(&app, &app.merchant_key, 100_000).await;
    let body = expect_status(cancel(&app, &app.merchant_key, &id).await, 200).await;
    assert_eq!(body["payment_id"], id.as_str());
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["legs"]["onramp"], Value::Null);
    assert_eq!(body["legs"]["offramp"], Value::Null);

    let p = expect_status(
        app.get(&format!("/v1/payments/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(p["status"], "CANCELLED");
    assert_eq!(p["legs"], json!({"onramp": null, "offramp": null}));
    let last = p["history"]
        .as_array()
        .and_then(|h| h.last())
        .expect("history")
        .clone();
    assert_eq!(last["from"], "PENDING");
    assert_eq!(last["to"], "CANCELLED");
}

/// A cancel whose answer was lost can be sent again: the payment is cancelled, and the
/// second cancel says so (found by `corridor simulate`: a crash after the cancel's commit
/// left the merchant's retry a 409, as if the cancel had failed).
#[tokio::test]
async fn cancelling_a_cancelled_payment_again_answers_200_and_writes_nothing() {
    let Some(app) = no_workers().await else { return };
    let id = create_payment(&app, &app.merchant_key, 100_000).await;
    let first = expect_status(cancel(&app, &app.merchant_key, &id).await, 200).await;
    let again = expect_status(cancel(&app, &app.merchant_key, &id).await, 200).await;
    assert_eq!(again["status"], "CANCELLED");
    assert_eq!(again["history"], first["history"], "no second transition");
    assert_eq!(again["updated_at"], first["updated_at"]);
}

#[tokio::test]
async fn cancelling_a_completed_payment_returns_409_invalid_state() {
    let Some(app) = spawn_app().await else { return };
    let id = create_payment(&app, &app.merchant_key, 100_000).await;
    let done = app
        .wait_for_status(&app.merchant_key, &id, &["COMPLETED"])
        .await;
    assert_eq!(done["status"], "COMPLETED");
    let resp = cancel(&app, &app.merchant_key, &id).await;
    expect_error(resp, 409, "INVALID_STATE", "cancel after completion").await;
    let p = expect_status(
        app.get(&format!("/v1/payments/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(p["status"], "COMPLETED");
}

#[tokio::test]
async fn cancelling_an_unknown_or_foreign_payment_returns_404() {
    let Some(app) = no_workers().await else { return };
    let other = app.new_merchant("other").await;
    let foreign = create_payment(&app, &other, 100_000).await;
    let unknown = format!("pay_{}", uuid::Uuid::new_v4());
    for (case, id) in [("unknown", unknown.as_str()), ("foreign", foreign.as_str())] {
        let resp = cancel(&app, &app.merchant_key, id).await;
        expect_error(resp, 404, "NOT_FOUND", case).await;
    }
    let p = expect_status(
        app.get(&format!("/v1/payments/{foreign}"), &other).await,
        200,
    )
    .await;
    assert_eq!(p["status"], "PENDING");
}
