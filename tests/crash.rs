//! Crash safety: kill the `corridor` process with SIGKILL while payments are in flight,
//! start it again on the same SQLite file, and check that every payment reaches a terminal
//! state, that no provider leg was initiated twice, and that histories follow the table.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod support;

use support::{Served, expected_history, expected_legs, serve};

fn start(db: &str, admin: &str) -> Served {
    let url = format!("sqlite://{db}");
    serve(&[
        ("DATABASE_URL", &url),
        ("CORRIDOR_ADMIN_KEY", admin),
        ("CORRIDOR_SIM_ONRAMP_DELAY", "50ms..400ms"),
        ("CORRIDOR_SIM_OFFRAMP_DELAY", "50ms..400ms"),
        ("CORRIDOR_POLL_INTERVAL", "50ms"),
        ("CORRIDOR_JOB_LEASE", "2s"),
        ("CORRIDOR_PROVIDER_TIMEOUT", "1s"),
        ("CORRIDOR_WORKERS", "8"),
    ])
}

async fn get(client: &reqwest::Client, url: &str, key: &str) -> Value {
    client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("json body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_no_payment_and_moves_no_leg_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db").display().to_string();
    let admin = "ck_admin_crash_test_key_0123456789";
    corridor::tls::init();
    let client = reqwest::Client::new();

    let mut node = start(&db, admin);
    let key = node
        .merchant_key
        .clone()
        .expect("first start prints the demo key");
    let mut ids = Vec::new();
    for i in 0..40 {
        let (src, dst) = match i % 5 {
            3 => ("sim_fail_onramp", "dst"),
            4 => ("src", "sim_fail_offramp"),
            _ => ("src", "dst"),
        };
        let r = client
            .post(format!("{}/v1/payments", node.url))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("crash-{i}"))
            .json(
                &json!({"amount": 100_000 + i, "currency": "USD", "payout_currency": "EUR",
                          "source_account": src, "destination_account": dst}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        ids.push(v["payment_id"].as_str().unwrap().to_owned());
    }
    // Let some payments get part-way, then pull the plug.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.child.kill().expect("SIGKILL delivered");
    node.child.wait().unwrap();

    let mut node = start(&db, admin);
    assert!(
        node.merchant_key.is_none(),
        "a restart must not bootstrap again"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut finals = HashMap::new();
    for id in &ids {
        loop {
            let v = get(&client, &format!("{}/v1/payments/{id}", node.url), &key).await;
            let s = v["status"].as_str().unwrap_or("").to_owned();
            if ["COMPLETED", "FAILED", "REFUNDED", "CANCELLED"].contains(&s.as_str()) {
                finals.insert(id.clone(), v);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} stuck in {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    for (i, id) in ids.iter().enumerate() {
        let p = &finals[id];
        let expected = match i % 5 {
            3 => "FAILED",
            4 => "REFUNDED",
            _ => "COMPLETED",
        };
        assert_eq!(p["status"], expected, "{id}: {p}");
        // The history follows the transition table and never repeats a state.
        let states: Vec<&str> = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["to"].as_str().unwrap())
            .collect();
        let mut dedup = states.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(
            dedup.len(),
            states.len(),
            "{id} repeats a state: {states:?}"
        );
        assert_eq!(states, expected_history(expected), "{id}");
        // One transfer per leg at the provider, whatever the number of asks.
        let t = get(
            &client,
            &format!("{}/v1/sandbox/transfers?payment_id={id}", node.url),
            admin,
        )
        .await;
        let legs: Vec<&str> = t["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["leg"].as_str().unwrap())
            .collect();
        let mut sorted = legs.clone();
        sorted.sort();
        assert_eq!(sorted, expected_legs(expected), "{id} transfers: {t}");
    }
    node.child.kill().ok();
    node.child.wait().ok();
}
