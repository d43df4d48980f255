//! A real browser on the real binary: start `corridor serve` with an offramp that cannot be
//! reached and one attempt per job, so a payment's step job goes dead; then run
//! `tests/browser/dashboard.mjs` (playwright-core driving Debian's chromium) to sign in, open
//! the payment's timeline and redrive the job, and check here that the job really ran again.
//!
//! Needs `node`, chromium (`/usr/bin/chromium`, or `CORRIDOR_CHROMIUM`) and
//! `npm ci --prefix tests/browser`; `.ci/run` installs them. Missing ones fail the test unless
//! `CORRIDOR_TEST_BROWSER=skip`. `CORRIDOR_SCREENSHOT_DIR=DIR` keeps screenshots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

const ADMIN_KEY: &str = "ck_admin_browser_test_key_0123456789";

/// Kills the server when the test ends, also on failure.
struct Server {
    child: Child,
    url: String,
    merchant_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(db: &Path, offramp_url: &str) -> Server {
    let url = format!("sqlite://{}", db.display());
    let served = crate::support::serve(&[
        ("DATABASE_URL", &url),
        ("CORRIDOR_ADMIN_KEY", ADMIN_KEY),
        ("CORRIDOR_OFFRAMP_URL", offramp_url),
        ("CORRIDOR_JOB_MAX_ATTEMPTS", "1"),
        ("CORRIDOR_JOB_RETRY_FOR", "0s"),
        ("CORRIDOR_PROVIDER_TIMEOUT", "2s"),
        ("CORRIDOR_SIM_ONRAMP_DELAY", "20ms..80ms"),
        ("CORRIDOR_POLL_INTERVAL", "50ms"),
    ]);
    Server {
        child: served.child,
        url: served.url,
        merchant_key: served
            .merchant_key
            .expect("a first start prints the demo merchant key"),
    }
}

/// What the browser test needs, or why it cannot run.
fn prerequisites(manifest: &Path) -> Result<PathBuf, String> {
    let chromium =
        std::env::var("CORRIDOR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "chromium is not at {chromium} (apt-get install -y chromium, or set CORRIDOR_CHROMIUM)"
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not installed (apt-get install -y nodejs npm)".into()),
    }
    let browser_dir = manifest.join("tests/browser");
    if !browser_dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    Ok(browser_dir)
}

async fn dead_job(client: &reqwest::Client, url: &str, payment_id: &str) -> Option<Value> {
    let dead: Value = client
        .get(format!("{url}/v1/admin/jobs/dead"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("json");
    dead["data"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|j| j["payment_id"] == payment_id)
        .cloned()
}

async fn failed_at_ms(db: &Path, job: &Value) -> i64 {
    let mut conn = sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("the test database opens");
    sqlx::query_scalar("SELECT failed_at FROM jobs WHERE id = $1")
        .bind(job["id"].as_str().expect("job id"))
        .fetch_one(&mut conn)
        .await
        .expect("the dead job has a failure time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_opens_a_timeline_and_redrives_a_dead_job_in_a_browser() {
    if std::env::var("CORRIDOR_TEST_BROWSER").is_ok_and(|v| v == "skip") {
        eprintln!("skipped: CORRIDOR_TEST_BROWSER=skip, the dashboard browser test was not run");
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = prerequisites(manifest).unwrap_or_else(|why| {
        panic!("the dashboard browser test cannot run: {why}; set CORRIDOR_TEST_BROWSER=skip to skip it")
    });
    corridor::tls::init();

    // A port nothing listens on: the offramp call is refused, a transient failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let offramp = format!("http://{}/offramp", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("browser.db"), &offramp);
    let client = reqwest::Client::new();

    let r = client
        .post(format!("{}/v1/payments", server.url))
        .bearer_auth(&server.merchant_key)
        .json(&json!({"amount": 25_000, "currency": "USD", "payout_currency": "EUR",
                      "source_account": "acct_browser_src", "destination_account": "acct_browser_dst",
                      "metadata": {"note": "<img src=x onerror=\"window.__pwned=1\">"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let payment: Value = r.json().await.unwrap();
    let payment_id = payment["payment_id"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        if let Some(job) = dead_job(&client, &server.url, &payment_id).await {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the payment's step job never went dead"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let before_failed_at = failed_at_ms(&dir.path().join("browser.db"), &before).await;

    let mut node = Command::new("node")
        .arg("dashboard.mjs")
        .arg(&server.url)
        .arg(ADMIN_KEY)
        .arg(&payment_id)
        .current_dir(&browser_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = node.try_wait().expect("node can be waited on") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the browser test did not finish within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut out = String::new();
    let mut err = String::new();
    node.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    node.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "the browser test failed ({status}):\n{out}\n{err}"
    );
    println!("{out}");

    // The redrive really put the job back: it ran again (and, the offramp being down, may
    // have died again since, later than before), and the audit log names the dashboard.
    let mut db = sqlx::sqlite::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("browser.db").display()
    ))
    .await
    .expect("the test database opens");
    let job_id = before["id"].as_str().unwrap();
    let (state, failed_at): (String, Option<i64>) =
        sqlx::query_as("SELECT state, failed_at FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(
        state == "ready" || failed_at > Some(before_failed_at),
        "the job was not redriven: {state} {failed_at:?}"
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM admin_audit WHERE actor = 'dashboard' AND action = 'job.redrive' AND target = $1",
    )
    .bind(job_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    drop(server);
}
