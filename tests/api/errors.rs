//! The error format and the request-level rejections every route shares: body size, media
//! type, malformed or unknown JSON, unknown routes and methods, rate limiting.
//!
//! Also home of the two response assertions the other test modules use, so that every
//! error any test sees is checked against the one documented shape.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

use super::*;

/// Reads `resp`, asserts its status is `status`, and returns the JSON body.
pub async fn expect_status(resp: reqwest::Response, status: u16) -> Value {
    let actual = resp.status().as_u16();
    let text = resp.text().await.expect("response body is readable");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts `resp` is an error in the documented format (`error` and `message` strings,
/// `field` a string when present) with this status, and returns the body.
pub async fn expect_error_format(resp: reqwest::Response, status: u16, case: &str) -> Value {
    let actual = resp.status().as_u16();
    let text = resp.text().await.expect("response body is readable");
    assert_eq!(actual, status, "{case}: unexpected status; body: {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{case}: error body is not JSON ({e}): {text}"));
    assert!(
        body["error"].as_str().is_some_and(|c| !c.is_empty()),
        "{case}: `error` must be a non-empty string: {text}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{case}: `message` must be a non-empty string: {text}"
    );
    if let Some(field) = body.get("field") {
        assert!(
            field.is_string() || field.is_null(),
            "{case}: `field` must be a string: {text}"
        );
    }
    body
}

/// Asserts `resp` is the documented error `code` with `status`, and returns the body.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str, case: &str) -> Value {
    let body = expect_error_format(resp, status, case).await;
    assert_eq!(
        body["error"], code,
        "{case}: wrong error code; body: {body}"
    );
    body
}

/// Sends `body` as is, with the given `Content-Type` (none when `None`) and the merchant key.
async fn send_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&app.merchant_key)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    req.send().await.expect("request is sent")
}

/// A JSON object of exactly `len` bytes: `{"padding":"xxx…"}`.
fn json_of_len(len: usize) -> String {
    let overhead = r#"{"padding":""}"#.len();
    format!(r#"{{"padding":"{}"}}"#, "x".repeat(len - overhead))
}

#[tokio::test]
async fn a_body_over_64_kib_returns_413_payload_too_large() {
    let Some(app) = spawn_app().await else { return };
    let body = json_of_len(64 * 1024 + 1);
    assert_eq!(body.len(), 65_537);
    let resp = send_raw(&app, "/v1/quotes", Some("application/json"), body).await;
    expect_error(resp, 413, "PAYLOAD_TOO_LARGE", "64 KiB + 1 byte").await;

    let big = json!({
        "from_currency": "USD", "to_currency": "EUR", "amount": 100_000,
        "padding": "x".repeat(200 * 1024),
    });
    let resp = app.post("/v1/payments", &app.merchant_key, big).await;
    expect_error(resp, 413, "PAYLOAD_TOO_LARGE", "200 KiB payment").await;
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_not_refused_for_its_size() {
    let Some(app) = spawn_app().await else { return };
    let body = json_of_len(64 * 1024);
    // The body is well within the limit; what remains wrong with it is the unknown field.
    let resp = send_raw(&app, "/v1/quotes", Some("application/json"), body).await;
    expect_error(resp, 400, "INVALID_REQUEST", "exactly 64 KiB").await;
}

#[tokio::test]
async fn a_body_without_a_json_content_type_returns_415() {
    let Some(app) = spawn_app().await else { return };
    let body = json!({"from_currency": "USD", "to_currency": "EUR", "amount": 100_000}).to_string();
    for (case, ct) in [
        ("no Content-Type", None),
        ("text/plain", Some("text/plain")),
        ("form", Some("application/x-www-form-urlencoded")),
    ] {
        let resp = send_raw(&app, "/v1/quotes", ct, body.clone()).await;
        expect_error(resp, 415, "UNSUPPORTED_MEDIA_TYPE", case).await;
    }
}

#[tokio::test]
async fn a_json_content_type_with_a_charset_is_accepted() {
    let Some(app) = spawn_app().await else { return };
    let body = json!({"from_currency": "USD", "to_currency": "EUR", "amount": 100_000}).to_string();
    let resp = send_raw(
        &app,
        "/v1/quotes",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    let quote = expect_status(resp, 200).await;
    assert_eq!(quote["status"], "ACTIVE");
}

#[tokio::test]
async fn an_unknown_field_returns_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post(
            "/v1/quotes",
            &app.merchant_key,
            json!({"from_currency": "USD", "to_currency": "EUR", "amount": 100_000, "note": "x"}),
        )
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "unknown field on a quote").await;

    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let resp = app
        .post(
            "/v1/payments",
            &app.merchant_key,
            json!({
                "quote_id": quote["quote_id"],
                "source_account": "user123",
                "destination_account": "merchant456",
                "callback_url": "https://example.com",
            }),
        )
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "unknown field on a payment").await;
}

#[tokio::test]
async fn a_field_of_the_wrong_type_returns_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let resp = app
        .post(
            "/v1/payments",
            &app.merchant_key,
            json!({
                "quote_id": quote["quote_id"],
                "source_account": 12345,
                "destination_account": "merchant456",
            }),
        )
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "numeric source_account").await;
}

#[tokio::test]
async fn malformed_json_returns_400_invalid_request() {
    let Some(app) = spawn_app().await else { return };
    for (case, body) in [
        ("truncated", r#"{"from_currency": "USD", "to_currency":"#),
        ("not JSON", "amount=100000"),
        ("empty", ""),
        ("an array", "[]"),
        ("null", "null"),
        (
            "trailing garbage",
            r#"{"from_currency":"USD","to_currency":"EUR","amount":100000}x"#,
        ),
    ] {
        let resp = send_raw(&app, "/v1/quotes", Some("application/json"), body).await;
        expect_error(resp, 400, "INVALID_REQUEST", case).await;
    }
}

#[tokio::test]
async fn an_unknown_route_returns_404_in_the_error_format() {
    let Some(app) = spawn_app().await else { return };
    let resp = app.get("/v1/no-such-route", &app.merchant_key).await;
    expect_error(resp, 404, "NOT_FOUND", "unknown /v1 route").await;

    let resp = app
        .client
        .get(format!("{}/no-such-page", app.address))
        .send()
        .await
        .expect("request is sent");
    expect_error(resp, 404, "NOT_FOUND", "unknown top-level route").await;
}

#[tokio::test]
async fn a_method_the_route_does_not_allow_returns_405_in_the_error_format() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .client
        .request(Method::DELETE, format!("{}/v1/quotes", app.address))
        .bearer_auth(&app.merchant_key)
        .send()
        .await
        .expect("request is sent");
    expect_error_format(resp, 405, "DELETE /v1/quotes").await;
}

#[tokio::test]
async fn error_responses_are_served_as_json() {
    let Some(app) = spawn_app().await else { return };
    let unauthenticated = app
        .client
        .get(format!("{}/v1/payments", app.address))
        .send()
        .await
        .expect("request is sent");
    let unknown = app.get("/v1/no-such-route", &app.merchant_key).await;
    let unsupported = send_raw(&app, "/v1/quotes", None, "{}").await;
    let malformed = send_raw(&app, "/v1/quotes", Some("application/json"), "{").await;
    let too_large = send_raw(
        &app,
        "/v1/quotes",
        Some("application/json"),
        json_of_len(100 * 1024),
    )
    .await;
    for (case, resp) in [
        ("401", unauthenticated),
        ("404", unknown),
        ("415", unsupported),
        ("400", malformed),
        ("413", too_large),
    ] {
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            ct.starts_with("application/json"),
            "{case}: Content-Type is `{ct}`, not application/json"
        );
        let status = resp.status().as_u16();
        expect_error_format(resp, status, case).await;
    }
}

#[tokio::test]
async fn exceeding_the_rate_limit_returns_429_with_retry_after() {
    let Some(app) = spawn_app_with(|c| {
        c.rate_limit = corridor::config::RateLimit {
            requests: 3,
            per: Duration::from_secs(60),
        };
    })
    .await
    else {
        return;
    };
    for i in 0..3 {
        let resp = app.get("/v1/corridors", &app.merchant_key).await;
        assert_eq!(
            resp.status().as_u16(),
            200,
            "request {i} is within the limit"
        );
    }
    let resp = app.get("/v1/corridors", &app.merchant_key).await;
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    expect_error(resp, 429, "RATE_LIMITED", "fourth request in a minute").await;
    let secs: u64 = retry_after
        .as_deref()
        .expect("a 429 carries Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(
        (1..=60).contains(&secs),
        "Retry-After {secs}s is not within the 60 s period"
    );
}

#[tokio::test]
async fn one_key_spending_its_budget_does_not_slow_another_key() {
    let Some(app) = spawn_app_with(|c| {
        c.rate_limit = corridor::config::RateLimit {
            requests: 3,
            per: Duration::from_secs(60),
        };
    })
    .await
    else {
        return;
    };
    // The admin key spends one of its own three here.
    let second_key = app.new_merchant("second").await;
    for _ in 0..3 {
        expect_status(app.get("/v1/corridors", &app.merchant_key).await, 200).await;
    }
    let resp = app.get("/v1/corridors", &app.merchant_key).await;
    expect_error(resp, 429, "RATE_LIMITED", "first key over its budget").await;
    for i in 0..3 {
        let resp = app.get("/v1/corridors", &second_key).await;
        assert_eq!(
            resp.status().as_u16(),
            200,
            "second key's request {i} is within its own budget"
        );
    }
    let resp = app.get("/v1/corridors", &second_key).await;
    expect_error(resp, 429, "RATE_LIMITED", "second key over its budget").await;
    // Admin routes are limited per key too: two left for the admin key, then 429.
    for _ in 0..2 {
        expect_status(app.get("/v1/admin/rates", &app.admin_key).await, 200).await;
    }
    let resp = app.get("/v1/admin/rates", &app.admin_key).await;
    expect_error(resp, 429, "RATE_LIMITED", "admin key over its budget").await;
}

#[tokio::test]
async fn requests_with_a_bad_key_are_401_and_spend_no_budget() {
    let Some(app) = spawn_app_with(|c| {
        c.rate_limit = corridor::config::RateLimit {
            requests: 1,
            per: Duration::from_secs(60),
        };
    })
    .await
    else {
        return;
    };
    for i in 0..5 {
        let resp = app.get("/v1/corridors", &format!("sk_nope_{i}")).await;
        expect_error(resp, 401, "UNAUTHORIZED", "unknown key").await;
        let resp = app
            .client
            .get(format!("{}/v1/corridors", app.address))
            .send()
            .await
            .expect("request sent");
        expect_error(resp, 401, "UNAUTHORIZED", "no key").await;
    }
    expect_status(app.get("/v1/corridors", &app.merchant_key).await, 200).await;
    let resp = app.get("/v1/corridors", &app.merchant_key).await;
    expect_error(resp, 429, "RATE_LIMITED", "second request in a minute").await;
}

/// A NUL (or any control character) anywhere a client can put text never reaches the
/// database: PostgreSQL refuses NUL in text, which used to surface as a 500 on many routes.
#[tokio::test]
async fn control_characters_in_paths_queries_and_bodies_are_refused_not_a_500() {
    let Some(app) = spawn_app().await else { return };
    let key = app.merchant_key.clone();
    let admin = app.admin_key.clone();
    let uuid = "0192f0a0-0000-7000-8000-000000000000";
    let gets = [
        (format!("/v1/payments/pay_{uuid}%00"), &key),
        (format!("/v1/quotes/quote_%00{uuid}"), &key),
        ("/v1/payments?status=PENDING%00".to_owned(), &key),
        ("/v1/payments?starting_after=pay_%00".to_owned(), &key),
        ("/v1/rates?from=USD%00&to=EUR".to_owned(), &key),
        ("/v1/webhook-deliveries?payment_id=pay_%00".to_owned(), &key),
        ("/v1/sandbox/transfers?payment_id=%00".to_owned(), &admin),
    ];
    for (path, key) in gets {
        let resp = app.get(&path, key).await;
        expect_error(resp, 400, "INVALID_REQUEST", &path).await;
    }
    // A well-formed URI with an id of the wrong shape is a 404 without a lookup.
    for path in ["/v1/payments/pay_nothing", "/v1/quotes/abc", "/v1/payments/%E2%82%AC"] {
        let resp = app.get(path, &key).await;
        expect_error(resp, 404, "NOT_FOUND", path).await;
    }
    let posts = [
        (format!("/v1/payments/pay_{uuid}%00/cancel"), &key, json!({})),
        (format!("/v1/admin/payments/pay_%00{uuid}/retry"), &admin, json!({})),
        ("/v1/admin/jobs/%00/redrive".to_owned(), &admin, json!({})),
        ("/v1/admin/merchants/mer_%00/rotate-key".to_owned(), &admin, json!({})),
        ("/v1/provider-webhooks/sim%00".to_owned(), &key, json!({})),
    ];
    for (path, key, body) in posts {
        let resp = app.post(&path, key, body).await;
        expect_error(resp, 400, "INVALID_REQUEST", &path).await;
    }
    for body in [
        json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
               "source_account": "src\u{0}", "destination_account": "dst"}),
        json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
               "source_account": "src", "destination_account": "dst",
               "metadata": {"order\u{0}": "x"}}),
    ] {
        let resp = app.post("/v1/payments", &key, body).await;
        expect_error(resp, 400, "INVALID_REQUEST", "NUL in a payment body").await;
    }
    let resp = app
        .post("/v1/quotes", &key, json!({"from_currency": "USD\u{0}", "to_currency": "EUR", "amount": 1000}))
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "NUL in a quote body").await;
}

/// Writes `head` (and nothing more) on a raw connection and returns the status line and the
/// rest of the first response.
async fn raw_exchange(app: &TestApp, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the headers and a JSON body have arrived (the server keeps the connection).
    loop {
        let n = conn.read(&mut buf).await.expect("read");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if n == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    // A long request timeout: the old behaviour (wait for the body, then 503) cannot pass.
    let Some(app) = spawn_app_with(|cfg| {
        cfg.request_timeout = corridor::config::Dur(Duration::from_secs(60));
        cfg.idle_timeout = corridor::config::Dur(Duration::from_secs(120));
    })
    .await
    else {
        return;
    };
    let head = format!(
        "POST /v1/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        app.merchant_key
    );
    let (status, text) = raw_exchange(&app, &head).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_not_a_503() {
    let Some(app) = spawn_app_with(|cfg| cfg.request_timeout = corridor::config::Dur(Duration::from_secs(2))).await else { return };
    let head = format!(
        "POST /v1/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"amount\":",
        app.merchant_key
    );
    let (status, text) = raw_exchange(&app, &head).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    assert!(text.to_ascii_lowercase().contains("x-request-id"), "{text}");
}

/// The smaller contract breaks a hostile tester found, one case each.
#[tokio::test]
async fn small_contract_breaks_are_mended() {
    let Some(app) = spawn_app().await else { return };
    let key = app.merchant_key.clone();
    let body = |extra: &str| {
        format!(
            r#"{{"amount":100000,"currency":"USD","payout_currency":"EUR","source_account":"src","destination_account":"dst"{extra}}}"#
        )
    };
    // A key twice inside `metadata`.
    let resp = send_raw(&app, "/v1/payments", Some("application/json"), body(r#","metadata":{"order":"1","order":"2"}"#)).await;
    let err = expect_error(resp, 400, "INVALID_REQUEST", "duplicate metadata key").await;
    assert!(err["message"].as_str().unwrap().contains("twice"), "{err}");
    // Account length is counted in characters: 255 two-byte characters pass, 256 do not.
    let ok = "é".repeat(255);
    let resp = send_raw(&app, "/v1/payments", Some("application/json"), body("").replace("\"src\"", &format!("\"{ok}\""))).await;
    expect_status(resp, 202).await;
    let long = "é".repeat(256);
    let resp = send_raw(&app, "/v1/payments", Some("application/json"), body("").replace("\"src\"", &format!("\"{long}\""))).await;
    expect_error(resp, 400, "INVALID_REQUEST", "256 characters").await;
    // A compressed body is refused, not parsed as garbage.
    let resp = app
        .client
        .post(format!("{}/v1/payments", app.address))
        .bearer_auth(&key)
        .header(CONTENT_TYPE, "application/json")
        .header("content-encoding", "gzip")
        .body(body(""))
        .send()
        .await
        .expect("request");
    expect_error(resp, 415, "UNSUPPORTED_MEDIA_TYPE", "gzip").await;
    // An error never echoes a huge input back.
    let huge = "X".repeat(60_000);
    let resp = send_raw(&app, "/v1/payments", Some("application/json"), body("").replace("\"EUR\"", &format!("\"{huge}\""))).await;
    let err = expect_error_format(resp, 400, "huge currency").await;
    assert!(err["message"].as_str().unwrap().chars().count() <= 301, "{err}");
    // Retry counters exist before the first retry.
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(text.contains("corridor_job_retries_total"), "{text}");
}

#[tokio::test]
async fn a_rate_pin_must_be_a_number_near_the_market() {
    let Some(app) = spawn_app().await else { return };
    let put = async |body: Value| {
        app.client
            .put(format!("{}/v1/admin/rates/USD/EUR", app.address))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
            .await
            .expect("request")
    };
    let err = expect_error(put(json!({"rate": "0.9"})).await, 400, "INVALID_REQUEST", "string rate").await;
    let msg = err["message"].as_str().unwrap();
    assert!(!msg.contains("serde"), "the message leaks internals: {msg}");
    assert!(msg.contains("number"), "{msg}");
    // A shifted decimal point is refused; a rate near the market is pinned.
    expect_error(put(json!({"rate": 91.5})).await, 400, "INVALID_REQUEST", "100x off").await;
    expect_status(put(json!({"rate": 0.915})).await, 200).await;
}
