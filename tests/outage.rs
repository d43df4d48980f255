//! A PostgreSQL outage in the middle of a run.
//!
//! The app talks to a fresh PostgreSQL database through a TCP proxy inside this test. Cutting
//! the proxy closes every proxied connection at once and closes new ones as soon as they are
//! accepted, which is what a database crash or a network partition looks like to the pool.
//! While the proxy is cut the API must answer `503 UNAVAILABLE` promptly (never `500`, never
//! hang), `/readyz` must say `503` and `/healthz` `200`. Once it is restored the service must
//! come back by itself and every payment accepted before or after the outage must complete.
//!
//! Skipped (passes after printing why) when `CORRIDOR_TEST_PG=skip`.

#[path = "testdb.rs"]
mod testdb;

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corridor::app::Application;
use corridor::clock::SystemClock;
use corridor::config::{Config, Dur, DurRange, Probability, RateLimit};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// `CORRIDOR_REQUEST_TIMEOUT` of the app under test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Any request taking longer than this counts as a hang and fails the test.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(6);
/// Generous deadline for the service to come back and for payments to finish.
const DEADLINE: Duration = Duration::from_secs(90);

/// What the proxy's connections watch: whether it is cut, and how many cuts happened (so a
/// connection notices a cut even if it was restored before the connection looked).
#[derive(Debug, Clone, Copy)]
struct ProxyState {
    cut: bool,
    cuts: u64,
}

/// A TCP proxy to PostgreSQL that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    state: Arc<watch::Sender<ProxyState>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream` (`host:port`).
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(watch::Sender::new(ProxyState {
            cut: false,
            cuts: 0,
        }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let now = *shared.borrow();
                if now.cut {
                    // Accept and close at once: the peer sees the connection drop.
                    drop(client);
                    continue;
                }
                let mut watch = shared.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // A cut since this connection was accepted (or the proxy gone).
                        _ = watch.wait_for(|s| s.cut || s.cuts != now.cuts) => {}
                    }
                    // Both sockets drop here: the app and the server each see the link die.
                });
            }
        });
        Proxy {
            addr,
            state,
            accept,
        }
    }

    /// Closes every proxied connection and every new one until [`Proxy::restore`].
    fn cut(&self) {
        self.state.send_modify(|s| {
            s.cut = true;
            s.cuts += 1;
        });
    }

    /// Forwards connections again.
    fn restore(&self) {
        self.state.send_modify(|s| s.cut = false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closes whatever is still connected.
        self.cut();
    }
}

/// Splits a `postgres://[user[:pw]@]host[:port]/db[?params]` URL into the server's
/// `host:port` (default `127.0.0.1:5432`) and the same URL with the server replaced by `via`.
fn reroute(url: &str, via: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("database URL has a scheme");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (format!("{user}@"), hostport),
        None => (String::new(), authority),
    };
    let upstream = if hostport.is_empty() {
        "127.0.0.1:5432".to_owned()
    } else if hostport.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !hostport.ends_with(']')
    }) {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    (upstream, format!("{scheme}://{user}{via}{path}"))
}

/// The app under test: fast polling, settlement slow enough (1–2 s a leg) that payments are
/// in flight when the database goes away, a short request timeout and a small pool.
fn config(database_url: String) -> Config {
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = database_url;
    cfg.admin_key = Some(format!("ck_admin_test_{}", uuid::Uuid::new_v4().simple()).into());
    cfg.poll_interval = Dur(Duration::from_millis(50));
    let slow = DurRange {
        min: Duration::from_secs(1),
        max: Duration::from_secs(2),
    };
    cfg.sim_onramp_delay = slow;
    cfg.sim_offramp_delay = slow;
    cfg.sim_failure_rate = Probability(0.0);
    cfg.quote_ttl = Dur(Duration::from_secs(60));
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    cfg.workers = 4;
    cfg.request_timeout = Dur(REQUEST_TIMEOUT);
    cfg.job_lease = Dur(Duration::from_secs(3));
    cfg.provider_timeout = Dur(Duration::from_secs(1));
    cfg.db_pool = 4;
    cfg
}

/// A thin client for the app.
struct Api {
    base: String,
    key: String,
    admin_key: String,
    http: reqwest::Client,
}

impl Api {
    /// Sends a request; a transport error (including the no-hang timeout) fails the test.
    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let started = Instant::now();
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!(
                "{what}: no answer after {:?} (hang or connection error): {e}",
                started.elapsed()
            )
        });
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e}"));
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        self.send(&format!("GET {path}"), req).await
    }

    async fn get_admin(&self, path: &str) -> (u16, Value) {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_key);
        self.send(&format!("GET {path} (admin)"), req).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body);
        self.send(&format!("POST {path}"), req).await
    }

    async fn create_payment(&self, amount: i64) -> (u16, Value) {
        self.post(
            "/v1/payments",
            json!({
                "amount": amount,
                "currency": "USD",
                "payout_currency": "EUR",
                "source_account": "user123",
                "destination_account": "merchant456",
            }),
        )
        .await
    }

    /// Creates a payment that must be accepted; returns its id.
    async fn pay(&self, amount: i64) -> String {
        let (status, body) = self.create_payment(amount).await;
        assert_eq!(status, 202, "payment not accepted: {body}");
        body["payment_id"].as_str().expect("payment_id").to_owned()
    }

    /// The payment's current body (asserting 200).
    async fn payment(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/payments/{id}")).await;
        assert_eq!(status, 200, "GET payment {id}: {body}");
        body
    }
}

/// Asserts a `503` in the API's error format with code `UNAVAILABLE`.
fn assert_unavailable(what: &str, (status, body): &(u16, Value)) {
    assert_eq!(
        *status, 503,
        "{what} during the outage answered {status}: {body}"
    );
    assert_eq!(body["error"], "UNAVAILABLE", "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error without a message: {body}"
    );
}

const TERMINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELLED", "REFUNDED"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_loses_no_accepted_payment() {
    if let Ok(filter) = std::env::var("CORRIDOR_TEST_LOG") {
        corridor::telemetry::init(&filter, corridor::config::LogFormat::Text);
    }
    let Some(pg) = testdb::PgDatabase::create().await else {
        println!("skipped: PostgreSQL tests are switched off (CORRIDOR_TEST_PG=skip)");
        return;
    };
    let test_started = Instant::now();

    // The proxy in front of the server, and the app behind the proxy.
    let (upstream, _) = reroute(&pg.url, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(upstream.clone()).await;
    let (_, proxied_url) = reroute(&pg.url, proxy.addr);
    println!("PostgreSQL at {upstream}, proxied at {}", proxy.addr);

    // Like the other tests, a temp dir of its own (nothing is written there on PostgreSQL).
    let _dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(proxied_url);
    let admin_key = cfg
        .admin_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .expect("admin key set");
    let app = Application::start(cfg, SystemClock::new(), rand::random())
        .await
        .expect("app starts");
    let boot = app.bootstrap().expect("first start bootstraps").clone();
    let api = Api {
        base: format!("http://{}", app.addr()),
        key: boot
            .merchant_key
            .map(|k| k.expose_secret().to_owned())
            .unwrap_or_default(),
        admin_key,
        http: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .expect("HTTP client"),
    };

    // Normal operation: a few payments are accepted and start moving.
    let mut accepted = Vec::new();
    for i in 0..3 {
        accepted.push(api.pay(100_000 + i).await);
    }
    // A few more, with settlement in flight when the database disappears.
    for i in 0..5 {
        accepted.push(api.pay(200_000 + i).await);
    }
    let deadline = Instant::now() + DEADLINE;
    for id in &accepted {
        loop {
            let p = api.payment(id).await;
            if p["status"] != "PENDING" {
                break;
            }
            assert!(Instant::now() < deadline, "payment {id} never left PENDING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut before = Vec::new();
    for id in &accepted {
        before.push(api.payment(id).await["status"].as_str().unwrap().to_owned());
    }
    println!("before the outage: {before:?}");
    let (status, _) = api.get("/readyz").await;
    assert_eq!(status, 200, "ready before the outage");

    // The outage.
    proxy.cut();
    let cut_at = Instant::now();
    println!("proxy cut");
    for round in 0..3 {
        let r = api
            .post(
                "/v1/quotes",
                json!({"from_currency": "USD", "to_currency": "EUR", "amount": 100_000}),
            )
            .await;
        assert_unavailable(&format!("POST /v1/quotes (round {round})"), &r);

        let r = api.create_payment(150_000).await;
        assert_unavailable(&format!("POST /v1/payments (round {round})"), &r);

        let id = &accepted[round % accepted.len()];
        let r = api.get(&format!("/v1/payments/{id}")).await;
        assert_unavailable(&format!("GET /v1/payments/{{id}} (round {round})"), &r);

        let (status, body) = api.get("/readyz").await;
        assert_eq!(
            status, 503,
            "/readyz during the outage (round {round}): {body}"
        );

        let (status, body) = api.get("/healthz").await;
        assert_eq!(status, 200, "/healthz during the outage: {body}");
        assert_eq!(body, json!({"status": "ok"}));

        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Stay down past a job lease so that workers' leases run out while the database is away.
    tokio::time::sleep_until(cut_at + Duration::from_secs(4)).await;

    // Recovery.
    proxy.restore();
    let restored_at = Instant::now();
    println!("proxy restored after {:?}", restored_at - cut_at);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = api.get("/readyz").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "/readyz while recovering: {body}");
        assert!(Instant::now() < deadline, "/readyz never came back: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let (status, body) = api.create_payment(300_000).await;
        if status == 202 {
            accepted.push(body["payment_id"].as_str().expect("payment_id").to_owned());
            break;
        }
        assert_unavailable("POST /v1/payments while recovering", &(status, body));
        assert!(
            Instant::now() < deadline,
            "new payments never accepted again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("accepting again {:?} after restore", restored_at.elapsed());
    for i in 0..2 {
        accepted.push(api.pay(400_000 + i).await);
    }

    // Every payment accepted before or after the outage completes.
    let deadline = Instant::now() + DEADLINE;
    for id in &accepted {
        loop {
            let p = api.payment(id).await;
            let status = p["status"].as_str().unwrap_or_default().to_owned();
            if status == "COMPLETED" {
                assert_eq!(p["legs"]["onramp"]["status"], "COMPLETED", "{p}");
                assert_eq!(p["legs"]["offramp"]["status"], "COMPLETED", "{p}");
                break;
            }
            assert!(
                !TERMINAL.contains(&status.as_str()),
                "payment {id} ended {status} instead of COMPLETED: {p}"
            );
            assert!(
                Instant::now() < deadline,
                "payment {id} stuck in {status} after the outage: {p}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // However often the engine asked, each leg moved money once.
        let (status, transfers) = api
            .get_admin(&format!("/v1/sandbox/transfers?payment_id={id}"))
            .await;
        assert_eq!(status, 200, "transfers of {id}: {transfers}");
        let legs: Vec<&str> = transfers["data"]
            .as_array()
            .expect("`data` array")
            .iter()
            .map(|t| t["leg"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            legs.iter().filter(|l| **l == "onramp").count(),
            1,
            "{id}: {transfers}"
        );
        assert_eq!(
            legs.iter().filter(|l| **l == "offramp").count(),
            1,
            "{id}: {transfers}"
        );
    }
    println!(
        "all {} accepted payments completed; whole test {:?}",
        accepted.len(),
        test_started.elapsed()
    );

    app.stop();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("app stops");
    drop(proxy);
    drop(pg);
}

#[test]
fn reroute_keeps_user_database_and_parameters() {
    let via: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(
        reroute(
            "postgres://postgres@127.0.0.1:5433/db_x?sslmode=disable",
            via
        ),
        (
            "127.0.0.1:5433".to_owned(),
            "postgres://postgres@127.0.0.1:4000/db_x?sslmode=disable".to_owned()
        )
    );
    assert_eq!(
        reroute("postgresql://u:p@localhost/db", via),
        (
            "localhost:5432".to_owned(),
            "postgresql://u:p@127.0.0.1:4000/db".to_owned()
        )
    );
    assert_eq!(
        reroute("postgres:///db", via),
        (
            "127.0.0.1:5432".to_owned(),
            "postgres://127.0.0.1:4000/db".to_owned()
        )
    );
}

/// Forwards to `upstream`; the first connection whose client sends `pattern` has that chunk
/// forwarded and then nothing more from its client, while the sockets stay open: a link
/// that died in the middle of a transaction, as the server sees it (no FIN, no RST).
async fn stalling_proxy(upstream: String, pattern: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
    let addr = listener.local_addr().expect("proxy address");
    let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let stalled = stalled.clone();
            tokio::spawn(async move {
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = client_rx.read(&mut buf).await {
                    if n == 0 || server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let hit = buf[..n].windows(pattern.len()).any(|w| w == pattern);
                    if hit && !stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        // Hold both halves open, forward nothing more from the client.
                        let _keep = (client_rx, server_tx);
                        let _ = down.await;
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A PostgreSQL session whose client vanished inside a transaction is ended by the server
/// (`CORRIDOR_PG_IDLE_IN_TRANSACTION_TIMEOUT`), so its locks do not outlive it.
#[tokio::test]
async fn a_link_that_dies_mid_transaction_does_not_keep_its_locks() {
    if let Ok(filter) = std::env::var("CORRIDOR_TEST_LOG") {
        corridor::telemetry::init(&filter, corridor::config::LogFormat::Text);
    }
    let Some(pg) = testdb::PgDatabase::create().await else {
        println!("skipped: PostgreSQL tests are switched off (CORRIDOR_TEST_PG=skip)");
        return;
    };
    let (upstream, _) = reroute(&pg.url, "127.0.0.1:1".parse().unwrap());
    let proxy = stalling_proxy(upstream, b"INSERT INTO payments").await;
    let (_, proxied_url) = reroute(&pg.url, proxy);
    let mut cfg = config(proxied_url);
    cfg.pg_idle_in_transaction_timeout = Dur(Duration::from_secs(1));
    let app = Application::start(cfg, SystemClock::new(), rand::random())
        .await
        .expect("app starts");
    let key = app
        .bootstrap()
        .and_then(|b| b.merchant_key.as_ref())
        .map(|k| k.expose_secret().to_owned())
        .expect("a demo merchant");
    let api = Api {
        base: format!("http://{}", app.addr()),
        key,
        admin_key: String::new(),
        http: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .expect("client"),
    };
    // The first payment's transaction stalls after its INSERT; the request gives up (503).
    // It carries an Idempotency-Key: a 5xx is not an answer, so a retry must run again
    // (and not find the key locked, as a claim taken before the work used to be).
    let body = json!({"amount": 100_000, "currency": "USD", "payout_currency": "EUR",
                      "source_account": "user123", "destination_account": "merchant456"});
    let with_key = || {
        api.http
            .post(format!("{}/v1/payments", api.base))
            .bearer_auth(&api.key)
            .header("Idempotency-Key", "order-4711")
            .json(&body)
    };
    let (status, answer) = api.send("stalled create", with_key()).await;
    assert_eq!(status, 503, "{answer}");

    let mut direct = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url)
        .await
        .expect("direct connection");
    let idle_in_tx = async |conn: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'idle in transaction'",
        )
        .fetch_one(conn)
        .await
        .expect("pg_stat_activity")
    };
    // The server ends the stranded session: it is gone well within the deadline (without the
    // setting it would wait for TCP, hours).
    let deadline = Instant::now() + Duration::from_secs(30);
    while idle_in_tx(&mut direct).await > 0 {
        assert!(
            Instant::now() < deadline,
            "a session stays idle in its transaction"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client's retry with the same key is a new attempt that is accepted — once.
    let (status, answer) = api.send("retry", with_key()).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["payment_id"]
        .as_str()
        .expect("payment_id")
        .to_owned();
    let (status, replay) = api.send("replay", with_key()).await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(
        replay["payment_id"], answer["payment_id"],
        "one payment per key"
    );
    // And the service goes on: the payment completes.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let p = api.payment(&id).await;
        if p["status"] == "COMPLETED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the payment did not complete: {p}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop();
    app.wait().await;
}
