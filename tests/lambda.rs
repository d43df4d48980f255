//! Serverless, offline: the three Lambda functions' handlers invoked in-process with real
//! API Gateway v2 and SQS event payloads (deserialized into `aws_lambda_events` types and run
//! through `lambda_http`'s own adapter), on PostgreSQL, with SQS and Secrets Manager served by
//! a `moto` server (PyPI) on loopback. The test plays SQS's event source mapping: it receives
//! messages, hands them to the worker as an SQS event, and deletes those the worker did not
//! report as failed.
//!
//! Needs `moto_server` on the PATH (`./scripts/test` installs it) unless
//! `CORRIDOR_TEST_AWS=skip`.
#![cfg(feature = "aws")]

#[path = "testdb.rs"]
mod testdb;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use corridor::aws::lambda::Functions;
use corridor::config::{Config, Dur, DurRange, RateLimit};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use serde_json::{Value, json};

const ADMIN: &str = "ck_admin_lambda_test_key_0123456789abcdef";

/// A moto server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Option<Moto> {
    if std::env::var("CORRIDOR_TEST_AWS").is_ok_and(|v| v == "skip") {
        eprintln!("skipped: CORRIDOR_TEST_AWS=skip");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("moto_server did not start ({e}): pip install 'moto[server]', or set CORRIDOR_TEST_AWS=skip")
        });
    let url = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "moto_server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Moto { child, url })
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    // Generous timeouts: moto's first answer of each service can take seconds on a loaded
    // machine (the functions' own bound is for a real SQS, and is not under test here).
    corridor::aws::sdk_loader()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The wake-up queue and its dead-letter queue, as `deploy/aws/` makes them: a message
/// goes to the dead-letter queue on its third failed receive.
async fn queues(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name("corridor-wakeups-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name("corridor-wakeups")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}).to_string(),
        )
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    (queue, dlq)
}

fn config(db: &str) -> Config {
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    // The secret settings come from Secrets Manager in the test, as deployed.
    cfg.database_url = "sqlite://not-used.db".into();
    let zero = DurRange {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };
    cfg.sim_onramp_delay = zero;
    cfg.sim_offramp_delay = zero;
    cfg.poll_interval = Dur(Duration::from_millis(200));
    cfg.return_check_after = Some(Dur(Duration::ZERO));
    cfg.sim_failure_rate = corridor::config::Probability(0.0);
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    cfg.db_pool = 4;
    cfg.workers = 4;
    // The test's webhook receiver is on loopback, over http.
    cfg.webhook_allow_private = true;
    let _ = db;
    cfg
}

/// The functions over `cfg`, as a cold start opens them.
async fn open(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    queue: &str,
    dlq: Option<&str>,
) -> Result<Functions, corridor::app::StartError> {
    Functions::open(
        cfg,
        sdk,
        queue,
        dlq,
        Duration::from_secs(20),
        corridor::clock::SystemClock::new(),
        7,
    )
    .await
}

/// One API Gateway HTTP API (payload 2.0) request, as API Gateway sends it to the function.
fn apigw_event(
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
    idem: Option<&str>,
) -> Value {
    let mut headers = json!({
        "authorization": format!("Bearer {key}"),
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "lambda-test",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
    });
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    if let Some(k) = idem {
        headers["idempotency-key"] = json!(k);
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "lambda-test"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1_796_126_400_000_i64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
}

/// Invokes the API function with `event`; returns the status and the JSON body.
async fn invoke_api(f: &Functions, event: Value) -> (u16, Value) {
    let request: LambdaRequest = serde_json::from_value(event).expect("an API Gateway v2 event");
    let mut adapter = Adapter::from(f.router());
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .expect("the router never fails");
    // What the function returns to API Gateway, read back as API Gateway reads it.
    let wire = serde_json::to_value(&response).unwrap();
    let status = wire["statusCode"].as_u64().unwrap() as u16;
    let body = wire["body"]
        .as_str()
        .map(|b| serde_json::from_str(b).unwrap_or(Value::String(b.to_owned())))
        .unwrap_or(Value::Null);
    (status, body)
}

/// Receives what is visible on `queue` as the SQS event a worker gets (up to ten records).
async fn receive(sqs: &aws_sdk_sqs::Client, queue: &str) -> (SqsEvent, Vec<String>) {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    let mut handles = Vec::new();
    for m in out.messages() {
        let attributes: serde_json::Map<String, Value> = m
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                    .collect()
            })
            .unwrap_or_default();
        records.push(json!({
            "messageId": m.message_id(),
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": m.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:corridor-wakeups",
            "awsRegion": "us-east-1"
        }));
        handles.push(m.receipt_handle().unwrap().to_owned());
    }
    let event: SqsEvent =
        serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
    (event, handles)
}

/// One event-source-mapping round: receive, invoke the worker, delete what succeeded.
/// Returns how many messages the worker got and the ids it reported failed.
async fn worker_round(
    f: &Functions,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> (usize, Vec<String>) {
    let (event, handles) = receive(sqs, queue).await;
    let n = event.records.len();
    if n == 0 {
        return (0, Vec::new());
    }
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let out = f
        .on_messages(event, Instant::now() + Duration::from_secs(20))
        .await;
    let failed: Vec<String> = out
        .batch_item_failures
        .iter()
        .map(|b| b.item_identifier.clone())
        .collect();
    for (id, h) in ids.iter().zip(&handles) {
        if !failed.contains(id) {
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(h)
                .send()
                .await
                .unwrap();
        }
    }
    (n, failed)
}

async fn status(f: &Functions, key: &str, payment: &str) -> Value {
    let (s, p) = invoke_api(
        f,
        apigw_event("GET", &format!("/v1/payments/{payment}"), key, None, None),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    p
}

async fn pay(f: &Functions, key: &str, idem: &str) -> String {
    let (s, quote) = invoke_api(
        f,
        apigw_event(
            "POST",
            "/v1/quotes",
            key,
            Some(&json!({"from_currency": "USD", "to_currency": "EUR", "amount": 10_000})),
            None,
        ),
    )
    .await;
    assert_eq!(s, 200, "{quote}");
    let body = json!({
        "quote_id": quote["quote_id"],
        "source_account": "user123",
        "destination_account": "merchant456",
    });
    let (s, p) = invoke_api(
        f,
        apigw_event("POST", "/v1/payments", key, Some(&body), Some(idem)),
    )
    .await;
    assert_eq!(s, 202, "{p}");
    assert_eq!(p["status"], "PENDING");
    // The same request again (a client's retry) is answered from the stored answer.
    let (s, again) = invoke_api(
        f,
        apigw_event("POST", "/v1/payments", key, Some(&body), Some(idem)),
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(again["payment_id"], p["payment_id"]);
    p["payment_id"].as_str().unwrap().to_owned()
}

/// Transfers the simulated providers made per (payment, leg).
async fn legs(db: &str, payment: &str) -> Vec<(String, i64)> {
    use sqlx::Connection;
    let mut c = sqlx::postgres::PgConnection::connect(db).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT leg, COUNT(*) FROM sim_transfers WHERE payment_id = $1 GROUP BY leg ORDER BY leg",
    )
    .bind(payment)
    .fetch_all(&mut c)
    .await
    .unwrap();
    let _ = c.close().await;
    rows
}

async fn purge(sqs: &aws_sdk_sqs::Client, queue: &str) -> usize {
    let mut n = 0;
    loop {
        let (event, handles) = receive(sqs, queue).await;
        if event.records.is_empty() {
            return n;
        }
        n += handles.len();
        for h in handles {
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(h)
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_completes_through_the_three_functions_and_sqs() {
    let Some(db) = testdb::PgDatabase::create().await else {
        return;
    };
    let Some(moto) = moto() else { return };
    let sdk = sdk(&moto.url).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue, dlq) = queues(&sqs).await;

    // The secret settings, in Secrets Manager as deploy/aws/ stores them.
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("corridor/settings")
        .secret_string(json!({"DATABASE_URL": db.url, "CORRIDOR_ADMIN_KEY": ADMIN}).to_string())
        .send()
        .await
        .unwrap();
    let mut cfg = config(&db.url);
    corridor::aws::secrets::apply(
        &mut cfg,
        corridor::aws::secrets::load(&sdk, secret.arn().unwrap())
            .await
            .unwrap(),
    );
    assert_eq!(cfg.database_url, db.url);

    let f = open(&cfg, &sdk, &queue, Some(&dlq))
        .await
        .expect("the functions open");
    // Start-up scheduled only recurring jobs: nothing woken, nothing on the queue.
    assert_eq!(
        purge(&sqs, &queue).await,
        0,
        "recurring jobs send no wake-ups"
    );

    // A merchant, through the API function with the admin key from the secret.
    let (s, m) = invoke_api(
        &f,
        apigw_event(
            "POST",
            "/v1/admin/merchants",
            ADMIN,
            Some(&json!({"name": "acme"})),
            None,
        ),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    let key = m["api_key"].as_str().unwrap().to_owned();
    // Unauthenticated requests get the documented error through API Gateway too.
    let (s, e) = invoke_api(
        &f,
        apigw_event("GET", "/v1/payments", "ck_nope", None, None),
    )
    .await;
    assert_eq!(s, 401, "{e}");

    // The merchant subscribes a webhook endpoint (a loopback receiver), so deliveries run
    // on wake-ups too.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push(body);
                    "ok"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sink).await });
    let (s, e) = invoke_api(
        &f,
        apigw_event(
            "POST",
            "/v1/webhook-endpoints",
            &key,
            Some(&json!({"url": hook, "events": ["payment.completed"]})),
            None,
        ),
    )
    .await;
    assert_eq!(s, 201, "{e}");

    // 1. A payment driven to COMPLETED by SQS wake-ups alone, one delivered twice.
    let first = pay(&f, &key, "lambda-1").await;
    let mut doubled = false;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let p = status(&f, &key, &first).await;
        if p["status"] == "COMPLETED" {
            break;
        }
        assert!(Instant::now() < until, "stuck at {}", p["status"]);
        let (event, handles) = receive(&sqs, &queue).await;
        if event.records.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Deliver the first batch twice, as SQS may (at-least-once).
        let twice = if doubled { 1 } else { 2 };
        doubled = true;
        for _ in 0..twice {
            let out = f
                .on_messages(event.clone(), Instant::now() + Duration::from_secs(20))
                .await;
            assert!(out.batch_item_failures.is_empty(), "{out:?}");
        }
        for h in handles {
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(h)
                .send()
                .await
                .unwrap();
        }
    }
    assert!(doubled);
    assert_eq!(
        legs(&db.url, &first).await,
        vec![("offramp".to_owned(), 1), ("onramp".to_owned(), 1)],
        "one transfer per leg, however often the wake-ups came"
    );
    let done = status(&f, &key, &first).await;
    assert_eq!(done["status"], "COMPLETED");
    // Its payment.completed reaches the endpoint, woken by the same queue.
    let until = Instant::now() + Duration::from_secs(30);
    while !received
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.contains("payment.completed") && b.contains(&first))
    {
        assert!(
            Instant::now() < until,
            "payment.completed was not delivered"
        );
        let (n, failed) = worker_round(&f, &sqs, &queue).await;
        assert!(failed.is_empty());
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // 2. A payment whose wake-ups are all lost: the sweeper finishes it.
    let second = pay(&f, &key, "lambda-2").await;
    assert!(
        purge(&sqs, &queue).await >= 1,
        "the payment's wake-up was sent"
    );
    assert_eq!(status(&f, &key, &second).await["status"], "PENDING");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let sweep = f
            .on_schedule(Instant::now() + Duration::from_secs(20))
            .await
            .expect("sweep");
        // Every wake-up the sweep's steps sent is lost too.
        purge(&sqs, &queue).await;
        let p = status(&f, &key, &second).await;
        if p["status"] == "COMPLETED" {
            assert!(sweep.ran >= 1 || p["status"] == "COMPLETED");
            break;
        }
        assert!(Instant::now() < until, "sweeper left it at {}", p["status"]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        legs(&db.url, &second).await,
        vec![("offramp".to_owned(), 1), ("onramp".to_owned(), 1)]
    );

    // 3. A poison message: failed on each receive, dead-lettered by SQS on the third, then
    //    recorded by the sweeper as a dead job, which raises DEAD_JOB.
    sqs.send_message()
        .queue_url(&queue)
        .message_body("not a wake-up")
        .send()
        .await
        .unwrap();
    let mut failures = 0;
    let until = Instant::now() + Duration::from_secs(30);
    while failures < 3 {
        assert!(
            Instant::now() < until,
            "the poison message came back {failures} times"
        );
        let (n, failed) = worker_round(&f, &sqs, &queue).await;
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        failures += failed.len();
    }
    // Now SQS moves it on its next receive.
    let until = Instant::now() + Duration::from_secs(30);
    let mut dead_letters = 0;
    while dead_letters == 0 {
        assert!(
            Instant::now() < until,
            "nothing reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let _ = worker_round(&f, &sqs, &queue).await;
        dead_letters = f
            .on_schedule(Instant::now() + Duration::from_secs(10))
            .await
            .unwrap()
            .dead_letters;
    }
    assert_eq!(dead_letters, 1);
    let (s, dead) = invoke_api(
        &f,
        apigw_event("GET", "/v1/admin/jobs/dead", ADMIN, None, None),
    )
    .await;
    assert_eq!(s, 200, "{dead}");
    let dead_jobs = dead["data"].as_array().unwrap();
    assert_eq!(dead_jobs.len(), 1, "{dead}");
    assert_eq!(dead_jobs[0]["kind"], "wakeup.dead_letter", "{dead}");
    // The alert sweep (run by the sweeper every 2 s of schedule) raises it.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        f.on_schedule(Instant::now() + Duration::from_secs(10))
            .await
            .unwrap();
        let (_, alerts) = invoke_api(
            &f,
            apigw_event("GET", "/v1/admin/alerts", ADMIN, None, None),
        )
        .await;
        if alerts["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "DEAD_JOB" && a["job_id"] == dead_jobs[0]["id"])
        {
            break;
        }
        assert!(Instant::now() < until, "no DEAD_JOB alert: {alerts}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Redriven by the operator, the dead letter just completes.
    let id = dead_jobs[0]["id"].as_str().unwrap();
    let (s, r) = invoke_api(
        &f,
        apigw_event(
            "POST",
            &format!("/v1/admin/jobs/{id}/redrive"),
            ADMIN,
            None,
            None,
        ),
    )
    .await;
    assert!(s == 200 || s == 202, "{s} {r}");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = worker_round(&f, &sqs, &queue).await;
        let (_, dead) = invoke_api(
            &f,
            apigw_event("GET", "/v1/admin/jobs/dead", ADMIN, None, None),
        )
        .await;
        if dead["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the redriven dead letter did not run"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wakeup_past_the_fifteen_minute_cap_is_sent_on_not_run() {
    let Some(db) = testdb::PgDatabase::create().await else {
        return;
    };
    let Some(moto) = moto() else { return };
    let sdk = sdk(&moto.url).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue, dlq) = queues(&sqs).await;
    let mut cfg = config(&db.url);
    cfg.database_url = db.url.clone();
    cfg.admin_key = Some(ADMIN.to_owned().into());
    let f = open(&cfg, &sdk, &queue, Some(&dlq)).await.unwrap();
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let event: SqsEvent = serde_json::from_value(json!({"Records": [{
        "messageId": "6f1c3a7e-5d2b-4c1a-9e8f-0a1b2c3d4e5f",
        "receiptHandle": "rh",
        "body": json!({"due_at_ms": in_an_hour}).to_string(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "awsRegion": "us-east-1"
    }]}))
    .unwrap();
    let out = f
        .on_messages(event, Instant::now() + Duration::from_secs(5))
        .await;
    assert!(out.batch_item_failures.is_empty());
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesDelayed],
        "1",
        "sent on for the rest of its wait"
    );
    // A Lambda function refuses an embedded database and a missing admin key.
    let mut lite = cfg.clone();
    lite.database_url = "sqlite:///tmp/x.db".into();
    let err = open(&lite, &sdk, &queue, None).await.err().unwrap();
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    let zero = Functions::open(
        &cfg,
        &sdk,
        &queue,
        None,
        Duration::ZERO,
        corridor::clock::SystemClock::new(),
        1,
    )
    .await
    .err()
    .expect("a run window of zero is refused");
    assert!(
        zero.to_string().contains("CORRIDOR_LAMBDA_RUN_FOR"),
        "{zero}"
    );
    let mut keyless = cfg.clone();
    keyless.admin_key = None;
    assert!(open(&keyless, &sdk, &queue, None).await.is_err());
}
