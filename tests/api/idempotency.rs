//! `Idempotency-Key` on `POST /v1/payments`: replays are byte-for-byte, keys are per
//! merchant, a different body is refused, and concurrent retries create one payment.

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::errors::{expect_error, expect_status};
use super::*;
use super::payments::pay_body;

const REPLAYED: &str = "idempotent-replayed";

/// `POST /v1/payments` with a raw JSON text body and the given `Idempotency-Key`.
async fn post_raw(app: &TestApp, key: &str, idem: HeaderValue, body: String) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/payments", app.address))
        .bearer_auth(key)
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", idem)
        .body(body)
        .send()
        .await
        .expect("request is sent")
}

/// Status, `Idempotent-Replayed` header and raw body of a response.
async fn parts(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let replayed = resp
        .headers()
        .get(REPLAYED)
        .map(|v| v.to_str().expect("header is ASCII").to_owned());
    (status, replayed, resp.text().await.expect("body"))
}

/// The merchant's payment ids.
async fn payment_ids(app: &TestApp, key: &str) -> Vec<String> {
    let page = expect_status(app.get("/v1/payments?limit=100", key).await, 200).await;
    page["data"]
        .as_array()
        .expect("`data` array")
        .iter()
        .map(|p| p["payment_id"].as_str().expect("payment_id").to_owned())
        .collect()
}

fn unquoted_body(source: &str) -> Value {
    json!({
        "amount": 100_000, "currency": "USD", "payout_currency": "EUR",
        "source_account": source, "destination_account": "merchant456",
    })
}

#[tokio::test]
async fn replaying_the_same_key_and_body_returns_the_first_response_byte_for_byte() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let body = pay_body(&quote["quote_id"]);
    let first = app
        .post_idem("/v1/payments", &app.merchant_key, "order-1", body.clone())
        .await;
    let (status, replayed, first_body) = parts(first).await;
    assert_eq!(status, 202, "{first_body}");
    assert_ne!(
        replayed.as_deref(),
        Some("true"),
        "the first response is no replay"
    );

    let second = app
        .post_idem("/v1/payments", &app.merchant_key, "order-1", body)
        .await;
    let (status, replayed, second_body) = parts(second).await;
    assert_eq!(status, 202, "{second_body}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second_body, first_body);
    assert_eq!(payment_ids(&app, &app.merchant_key).await.len(), 1);
}

#[tokio::test]
async fn the_same_body_with_other_key_order_and_whitespace_is_a_replay() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let id = quote["quote_id"].as_str().expect("quote_id");
    let compact = format!(
        r#"{{"quote_id":"{id}","source_account":"user123","destination_account":"merchant456","metadata":{{"a":"1","b":"2"}}}}"#
    );
    let spaced = format!(
        "{{\n  \"metadata\" : {{ \"b\": \"2\", \"a\": \"1\" }},\n  \"destination_account\": \"merchant456\",\n\t\"source_account\" : \"user123\",\n  \"quote_id\": \"{id}\"\n}}\n"
    );
    let key = HeaderValue::from_static("order-2");
    let (status, _, first) =
        parts(post_raw(&app, &app.merchant_key, key.clone(), compact).await).await;
    assert_eq!(status, 202, "{first}");
    let (status, replayed, second) =
        parts(post_raw(&app, &app.merchant_key, key, spaced).await).await;
    assert_eq!(status, 202, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first, "the replay is not byte-for-byte");
    assert_eq!(payment_ids(&app, &app.merchant_key).await.len(), 1);
}

#[tokio::test]
async fn reusing_a_key_with_a_different_body_returns_422() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post_idem(
            "/v1/payments",
            &app.merchant_key,
            "order-3",
            unquoted_body("user123"),
        )
        .await;
    expect_status(resp, 202).await;
    let resp = app
        .post_idem(
            "/v1/payments",
            &app.merchant_key,
            "order-3",
            unquoted_body("user999"),
        )
        .await;
    expect_error(resp, 422, "IDEMPOTENCY_KEY_REUSED", "different body").await;
    assert_eq!(payment_ids(&app, &app.merchant_key).await.len(), 1);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_merchant() {
    let Some(app) = spawn_app().await else { return };
    let other = app.new_merchant("other").await;
    let mut created = Vec::new();
    for key in [app.merchant_key.as_str(), other.as_str()] {
        let resp = app
            .post_idem("/v1/payments", key, "shared-key", unquoted_body("user123"))
            .await;
        let (status, replayed, body) = parts(resp).await;
        assert_eq!(status, 202, "{body}");
        assert_ne!(
            replayed.as_deref(),
            Some("true"),
            "another merchant's response replayed"
        );
        let body: Value = serde_json::from_str(&body).expect("JSON");
        created.push(body["payment_id"].clone());
    }
    assert_ne!(created[0], created[1]);
    assert_eq!(payment_ids(&app, &app.merchant_key).await.len(), 1);
    assert_eq!(payment_ids(&app, &other).await.len(), 1);
}

#[tokio::test]
async fn a_4xx_response_is_stored_and_replayed() {
    let Some(app) = spawn_app().await else { return };
    let unknown = json!(format!("quote_{}", uuid::Uuid::new_v4()));
    let body = pay_body(&unknown);
    let first = app
        .post_idem("/v1/payments", &app.merchant_key, "order-4", body.clone())
        .await;
    let (status, _, first_body) = parts(first).await;
    assert_eq!(status, 404, "{first_body}");
    let error: Value = serde_json::from_str(&first_body).expect("JSON");
    assert_eq!(error["error"], "QUOTE_NOT_FOUND");

    let second = app
        .post_idem("/v1/payments", &app.merchant_key, "order-4", body)
        .await;
    let (status, replayed, second_body) = parts(second).await;
    assert_eq!(status, 404);
    assert_eq!(replayed.as_deref(), Some("true"), "a 4xx is replayed too");
    assert_eq!(second_body, first_body);
}

#[tokio::test]
async fn a_replay_returns_the_first_response_even_after_the_payment_moved_on() {
    let Some(app) = spawn_app_with(|c| c.workers = 0).await else { return };
    let body = unquoted_body("user123");
    let (status, _, first) = parts(
        app.post_idem("/v1/payments", &app.merchant_key, "order-5", body.clone())
            .await,
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let id = serde_json::from_str::<Value>(&first).expect("JSON")["payment_id"]
        .as_str()
        .expect("payment_id")
        .to_owned();
    let resp = app
        .post(
            &format!("/v1/payments/{id}/cancel"),
            &app.merchant_key,
            json!({}),
        )
        .await;
    expect_status(resp, 200).await;
    let (status, replayed, second) = parts(
        app.post_idem("/v1/payments", &app.merchant_key, "order-5", body)
            .await,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first);
}

#[tokio::test]
async fn requests_without_an_idempotency_key_are_not_deduplicated() {
    let Some(app) = spawn_app().await else { return };
    app.pay(&app.merchant_key, unquoted_body("user123")).await;
    app.pay(&app.merchant_key, unquoted_body("user123")).await;
    assert_eq!(payment_ids(&app, &app.merchant_key).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_create_exactly_one_payment() {
    let Some(app) = spawn_app().await else { return };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let body = pay_body(&quote["quote_id"]);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("{}/v1/payments", app.address);
            let key = app.merchant_key.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(key)
                    .header("idempotency-key", "concurrent-1")
                    .json(&body)
                    .send()
                    .await
                    .expect("request is sent");
                let status = resp.status().as_u16();
                let text = resp.text().await.expect("body");
                (status, text)
            })
        })
        .collect();

    let mut payment_id = None;
    for result in futures::future::join_all(tasks).await {
        let (status, text) = result.expect("task finished");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {status} {text}"));
        match status {
            202 => {
                let id = body["payment_id"].clone();
                assert_eq!(
                    payment_id.get_or_insert_with(|| id.clone()),
                    &id,
                    "two payments for one key"
                );
            }
            409 => assert_eq!(body["error"], "IDEMPOTENCY_KEY_IN_USE", "{text}"),
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert!(payment_id.is_some(), "no request succeeded");
    assert_eq!(payment_ids(&app, &app.merchant_key).await.len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_of_255_printable_characters_is_accepted() {
    let Some(app) = spawn_app().await else { return };
    let key = format!("{} ~!", "k".repeat(252));
    assert_eq!(key.len(), 255);
    let resp = app
        .post_idem(
            "/v1/payments",
            &app.merchant_key,
            &key,
            unquoted_body("user123"),
        )
        .await;
    expect_status(resp, 202).await;
}

#[tokio::test]
async fn an_idempotency_key_that_is_too_long_empty_or_not_printable_returns_400() {
    let Some(app) = spawn_app().await else { return };
    let long = "k".repeat(256);
    let cases = [
        (
            "256 characters",
            HeaderValue::from_str(&long).expect("header"),
        ),
        ("empty", HeaderValue::from_static("")),
        ("tab", HeaderValue::from_static("order\t6")),
        (
            "non-ASCII",
            HeaderValue::from_bytes("commande-é".as_bytes()).expect("header"),
        ),
    ];
    for (case, idem) in cases {
        let resp = post_raw(
            &app,
            &app.merchant_key,
            idem,
            unquoted_body("user123").to_string(),
        )
        .await;
        expect_error(resp, 400, "INVALID_REQUEST", case).await;
    }
    assert!(payment_ids(&app, &app.merchant_key).await.is_empty());
}

#[tokio::test]
async fn two_idempotency_key_headers_on_one_request_return_400() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .client
        .post(format!("{}/v1/payments", app.address))
        .bearer_auth(&app.merchant_key)
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", "order-1")
        .header("idempotency-key", "order-2")
        .body(unquoted_body("user123").to_string())
        .send()
        .await
        .expect("request is sent");
    let body = expect_error(resp, 400, "INVALID_REQUEST", "two keys").await;
    assert_eq!(body["field"], "Idempotency-Key");
    assert!(payment_ids(&app, &app.merchant_key).await.is_empty());
}
