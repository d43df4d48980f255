//! The ledger as a client reads it: every posting path of a payment (completed, onramp
//! failed, offramp failed and refunded, cancelled), the settlement shown on the payment, the
//! balances with their per-currency totals, and tenancy.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

const TERMINAL: &[&str] = &["COMPLETED", "FAILED", "CANCELLED", "REFUNDED"];

async fn pay(app: &TestApp, key: &str, source: &str, destination: &str) -> (Value, Value) {
    let quote = app.quote(key, "EUR", 100_000).await;
    let created = app
        .pay(
            key,
            json!({"quote_id": quote["quote_id"], "source_account": source, "destination_account": destination}),
        )
        .await;
    let id = created["payment_id"].as_str().expect("payment_id");
    let p = app.wait_for_status(key, id, TERMINAL).await;
    (quote, p)
}

async fn ledger(app: &TestApp, key: &str, payment: &Value) -> Value {
    let id = payment["payment_id"].as_str().expect("payment_id");
    let r = app.get(&format!("/v1/payments/{id}/ledger"), key).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["payment_id"], id, "{v}");
    assert_eq!(v["balanced"], true, "{v}");
    v
}

/// `role → (status, debit, credit, amount, currency)` of a payment's transfers.
fn by_role(ledger: &Value) -> BTreeMap<String, (String, String, String, i64, String)> {
    let id = ledger["payment_id"].as_str().expect("payment_id");
    ledger["transfers"]
        .as_array()
        .expect("transfers")
        .iter()
        .map(|t| {
            let tid = t["id"].as_str().expect("id");
            let role = tid
                .strip_prefix(&format!("{id}:"))
                .unwrap_or_else(|| panic!("id {tid} names its payment"));
            assert!(t["reason"].is_string() && t["created_at"].is_string(), "{t}");
            (
                role.to_owned(),
                (
                    t["status"].as_str().expect("status").to_owned(),
                    t["debit_account"].as_str().expect("debit").to_owned(),
                    t["credit_account"].as_str().expect("credit").to_owned(),
                    t["amount"].as_i64().expect("amount"),
                    t["currency"].as_str().expect("currency").to_owned(),
                ),
            )
        })
        .collect()
}

/// Net posted flow into `account` over one payment's transfers (credits − debits).
fn posted_into(ledger: &Value, account: &str) -> i64 {
    ledger["transfers"]
        .as_array()
        .expect("transfers")
        .iter()
        .filter(|t| t["status"] == "POSTED")
        .map(|t| {
            let a = t["amount"].as_i64().expect("amount");
            (if t["credit_account"] == account { a } else { 0 })
                - (if t["debit_account"] == account { a } else { 0 })
        })
        .sum()
}

fn fee(quote: &Value, name: &str) -> i64 {
    quote["fees"][name].as_i64().expect("fee")
}

#[tokio::test]
async fn a_completed_payment_posts_the_source_each_fee_both_usdc_legs_the_payout_and_the_fx() {
    let Some(app) = spawn_app().await else { return };
    let (quote, p) = pay(&app, &app.merchant_key, "user123", "merchant456").await;
    assert_eq!(p["status"], "COMPLETED", "{p}");
    let l = ledger(&app, &app.merchant_key, &p).await;
    let t = by_role(&l);
    let roles: Vec<&str> = t.keys().map(String::as_str).collect();
    for needed in [
        "onramp.source",
        "fee.platform",
        "fee.onramp",
        "fee.offramp",
        "onramp.usdc",
        "offramp.usdc",
        "offramp.payout",
    ] {
        assert!(roles.contains(&needed), "{needed} missing: {l}");
    }
    assert!(
        t.values().all(|(status, ..)| status == "POSTED"),
        "nothing stays pending or voided on a completed payment: {l}"
    );
    let funding = &t["onramp.source"].1;
    assert!(funding.starts_with("merchant:") && funding.ends_with(":funding:USD"), "{l}");
    // The source amount received: everything the merchant's account gave.
    assert_eq!(posted_into(&l, funding), -100_000, "{l}");
    let total = fee(&quote, "total_fees");
    assert_eq!(posted_into(&l, "platform:fees:USD"), total, "{l}");
    for (role, name) in [
        ("fee.platform", "platform_fee"),
        ("fee.onramp", "onramp_fee"),
        ("fee.offramp", "offramp_fee"),
    ] {
        assert_eq!(t[role].3, fee(&quote, name), "{role}: {l}");
        assert_eq!(t[role].2, "platform:fees:USD", "{role}: {l}");
    }
    let usdc = (100_000 - total) * 10_000;
    assert_eq!(t["onramp.usdc"].3, usdc, "{l}");
    assert_eq!(t["offramp.usdc"].3, usdc, "{l}");
    assert_eq!(t["onramp.usdc"].4, "USDC", "{l}");
    assert_eq!(posted_into(&l, "platform:treasury:USDC"), 0, "the USDC bought is sold: {l}");
    assert_eq!(posted_into(&l, "payouts:EUR"), p["payout_amount"].as_i64().unwrap(), "{l}");

    // The settlement: the offramp executed at the market's mid, so the platform keeps the
    // spread (a gain), posted to platform:fx:EUR, and the payment shows the same figure.
    let s = &p["settlement"];
    let fx = s["fx_gain_loss"]["amount"].as_i64().expect("fx amount");
    assert_eq!(s["fx_gain_loss"]["currency"], "EUR", "{p}");
    assert!(s["executed_rate"].is_number(), "{p}");
    assert!(fx > 0, "the static market executes at the mid: the spread is kept: {p}");
    assert_eq!(posted_into(&l, "platform:fx:EUR"), fx, "{l}");
    assert_eq!(t["fx.gain"].3, fx, "{l}");
}

#[tokio::test]
async fn a_failed_onramp_voids_everything_it_held() {
    let Some(app) = spawn_app().await else { return };
    let (_, p) = pay(&app, &app.merchant_key, "sim_fail_onramp", "merchant456").await;
    assert_eq!(p["status"], "FAILED", "{p}");
    assert!(p.get("settlement").is_none(), "{p}");
    let l = ledger(&app, &app.merchant_key, &p).await;
    let t = by_role(&l);
    assert_eq!(t.len(), 5, "the onramp's five transfers: {l}");
    assert!(t.values().all(|(s, ..)| s == "VOIDED"), "nothing was captured: {l}");
}

#[tokio::test]
async fn a_refunded_payment_returns_the_refund_and_keeps_only_the_onramp_fee() {
    let Some(app) = spawn_app().await else { return };
    let (quote, p) = pay(&app, &app.merchant_key, "user123", "sim_fail_offramp").await;
    assert_eq!(p["status"], "REFUNDED", "{p}");
    let l = ledger(&app, &app.merchant_key, &p).await;
    let t = by_role(&l);
    assert!(
        t.values().all(|(s, ..)| s != "PENDING"),
        "nothing pending on a terminal payment: {l}"
    );
    assert_eq!(t["offramp.usdc"].0, "VOIDED", "{l}");
    assert_eq!(t["offramp.payout"].0, "VOIDED", "{l}");
    for role in ["refund.usdc", "refund.source", "refund.fee.platform", "refund.fee.offramp"] {
        assert_eq!(t[role].0, "POSTED", "{role}: {l}");
    }
    let refund = p["refund"]["amount"].as_i64().expect("refund");
    assert_eq!(refund, 100_000 - fee(&quote, "onramp_fee"));
    assert_eq!(posted_into(&l, "refunds:USD"), refund, "{l}");
    assert_eq!(
        posted_into(&l, "platform:fees:USD"),
        fee(&quote, "onramp_fee"),
        "only the onramp's fee is kept: {l}"
    );
    assert_eq!(posted_into(&l, "payouts:EUR"), 0, "{l}");
    assert_eq!(posted_into(&l, "platform:treasury:USDC"), 0, "{l}");
}

#[tokio::test]
async fn a_cancelled_payment_has_no_transfers_and_another_merchant_sees_no_ledger() {
    let Some(app) = spawn_app_with(|c| c.workers = 0).await else {
        return;
    };
    let quote = app.quote(&app.merchant_key, "EUR", 100_000).await;
    let created = app
        .pay(
            &app.merchant_key,
            json!({"quote_id": quote["quote_id"], "source_account": "a", "destination_account": "b"}),
        )
        .await;
    let id = created["payment_id"].as_str().expect("id");
    let r = app
        .post(&format!("/v1/payments/{id}/cancel"), &app.merchant_key, json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let l = ledger(&app, &app.merchant_key, &created).await;
    assert_eq!(l["transfers"], json!([]), "{l}");

    let other = app.new_merchant("other").await;
    let r = app.get(&format!("/v1/payments/{id}/ledger"), &other).await;
    assert_eq!(r.status(), 404);
    let r = app.get("/v1/payments/pay_nope/ledger", &app.merchant_key).await;
    assert_eq!(r.status(), 404);
    let r = app.get("/v1/admin/ledger/balances", &app.merchant_key).await;
    assert_eq!(r.status(), 403, "balances are the operator's");
}

#[tokio::test]
async fn balances_add_up_per_currency_and_match_the_payments() {
    let Some(app) = spawn_app().await else { return };
    let (q1, done) = pay(&app, &app.merchant_key, "user123", "merchant456").await;
    let (q2, refunded) = pay(&app, &app.merchant_key, "user123", "sim_fail_offramp").await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(refunded["status"], "REFUNDED");
    let r = app.get("/v1/admin/ledger/balances", &app.admin_key).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.expect("json");
    for (currency, t) in b["totals"].as_object().expect("totals") {
        assert_eq!(t["debits_posted"], t["credits_posted"], "{currency}: {b}");
        assert_eq!(t["debits_pending"], t["credits_pending"], "{currency}: {b}");
    }
    for c in ["USD", "USDC", "EUR"] {
        assert!(b["totals"].get(c).is_some(), "{c} has totals: {b}");
    }
    let account = |name: &str| -> Value {
        b["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|a| a["account"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no account {name}: {b}"))
    };
    let net = |a: &Value| a["credits_posted"].as_i64().unwrap() - a["debits_posted"].as_i64().unwrap();
    assert_eq!(
        net(&account("platform:fees:USD")),
        fee(&q1, "total_fees") + fee(&q2, "onramp_fee"),
        "{b}"
    );
    assert_eq!(net(&account("payouts:EUR")), done["payout_amount"].as_i64().unwrap(), "{b}");
    assert_eq!(net(&account("refunds:USD")), refunded["refund"]["amount"].as_i64().unwrap(), "{b}");
    assert_eq!(
        net(&account("platform:fx:EUR")),
        done["settlement"]["fx_gain_loss"]["amount"].as_i64().unwrap(),
        "{b}"
    );
    let fees = account("platform:fees:USD");
    assert_eq!(fees["currency"], "USD");
    assert_eq!(fees["debits_pending"], 0, "nothing in flight once both are terminal: {b}");
}

/// On the simulated market the payout executes at the walk's mid when it settles: the FX
/// result is no longer the spread alone, each payment shows it, the ledger posts it, and the
/// report adds it up per corridor.
#[tokio::test]
async fn on_a_moving_market_the_report_adds_up_what_each_payment_shows() {
    let Some(app) = spawn_app_with(|c| {
        c.rate_source = corridor::config::RateSourceKind::Simulated;
        c.market_volatility = "0.005".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let mut quotes = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let q = app.quote(&app.merchant_key, "EUR", 100_000).await;
        let created = app
            .pay(
                &app.merchant_key,
                json!({"quote_id": q["quote_id"], "source_account": "a", "destination_account": "b"}),
            )
            .await;
        ids.push(created["payment_id"].as_str().unwrap().to_owned());
        quotes.push(q);
        // Minutes of market between one quote and the next, and before the settlements.
        app.advance_clock(std::time::Duration::from_secs(120));
    }
    let mut fx = Vec::new();
    for id in &ids {
        let p = app.wait_for_status(&app.merchant_key, id, &["COMPLETED"]).await;
        let l = ledger(&app, &app.merchant_key, &p).await;
        let shown = p["settlement"]["fx_gain_loss"]["amount"].as_i64().expect("fx");
        assert_eq!(posted_into(&l, "platform:fx:EUR"), shown, "{p} {l}");
        fx.push((id.clone(), shown));
    }
    let rates: std::collections::BTreeSet<String> =
        quotes.iter().map(|q| q["exchange_rate"].to_string()).collect();
    assert!(rates.len() > 1, "the market moved between quotes: {rates:?}");

    let r = app.get("/v1/admin/reports/fx", &app.admin_key).await;
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    let rows = report["data"].as_array().expect("data");
    assert_eq!(rows.len(), 1, "{report}");
    let row = &rows[0];
    assert_eq!(row["corridor"], "USD-EUR");
    assert_eq!(row["payments"], 4);
    assert_eq!(row["volume"], json!({"amount": 400_000, "currency": "USD"}));
    let fees: i64 = quotes.iter().map(|q| fee(q, "total_fees")).sum();
    assert_eq!(row["fees"]["amount"], fees);
    let total: i64 = fx.iter().map(|(_, f)| f).sum();
    assert_eq!(row["fx_gain_loss"], json!({"amount": total, "currency": "EUR"}), "{report}");
    let spread = row["spread_revenue"]["amount"].as_i64().unwrap();
    assert!(spread > 0, "{report}");
    assert_eq!(row["market_move"]["amount"], total - spread, "{report}");
    let worst = fx.iter().map(|(_, f)| *f).min().unwrap();
    assert_eq!(row["worst_payment"]["fx_gain_loss"]["amount"], worst, "{report}");
    assert!(fx.iter().any(|(id, f)| *f == worst && row["worst_payment"]["payment_id"] == id.as_str()));

    // The window: nothing completed before the epoch's first second; bad instants are 400.
    let r = app
        .get("/v1/admin/reports/fx?to=1970-01-01T00:00:01Z", &app.admin_key)
        .await;
    assert_eq!(r.status(), 200);
    let empty: Value = r.json().await.unwrap();
    assert_eq!(empty["data"], json!([]));
    for bad in ["from=yesterday", "to=2026-13-01T00:00:00Z", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "limit=3"] {
        let r = app.get(&format!("/v1/admin/reports/fx?{bad}"), &app.admin_key).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

async fn reconcile(app: &TestApp, body: Value) -> Value {
    let r = app.post("/v1/admin/reconciliations", &app.admin_key, body).await;
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["status"], "PENDING", "{started}");
    let id = started["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("recon_"), "{id}");
    for _ in 0..400 {
        let r = app.get(&format!("/v1/admin/reconciliations/{id}"), &app.admin_key).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        if v["status"] != "PENDING" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("reconciliation {id} never finished");
}

async fn open_alert_kinds(app: &TestApp) -> Vec<(String, String)> {
    let r = app.get("/v1/admin/alerts", &app.admin_key).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The simulated offramp settles `sim_short_payout` 1 % short while the payment completes:
/// reconciliation pairs every leg of every payment (a refunded one's reversal included),
/// reports exactly that payout, and raises the alert a clean run clears.
#[tokio::test]
async fn reconciliation_finds_the_short_payout_and_matches_everything_else() {
    let Some(app) = spawn_app().await else { return };
    let (_, fine) = pay(&app, &app.merchant_key, "user123", "merchant456").await;
    let (_, short) = pay(&app, &app.merchant_key, "user123", "sim_short_payout").await;
    let (_, refunded) = pay(&app, &app.merchant_key, "user123", "sim_fail_offramp").await;
    assert_eq!(fine["status"], "COMPLETED");
    assert_eq!(short["status"], "COMPLETED", "the provider said it paid: {short}");
    assert_eq!(refunded["status"], "REFUNDED");

    let r = reconcile(&app, json!({})).await;
    assert_eq!(r["status"], "COMPLETED", "{r}");
    assert!(r["finished_at"].is_string(), "{r}");
    // Onramp and offramp of each, and the refunded one's reversal.
    assert_eq!(r["checked"], 7, "{r}");
    assert_eq!(r["matched"], 6, "{r}");
    let payout = short["payout_amount"].as_i64().unwrap();
    assert_eq!(
        r["mismatches"],
        json!([{
            "payment_id": short["payment_id"],
            "leg": "offramp",
            "kind": "AMOUNT_MISMATCH",
            "ours": {"amount": payout, "currency": "EUR", "status": "COMPLETED"},
            "theirs": {"amount": payout - payout / 100, "currency": "EUR", "status": "COMPLETED"},
        }]),
        "{r}"
    );
    let id = r["id"].as_str().unwrap();
    let alerts = open_alert_kinds(&app).await;
    assert!(
        alerts
            .iter()
            .any(|(k, m)| k == "RECONCILIATION_MISMATCH" && m.contains(id)),
        "{alerts:?}"
    );
    // The alert sweep (every 2 s) leaves it alone: it is the reconciliation's to clear.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(open_alert_kinds(&app).await.iter().any(|(k, _)| k == "RECONCILIATION_MISMATCH"));

    // A run over a window with nothing in it is clean, and clears the alert.
    let clean = reconcile(
        &app,
        json!({"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}),
    )
    .await;
    assert_eq!((clean["checked"].as_i64(), clean["mismatches"].clone()), (Some(0), json!([])), "{clean}");
    assert!(!open_alert_kinds(&app).await.iter().any(|(k, _)| k == "RECONCILIATION_MISMATCH"));

    // No body at all is "everything up to now".
    let r = app
        .client
        .post(format!("{}/v1/admin/reconciliations", app.address))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Bad input and wrong callers.
    for bad in [json!([null, null]), json!({"from": "soon"}), json!({"to": 5}), json!({"extra": 1}), json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})] {
        let r = app.post("/v1/admin/reconciliations", &app.admin_key, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = app.post("/v1/admin/reconciliations", &app.merchant_key, json!({})).await;
    assert_eq!(r.status(), 403);
    let r = app.get("/v1/admin/reconciliations/recon_nope", &app.admin_key).await;
    assert_eq!(r.status(), 404);
    let r = app
        .get(&format!("/v1/admin/reconciliations/recon_{}", uuid::Uuid::nil()), &app.admin_key)
        .await;
    assert_eq!(r.status(), 404);
}

/// `sim_return_offramp`: the payout settles, the look after settlement finds it came back,
/// and the payment is refunded — every return posting on the books, nothing left pending.
#[tokio::test]
async fn a_returned_payout_is_refunded_and_its_money_comes_back_through_the_books() {
    let Some(app) = spawn_app_with(|c| {
        c.return_check_after = Some(corridor::config::Dur(std::time::Duration::from_millis(300)));
        c.sim_return_delay = corridor::config::Dur(std::time::Duration::from_millis(100));
    })
    .await
    else {
        return;
    };
    let (quote, p) = pay(&app, &app.merchant_key, "user123", "sim_return_offramp").await;
    let id = p["payment_id"].as_str().unwrap();
    let p = if p["status"] == "COMPLETED" {
        app.wait_for_status(&app.merchant_key, id, &["REFUNDED"]).await
    } else {
        p
    };
    assert_eq!(p["status"], "REFUNDED", "{p}");
    assert_eq!(p["failure"]["code"], "PAYOUT_RETURNED", "{p}");
    assert!(p["completed_at"].is_string(), "{p}");
    let to: Vec<&str> = p["history"].as_array().unwrap().iter().map(|h| h["to"].as_str().unwrap()).collect();
    assert_eq!(
        to,
        ["PENDING", "ONRAMP_PENDING", "ONRAMP_COMPLETE", "OFFRAMP_PENDING", "COMPLETED", "REFUND_PENDING", "REFUNDED"],
        "{p}"
    );
    let l = ledger(&app, &app.merchant_key, &p).await;
    let t = by_role(&l);
    for role in ["offramp.payout", "return.payout", "return.usdc", "refund.source"] {
        assert_eq!(t[role].0, "POSTED", "{role}: {l}");
    }
    assert!(t.values().all(|(s, ..)| s != "PENDING"), "{l}");
    assert_eq!(posted_into(&l, "payouts:EUR"), 0, "the payout came back: {l}");
    assert_eq!(posted_into(&l, "platform:treasury:USDC"), 0, "{l}");
    assert_eq!(posted_into(&l, "refunds:USD"), 100_000 - fee(&quote, "onramp_fee"), "{l}");
    assert_eq!(posted_into(&l, "platform:fees:USD"), fee(&quote, "onramp_fee"), "{l}");
}
