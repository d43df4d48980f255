//! Corridors, their limits, current rates, and admin rate pins.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::errors::{expect_error, expect_status};
use super::*;
use super::quotes::{expected_payout, exponent, instant, rate_of};

/// The corridor list, asserting the documented shape of every entry.
async fn corridors(app: &TestApp) -> Vec<Value> {
    let body = expect_status(app.get("/v1/corridors", &app.merchant_key).await, 200).await;
    let data = body["data"].as_array().expect("`data` array").clone();
    for c in &data {
        let from = c["from_currency"].as_str().expect("from_currency");
        let to = c["to_currency"].as_str().expect("to_currency");
        assert_ne!(from, to, "a corridor into its own currency: {c}");
        let min = c["min_amount"].as_i64().expect("min_amount is an integer");
        let max = c["max_amount"].as_i64().expect("max_amount is an integer");
        assert!(0 < min && min <= max, "limits {min}..{max}: {c}");
        assert!(c["fees"].is_object(), "fees schedule: {c}");
    }
    data
}

/// `PUT` or `DELETE` on an admin rate pin.
async fn admin_rate(
    app: &TestApp,
    method: reqwest::Method,
    pair: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, format!("{}/v1/admin/rates/{pair}", app.address))
        .bearer_auth(&app.admin_key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request is sent")
}

#[tokio::test]
async fn listing_corridors_returns_the_default_usd_table() {
    let Some(app) = spawn_app().await else { return };
    let data = corridors(&app).await;
    assert!(!data.is_empty());
    for c in &data {
        assert_eq!(
            c["from_currency"], "USD",
            "default corridors start in USD: {c}"
        );
    }
    let eur = data
        .iter()
        .find(|c| c["to_currency"] == "EUR")
        .expect("a USD→EUR corridor");
    assert_eq!(eur["min_amount"], 1_000);
    assert_eq!(eur["max_amount"], 100_000_000);
}

#[tokio::test]
async fn every_corridor_accepts_amounts_from_its_min_to_its_max_inclusive() {
    let Some(app) = spawn_app().await else { return };
    for c in corridors(&app).await {
        let to = c["to_currency"].as_str().expect("to_currency");
        for key in ["min_amount", "max_amount"] {
            let amount = c[key].as_i64().expect("limit");
            let quote = app.quote(&app.merchant_key, to, amount).await;
            assert_eq!(quote["amount"], amount);
            assert!(quote["guaranteed_payout"].as_i64().is_some_and(|p| p > 0));
        }
    }
}

#[tokio::test]
async fn every_default_min_amount_pays_out_at_least_a_few_units() {
    let Some(app) = spawn_app().await else { return };
    for c in corridors(&app).await {
        let to = c["to_currency"].as_str().expect("to_currency");
        let min = c["min_amount"].as_i64().expect("min_amount");
        let quote = app.quote(&app.merchant_key, to, min).await;
        let payout = quote["guaranteed_payout"].as_i64().expect("payout");
        let unit = 10i64.pow(exponent(to));
        assert!(
            payout >= 2 * unit,
            "USD→{to} at its minimum {min} pays only {payout} minor units"
        );
    }
}

#[tokio::test]
async fn amounts_just_outside_a_corridors_limits_return_400_amount_out_of_range() {
    let Some(app) = spawn_app().await else { return };
    for c in corridors(&app).await {
        let to = c["to_currency"].as_str().expect("to_currency");
        let below = c["min_amount"].as_i64().expect("min") - 1;
        let above = c["max_amount"].as_i64().expect("max") + 1;
        for amount in [below, above] {
            if amount <= 0 {
                continue;
            }
            let resp = app
                .post(
                    "/v1/quotes",
                    &app.merchant_key,
                    json!({"from_currency": "USD", "to_currency": to, "amount": amount}),
                )
                .await;
            expect_error(
                resp,
                400,
                "AMOUNT_OUT_OF_RANGE",
                &format!("USD→{to} {amount}"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn rates_return_the_current_customer_rate_as_a_json_number() {
    let Some(app) = spawn_app().await else { return };
    let body = expect_status(
        app.get("/v1/rates?from=USD&to=EUR", &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(body["from_currency"], "USD");
    assert_eq!(body["to_currency"], "EUR");
    assert!(
        body["rate"].is_number(),
        "rate is not a JSON number: {body}"
    );
    rate_of(&body["rate"]);
    instant(&body["as_of"]);
}

#[tokio::test]
async fn rates_between_currencies_without_a_corridor_return_400_unsupported_corridor() {
    let Some(app) = spawn_app().await else { return };
    for (from, to) in [("EUR", "USD"), ("USD", "USD"), ("USD", "XAF")] {
        let resp = app
            .get(&format!("/v1/rates?from={from}&to={to}"), &app.merchant_key)
            .await;
        expect_error(resp, 400, "UNSUPPORTED_CORRIDOR", &format!("{from}→{to}")).await;
    }
}

#[tokio::test]
async fn rates_with_a_bad_or_missing_currency_return_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    for query in [
        "from=usd&to=EUR",
        "from=USD&to=ZZZ",
        "from=USD&to=EURO",
        "from=USD",
        "to=EUR",
        "",
    ] {
        let resp = app
            .get(&format!("/v1/rates?{query}"), &app.merchant_key)
            .await;
        expect_error(resp, 400, "INVALID_REQUEST", query).await;
    }
}

#[tokio::test]
async fn a_pinned_rate_is_shown_by_rates_and_used_by_new_quotes() {
    let Some(app) = spawn_app().await else { return };
    let pinned: Decimal = "0.91".parse().expect("decimal");
    let resp = admin_rate(
        &app,
        reqwest::Method::PUT,
        "USD/EUR",
        Some(json!({"rate": 0.91})),
    )
    .await;
    let pin = expect_status(resp, 200).await;
    assert_eq!(
        rate_of(&pin["rate"]),
        pinned,
        "the PUT answers the pin: {pin}"
    );

    let rates = expect_status(
        app.get("/v1/rates?from=USD&to=EUR", &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(rate_of(&rates["rate"]), pinned);

    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    assert_eq!(rate_of(&quote["exchange_rate"]), pinned);
    let net = 100_000 - quote["fees"]["total_fees"].as_i64().expect("total_fees");
    assert_eq!(
        quote["guaranteed_payout"],
        expected_payout(net, pinned, 2, 2)
    );

    let listed = expect_status(app.get("/v1/admin/rates", &app.admin_key).await, 200).await;
    let entry = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["from_currency"] == "USD" && p["to_currency"] == "EUR")
        .expect("the pin is listed")
        .clone();
    assert_eq!(rate_of(&entry["rate"]), pinned);
    instant(&entry["pinned_at"]);
}

#[tokio::test]
async fn quotes_given_before_a_pin_keep_their_rate() {
    let Some(app) = spawn_app().await else { return };
    let before = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let resp = admin_rate(
        &app,
        reqwest::Method::PUT,
        "USD/EUR",
        Some(json!({"rate": 0.8})),
    )
    .await;
    expect_status(resp, 200).await;
    let id = before["quote_id"].as_str().expect("quote_id");
    let got = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(
        rate_of(&got["exchange_rate"]),
        rate_of(&before["exchange_rate"])
    );
    assert_eq!(got["guaranteed_payout"], before["guaranteed_payout"]);
    let payment = app
        .pay(
            &app.merchant_key,
            json!({"quote_id": id, "source_account": "user123", "destination_account": "merchant456"}),
        )
        .await;
    assert_eq!(payment["guaranteed_payout"], before["guaranteed_payout"]);
}

#[tokio::test]
async fn unpinning_returns_204_and_unpinning_again_returns_404() {
    let Some(app) = spawn_app().await else { return };
    let resp = admin_rate(
        &app,
        reqwest::Method::PUT,
        "USD/EUR",
        Some(json!({"rate": 0.8})),
    )
    .await;
    expect_status(resp, 200).await;
    let resp = admin_rate(&app, reqwest::Method::DELETE, "USD/EUR", None).await;
    assert_eq!(resp.status().as_u16(), 204);
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    assert_ne!(
        rate_of(&quote["exchange_rate"]),
        Decimal::new(5, 1),
        "the pin still applies after DELETE"
    );
    let resp = admin_rate(&app, reqwest::Method::DELETE, "USD/EUR", None).await;
    expect_error(resp, 404, "NOT_FOUND", "unpinning with no pin").await;
}
