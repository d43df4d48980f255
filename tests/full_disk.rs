//! A full disk under the SQLite file must never cost an acknowledged payment.
//!
//! The database lives on a small tmpfs of the test's own; a filler file takes the space while
//! payments arrive. Every payment answered `202` must be readable while the disk is full,
//! after space returns, and after a restart on the same file; every other answer is `503`
//! (never `500`); `/readyz` answers 503 while writes fail and 200 again once they succeed.
//!
//! Mounting needs root (as on the development and CI machines); without it the test fails
//! with the reason, unless `CORRIDOR_TEST_TMPFS=skip` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use corridor::app::Application;
use corridor::clock::SystemClock;
use corridor::config::{Config, Dur, RateLimit};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem at `dir` with `filler` until a write fails: the disk is then full.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(filler).expect("filler file");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

fn config(db: &Path) -> Config {
    let mut cfg = Config::from_args(Vec::<String>::new()).expect("default config parses");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = format!("sqlite://{}", db.display());
    cfg.admin_key = Some("ck_admin_full_disk_test_0123456789".to_owned().into());
    // Workers run: their claims must not make a full disk look healthy again.
    cfg.workers = 2;
    cfg.rate_limit = RateLimit {
        requests: 0,
        per: Duration::from_secs(1),
    };
    cfg.request_timeout = Dur(Duration::from_secs(5));
    cfg
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn pay(&self, n: usize) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/payments", self.base))
            .bearer_auth(&self.key)
            .json(&json!({
                "amount": 10_000 + n as i64,
                "currency": "USD",
                "payout_currency": "EUR",
                "source_account": format!("src-{n}-{}", "x".repeat(200)),
                "destination_account": "dst",
                "metadata": {"order": "y".repeat(400)},
            }))
            .send()
            .await
            .expect("request is sent");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn status_of(&self, id: &str) -> u16 {
        self.http
            .get(format!("{}/v1/payments/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request is sent")
            .status()
            .as_u16()
    }

    async fn ready(&self) -> u16 {
        self.http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("request is sent")
            .status()
            .as_u16()
    }
}

async fn start(db: &Path, key: Option<String>) -> (Application, Client) {
    let app = Application::start(config(db), SystemClock::new(), rand::random())
        .await
        .expect("app starts");
    let key = key.unwrap_or_else(|| {
        app.bootstrap()
            .and_then(|b| b.merchant_key.as_ref())
            .map(|k| k.expose_secret().to_owned())
            .expect("first start creates the demo merchant")
    });
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", app.addr()),
        key,
    };
    (app, client)
}

async fn assert_all_readable(client: &Client, accepted: &[String], when: &str) {
    for id in accepted {
        assert_eq!(
            client.status_of(id).await,
            200,
            "payment {id} was answered 202 but is gone {when}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_payment_is_lost_when_the_disk_fills() {
    if std::env::var("CORRIDOR_TEST_TMPFS").is_ok_and(|v| v == "skip") {
        eprintln!("skipped: CORRIDOR_TEST_TMPFS=skip, the full-disk test was not run");
        return;
    }
    let fs = Tmpfs::mount("8m").unwrap_or_else(|why| {
        panic!("the full-disk test needs a tmpfs ({why}); set CORRIDOR_TEST_TMPFS=skip to skip it")
    });
    let db: PathBuf = fs.path().join("corridor.db");
    let filler = fs.path().join("filler");
    let (app, client) = start(&db, None).await;
    let key = client.key.clone();

    // Warm up on a roomy disk, then take the space away.
    let mut accepted = Vec::new();
    for n in 0..20 {
        let (status, body) = client.pay(n).await;
        assert_eq!(status, 202, "{body}");
        accepted.push(body["payment_id"].as_str().unwrap().to_owned());
    }
    fill(&filler);

    let mut refused = 0;
    let mut n = 1_000;
    while refused < 30 && n < 6_000 {
        let (status, body) = client.pay(n).await;
        match status {
            202 => accepted.push(body["payment_id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(body["error"], "UNAVAILABLE", "{body}");
                refused += 1;
            }
            other => panic!("a full disk answered {other}: {body}"),
        }
        n += 1;
    }
    assert!(refused >= 30, "the disk never filled");
    // For as long as the disk is full — workers keep claiming (and finding nothing they can
    // write) meanwhile — readiness stays down.
    for _ in 0..10 {
        assert_eq!(client.ready().await, 503, "/readyz while writes fail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_all_readable(&client, &accepted, "while the disk is full").await;

    // Space returns: writes succeed again by themselves.
    std::fs::remove_file(&filler).expect("filler removed");
    let mut back = false;
    for n in 10_000..10_050 {
        let (status, body) = client.pay(n).await;
        match status {
            202 => {
                accepted.push(body["payment_id"].as_str().unwrap().to_owned());
                back = true;
                break;
            }
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("after space returned: {other}: {body}"),
        }
    }
    assert!(back, "writes did not recover once space returned");
    assert_eq!(client.ready().await, 200, "/readyz once writes succeed");
    assert_all_readable(&client, &accepted, "after space returned").await;

    // And on disk: a restart on the same file finds every acknowledged payment.
    app.stop();
    app.wait().await;
    let (app, client) = start(&db, Some(key)).await;
    assert_all_readable(&client, &accepted, "after a restart").await;
    app.stop();
    app.wait().await;
}
