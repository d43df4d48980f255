//! Spawning a fresh Corridor per test, with fast simulated providers, on either backend.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use corridor::app::Application;
use corridor::clock::SystemClock;
use corridor::config::{Config, Dur, DurRange, RateLimit};

#[path = "../testdb.rs"]
mod corridor_testdb;
use serde_json::{Value, json};

/// A running app and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Admin key.
    pub admin_key: String,
    /// The demo merchant's key.
    pub merchant_key: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The app's clock.
    pub clock: Arc<SystemClock>,
    /// The running application (tests may run its due jobs by hand).
    pub app: Application,
    _dir: tempfile::TempDir,
    _pg: Option<corridor_testdb::PgDatabase>,
}

/// Test defaults: temp database, port 0, fast providers, no rate limit.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = format!("sqlite://{}", dir.join("corridor.db").display());
    cfg.admin_key = Some(format!("ck_admin_test_{}", uuid::Uuid::new_v4().simple()).into());
    cfg.poll_interval = Dur(Duration::from_millis(50));
    let fast = DurRange {
        min: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    cfg.sim_onramp_delay = fast;
    cfg.sim_offramp_delay = fast;
    cfg.sim_failure_rate = corridor::config::Probability(0.0);
    cfg.quote_ttl = Dur(Duration::from_secs(60));
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    cfg.workers = 4;
    cfg.onramp_webhook_secret = Some(ONRAMP_SECRET.to_owned().into());
    cfg.offramp_webhook_secret = Some(PROVIDER_SECRET.to_owned().into());
    cfg
}

/// The secret test apps verify provider webhooks with.
pub const PROVIDER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The onramp's own webhook secret (the offramp's is [`PROVIDER_SECRET`]).
pub const ONRAMP_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Temporary SQLite file.
    Sqlite,
    /// Fresh PostgreSQL database, dropped afterwards.
    Postgres,
}

/// A fresh app with test defaults changed by `configure`, on `backend`. `None` only when
/// PostgreSQL was skipped on purpose (`CORRIDOR_TEST_PG=skip`).
pub async fn spawn_on(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = test_config(dir.path());
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let db = corridor_testdb::PgDatabase::create().await?;
            cfg.database_url = db.url.clone();
            Some(db)
        }
    };
    configure(&mut cfg);
    let admin_key = cfg
        .admin_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .expect("test config sets an admin key");
    let clock = SystemClock::new();
    let app = Application::start(cfg, clock.clone(), rand::random())
        .await
        .expect("app starts");
    let boot = app.bootstrap().expect("first start bootstraps").clone();
    Some(TestApp {
        address: format!("http://{}", app.addr()),
        admin_key,
        merchant_key: boot
            .merchant_key
            .map(|k| k.expose_secret().to_owned())
            .unwrap_or_default(),
        client: reqwest::Client::new(),
        clock,
        app,
        _dir: dir,
        _pg: pg,
    })
}

impl TestApp {
    /// `GET path` with a bearer key.
    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with a JSON body and a bearer key.
    pub async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.address, path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with an `Idempotency-Key`.
    pub async fn post_idem(
        &self,
        path: &str,
        key: &str,
        idem: &str,
        body: Value,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.address, path))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates a merchant; returns its API key.
    pub async fn new_merchant(&self, name: &str) -> String {
        let r = self
            .post(
                "/v1/admin/merchants",
                &self.admin_key,
                json!({"name": name}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["api_key"].as_str().unwrap().to_owned()
    }

    /// A USD → `to` quote; asserts 200.
    pub async fn quote(&self, key: &str, to: &str, amount: i64) -> Value {
        let r = self
            .post(
                "/v1/quotes",
                key,
                json!({"from_currency": "USD", "to_currency": to, "amount": amount}),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Creates a payment; asserts 202.
    pub async fn pay(&self, key: &str, body: Value) -> Value {
        let r = self.post("/v1/payments", key, body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        v
    }

    /// Pages through the list at `path` (which may carry a filter) `limit` items at a time by
    /// its cursor, checking each page's `has_more` and `next_cursor`, and returns the `id_field`
    /// of every item in order. Also checks that the whole list in one page is the same, and
    /// that a cursor naming nothing is a 400.
    pub async fn page_through(
        &self,
        path: &str,
        key: &str,
        id_field: &str,
        limit: usize,
    ) -> Vec<String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let ids = |page: &Value| -> Vec<String> {
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|item| item[id_field].as_str().expect("id").to_owned())
                .collect()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                None => format!("{path}{sep}limit={limit}"),
                Some(c) => format!("{path}{sep}limit={limit}&starting_after={c}"),
            };
            let r = self.get(&url, key).await;
            assert_eq!(r.status(), 200, "{url}");
            let page: Value = r.json().await.expect("page");
            let got = ids(&page);
            assert!(got.len() <= limit, "{url}: {page}");
            let more = page["has_more"].as_bool().expect("has_more");
            if more {
                assert_eq!(got.len(), limit, "{url}: a page with more after it is full");
                assert_eq!(
                    page["next_cursor"].as_str(),
                    got.last().map(String::as_str),
                    "{url}"
                );
            } else {
                assert!(page["next_cursor"].is_null(), "{url}: {page}");
            }
            seen.extend(got);
            if !more {
                break;
            }
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            assert!(seen.len() < 10_000, "{path} never ends");
        }
        let whole: Value = self
            .get(&format!("{path}{sep}limit=100"), key)
            .await
            .json()
            .await
            .expect("list");
        assert_eq!(ids(&whole), seen, "{path}: pages in order, each item once");
        let r = self
            .get(&format!("{path}{sep}starting_after=nothing_like_it"), key)
            .await;
        assert_eq!(r.status(), 400, "{path}: an unknown cursor");
        let r = self.get(&format!("{path}{sep}limit=0"), key).await;
        assert_eq!(r.status(), 400, "{path}: limit 0");
        seen
    }

    /// Polls a payment until its status is one of `statuses` (panics after 60 s).
    pub async fn wait_for_status(&self, key: &str, payment_id: &str, statuses: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let v: Value = self
                .get(&format!("/v1/payments/{payment_id}"), key)
                .await
                .json()
                .await
                .unwrap();
            if statuses.iter().any(|s| v["status"] == *s) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "payment {payment_id} stuck in {}",
                v["status"]
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Moves the app's clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance_millis(by.as_millis() as i64);
    }
}
