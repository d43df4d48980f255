//! Scale-out on PostgreSQL: three `corridor serve` processes share one database. Payments
//! are created round-robin across them (with idempotent replays sent to a different node),
//! one node is killed with SIGKILL while payments are in flight, and the survivors must
//! finish every payment exactly once: the expected terminal state, one provider transfer per
//! leg, a history that follows the state table, and one payment per idempotency key.

#[path = "support/serve.rs"]
mod support;
#[path = "testdb.rs"]
mod testdb;

use support::{expected_history, expected_legs};

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "ck_admin_scale_out_test_key_0123456789";
const PAYMENTS: usize = 300;
/// Payments created before the kill.
const FIRST_HALF: usize = PAYMENTS / 2;
/// Requests in flight at once from the test.
const CONCURRENCY: usize = 16;
/// Index of the node that is killed (node 3; node 1 serves the reads).
const VICTIM: usize = 2;
const TERMINAL: [&str; 4] = ["COMPLETED", "FAILED", "REFUNDED", "CANCELLED"];

/// The spawned processes; every one is killed when this is dropped, also on panic.
#[derive(Default)]
struct Cluster {
    children: Vec<Child>,
}

impl Cluster {
    fn kill(&mut self, i: usize) {
        let c = &mut self.children[i];
        c.kill().expect("SIGKILL delivered");
        c.wait().expect("killed child reaped");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a node printed before it started serving.
struct Started {
    url: String,
    merchant_key: Option<String>,
    banner: Vec<String>,
}

/// Spawns `corridor serve` on `db`, registers it in `cluster`, and waits (bounded) until it
/// prints its address. Stdout keeps being drained by a thread so the child never blocks.
fn spawn_node(cluster: &mut Cluster, db: &str) -> mpsc::Receiver<Result<Started, String>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .arg("serve")
        .env("DATABASE_URL", db)
        .env("CORRIDOR_LISTEN", "127.0.0.1:0")
        .env("CORRIDOR_ADMIN_KEY", ADMIN)
        .env("CORRIDOR_SIM_ONRAMP_DELAY", "50ms..300ms")
        .env("CORRIDOR_SIM_OFFRAMP_DELAY", "50ms..300ms")
        .env("CORRIDOR_POLL_INTERVAL", "50ms")
        .env("CORRIDOR_JOB_LEASE", "3s")
        .env("CORRIDOR_PROVIDER_TIMEOUT", "2s")
        .env("CORRIDOR_WORKERS", "4")
        // The test polls much faster than a client would; rate limiting is not under test.
        .env("CORRIDOR_RATE_LIMIT", "0")
        .env("CORRIDOR_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("corridor binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    cluster.children.push(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut merchant_key = None;
        let mut banner = Vec::new();
        let url = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    let _ = tx.send(Err(format!("stdout unreadable: {e}")));
                    return;
                }
                None => {
                    let _ = tx.send(Err(format!(
                        "corridor exited before printing its address; it printed {banner:?}"
                    )));
                    return;
                }
            };
            if let Some(k) = line.trim().strip_prefix("demo merchant key:") {
                merchant_key = Some(k.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("Corridor listening on ") {
                break addr.trim().to_owned();
            }
            banner.push(line);
        };
        let _ = tx.send(Ok(Started {
            url,
            merchant_key,
            banner,
        }));
        for _ in lines {}
    });
    rx
}

fn wait_started(rx: &mpsc::Receiver<Result<Started, String>>, name: &str) -> Started {
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => panic!("{name}: {e}"),
        Err(e) => panic!("{name} did not print its address within 60 s: {e}"),
    }
}

/// The magic accounts of payment `i` and the outcome they force.
fn plan(i: usize) -> (&'static str, &'static str, &'static str) {
    match i % 10 {
        0 => ("sim_fail_onramp", "dst_scale", "FAILED"),
        5 => ("src_scale", "sim_fail_offramp", "REFUNDED"),
        _ => ("src_scale", "dst_scale", "COMPLETED"),
    }
}

fn body(i: usize) -> Value {
    let (src, dst, _) = plan(i);
    json!({"amount": 100_000 + i, "currency": "USD", "payout_currency": "EUR",
           "source_account": src, "destination_account": dst})
}

fn idem_key(i: usize) -> String {
    format!("scale-out-{i}")
}

/// One answer to `POST /v1/payments`.
struct Posted {
    status: u16,
    replayed: Option<String>,
    body: String,
}

async fn post_payment(client: &reqwest::Client, url: &str, key: &str, i: usize) -> Posted {
    let r = client
        .post(format!("{url}/v1/payments"))
        .bearer_auth(key)
        .header("Idempotency-Key", idem_key(i))
        .json(&body(i))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST payment {i} to {url}: {e}"));
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned());
    let body = r.text().await.expect("response body");
    Posted {
        status,
        replayed,
        body,
    }
}

async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> Value {
    let r = client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let text = r.text().await.expect("response body");
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: bad JSON ({e}): {text}"))
}

/// Creates payments `range` with node `node_of(i)`, CONCURRENCY at a time; returns
/// `(i, response body)` for each, all checked to be `202` first-time answers.
async fn create(
    client: &reqwest::Client,
    urls: &[String],
    key: &str,
    range: std::ops::Range<usize>,
    node_of: impl Fn(usize) -> usize,
) -> Vec<(usize, String)> {
    futures::stream::iter(range.map(|i| {
        let url = urls[node_of(i)].clone();
        async move {
            let p = post_payment(client, &url, key, i).await;
            assert_eq!(p.status, 202, "payment {i} on {url}: {}", p.body);
            assert_eq!(p.replayed, None, "payment {i} on {url} is a first request");
            (i, p.body)
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await
}

/// Sends payment `i`'s request again to node `target` and checks it replays `original`.
async fn replay(
    client: &reqwest::Client,
    urls: &[String],
    key: &str,
    i: usize,
    target: usize,
    original: &str,
) {
    let url = &urls[target];
    let p = post_payment(client, url, key, i).await;
    assert_eq!(p.status, 202, "replay of {i} on {url}: {}", p.body);
    assert_eq!(
        p.replayed.as_deref(),
        Some("true"),
        "replay of {i} on {url} lacks Idempotent-Replayed: true"
    );
    let first: Value = serde_json::from_str(original).unwrap();
    let again: Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(
        again["payment_id"], first["payment_id"],
        "replay of {i} on {url} answered another payment"
    );
    assert_eq!(p.body, original, "replay of {i} is not byte-identical");
}

/// Every payment of the merchant, following `next_cursor`; checks the pages never repeat.
async fn list_all(client: &reqwest::Client, url: &str, key: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_url = match &cursor {
            None => format!("{url}/v1/payments?limit=100"),
            Some(c) => format!("{url}/v1/payments?limit=100&starting_after={c}"),
        };
        let page = get_json(client, &page_url, key).await;
        let data = page["data"].as_array().expect("data array").clone();
        assert!(data.len() <= 100, "page larger than limit");
        all.extend(data);
        if page["has_more"] == json!(true) {
            let next = page["next_cursor"]
                .as_str()
                .expect("next_cursor when has_more")
                .to_owned();
            cursor = Some(next);
        } else {
            assert!(
                page["next_cursor"].is_null(),
                "next_cursor must be null on the last page: {page}"
            );
            break;
        }
        assert!(all.len() <= 10 * PAYMENTS, "pagination does not end");
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_survive_losing_one() {
    let Some(db) = testdb::PgDatabase::create().await else {
        println!("scale_out: PostgreSQL tests skipped (CORRIDOR_TEST_PG=skip)");
        return;
    };
    let started_at = Instant::now();
    // Declared after `db`, so dropped (children killed) before the database is dropped.
    let mut cluster = Cluster::default();

    // Node 1 first: it bootstraps the database and prints the demo merchant key.
    let first = wait_started(&spawn_node(&mut cluster, &db.url), "node 1");
    let key = first
        .merchant_key
        .clone()
        .unwrap_or_else(|| panic!("node 1 printed no demo merchant key: {:?}", first.banner));
    // Nodes 2 and 3 start together against the bootstrapped database.
    let rx2 = spawn_node(&mut cluster, &db.url);
    let rx3 = spawn_node(&mut cluster, &db.url);
    let others = [wait_started(&rx2, "node 2"), wait_started(&rx3, "node 3")];
    for (n, s) in others.iter().enumerate() {
        assert!(
            s.merchant_key.is_none() && !s.banner.iter().any(|l| l.contains("sk_")),
            "node {} bootstrapped again: {:?}",
            n + 2,
            s.banner
        );
    }
    let urls: Vec<String> = std::iter::once(first.url)
        .chain(others.into_iter().map(|s| s.url))
        .collect();
    let reads = urls[0].clone();
    println!("scale_out: nodes at {urls:?} ({:?})", started_at.elapsed());

    corridor::tls::init();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut node_of = vec![0usize; PAYMENTS];
    let mut responses: HashMap<usize, String> = HashMap::new();
    // ~30 replays, one per ten payments, covering every outcome.
    let replayed: Vec<usize> = (0..PAYMENTS).filter(|i| i % 10 == (i / 10) % 10).collect();

    // First half round-robin over all three nodes.
    for (i, n) in node_of.iter_mut().enumerate().take(FIRST_HALF) {
        *n = i % 3;
    }
    for (i, b) in create(&client, &urls, &key, 0..FIRST_HALF, |i| i % 3).await {
        responses.insert(i, b);
    }
    // Replays of the first half, each to the next node (the victim included, still alive).
    futures::stream::iter(replayed.iter().filter(|&&i| i < FIRST_HALF).map(|&i| {
        let target = (node_of[i] + 1) % 3;
        let original = responses[&i].clone();
        let (client, urls, key) = (&client, &urls, &key);
        async move { replay(client, urls, key, i, target, &original).await }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<()>>()
    .await;

    // Pull the plug on node 3 while its workers hold leases on payments in flight.
    cluster.kill(VICTIM);
    let open_at_kill = list_all(&client, &reads, &key)
        .await
        .iter()
        .filter(|p| !TERMINAL.contains(&p["status"].as_str().unwrap_or("")))
        .count();
    println!(
        "scale_out: {FIRST_HALF} created, node 3 killed with {open_at_kill} payments in flight \
         ({:?})",
        started_at.elapsed()
    );

    // Second half round-robin over the two survivors.
    let survivors = [0usize, 1];
    for (i, n) in node_of.iter_mut().enumerate().skip(FIRST_HALF) {
        *n = survivors[i % 2];
    }
    for (i, b) in create(&client, &urls, &key, FIRST_HALF..PAYMENTS, |i| {
        survivors[i % 2]
    })
    .await
    {
        responses.insert(i, b);
    }
    // Every replay now goes to the survivor that did not create the payment (payments
    // created by the victim go to either survivor).
    futures::stream::iter(replayed.iter().map(|&i| {
        let target = match node_of[i] {
            0 => 1,
            1 => 0,
            _ => i % 2,
        };
        let original = responses[&i].clone();
        let (client, urls, key) = (&client, &urls, &key);
        async move { replay(client, urls, key, i, target, &original).await }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<()>>()
    .await;
    println!(
        "scale_out: {PAYMENTS} created, {} keys replayed ({:?})",
        replayed.len(),
        started_at.elapsed()
    );

    let ids: Vec<String> = (0..PAYMENTS)
        .map(|i| {
            let v: Value = serde_json::from_str(&responses[&i]).unwrap();
            assert_eq!(v["status"], "PENDING", "payment {i}: {v}");
            v["payment_id"].as_str().expect("payment_id").to_owned()
        })
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        PAYMENTS,
        "two idempotency keys got one payment"
    );

    // Wait until every payment is terminal, reading from a survivor.
    let deadline = Instant::now() + Duration::from_secs(120);
    let listed = loop {
        let all = list_all(&client, &reads, &key).await;
        let open: Vec<String> = all
            .iter()
            .filter(|p| !TERMINAL.contains(&p["status"].as_str().unwrap_or("")))
            .map(|p| format!("{} {}", p["payment_id"], p["status"]))
            .collect();
        if open.is_empty() && all.len() >= PAYMENTS {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} payments still not terminal after 120 s, e.g. {:?}",
            open.len(),
            all.len(),
            &open[..open.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("scale_out: all terminal ({:?})", started_at.elapsed());

    // The list holds exactly our 300 payments, each once.
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|p| p["payment_id"].as_str().expect("payment_id"))
        .collect();
    let listed_set: HashSet<&str> = listed_ids.iter().copied().collect();
    assert_eq!(
        listed_set.len(),
        listed_ids.len(),
        "the list repeats a payment"
    );
    assert_eq!(listed_ids.len(), PAYMENTS, "the list does not hold 300");
    let created_set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        listed_set, created_set,
        "listed payments differ from created"
    );

    // Each payment: outcome, history, and exactly one transfer per leg.
    let checks = futures::stream::iter(ids.iter().enumerate().map(|(i, id)| {
        let (client, reads, key) = (&client, &reads, &key);
        async move {
            let (src, dst, outcome) = plan(i);
            let p = get_json(client, &format!("{reads}/v1/payments/{id}"), key).await;
            assert_eq!(p["status"], outcome, "payment {i} {id}: {p}");
            assert_eq!(p["amount"], json!(100_000 + i), "payment {i} {id}: {p}");
            assert_eq!(p["source_account"], src, "payment {i} {id}");
            assert_eq!(p["destination_account"], dst, "payment {i} {id}");
            let states: Vec<&str> = p["history"]
                .as_array()
                .expect("history array")
                .iter()
                .map(|h| h["to"].as_str().expect("history to"))
                .collect();
            let unique: HashSet<&str> = states.iter().copied().collect();
            assert_eq!(
                unique.len(),
                states.len(),
                "payment {i} {id} repeats a state: {states:?}"
            );
            assert_eq!(states, expected_history(outcome), "payment {i} {id}");
            let t = get_json(
                client,
                &format!("{reads}/v1/sandbox/transfers?payment_id={id}"),
                ADMIN,
            )
            .await;
            let transfers = t["data"].as_array().expect("transfer data");
            let mut legs: Vec<&str> = transfers
                .iter()
                .map(|x| x["leg"].as_str().expect("leg"))
                .collect();
            legs.sort_unstable();
            assert_eq!(
                legs,
                expected_legs(outcome),
                "payment {i} {id} transfers: {t}"
            );
            for x in transfers {
                assert_eq!(x["payment_id"], id.as_str(), "payment {i}: {t}");
            }
            transfers
                .iter()
                .filter(|x| x["initiate_calls"].as_i64().unwrap_or(0) > 1)
                .count()
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<usize>>()
    .await;
    let repeated_asks: usize = checks.iter().sum();
    println!(
        "scale_out: checked {PAYMENTS} payments; {repeated_asks} transfers were asked for more \
         than once; total {:?}",
        started_at.elapsed()
    );
    drop(cluster);
}
