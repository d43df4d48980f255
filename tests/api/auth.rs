//! Authentication and roles: bearer keys, merchant versus admin routes, creating merchants
//! and rotating their keys.

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use super::errors::{expect_error, expect_status};
use super::*;
use super::quotes::assert_prefixed_uuid;

/// Sends `method path` with an optional raw `Authorization` value and an optional JSON body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    if let Some(auth) = authorization {
        req = req.header(AUTHORIZATION, auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request is sent")
}

fn quote_body() -> Value {
    json!({"from_currency": "USD", "to_currency": "EUR", "amount": 100_000})
}

/// Merchant routes, each with a body when it takes one.
fn merchant_routes() -> Vec<(Method, String, Option<Value>)> {
    let some_payment = format!("/v1/payments/pay_{}", uuid::Uuid::new_v4());
    vec![
        (Method::GET, "/v1/corridors".into(), None),
        (Method::GET, "/v1/rates?from=USD&to=EUR".into(), None),
        (Method::POST, "/v1/quotes".into(), Some(quote_body())),
        (Method::GET, "/v1/payments".into(), None),
        (Method::GET, some_payment, None),
        (
            Method::POST,
            "/v1/payments".into(),
            Some(json!({
                "amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                "source_account": "user123", "destination_account": "merchant456",
            })),
        ),
        (Method::GET, "/v1/webhook-endpoints".into(), None),
    ]
}

/// Admin and sandbox routes, each with a body when it takes one.
fn admin_routes() -> Vec<(Method, String, Option<Value>)> {
    let some_payment = format!("pay_{}", uuid::Uuid::new_v4());
    vec![
        (
            Method::POST,
            "/v1/admin/merchants".into(),
            Some(json!({"name": "acme"})),
        ),
        (Method::GET, "/v1/admin/rates".into(), None),
        (Method::GET, "/v1/admin/jobs/dead".into(), None),
        (Method::GET, "/v1/admin/alerts".into(), None),
        (
            Method::GET,
            format!("/v1/sandbox/transfers?payment_id={some_payment}"),
            None,
        ),
    ]
}

/// Sends every route with `authorization` and checks each answers `code` with `status`;
/// reports all routes that do not, rather than only the first.
async fn expect_on_every_route(
    app: &TestApp,
    routes: Vec<(Method, String, Option<Value>)>,
    authorization: Option<&str>,
    status: u16,
    code: &str,
) {
    let mut wrong = Vec::new();
    for (method, path, body) in routes {
        let case = format!("{method} {path}");
        let resp = send(app, method, &path, authorization, body).await;
        if resp.status().as_u16() == status {
            expect_error(resp, status, code, &case).await;
        } else {
            let actual = resp.status();
            let text = resp.text().await.unwrap_or_default();
            wrong.push(format!("{case}: {actual} {text}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected {status} {code} from:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn requests_without_a_bearer_key_return_401_unauthorized() {
    let Some(app) = spawn_app().await else { return };
    let routes = merchant_routes()
        .into_iter()
        .chain(admin_routes())
        .collect();
    expect_on_every_route(&app, routes, None, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn requests_with_an_unknown_or_malformed_key_return_401_unauthorized() {
    let Some(app) = spawn_app().await else { return };
    let key = &app.merchant_key;
    let truncated = format!("Bearer {}", &key[..key.len() - 1]);
    let extended = format!("Bearer {key}x");
    let no_scheme = key.clone();
    let basic = format!("Basic {key}");
    let unknown = format!("Bearer sk_{}", "0".repeat(40));
    for auth in [
        truncated.as_str(),
        extended.as_str(),
        no_scheme.as_str(),
        basic.as_str(),
        unknown.as_str(),
        "Bearer",
        "Bearer ",
        "",
    ] {
        let resp = send(&app, Method::GET, "/v1/payments", Some(auth), None).await;
        expect_error(
            resp,
            401,
            "UNAUTHORIZED",
            &format!("Authorization: {auth:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn the_admin_key_on_merchant_routes_returns_403_forbidden() {
    let Some(app) = spawn_app().await else { return };
    let auth = format!("Bearer {}", app.admin_key);
    expect_on_every_route(&app, merchant_routes(), Some(&auth), 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn a_merchant_key_on_admin_routes_returns_403_forbidden() {
    let Some(app) = spawn_app().await else { return };
    let auth = format!("Bearer {}", app.merchant_key);
    expect_on_every_route(&app, admin_routes(), Some(&auth), 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn creating_a_merchant_returns_201_with_a_working_key() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post(
            "/v1/admin/merchants",
            &app.admin_key,
            json!({"name": "acme"}),
        )
        .await;
    let merchant = expect_status(resp, 201).await;
    assert_prefixed_uuid(&merchant["merchant_id"], "mer_");
    assert_eq!(merchant["name"], "acme");
    let key = merchant["api_key"].as_str().expect("api_key");
    assert!(key.starts_with("sk_"), "merchant keys are sk_…: {key}");
    assert_ne!(key, app.merchant_key);

    let page = expect_status(app.get("/v1/payments", key).await, 200).await;
    assert_eq!(page["data"], json!([]), "a new merchant sees no payments");
}

#[tokio::test]
async fn creating_a_merchant_without_a_name_returns_400() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post("/v1/admin/merchants", &app.admin_key, json!({}))
        .await;
    expect_error(resp, 400, "INVALID_REQUEST", "no name").await;
}

#[tokio::test]
async fn rotating_a_merchant_key_revokes_the_old_one_at_once() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post(
            "/v1/admin/merchants",
            &app.admin_key,
            json!({"name": "acme"}),
        )
        .await;
    let merchant = expect_status(resp, 201).await;
    let id = merchant["merchant_id"].as_str().expect("merchant_id");
    let old = merchant["api_key"].as_str().expect("api_key");
    let quote = app.quote(old, "EUR", 100_000).await;

    let resp = app
        .post(
            &format!("/v1/admin/merchants/{id}/rotate-key"),
            &app.admin_key,
            json!({}),
        )
        .await;
    let rotated = expect_status(resp, 200).await;
    let new = rotated["api_key"].as_str().expect("api_key");
    assert!(new.starts_with("sk_"), "{new}");
    assert_ne!(new, old);

    let resp = app.get("/v1/payments", old).await;
    expect_error(resp, 401, "UNAUTHORIZED", "the old key").await;
    // The new key belongs to the same merchant: its quotes are still there.
    let quote_id = quote["quote_id"].as_str().expect("quote_id");
    let resp = app.get(&format!("/v1/quotes/{quote_id}"), new).await;
    expect_status(resp, 200).await;
}

#[tokio::test]
async fn rotating_the_key_of_an_unknown_merchant_returns_404() {
    let Some(app) = spawn_app().await else { return };
    let path = format!(
        "/v1/admin/merchants/mer_{}/rotate-key",
        uuid::Uuid::new_v4()
    );
    let resp = app.post(&path, &app.admin_key, json!({})).await;
    expect_error(resp, 404, "NOT_FOUND", "unknown merchant").await;
}

#[tokio::test]
async fn health_metrics_and_docs_need_no_key() {
    let Some(app) = spawn_app().await else { return };
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let resp = send(&app, Method::GET, path, None, None).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let Some(app) = spawn_app().await else { return };
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {}", app.merchant_key);
        let resp = send(&app, Method::GET, "/v1/payments", Some(&auth), None).await;
        expect_status(resp, 200).await;
    }
}

/// `GET /v1/payments` with `key`, claiming to come from `forwarded_for`.
async fn get_as(app: &TestApp, key: &str, forwarded_for: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/v1/payments", app.address))
        .bearer_auth(key)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("request is sent")
}

#[tokio::test]
async fn guessing_keys_is_stopped_per_client_and_a_forged_forwarded_for_does_not_escape() {
    let Some(app) = spawn_app_with(|cfg| cfg.auth_failure_limit = "5/m".parse().unwrap()).await
    else {
        return;
    };
    for i in 0..5 {
        // Each guess claims another client: no proxy is trusted, so the header is ignored.
        let resp = get_as(&app, &format!("sk_guess_{i:040}"), &format!("198.51.100.{i}")).await;
        expect_error(resp, 401, "UNAUTHORIZED", "a guess").await;
    }
    let resp = get_as(&app, "sk_guess_6", "203.0.113.50").await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    expect_error(resp, 429, "RATE_LIMITED", "the guesser is stopped").await;
    // While it is stopped, no key is looked up from that client, not even a right one.
    let resp = get_as(&app, &app.merchant_key, "203.0.113.51").await;
    expect_error(resp, 429, "RATE_LIMITED", "right key, same client").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_failure_budget() {
    let Some(app) = spawn_app_with(|cfg| {
        cfg.auth_failure_limit = "3/m".parse().unwrap();
        cfg.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await
    else {
        return;
    };
    for _ in 0..3 {
        let resp = get_as(&app, "sk_guess_x", "198.51.100.7").await;
        expect_error(resp, 401, "UNAUTHORIZED", "a guess").await;
    }
    let resp = get_as(&app, "sk_guess_x", "198.51.100.7").await;
    expect_error(resp, 429, "RATE_LIMITED", "the guesser").await;
    // Another client behind the same proxy is not locked out by the guesser.
    let resp = get_as(&app, &app.merchant_key, "198.51.100.8").await;
    expect_status(resp, 200).await;
    // The right-most entry is the one the proxy wrote; what the client wrote before it counts
    // for nothing.
    let resp = get_as(&app, &app.merchant_key, "198.51.100.8, 198.51.100.7").await;
    expect_error(resp, 429, "RATE_LIMITED", "the guesser, forging a prefix").await;
}
