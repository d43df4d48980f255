//! A fresh in-process Corridor per test, and a browser-like client for its dashboard:
//! redirects are not followed (tests look at them) and the session cookie is kept by hand.

use secrecy::ExposeSecret;
use std::time::Duration;

use corridor::app::Application;
use corridor::clock::SystemClock;
use corridor::config::{Config, Dur, DurRange, Probability, RateLimit};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

#[path = "../testdb.rs"]
mod corridor_testdb;

/// A running app.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Admin key.
    pub admin_key: String,
    /// The demo merchant's key.
    pub merchant_key: String,
    /// Client that does not follow redirects.
    pub client: reqwest::Client,
    /// The application.
    pub _app: Application,
    /// Its database, for tests that look at what is stored.
    pub database_url: String,
    _dir: tempfile::TempDir,
    _pg: Option<corridor_testdb::PgDatabase>,
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Temporary SQLite file.
    Sqlite,
    /// Fresh PostgreSQL database, dropped afterwards.
    Postgres,
}

/// Starts an app on a temporary SQLite file with fast simulated providers; `configure`
/// changes the defaults.
pub async fn spawn(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(Backend::Sqlite, configure)
        .await
        .expect("SQLite is always there")
}

/// Like [`spawn`] on `backend`; `None` only when PostgreSQL is skipped on purpose
/// (`CORRIDOR_TEST_PG=skip`).
pub async fn spawn_on(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = format!("sqlite://{}", dir.path().join("corridor.db").display());
    cfg.admin_key = Some(format!("ck_admin_test_{}", uuid::Uuid::new_v4().simple()).into());
    cfg.poll_interval = Dur(Duration::from_millis(50));
    let fast = DurRange {
        min: Duration::from_millis(20),
        max: Duration::from_millis(80),
    };
    cfg.sim_onramp_delay = fast;
    cfg.sim_offramp_delay = fast;
    cfg.sim_failure_rate = Probability(0.0);
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    cfg.workers = 4;
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
        .expect("an admin key is set");
    let database_url = cfg.database_url.clone();
    let app = Application::start(cfg, SystemClock::new(), rand::random())
        .await
        .expect("app starts");
    // A start on a database an earlier app bootstrapped has no demo merchant key to print.
    let merchant_key = app
        .bootstrap()
        .and_then(|b| b.merchant_key.as_ref())
        .map(|k| k.expose_secret().to_owned())
        .unwrap_or_default();
    Some(TestApp {
        address: format!("http://{}", app.addr()),
        admin_key,
        merchant_key,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds"),
        _app: app,
        database_url,
        _dir: dir,
        _pg: pg,
    })
}

/// A response read whole.
#[derive(Debug)]
pub struct Page {
    /// Status code.
    pub status: u16,
    /// `Location`, for redirects.
    pub location: Option<String>,
    /// Every `Set-Cookie`.
    pub set_cookies: Vec<String>,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub body: String,
}

async fn read(r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let location = headers
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    Page {
        status,
        location,
        set_cookies,
        headers,
        body: r.text().await.expect("body"),
    }
}

impl TestApp {
    /// `GET path` with an optional session token.
    pub async fn get_page(&self, path: &str, session: Option<&str>) -> Page {
        let mut req = self.client.get(format!("{}{}", self.address, path));
        if let Some(t) = session {
            req = req.header(COOKIE, format!("corridor_session={t}"));
        }
        read(req.send().await.expect("request sent")).await
    }

    /// `POST path` with a form body, an optional session token and extra headers.
    pub async fn post_form(
        &self,
        path: &str,
        session: Option<&str>,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .client
            .post(format!("{}{}", self.address, path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).expect("form encodes"));
        if let Some(t) = session {
            req = req.header(COOKIE, format!("corridor_session={t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.send().await.expect("request sent")).await
    }

    /// Signs in with `key`; the raw response.
    pub async fn sign_in_with(&self, key: &str) -> Page {
        self.post_form("/dashboard/login", None, &[("key", key)], &[])
            .await
    }

    /// Signs in with the admin key; returns the session token.
    pub async fn sign_in(&self) -> String {
        let r = self.sign_in_with(&self.admin_key).await;
        assert_eq!(r.status, 303, "{}", r.body);
        session_token(&r).expect("a session cookie is set")
    }

    /// A signed-in page's CSRF token.
    pub async fn csrf(&self, session: &str) -> String {
        let page = self.get_page("/dashboard", Some(session)).await;
        assert_eq!(page.status, 200);
        csrf_in(&page.body).expect("the page has a CSRF field")
    }

    /// `POST path` as the demo merchant with a JSON body.
    pub async fn merchant_post(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{}", self.address, path))
            .bearer_auth(&self.merchant_key)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{status}: {v}");
        v
    }

    /// `GET path` with the admin key (JSON).
    pub async fn admin_get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{}", self.address, path))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("json")
    }

    /// Creates a USD → EUR payment with these accounts and metadata; returns its id.
    pub async fn pay(&self, source: &str, metadata: Value) -> String {
        let v = self
            .merchant_post(
                "/v1/payments",
                json!({"amount": 10_000, "currency": "USD", "payout_currency": "EUR",
                       "source_account": source, "destination_account": "acct_dst",
                       "metadata": metadata}),
            )
            .await;
        v["payment_id"].as_str().expect("payment id").to_owned()
    }

    /// Waits until the payment's status is one of `statuses`.
    pub async fn wait_for(&self, payment_id: &str, statuses: &[&str]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v: Value = self
                .client
                .get(format!("{}/v1/payments/{payment_id}", self.address))
                .bearer_auth(&self.merchant_key)
                .send()
                .await
                .expect("request sent")
                .json()
                .await
                .expect("json");
            if statuses.iter().any(|s| v["status"] == *s) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "payment {payment_id} stayed {}",
                v["status"]
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The session token a response sets, if any.
pub fn session_token(page: &Page) -> Option<String> {
    page.set_cookies.iter().find_map(|c| {
        let v = c.strip_prefix("corridor_session=")?;
        let token = v.split(';').next()?;
        (!token.is_empty()).then(|| token.to_owned())
    })
}

/// The first CSRF hidden field's value in a page.
pub fn csrf_in(body: &str) -> Option<String> {
    let at = body.find(r#"name="csrf" value=""#)?;
    let rest = &body[at + r#"name="csrf" value=""#.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}
