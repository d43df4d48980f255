//! The provider boundary over HTTP: `corridor sim-provider` runs as its own process on its own
//! database, Corridor is pointed at it with `CORRIDOR_ONRAMP_URL` / `CORRIDOR_OFFRAMP_URL`,
//! and payments reach every terminal outcome through the HTTP adapters. The sim-provider's
//! idempotency is checked over the wire, and its signed status webhooks are caught by a small
//! receiver that answers 404 first — a receiver that refuses must not break the provider.

use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use corridor::app::Application;
use corridor::clock::SystemClock;
use corridor::config::{Config, Dur, RateLimit};
use corridor::signing::{self, Secret};
use serde_json::{Value, json};

/// The sim-provider child process, killed when the test ends.
struct SimProcess {
    child: Child,
    url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim_provider(
    dir: &std::path::Path,
    listen: &str,
    corridor_url: &str,
    secret: &str,
) -> SimProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .arg("sim-provider")
        .args(["--listen", listen])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("sim.db").display()))
        .args(["--corridor-url", corridor_url])
        .args(["--onramp-webhook-secret", secret])
        .args(["--offramp-webhook-secret", secret])
        .env_remove("CORRIDOR_ONRAMP_WEBHOOK_SECRET")
        .env_remove("CORRIDOR_OFFRAMP_WEBHOOK_SECRET")
        .env("CORRIDOR_SIM_ONRAMP_DELAY", "20ms..100ms")
        .env("CORRIDOR_SIM_OFFRAMP_DELAY", "20ms..100ms")
        .env("CORRIDOR_SIM_FAILURE_RATE", "0")
        .env_remove("CORRIDOR_ONRAMP_NAME")
        .env_remove("CORRIDOR_OFFRAMP_NAME")
        .env("CORRIDOR_LOG", "warn")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("corridor binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("sim-provider printed its address before exiting")
            .expect("stdout readable");
        if let Some(addr) = line.strip_prefix("sim-provider listening on ") {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    SimProcess { child, url }
}

/// One webhook as received: provider from the path, headers, body, and signature check.
#[derive(Debug, Clone)]
struct Received {
    provider: String,
    id: String,
    body: Value,
    signed: bool,
}

#[derive(Clone)]
struct Receiver {
    secret: Secret,
    got: Arc<Mutex<Vec<Received>>>,
}

/// Answers 404 to the first delivery of each message and 200 to the rest, like a Corridor
/// whose inbound endpoint is not there yet, then is.
async fn receive(
    State(r): State<Receiver>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed = signing::verify(
        &r.secret,
        h(signing::ID_HEADER),
        h(signing::TIMESTAMP_HEADER),
        h(signing::SIGNATURE_HEADER),
        &body,
        now,
    )
    .is_ok();
    let id = h(signing::ID_HEADER).unwrap_or("").to_owned();
    let mut got = r.got.lock().unwrap();
    let first = !got.iter().any(|g| g.id == id);
    got.push(Received {
        provider,
        id,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signed,
    });
    if first {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    }
}

async fn start_receiver(secret: &str) -> (String, Receiver) {
    let r = Receiver {
        secret: Secret::parse(secret).unwrap(),
        got: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/provider-webhooks/{provider}", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), r)
}

async fn start_corridor(dir: &std::path::Path, sim_url: &str) -> (Application, String, String) {
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = format!("sqlite://{}", dir.join("corridor.db").display());
    cfg.admin_key = Some("ck_admin_provider_http_test_0123".to_owned().into());
    cfg.onramp_url = Some(format!("{sim_url}/onramp"));
    cfg.offramp_url = Some(format!("{sim_url}/offramp"));
    cfg.onramp_name = "http-onramp".into();
    cfg.offramp_name = "http-offramp".into();
    cfg.poll_interval = Dur(Duration::from_millis(50));
    cfg.provider_timeout = Dur(Duration::from_secs(2));
    cfg.job_lease = Dur(Duration::from_secs(5));
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    cfg.workers = 4;
    let admin = cfg
        .admin_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .unwrap();
    let app = Application::start(cfg, SystemClock::new(), rand::random())
        .await
        .expect("corridor starts");
    let key = app
        .bootstrap()
        .expect("first start bootstraps")
        .merchant_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .unwrap_or_default();
    (app, admin, key)
}

async fn wait_terminal(client: &reqwest::Client, base: &str, key: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = client
            .get(format!("{base}/v1/payments/{id}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let s = v["status"].as_str().unwrap_or("");
        if ["COMPLETED", "FAILED", "REFUNDED", "CANCELLED"].contains(&s) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} stuck in {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_settle_through_the_http_providers_and_the_sim_provider_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let secret = Secret::generate();
    let (receiver_url, receiver) = start_receiver(&secret).await;
    let sim = start_sim_provider(dir.path(), "127.0.0.1:0", &receiver_url, &secret);
    let (app, admin, key) = start_corridor(dir.path(), &sim.url).await;
    let base = format!("http://{}", app.addr());
    let client = corridor::providers::http::client(Duration::from_secs(10)).unwrap();

    let cases = [
        ("user123", "merchant456", "COMPLETED"),
        ("sim_fail_onramp", "merchant456", "FAILED"),
        ("user123", "sim_fail_offramp", "REFUNDED"),
    ];
    let mut ids = Vec::new();
    for (src, dst, _) in cases {
        let r = client
            .post(format!("{base}/v1/payments"))
            .bearer_auth(&key)
            .json(
                &json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                          "source_account": src, "destination_account": dst}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        ids.push(v["payment_id"].as_str().unwrap().to_owned());
    }
    let mut payments = Vec::new();
    for (id, (_, _, want)) in ids.iter().zip(cases) {
        let p = wait_terminal(&client, &base, &key, id).await;
        assert_eq!(p["status"], want, "{p}");
        assert_eq!(p["legs"]["onramp"]["provider"], "http-onramp", "{p}");
        payments.push(p);
    }
    let (done, failed, refunded) = (&payments[0], &payments[1], &payments[2]);
    assert_eq!(done["legs"]["onramp"]["status"], "COMPLETED");
    assert_eq!(done["legs"]["offramp"]["provider"], "http-offramp");
    assert_eq!(done["legs"]["offramp"]["status"], "COMPLETED");
    assert_eq!(failed["legs"]["onramp"]["status"], "FAILED");
    assert!(failed["legs"]["offramp"].is_null(), "{failed}");
    assert_eq!(failed["failure"]["code"], "ONRAMP_FAILED");
    assert_eq!(refunded["legs"]["onramp"]["status"], "REVERSED");
    assert_eq!(refunded["legs"]["offramp"]["provider"], "http-offramp");
    assert_eq!(refunded["legs"]["offramp"]["status"], "FAILED");
    assert_eq!(refunded["failure"]["code"], "OFFRAMP_FAILED");

    // The sandbox exists only while the simulator runs in-process.
    let r = client
        .get(format!("{base}/v1/sandbox/transfers"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Reconciliation reads both sides' statements over the protocol: every leg of the three
    // payments (the failed onramp, the refund's reversal included) pairs with the ledger.
    let r = client
        .post(format!("{base}/v1/admin/reconciliations"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        let v: Value = client
            .get(format!("{base}/v1/admin/reconciliations/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "PENDING" {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(
        (run["checked"].as_i64(), run["matched"].as_i64()),
        (Some(6), Some(6)),
        "{run}"
    );
    assert_eq!(run["mismatches"], json!([]), "{run}");

    // Asking the provider again with Corridor's key returns the transfer Corridor recorded.
    let onramp = &done["legs"]["onramp"];
    let again = client
        .post(format!("{}/onramp/transfers", sim.url))
        .header("Idempotency-Key", format!("{}:onramp", ids[0]))
        .json(
            &json!({"payment_id": ids[0], "leg": "onramp", "amount": onramp["amount"],
                      "currency": "USDC", "account": "user123"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        200,
        "a repeated key is a replay, not a creation"
    );
    let t: Value = again.json().await.unwrap();
    assert_eq!(t["reference"], onramp["reference"]);
    assert_eq!(t["status"], "COMPLETED");

    // Every settled transfer of these payments is announced, signed, under the provider name
    // Corridor knows it by; the first 404 is retried with the same webhook-id.
    let mut expected: Vec<(String, String, &str)> = vec![
        (ids[0].clone(), "http-onramp".into(), "onramp.completed"),
        (ids[0].clone(), "http-offramp".into(), "offramp.completed"),
        (ids[1].clone(), "http-onramp".into(), "onramp.failed"),
        (ids[2].clone(), "http-onramp".into(), "onramp.completed"),
        (ids[2].clone(), "http-offramp".into(), "offramp.failed"),
        // The reversal: an onramp-side transfer.
        (ids[2].clone(), "http-onramp".into(), "onramp.completed"),
    ];
    expected.sort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let got = receiver.got.lock().unwrap().clone();
        // Delivered = answered 200 = seen at least twice.
        let mut counts: HashMap<String, Vec<Received>> = HashMap::new();
        for g in got {
            counts.entry(g.id.clone()).or_default().push(g);
        }
        let delivered: Vec<Vec<Received>> = counts.into_values().filter(|v| v.len() >= 2).collect();
        if delivered.len() >= expected.len() {
            break delivered;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} webhooks delivered",
            delivered.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut seen: Vec<(String, String, &str)> = Vec::new();
    for attempts in &delivered {
        assert!(attempts.iter().all(|a| a.signed), "{attempts:?}");
        assert!(attempts.iter().all(|a| a.body == attempts[0].body));
        let first = &attempts[0];
        let event = expected
            .iter()
            .map(|e| e.2)
            .find(|e| first.body["event_type"] == *e)
            .unwrap_or_else(|| panic!("unexpected event {:?}", first.body));
        seen.push((
            first.body["payment_id"].as_str().unwrap().to_owned(),
            first.provider.clone(),
            event,
        ));
    }
    seen.sort();
    assert_eq!(seen, expected);
    // The legs' references are the ones announced.
    for (p, leg) in [(done, "onramp"), (done, "offramp"), (failed, "onramp")] {
        let reference = &p["legs"][leg]["reference"];
        assert!(
            delivered
                .iter()
                .any(|a| a[0].body["reference"] == *reference),
            "no webhook for {reference}"
        );
    }

    app.stop();
    app.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_provider_answers_one_transfer_per_key_and_refuses_in_the_protocol_format() {
    let dir = tempfile::tempdir().unwrap();
    let secret = Secret::generate();
    // Webhooks go to a port nobody listens on: the provider keeps serving regardless.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sim = start_sim_provider(dir.path(), "127.0.0.1:0", &nowhere, &secret);
    let client = corridor::providers::http::client(Duration::from_secs(10)).unwrap();
    let body = json!({"payment_id": "pay_idem", "leg": "offramp", "amount": 87700,
                      "currency": "EUR", "account": "merchant456"});
    let post = |path: &str, key: &str, body: &Value| {
        client
            .post(format!("{}{path}", sim.url))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };

    let first = post("/offramp/transfers", "pay_idem:offramp", &body)
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "PENDING");
    let second = post("/offramp/transfers", "pay_idem:offramp", &body)
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["reference"], second["reference"]);

    // The status of the transfer settles on the offramp side and is unknown on the onramp.
    let reference = first["reference"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = client
            .get(format!("{}/offramp/transfers/{reference}", sim.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "COMPLETED" {
            assert_eq!(v["amount"], 87700);
            break;
        }
        assert_eq!(v["status"], "PENDING");
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client
        .get(format!("{}/onramp/transfers/{reference}", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "NOT_FOUND");

    // Refusals carry {"error","message"}: a reused key with another amount, a leg the side
    // does not move, a missing key.
    let mut other = body.clone();
    other["amount"] = json!(1);
    let refusals = [
        (
            "/offramp/transfers",
            "pay_idem:offramp",
            other,
            422,
            "IDEMPOTENCY_KEY_REUSED",
        ),
        (
            "/offramp/transfers",
            "pay_x:onramp",
            json!({"payment_id": "pay_x", "leg": "onramp",
          "amount": 1, "currency": "USDC", "account": "a"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "/onramp/transfers",
            "",
            body.clone(),
            400,
            "INVALID_REQUEST",
        ),
        (
            "/onramp/transfers",
            "pay_y:onramp",
            json!({"payment_id": "pay_y"}),
            400,
            "INVALID_REQUEST",
        ),
    ];
    for (path, key, body, status, code) in refusals {
        let r = post(path, key, &body).await.unwrap();
        assert_eq!(r.status(), status, "{path} {key}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], code, "{e}");
        assert!(e["message"].is_string());
    }

    let health = client
        .get(format!("{}/healthz", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// The sim-provider on a port chosen up front, so Corridor and the provider can each be told
/// the other's address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Corridor and the sim-provider pointed at each other: the provider pushes signed webhooks
/// into Corridor while Corridor also polls. With polling effectively off, webhooks alone
/// settle every leg; with fast polling, both race and each transition still happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_webhooks_from_a_separate_process_settle_payments_and_race_polling_safely() {
    for poll in [Duration::from_secs(3_600), Duration::from_millis(20)] {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::generate();
        let sim_port = free_port();
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.database_url = format!("sqlite://{}", dir.path().join("corridor.db").display());
        cfg.admin_key = Some("ck_admin_provider_http_test_0123".to_owned().into());
        cfg.onramp_url = Some(format!("{sim_url}/onramp"));
        cfg.offramp_url = Some(format!("{sim_url}/offramp"));
        cfg.onramp_name = "http-onramp".into();
        cfg.offramp_name = "http-offramp".into();
        // The one sim-provider process plays both providers and signs both sides with
        // `secret`; real providers would each have their own.
        cfg.onramp_webhook_secret = Some(secret.clone().into());
        cfg.offramp_webhook_secret = Some(secret.clone().into());
        cfg.poll_interval = Dur(poll);
        cfg.provider_timeout = Dur(Duration::from_secs(2));
        cfg.job_lease = Dur(Duration::from_secs(5));
        cfg.rate_limit = RateLimit {
            requests: 0,
            per: Duration::from_secs(1),
        };
        cfg.workers = 4;
        let app = Application::start(cfg, SystemClock::new(), rand::random())
            .await
            .expect("corridor starts");
        let key = app
            .bootstrap()
            .expect("first start")
            .merchant_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned())
            .unwrap_or_default();
        let base = format!("http://{}", app.addr());
        let _sim = start_sim_provider(dir.path(), &format!("127.0.0.1:{sim_port}"), &base, &secret);
        let client = corridor::providers::http::client(Duration::from_secs(10)).unwrap();

        let cases = [
            ("user123", "merchant456", "COMPLETED"),
            ("sim_fail_onramp", "merchant456", "FAILED"),
            ("user123", "sim_fail_offramp", "REFUNDED"),
            ("user124", "merchant457", "COMPLETED"),
        ];
        let mut ids = Vec::new();
        for (src, dst, _) in cases {
            let r = client
                .post(format!("{base}/v1/payments"))
                .bearer_auth(&key)
                .json(
                    &json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                              "source_account": src, "destination_account": dst}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let v: Value = r.json().await.unwrap();
            ids.push(v["payment_id"].as_str().unwrap().to_owned());
        }
        for (id, (_, _, want)) in ids.iter().zip(cases) {
            let p = wait_terminal(&client, &base, &key, id).await;
            assert_eq!(p["status"], want, "poll {poll:?}: {p}");
            let states: Vec<&str> = p["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["to"].as_str().unwrap())
                .collect();
            let mut unique = states.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                states.len(),
                "a state appears twice: {states:?}"
            );
        }
    }
}

/// Switching a side from the simulator to an HTTP provider while payments have legs with the
/// simulator would strand them (the step would ask the new provider about a transfer it
/// never saw): the start is refused, naming the provider and how many payments need it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_no_longer_provides_an_in_flight_legs_provider_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = format!("sqlite://{}", dir.path().join("corridor.db").display());
    cfg.admin_key = Some("ck_admin_provider_switch_test_01".to_owned().into());
    cfg.poll_interval = Dur(Duration::from_millis(50));
    cfg.sim_onramp_delay = corridor::config::DurRange {
        min: Duration::from_millis(20),
        max: Duration::from_millis(50),
    };
    let app = Application::start(cfg.clone(), SystemClock::new(), rand::random())
        .await
        .expect("corridor starts");
    let key = app
        .bootstrap()
        .and_then(|b| b.merchant_key.as_ref())
        .map(|k| k.expose_secret().to_owned())
        .unwrap();
    let base = format!("http://{}", app.addr());
    let client = reqwest::Client::new();
    // `sim_slow`: the simulated offramp keeps the leg pending.
    let p: Value = client
        .post(format!("{base}/v1/payments"))
        .bearer_auth(&key)
        .json(
            &json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                      "source_account": "src", "destination_account": "sim_slow"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = p["payment_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = client
            .get(format!("{base}/v1/payments/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "OFFRAMP_PENDING" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached OFFRAMP_PENDING: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop();
    app.wait().await;

    let mut switched = cfg.clone();
    switched.offramp_url = Some(format!("http://127.0.0.1:{}/offramp", free_port()));
    let err = match Application::start(switched, SystemClock::new(), rand::random()).await {
        Ok(_) => panic!("a start that strands a pending offramp leg was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("sim-offramp (1 payments)"), "{err}");
    // The configuration the legs were started with still starts.
    let again = Application::start(cfg, SystemClock::new(), rand::random())
        .await
        .expect("the original configuration starts");
    again.stop();
    again.wait().await;
}
