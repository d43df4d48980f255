//! Quotes: fees, the locked rate and the guaranteed payout, validation errors, and a quote's
//! life from `ACTIVE` to `EXPIRED` or `USED`.
//!
//! Payouts are checked with exact integer arithmetic against the rate exactly as the server
//! wrote it, so a binary-float rate or an off-by-one rounding cannot pass.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::errors::{expect_error, expect_status};
use super::*;

/// ISO 4217 exponent of the payout currencies a corridor may use.
pub fn exponent(code: &str) -> u32 {
    match code {
        "JPY" | "KRW" | "VND" | "CLP" | "XAF" | "XOF" | "ISK" | "UGX" | "PYG" | "RWF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// A rate exactly as the server wrote it: a JSON number, no exponent, at most 8 decimals.
pub fn rate_of(v: &Value) -> Decimal {
    let Value::Number(n) = v else {
        panic!("rate is not a JSON number: {v}")
    };
    // serde_json is built with `arbitrary_precision`: this is the text on the wire.
    let text = n.to_string();
    assert!(
        !text.contains(['e', 'E']),
        "rate `{text}` is written with an exponent"
    );
    let rate: Decimal = text
        .parse()
        .unwrap_or_else(|e| panic!("rate `{text}` is not a decimal: {e}"));
    assert!(
        rate.scale() <= 8,
        "rate `{text}` has more than 8 decimals (binary-float noise?)"
    );
    assert!(rate > Decimal::ZERO, "rate `{text}` is not positive");
    rate
}

/// `floor(net × rate × 10^(e_to − e_from))` in exact integer arithmetic.
pub fn expected_payout(net: i64, rate: Decimal, e_from: u32, e_to: u32) -> i64 {
    assert!(net > 0, "net amount {net} is not positive");
    let numerator = i128::from(net) * rate.mantissa() * 10i128.pow(e_to);
    let denominator = 10i128.pow(rate.scale() + e_from);
    i64::try_from(numerator / denominator).expect("payout fits in i64")
}

/// An RFC 3339 UTC timestamp.
pub fn instant(v: &Value) -> OffsetDateTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    assert!(s.ends_with('Z'), "timestamp `{s}` is not UTC");
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("`{s}` is not RFC 3339: {e}"))
}

/// Asserts `id` is the string `{prefix}<uuid>`.
pub fn assert_prefixed_uuid(id: &Value, prefix: &str) {
    let id = id
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {id}"));
    let uuid = id
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{id}` does not start with `{prefix}`"));
    assert!(
        uuid::Uuid::parse_str(uuid).is_ok(),
        "`{id}` is not {prefix}<uuid>"
    );
}

/// Asserts the quote's payout is exactly the documented formula applied to its own figures.
fn assert_payout_follows_the_formula(quote: &Value, to: &str) {
    let amount = quote["amount"].as_i64().expect("amount");
    let total = quote["fees"]["total_fees"].as_i64().expect("total_fees");
    let rate = rate_of(&quote["exchange_rate"]);
    let expected = expected_payout(amount - total, rate, 2, exponent(to));
    assert_eq!(
        quote["guaranteed_payout"], expected,
        "payout for {amount} USD→{to} at {rate}: {quote}"
    );
}

fn quote_body(from: &str, to: &str, amount: i64) -> Value {
    json!({"from_currency": from, "to_currency": to, "amount": amount})
}

#[tokio::test]
async fn creating_a_quote_for_100000_usd_to_eur_charges_the_documented_fees() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let fees = &quote["fees"];
    assert_eq!(fees["platform_fee"], 2100, "{quote}");
    assert_eq!(fees["onramp_fee"], 1050, "{quote}");
    assert_eq!(fees["offramp_fee"], 1575, "{quote}");
    assert_eq!(fees["total_fees"], 4725, "{quote}");
    assert_eq!(fees["currency"], "USD", "{quote}");
    assert_payout_follows_the_formula(&quote, "EUR");
}

#[tokio::test]
async fn a_quote_has_the_documented_shape() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    assert_prefixed_uuid(&quote["quote_id"], "quote_");
    assert_eq!(quote["amount"], 100_000);
    assert_eq!(quote["currency"], "USD");
    assert_eq!(quote["payout_currency"], "EUR");
    assert_eq!(quote["status"], "ACTIVE");
    assert_eq!(quote["valid_for_seconds"], 60);
    assert!(quote["guaranteed_payout"].as_i64().is_some_and(|p| p > 0));
    rate_of(&quote["exchange_rate"]);
    let created = instant(&quote["created_at"]);
    let expires = instant(&quote["expires_at"]);
    assert_eq!(expires - created, time::Duration::seconds(60), "{quote}");
}

#[tokio::test]
async fn the_guaranteed_payout_is_the_floor_of_the_net_amount_at_the_quoted_rate() {
    let Some(app) = spawn_app().await else { return };
    for to in ["EUR", "INR", "JPY"] {
        for amount in [
            1_000,
            1_001,
            9_999,
            10_000,
            99_999,
            100_000,
            123_457,
            100_000_000,
        ] {
            let quote = app.quote(&app.merchant_key, to, amount).await;
            assert_eq!(quote["amount"], amount);
            let fees = &quote["fees"];
            let sum = ["platform_fee", "onramp_fee", "offramp_fee"]
                .iter()
                .map(|f| fees[*f].as_i64().expect("fee is an integer"))
                .sum::<i64>();
            assert_eq!(fees["total_fees"], sum, "total_fees is the sum: {quote}");
            assert_payout_follows_the_formula(&quote, to);
        }
    }
}

#[tokio::test]
async fn jpy_payouts_are_whole_yen() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "JPY", 100_000).await;
    assert_eq!(quote["payout_currency"], "JPY");
    // USD cents → yen: ÷100, so $952.75 net at ~150 pays about 140,000 yen, not 14,000,000.
    let rate = rate_of(&quote["exchange_rate"]);
    let net = 100_000 - quote["fees"]["total_fees"].as_i64().expect("total_fees");
    assert_eq!(quote["guaranteed_payout"], expected_payout(net, rate, 2, 0));
}

#[tokio::test]
async fn the_exchange_rate_is_written_exactly() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post(
            "/v1/quotes",
            &app.merchant_key,
            quote_body("USD", "EUR", 100_000),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("body");
    let start = text
        .find(r#""exchange_rate":"#)
        .expect("exchange_rate in body")
        + 16;
    let raw: String = text[start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let rate: Decimal = raw.parse().expect("rate is a plain decimal number");
    assert!(rate.scale() <= 8, "rate `{raw}` has float noise");
    let quote: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(rate_of(&quote["exchange_rate"]), rate);
}

#[tokio::test]
async fn valid_for_seconds_is_the_configured_lock_time_not_a_countdown() {
    let Some(app) = spawn_app_with(|c| {
        c.quote_ttl = corridor::config::Dur(Duration::from_secs(90));
    }).await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    assert_eq!(quote["valid_for_seconds"], 90);
    let id = quote["quote_id"].as_str().expect("quote_id");
    app.advance_clock(Duration::from_secs(30));
    let later = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(later["status"], "ACTIVE");
    assert_eq!(later["valid_for_seconds"], 90);
    assert_eq!(later["expires_at"], quote["expires_at"]);
}

#[tokio::test]
async fn creating_a_quote_with_an_invalid_amount_returns_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    let cases = [
        (
            "missing",
            json!({"from_currency": "USD", "to_currency": "EUR"}),
        ),
        (
            "null",
            json!({"from_currency": "USD", "to_currency": "EUR", "amount": null}),
        ),
        ("zero", quote_body("USD", "EUR", 0)),
        ("negative", quote_body("USD", "EUR", -100_000)),
        (
            "fractional",
            json!({"from_currency": "USD", "to_currency": "EUR", "amount": 1000.5}),
        ),
        (
            "string",
            json!({"from_currency": "USD", "to_currency": "EUR", "amount": "100000"}),
        ),
        (
            "boolean",
            json!({"from_currency": "USD", "to_currency": "EUR", "amount": true}),
        ),
    ];
    for (case, body) in cases {
        let resp = app.post("/v1/quotes", &app.merchant_key, body).await;
        expect_error(resp, 400, "INVALID_REQUEST", case).await;
    }
}

#[tokio::test]
async fn creating_a_quote_with_an_invalid_currency_returns_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    let cases = [
        ("lowercase source", quote_body("usd", "EUR", 100_000)),
        ("lowercase payout", quote_body("USD", "eur", 100_000)),
        ("mixed case", quote_body("Usd", "EUR", 100_000)),
        ("not a code", quote_body("USD", "ZZZ", 100_000)),
        ("too short", quote_body("US", "EUR", 100_000)),
        ("too long", quote_body("USD", "EURO", 100_000)),
        ("empty", quote_body("USD", "", 100_000)),
        (
            "missing payout",
            json!({"from_currency": "USD", "amount": 100_000}),
        ),
        (
            "numeric",
            json!({"from_currency": "USD", "to_currency": 978, "amount": 100_000}),
        ),
    ];
    for (case, body) in cases {
        let resp = app.post("/v1/quotes", &app.merchant_key, body).await;
        expect_error(resp, 400, "INVALID_REQUEST", case).await;
    }
}

#[tokio::test]
async fn creating_a_quote_between_currencies_without_a_corridor_returns_400_unsupported_corridor() {
    let Some(app) = spawn_app().await else { return };
    for (from, to) in [
        ("USD", "USD"),
        ("EUR", "EUR"),
        ("EUR", "USD"),
        ("GBP", "EUR"),
        ("USD", "XAF"),
        ("USD", "USDC"),
    ] {
        let resp = app
            .post(
                "/v1/quotes",
                &app.merchant_key,
                quote_body(from, to, 100_000),
            )
            .await;
        expect_error(resp, 400, "UNSUPPORTED_CORRIDOR", &format!("{from}→{to}")).await;
    }
}

#[tokio::test]
async fn creating_a_quote_for_an_amount_outside_the_corridor_returns_400_amount_out_of_range() {
    let Some(app) = spawn_app().await else { return };
    for amount in [1, 999, 100_000_001, i64::MAX] {
        let resp = app
            .post(
                "/v1/quotes",
                &app.merchant_key,
                quote_body("USD", "EUR", amount),
            )
            .await;
        expect_error(
            resp,
            400,
            "AMOUNT_OUT_OF_RANGE",
            &format!("amount {amount}"),
        )
        .await;
    }
}

#[tokio::test]
async fn getting_a_new_quote_returns_it_as_active() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let id = quote["quote_id"].as_str().expect("quote_id");
    let got = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(got["status"], "ACTIVE");
    for field in [
        "quote_id",
        "amount",
        "currency",
        "fees",
        "guaranteed_payout",
        "payout_currency",
        "created_at",
        "expires_at",
        "valid_for_seconds",
    ] {
        assert_eq!(got[field], quote[field], "{field}");
    }
    assert_eq!(
        rate_of(&got["exchange_rate"]),
        rate_of(&quote["exchange_rate"])
    );
    assert!(
        got["payment_id"].is_null(),
        "an unused quote has no payment: {got}"
    );
}

#[tokio::test]
async fn a_quote_past_its_lock_time_is_expired() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let id = quote["quote_id"].as_str().expect("quote_id");
    app.advance_clock(Duration::from_secs(61));
    let got = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(got["status"], "EXPIRED");
    assert_eq!(got["guaranteed_payout"], quote["guaranteed_payout"]);
}

#[tokio::test]
async fn a_paid_quote_is_used_and_names_its_payment_even_after_expiry() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let id = quote["quote_id"].as_str().expect("quote_id");
    let payment = app
        .pay(
            &app.merchant_key,
            json!({"quote_id": id, "source_account": "user123", "destination_account": "merchant456"}),
        )
        .await;

    let got = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(got["status"], "USED");
    assert_eq!(got["payment_id"], payment["payment_id"]);

    app.advance_clock(Duration::from_secs(120));
    let got = expect_status(
        app.get(&format!("/v1/quotes/{id}"), &app.merchant_key)
            .await,
        200,
    )
    .await;
    assert_eq!(
        got["status"], "USED",
        "a used quote stays USED after expiry"
    );
    assert_eq!(got["payment_id"], payment["payment_id"]);
}

#[tokio::test]
async fn getting_an_unknown_quote_returns_404_not_found() {
    let Some(app) = spawn_app().await else { return };
    let path = format!("/v1/quotes/quote_{}", uuid::Uuid::new_v4());
    let resp = app.get(&path, &app.merchant_key).await;
    expect_error(resp, 404, "NOT_FOUND", "unknown quote").await;
}

#[tokio::test]
async fn getting_another_merchants_quote_returns_404_not_found() {
    let Some(app) = spawn_app().await else { return };
    let other = app.new_merchant("other").await;
    let quote = app.quote(&other, "EUR", 100_000).await;
    let id = quote["quote_id"].as_str().expect("quote_id");
    let resp = app
        .get(&format!("/v1/quotes/{id}"), &app.merchant_key)
        .await;
    expect_error(resp, 404, "NOT_FOUND", "another merchant's quote").await;
    // The owner still sees it.
    let resp = app.get(&format!("/v1/quotes/{id}"), &other).await;
    expect_status(resp, 200).await;
}
