//! Webhook deliveries never go through a proxy from the environment: a proxy would resolve
//! the receiver's host again by itself and so undo the address check made before the send.
//! A binary of its own, because the test sets the process's proxy variables.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corridor::app::Application;
use corridor::clock::SystemClock;
use corridor::config::{Config, Dur, DurRange, RateLimit};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

#[test]
fn deliveries_ignore_proxy_variables() {
    // A "proxy" that only counts who connects to it.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    // SAFETY: set before any other thread of this process exists (the runtime starts below).
    unsafe {
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            std::env::set_var(var, &proxy_url);
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let proxied = Arc::new(AtomicUsize::new(0));
    let counter = proxied.clone();
    std::thread::spawn(move || {
        for conn in proxy.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(proxied));
}

async fn run(proxied: Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let hits = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::from_args(Vec::<String>::new()).unwrap();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = format!("sqlite://{}", dir.path().join("corridor.db").display());
    cfg.admin_key = Some("ck_admin_egress_test_0123456789ab".to_owned().into());
    cfg.webhook_allow_private = true;
    cfg.poll_interval = Dur(Duration::from_millis(50));
    let fast = DurRange {
        min: Duration::from_millis(10),
        max: Duration::from_millis(30),
    };
    cfg.sim_onramp_delay = fast;
    cfg.sim_offramp_delay = fast;
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    let app = Application::start(cfg, SystemClock::new(), 7)
        .await
        .expect("starts");
    let key = app
        .bootstrap()
        .and_then(|b| b.merchant_key.as_ref())
        .map(|k| k.expose_secret().to_owned())
        .unwrap();
    let base = format!("http://{}", app.addr());
    // The test's own client must not use the proxy either.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let created = http
        .post(format!("{base}/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": hook}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let p: Value = http
        .post(format!("{base}/v1/payments"))
        .bearer_auth(&key)
        .json(
            &json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                      "source_account": "src", "destination_account": "dst"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(p["payment_id"].is_string(), "{p}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no deliveries arrived (the proxy saw {} connections)",
            proxied.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxied.load(Ordering::SeqCst),
        0,
        "a delivery went through the proxy"
    );
    app.stop();
    app.wait().await;
}
