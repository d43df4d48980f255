//! Health, readiness, metrics, the OpenAPI document, the docs page, and `X-Request-Id`.

use serde_json::json;

use super::errors::{expect_error, expect_status};
use super::*;

const REQUEST_ID: &str = "x-request-id";

/// `GET path` without credentials.
async fn get_public(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request is sent")
}

/// The `X-Request-Id` a response carries, asserting it has one.
fn request_id(resp: &reqwest::Response) -> String {
    let value = resp
        .headers()
        .get(REQUEST_ID)
        .unwrap_or_else(|| panic!("{} {} has no X-Request-Id", resp.status(), resp.url()));
    let id = value.to_str().expect("X-Request-Id is visible ASCII");
    assert!(
        (1..=128).contains(&id.len()),
        "X-Request-Id `{id}` is not 1–128 characters"
    );
    id.to_owned()
}

/// `GET path` with an `X-Request-Id` header.
async fn get_with_request_id(app: &TestApp, path: &str, id: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&app.merchant_key)
        .header(REQUEST_ID, id)
        .send()
        .await
        .expect("request is sent")
}

/// The `src`/`href` of every asset-loading tag (`script`, `link`, `img`, `iframe`, `source`)
/// in an HTML page.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        let name = tag
            .split(|c: char| c.is_ascii_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !["script", "link", "img", "iframe", "source"].contains(&name.as_str()) {
            continue;
        }
        for attr in ["src=", "href="] {
            let lower = tag.to_ascii_lowercase();
            let Some(at) = lower.find(attr) else { continue };
            let rest = &tag[at + attr.len()..];
            let value = match rest.chars().next() {
                Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or_default(),
                _ => rest.split_ascii_whitespace().next().unwrap_or_default(),
            };
            urls.push(value.to_owned());
        }
    }
    urls
}

#[tokio::test]
async fn healthz_returns_exactly_status_ok() {
    let Some(app) = spawn_app().await else { return };
    let resp = get_public(&app, "/healthz").await;
    let body = expect_status(resp, 200).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_returns_200_while_the_database_answers() {
    let Some(app) = spawn_app().await else { return };
    let resp = get_public(&app, "/readyz").await;
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_never_by_id() {
    let Some(app) = spawn_app().await else { return };
    let payment = app
        .pay(
            &app.merchant_key,
            json!({
                "amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                "source_account": "user123", "destination_account": "merchant456",
            }),
        )
        .await;
    let payment_id = payment["payment_id"].as_str().expect("payment_id");
    let quote_id = payment["quote_id"].as_str().expect("quote_id");
    let resp = app
        .get(&format!("/v1/payments/{payment_id}"), &app.merchant_key)
        .await;
    assert_eq!(resp.status().as_u16(), 200);

    let resp = get_public(&app, "/metrics").await;
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("metrics body");
    let counted = text.lines().any(|l| {
        l.starts_with("corridor_http_requests_total{")
            && l.contains(r#"method="GET""#)
            && l.contains(r#"route="/v1/payments/{"#)
            && l.contains(r#"status="200""#)
    });
    assert!(
        counted,
        "no corridor_http_requests_total line for GET /v1/payments/{{id}} 200:\n{text}"
    );
    for id in [payment_id, quote_id] {
        let uuid = id.split_once('_').map_or(id, |(_, u)| u);
        assert!(!text.contains(uuid), "metrics leak the id {id}:\n{text}");
    }
}

#[tokio::test]
async fn metrics_do_not_echo_paths_that_match_no_route() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .get("/v1/nothing-here-SECRET4711", &app.merchant_key)
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    let text = get_public(&app, "/metrics")
        .await
        .text()
        .await
        .expect("metrics body");
    assert!(text.contains("corridor_http_requests_total"), "{text}");
    assert!(
        !text.contains("SECRET4711"),
        "an unmatched path became a label:\n{text}"
    );
}

#[tokio::test]
async fn metrics_expose_request_duration_as_a_histogram() {
    let Some(app) = spawn_app().await else { return };
    let resp = app.get("/v1/corridors", &app.merchant_key).await;
    assert_eq!(resp.status().as_u16(), 200);
    let text = get_public(&app, "/metrics")
        .await
        .text()
        .await
        .expect("metrics body");
    assert!(
        text.lines()
            .any(|l| l.starts_with("corridor_http_request_duration_seconds_bucket{")),
        "corridor_http_request_duration_seconds is not a histogram:\n{text}"
    );
}

#[tokio::test]
async fn openapi_json_is_openapi_3_and_lists_quotes_and_payments() {
    let Some(app) = spawn_app().await else { return };
    let doc = expect_status(get_public(&app, "/openapi.json").await, 200).await;
    let version = doc["openapi"].as_str().expect("`openapi` version string");
    assert!(version.starts_with("3."), "OpenAPI version {version}");
    let paths = doc["paths"].as_object().expect("`paths` object");
    for path in ["/v1/quotes", "/v1/payments"] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    for prefix in ["/v1/quotes/{", "/v1/payments/{"] {
        assert!(
            paths.keys().any(|p| p.starts_with(prefix)),
            "no {prefix}…}} path in {:?}",
            paths.keys()
        );
    }
}

/// What a client switches on is enumerated in the document (every error code, payment
/// state, leg status, failure code), and a corridor's fee schedule is a typed object.
#[tokio::test]
async fn the_document_enumerates_response_codes_and_states_and_types_the_fee_schedule() {
    let Some(app) = spawn_app().await else { return };
    let doc = expect_status(get_public(&app, "/openapi.json").await, 200).await;
    let schemas = &doc["components"]["schemas"];
    let values = |schema: &str, prop: &str| -> Vec<String> {
        schemas[schema]["properties"][prop]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema}.{prop} has no enum: {}", schemas[schema]))
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    };
    let codes = values("ErrorBody", "error");
    for code in [
        "INVALID_REQUEST",
        "QUOTE_EXPIRED",
        "IDEMPOTENCY_KEY_REUSED",
        "RATE_LIMITED",
        "REQUEST_TIMEOUT",
        "UNAVAILABLE",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} not in {codes:?}");
    }
    let states = values("PaymentView", "status");
    assert_eq!(states.len(), 9, "{states:?}");
    for s in ["PENDING", "COMPLETED", "REFUNDED", "CANCELLED", "FAILED"] {
        assert!(states.iter().any(|x| x == s), "{s} not in {states:?}");
    }
    assert_eq!(values("HistoryView", "to"), states);
    assert_eq!(
        values("LegView", "status"),
        ["PENDING", "COMPLETED", "FAILED", "REVERSED", "RETURNED"]
    );
    assert_eq!(
        values("FailureView", "code"),
        ["ONRAMP_FAILED", "OFFRAMP_FAILED", "PAYOUT_RETURNED"]
    );
    // The corridor's fees: platform/onramp/offramp, each tiers of up_to/flat/percentage.
    let fees = &schemas["CorridorView"]["properties"]["fees"];
    assert_eq!(
        fees["$ref"], "#/components/schemas/FeeScheduleView",
        "{fees}"
    );
    for leg in ["platform", "onramp", "offramp"] {
        assert!(
            schemas["FeeScheduleView"]["properties"][leg].is_object(),
            "{leg}: {}",
            schemas["FeeScheduleView"]
        );
    }
    let tier = &schemas["FeeTierView"]["properties"];
    for field in ["up_to", "flat", "percentage"] {
        assert!(tier[field].is_object(), "{field}: {tier}");
    }
}

/// The stateful flows are linked: a quote's answer feeds a payment and a quote read, a
/// payment's answer feeds its read and its cancel.
#[tokio::test]
async fn the_document_links_quote_to_payment_and_payment_to_get_and_cancel() {
    let Some(app) = spawn_app().await else { return };
    let doc = expect_status(get_public(&app, "/openapi.json").await, 200).await;
    let links = |path: &str, status: &str| doc["paths"][path]["post"]["responses"][status]["links"].clone();
    let quote = links("/v1/quotes", "200");
    assert_eq!(quote["PayWithQuote"]["operationId"], "create_payment", "{quote}");
    assert_eq!(quote["PayWithQuote"]["requestBody"]["quote_id"], "$response.body#/quote_id");
    assert_eq!(quote["GetQuote"]["operationId"], "get_quote");
    assert_eq!(quote["GetQuote"]["parameters"]["quote_id"], "$response.body#/quote_id");
    let payment = links("/v1/payments", "202");
    for (name, op) in [("GetPayment", "get_payment"), ("CancelPayment", "cancel_payment")] {
        assert_eq!(payment[name]["operationId"], op, "{payment}");
        assert_eq!(payment[name]["parameters"]["payment_id"], "$response.body#/payment_id");
    }
}

#[tokio::test]
async fn docs_page_renders_from_locally_served_assets() {
    let Some(app) = spawn_app().await else { return };
    let resp = get_public(&app, "/docs").await;
    assert_eq!(resp.status().as_u16(), 200);
    let page_url = resp.url().clone();
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/html"), "Content-Type {ct}");
    let html = resp.text().await.expect("docs body");
    assert!(html.to_ascii_lowercase().contains("<html"), "{html}");

    let assets = asset_urls(&html);
    assert!(!assets.is_empty(), "the docs page loads no assets: {html}");
    for asset in assets {
        let lower = asset.to_ascii_lowercase();
        if lower.starts_with("data:") || lower.starts_with('#') {
            continue;
        }
        assert!(
            !lower.starts_with("http:") && !lower.starts_with("https:") && !lower.starts_with("//"),
            "the docs page loads `{asset}` from elsewhere"
        );
        let url = page_url.join(&asset).expect("asset URL resolves");
        let resp = app.client.get(url.clone()).send().await.expect("asset");
        assert_eq!(resp.status().as_u16(), 200, "asset {url}");
    }
}

#[tokio::test]
async fn a_request_id_that_is_sent_is_echoed() {
    let Some(app) = spawn_app().await else { return };
    let max = "r".repeat(128);
    for id in ["req-42", "a_b.c:d~e!f@1/2+3=4", "X", max.as_str()] {
        let resp = get_with_request_id(&app, "/v1/corridors", id).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(request_id(&resp), id);
    }
    let resp = app
        .client
        .get(format!("{}/healthz", app.address))
        .header(REQUEST_ID, "health-check-1")
        .send()
        .await
        .expect("request is sent");
    assert_eq!(request_id(&resp), "health-check-1");
}

#[tokio::test]
async fn a_request_id_is_generated_when_none_is_sent() {
    let Some(app) = spawn_app().await else { return };
    let first = request_id(&app.get("/v1/corridors", &app.merchant_key).await);
    let second = request_id(&app.get("/v1/corridors", &app.merchant_key).await);
    let health = request_id(&get_public(&app, "/healthz").await);
    assert_ne!(first, second, "generated request ids repeat");
    assert_ne!(second, health, "generated request ids repeat");
}

#[tokio::test]
async fn an_overlong_or_invisible_request_id_is_replaced_by_a_generated_one() {
    let Some(app) = spawn_app().await else { return };
    let long = "r".repeat(129);
    for sent in [long.as_str(), "has space", "tab\there"] {
        let resp = get_with_request_id(&app, "/v1/corridors", sent).await;
        assert_eq!(resp.status().as_u16(), 200);
        let id = request_id(&resp);
        assert_ne!(id, sent, "an invalid X-Request-Id was echoed");
        assert!(
            id.bytes().all(|b| b.is_ascii_graphic()),
            "generated X-Request-Id `{id}` is not visible ASCII"
        );
    }
}

#[tokio::test]
async fn error_responses_carry_a_request_id() {
    let Some(app) = spawn_app().await else { return };

    let resp = app
        .client
        .get(format!("{}/v1/payments", app.address))
        .header(REQUEST_ID, "err-401")
        .send()
        .await
        .expect("request is sent");
    assert_eq!(request_id(&resp), "err-401");
    expect_error(resp, 401, "UNAUTHORIZED", "no key").await;

    let unknown = format!("/v1/payments/pay_{}", uuid::Uuid::new_v4());
    let resp = get_with_request_id(&app, &unknown, "err-404").await;
    assert_eq!(request_id(&resp), "err-404");
    expect_error(resp, 404, "NOT_FOUND", "unknown payment").await;

    let resp = app
        .post(
            "/v1/quotes",
            &app.merchant_key,
            json!({"from_currency": "USD", "to_currency": "EUR", "amount": -1}),
        )
        .await;
    request_id(&resp);
    expect_error(resp, 400, "INVALID_REQUEST", "negative amount").await;

    let resp = get_public(&app, "/no-such-page").await;
    request_id(&resp);
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test]
async fn metrics_bound_the_method_label() {
    let Some(app) = spawn_app().await else { return };
    // Any token is a valid method on the wire; only the standard ones may become labels.
    let method = reqwest::Method::from_bytes(b"XSECRETMETHOD4711").expect("a token");
    let resp = app
        .client
        .request(method, format!("{}/v1/payments", app.address))
        .header("Authorization", format!("Bearer {}", app.merchant_key))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 405);
    let text = get_public(&app, "/metrics")
        .await
        .text()
        .await
        .expect("metrics body");
    assert!(
        !text.contains("XSECRETMETHOD4711"),
        "a client's method became a label:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("corridor_http_requests_total{")
            && l.contains(r#"method="OTHER""#)),
        "the odd request is not counted as OTHER:\n{text}"
    );
}

/// The served document is valid OpenAPI 3.1, checked by `openapi-spec-validator` (PyPI;
/// `scripts/test` installs it). `CORRIDOR_TEST_CONTRACT=skip` opts out.
#[tokio::test]
async fn openapi_json_validates_with_zero_errors() {
    if std::env::var("CORRIDOR_TEST_CONTRACT").is_ok_and(|v| v == "skip") {
        eprintln!("skipped: CORRIDOR_TEST_CONTRACT=skip, the OpenAPI document was not validated");
        return;
    }
    let Some(app) = spawn_app().await else { return };
    let text = get_public(&app, "/openapi.json")
        .await
        .text()
        .await
        .expect("document");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, text).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .expect("python3 runs (scripts/test installs openapi-spec-validator)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains("No module named"),
        "openapi-spec-validator is not installed (pip install openapi-spec-validator, or run ./scripts/test): {said}"
    );
    assert!(out.status.success(), "the OpenAPI document does not validate:\n{said}");
}

/// Schemathesis (PyPI; `scripts/test` installs it) against this live server: every check,
/// the examples, coverage, fuzzing and stateful phases, a bounded number of examples and a
/// fixed seed — once with the merchant key on the merchant routes, once with the admin key on
/// the admin routes. Zero failures. `CORRIDOR_TEST_CONTRACT=skip` opts out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    if std::env::var("CORRIDOR_TEST_CONTRACT").is_ok_and(|v| v == "skip") {
        eprintln!("skipped: CORRIDOR_TEST_CONTRACT=skip, schemathesis was not run");
        return;
    }
    let Some(app) = spawn_app_with(|c| c.auth_failure_limit = "0".parse().unwrap()).await else {
        return;
    };
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/schemathesis.toml");
    let url = format!("{}/openapi.json", app.address);
    for (key, tag_filter) in [
        (&app.merchant_key, "--exclude-tag=admin"),
        (&app.admin_key, "--include-tag=admin"),
    ] {
        let args = vec![
            "--config-file".to_owned(),
            config.to_owned(),
            "run".to_owned(),
            url.clone(),
            "--checks=all".to_owned(),
            "--phases=examples,coverage,fuzzing,stateful".to_owned(),
            "--max-examples=10".to_owned(),
            "--seed=20261201".to_owned(),
            "--generation-deterministic".to_owned(),
            "--no-color".to_owned(),
            tag_filter.to_owned(),
            "-H".to_owned(),
            format!("Authorization: Bearer {key}"),
        ];
        // Through the interpreter rather than the `st` script, which a fresh pip install
        // may not have put on PATH yet.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .args(["-c", "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; schemathesis()"])
                .args(&args)
                .output()
        })
        .await
        .expect("joined")
        .expect("python3 runs");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("No module named"),
            "schemathesis is not installed (pip install schemathesis, or run ./scripts/test): {err}"
        );
        assert!(
            out.status.success(),
            "schemathesis found failures ({tag_filter}):\n{said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A client generated from the served document by a standard generator
/// (openapi-python-client, from PyPI; `scripts/test` installs it) quotes, pays, polls the
/// payment to COMPLETED and finds it in the list (`tests/contract/client_flow.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_document_pays_end_to_end() {
    if std::env::var("CORRIDOR_TEST_CONTRACT").is_ok_and(|v| v == "skip") {
        eprintln!("skipped: CORRIDOR_TEST_CONTRACT=skip, no client was generated");
        return;
    }
    let Some(app) = spawn_app().await else { return };
    let doc = get_public(&app, "/openapi.json")
        .await
        .text()
        .await
        .expect("document");
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, doc).expect("write");
    let package = dir.path().join("generated");
    let flow = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/client_flow.py");
    let (address, key) = (app.address.clone(), app.merchant_key.clone());
    let (generated, ran) = tokio::task::spawn_blocking(move || {
        let generated = std::process::Command::new("python3")
            .args(["-c", "import sys; from openapi_python_client.cli import app; sys.argv[0] = 'openapi-python-client'; app()"])
            .args(["generate", "--meta", "none", "--path"])
            .arg(&spec)
            .arg("--output-path")
            .arg(package.join("corridor_client"))
            .output()
            .expect("python3 runs");
        let ran = std::process::Command::new("python3")
            .arg(flow)
            .arg(&package)
            .arg(&address)
            .arg(&key)
            .output()
            .expect("python3 runs");
        (generated, ran)
    })
    .await
    .expect("joined");
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        !text(&generated).contains("No module named"),
        "openapi-python-client is not installed (pip install openapi-python-client, or run ./scripts/test): {}",
        text(&generated)
    );
    assert!(generated.status.success(), "generation failed: {}", text(&generated));
    assert!(ran.status.success(), "the generated client's flow failed: {}", text(&ran));
    assert!(text(&ran).contains("COMPLETED"), "{}", text(&ran));
}
