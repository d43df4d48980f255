//! Logs: run the real `corridor serve` with debug-level JSON logs on a temporary SQLite file,
//! exercise requests of every kind (admin, quotes, payments with an idempotent replay,
//! webhook endpoints with deliveries to a local receiver, a signed provider webhook, key
//! rotations, rejected keys) and the jobs they cause, stop it, and check its standard error:
//! every line is JSON, lines inside a request carry its `request_id` (and the merchant and
//! payment where known), job lines carry their `payment_id`, and no key, key hash or secret
//! appears at any level. (Standard output prints the first start's keys once by design; only
//! the log is checked.)

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The offramp's webhook secret, given to the server by its environment (never printed).
const OFFRAMP_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Kills the child on drop (also when an assertion fails first).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the first start printed to standard output.
#[derive(Default)]
struct Banner {
    url: String,
    admin_key: String,
    merchant_key: String,
    provider_secret: String,
}

fn start(dir: &std::path::Path, stderr: File) -> (Server, Banner) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("logs.db").display()),
        )
        .env("CORRIDOR_LISTEN", "127.0.0.1:0")
        .env_remove("CORRIDOR_ADMIN_KEY")
        .env_remove("CORRIDOR_ONRAMP_WEBHOOK_SECRET")
        .env("CORRIDOR_OFFRAMP_WEBHOOK_SECRET", OFFRAMP_SECRET)
        .env("CORRIDOR_LOG", "trace")
        .env("CORRIDOR_LOG_FORMAT", "json")
        .env("CORRIDOR_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("CORRIDOR_SIM_ONRAMP_DELAY", "20ms..100ms")
        .env("CORRIDOR_SIM_OFFRAMP_DELAY", "20ms..100ms")
        .env("CORRIDOR_POLL_INTERVAL", "50ms")
        .env("CORRIDOR_WORKERS", "4")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("corridor binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Banner::default();
    loop {
        let line = lines
            .next()
            .expect("corridor printed its address before exiting")
            .expect("stdout readable");
        let field = |name: &str| line.trim().strip_prefix(name).map(|v| v.trim().to_owned());
        if let Some(v) = field("admin key:") {
            banner.admin_key = v;
        } else if let Some(v) = field("demo merchant key:") {
            banner.merchant_key = v;
        } else if let Some(v) = field("Corridor listening on") {
            banner.url = v;
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    assert!(
        banner.admin_key.starts_with("ck_admin_"),
        "admin key printed"
    );
    assert!(banner.merchant_key.starts_with("sk_"), "demo key printed");
    banner.provider_secret = OFFRAMP_SECRET.to_owned();
    (server, banner)
}

/// A local webhook receiver that answers 200 and counts deliveries.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), count)
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }

    async fn json(&self, resp: reqwest::Response, status: u16) -> Value {
        let actual = resp.status().as_u16();
        let text = resp.text().await.expect("body readable");
        assert_eq!(actual, status, "body: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(key), None, &[])
            .await
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(key), Some(body), &[])
            .await
    }

    /// Polls the payment until its status is one of `want`.
    async fn wait_for(&self, key: &str, payment_id: &str, want: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = self
                .json(
                    self.get(&format!("/v1/payments/{payment_id}"), key).await,
                    200,
                )
                .await;
            let s = p["status"].as_str().unwrap_or_default();
            if want.contains(&s) {
                return p;
            }
            assert!(Instant::now() < deadline, "{payment_id} stuck in {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_carry_request_and_payment_ids_and_hold_no_secret() {
    corridor::tls::init();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let (mut server, banner) = start(dir.path(), File::create(&log_path).unwrap());
    let (hook_url, deliveries) = receiver().await;
    let c = Client {
        http: reqwest::Client::new(),
        url: banner.url.clone(),
    };
    let admin = banner.admin_key.as_str();

    // A merchant created through the admin API, with a webhook endpoint (secret rotated once).
    let m = c
        .json(
            c.post("/v1/admin/merchants", admin, json!({"name": "logs"}))
                .await,
            201,
        )
        .await;
    let merchant_id = m["merchant_id"].as_str().unwrap().to_owned();
    let key = m["api_key"].as_str().unwrap().to_owned();
    let ep = c
        .json(
            c.post("/v1/webhook-endpoints", &key, json!({"url": hook_url}))
                .await,
            201,
        )
        .await;
    let endpoint_secret = ep["secret"].as_str().unwrap().to_owned();
    let ep_id = ep["id"].as_str().unwrap();
    let rotated = c
        .json(
            c.post(
                &format!("/v1/webhook-endpoints/{ep_id}/rotate-secret"),
                &key,
                json!({}),
            )
            .await,
            200,
        )
        .await;
    let endpoint_secret_2 = rotated["secret"].as_str().unwrap().to_owned();
    assert!(endpoint_secret.starts_with("whsec_") && endpoint_secret_2.starts_with("whsec_"));

    // A quote, and a payment on it sent twice with one Idempotency-Key.
    let q = c
        .json(
            c.post(
                "/v1/quotes",
                &key,
                json!({"from_currency": "USD", "to_currency": "EUR", "amount": 100_000}),
            )
            .await,
            200,
        )
        .await;
    let quote_id = q["quote_id"].as_str().unwrap();
    c.json(c.get(&format!("/v1/quotes/{quote_id}"), &key).await, 200)
        .await;
    let body = json!({"quote_id": quote_id, "source_account": "src",
                      "destination_account": "dst", "metadata": {"order": "L-1"}});
    let mut first_id = String::new();
    for request_id in ["logs-pay-1", "logs-pay-replay"] {
        let resp = c
            .send(
                reqwest::Method::POST,
                "/v1/payments",
                Some(&key),
                Some(body.clone()),
                &[
                    ("idempotency-key", "logs-idem-1"),
                    ("x-request-id", request_id),
                ],
            )
            .await;
        let p = c.json(resp, 202).await;
        let id = p["payment_id"].as_str().unwrap().to_owned();
        if first_id.is_empty() {
            first_id = id;
        } else {
            assert_eq!(id, first_id, "the replay answers the first payment");
        }
    }
    let paid = first_id;
    // A payment without a quote whose offramp stays pending, settled by a provider webhook.
    let slow = c
        .json(
            c.post(
                "/v1/payments",
                &key,
                json!({"amount": 50_000, "currency": "USD", "payout_currency": "EUR",
                       "source_account": "src", "destination_account": "sim_slow"}),
            )
            .await,
            202,
        )
        .await;
    let slow_id = slow["payment_id"].as_str().unwrap().to_owned();
    c.wait_for(&key, &paid, &["COMPLETED"]).await;
    let pending = c.wait_for(&key, &slow_id, &["OFFRAMP_PENDING"]).await;
    let event = json!({"event_type": "offramp.completed",
                       "reference": pending["legs"]["offramp"]["reference"],
                       "payment_id": slow_id})
    .to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig = corridor::signing::Secret::parse(&banner.provider_secret)
        .unwrap()
        .sign("msg_logs_1", ts, event.as_bytes());
    let ts = ts.to_string();
    let resp = c
        .http
        .post(format!("{}/v1/provider-webhooks/sim-offramp", c.url))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_logs_1")
        .header("webhook-timestamp", &ts)
        .header("webhook-signature", sig)
        .header("x-request-id", "logs-provider-webhook")
        .body(event.clone())
        .send()
        .await
        .unwrap();
    c.json(resp, 200).await;
    c.wait_for(&key, &slow_id, &["COMPLETED"]).await;

    // Rejections: an unsigned provider webhook, unknown and missing keys, the wrong role.
    let resp = c
        .http
        .post(format!("{}/v1/provider-webhooks/sim-offramp", c.url))
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    c.json(resp, 401).await;
    c.json(c.get("/v1/corridors", "sk_not_a_real_key_12345").await, 401)
        .await;
    c.json(
        c.send(reqwest::Method::GET, "/v1/corridors", None, None, &[])
            .await,
        401,
    )
    .await;
    c.json(c.get("/v1/corridors", admin).await, 403).await;
    c.json(c.get("/v1/admin/rates", &banner.merchant_key).await, 403)
        .await;

    // Key rotation: the new key works, the old one stops.
    let r = c
        .json(
            c.post(
                &format!("/v1/admin/merchants/{merchant_id}/rotate-key"),
                admin,
                json!({}),
            )
            .await,
            200,
        )
        .await;
    let key_2 = r["api_key"].as_str().unwrap().to_owned();
    c.json(c.get("/v1/corridors", &key_2).await, 200).await;
    c.json(c.get("/v1/corridors", &key).await, 401).await;
    c.json(c.get("/v1/payments", &banner.merchant_key).await, 200)
        .await;

    // Deliveries for both payments' events reach the receiver.
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "webhooks were not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.json(
        c.get(&format!("/v1/webhook-deliveries?payment_id={paid}"), &key_2)
            .await,
        200,
    )
    .await;

    // Graceful stop (SIGTERM), so the log is complete.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "corridor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "log line is not a JSON object: {l}");
            assert!(
                v.get("level").is_some() && v.get("timestamp").is_some(),
                "{l}"
            );
            v
        })
        .collect();
    assert!(lines.len() > 50, "only {} log lines", lines.len());

    // No key, key hash or secret, whole or without its prefix, at any level.
    let hash = corridor::api::auth::hash_key;
    let keys = [admin, &banner.merchant_key, &key, &key_2];
    let secrets = [
        &banner.provider_secret,
        &endpoint_secret,
        &endpoint_secret_2,
    ];
    let mut forbidden: Vec<String> = Vec::new();
    for k in keys {
        forbidden.push(k.to_owned());
        forbidden.push(
            k.trim_start_matches("ck_admin_")
                .trim_start_matches("sk_")
                .to_owned(),
        );
        forbidden.push(hash(k));
    }
    for s in secrets {
        forbidden.push(s.to_owned());
        forbidden.push(s.trim_start_matches("whsec_").to_owned());
    }
    for f in &forbidden {
        assert!(f.len() >= 20, "too short to search for: {f}");
        if let Some(l) = log.lines().find(|l| l.contains(f.as_str())) {
            panic!("a secret appears in the log: {l}");
        }
    }

    // Every line emitted inside a request carries its request id; request-level lines exist
    // for every request made (the debug "request finished" line at least).
    let in_request: Vec<&Value> = lines
        .iter()
        .filter(|v| str_of(v, "/span/name") == "request")
        .collect();
    for v in &in_request {
        assert!(!str_of(v, "/span/request_id").is_empty(), "{v}");
    }
    let finished = in_request
        .iter()
        .filter(|v| str_of(v, "/message") == "request finished")
        .count();
    assert!(finished >= 20, "{finished} `request finished` lines");
    // Lines written by request handlers (and the operator actions they call) are always
    // inside a request.
    let handler_targets = [
        "corridor::api::admin",
        "corridor::api::auth",
        "corridor::api::error",
        "corridor::api::operations",
        "corridor::api::payments",
        "corridor::api::provider_webhooks",
        "corridor::api::quotes",
        "corridor::api::request_id",
        "corridor::api::webhooks",
        "corridor::ops",
    ];
    for v in lines
        .iter()
        .filter(|v| handler_targets.contains(&str_of(v, "/target")))
    {
        assert_eq!(str_of(v, "/span/name"), "request", "outside a request: {v}");
    }
    // The payment's creation, under the caller's own request id, names merchant and payment.
    let accepted = lines
        .iter()
        .find(|v| {
            str_of(v, "/span/request_id") == "logs-pay-1"
                && str_of(v, "/message") == "payment accepted"
        })
        .expect("`payment accepted` logged under the caller's X-Request-Id");
    assert_eq!(str_of(accepted, "/span/merchant_id"), merchant_id);
    assert_eq!(str_of(accepted, "/span/payment_id"), paid);
    assert_eq!(str_of(accepted, "/payment_id"), paid);
    // The replay is its own request, with the merchant known.
    assert!(lines.iter().any(|v| {
        str_of(v, "/span/request_id") == "logs-pay-replay"
            && str_of(v, "/span/merchant_id") == merchant_id
    }));
    // The provider webhook's settlement is logged in its request, naming the payment.
    assert!(
        lines.iter().any(|v| {
            str_of(v, "/span/request_id") == "logs-provider-webhook"
                && str_of(v, "/message") == "payment transition"
                && str_of(v, "/span/payment_id") == slow_id
                && str_of(v, "/span/merchant_id") == merchant_id
        }),
        "the webhook-driven transition is logged in the webhook's request"
    );

    // Job lines carry the job's payment (and merchant once loaded); every transition names
    // its payment.
    let transitions: Vec<&Value> = lines
        .iter()
        .filter(|v| str_of(v, "/message") == "payment transition")
        .collect();
    for v in &transitions {
        assert!(str_of(v, "/payment_id").starts_with("pay_"), "{v}");
        match str_of(v, "/span/name") {
            "job" => {
                assert_eq!(
                    str_of(v, "/span/payment_id"),
                    str_of(v, "/payment_id"),
                    "{v}"
                );
                assert!(str_of(v, "/span/merchant_id").starts_with("mer_"), "{v}");
                assert!(!str_of(v, "/span/job_id").is_empty(), "{v}");
            }
            "request" => assert!(!str_of(v, "/span/request_id").is_empty(), "{v}"),
            other => panic!("transition outside a job or request ({other}): {v}"),
        }
    }
    for p in [&paid, &slow_id] {
        assert!(
            transitions
                .iter()
                .any(|v| str_of(v, "/payment_id") == p.as_str() && str_of(v, "/to") == "COMPLETED"),
            "{p}'s completion is logged"
        );
    }
    let jobs: Vec<&Value> = lines
        .iter()
        .filter(|v| str_of(v, "/span/name") == "job")
        .collect();
    for v in &jobs {
        let kind = str_of(v, "/span/kind");
        if kind == "payment.step" || kind == "webhook.deliver" {
            assert!(str_of(v, "/span/payment_id").starts_with("pay_"), "{v}");
        }
    }
    assert!(
        jobs.iter().any(|v| {
            str_of(v, "/span/kind") == "webhook.deliver"
                && str_of(v, "/span/merchant_id") == merchant_id
                && str_of(v, "/span/payment_id") == paid
        }),
        "a delivery job's lines name its merchant and payment"
    );
    // Lines of the worker loop itself belong to no job (no span left entered on a thread).
    for v in lines.iter().filter(|v| {
        matches!(
            str_of(v, "/message"),
            "engine started" | "engine stopped" | "shutting down: draining requests and jobs"
        )
    }) {
        assert!(v.get("span").is_none(), "{v}");
    }
}
