//! The dashboard over HTTP: signing in and out, the pages, the actions and their guards.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, csrf_in, session_token, spawn, spawn_on};

#[tokio::test]
async fn the_dashboard_without_a_session_answers_200_with_a_sign_in_form() {
    let app = spawn(|_| {}).await;
    let page = app.get_page("/dashboard", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.body
            .contains(r#"<form class="card signin" method="post" action="/dashboard/login">"#)
    );
    assert!(page.body.contains(r#"name="key" type="password""#));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(page.set_cookies.is_empty());
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_the_sign_in_form() {
    let app = spawn(|_| {}).await;
    for path in [
        "/dashboard/payments",
        "/dashboard/payments/pay_x",
        "/dashboard/jobs",
        "/dashboard/rates",
    ] {
        let page = app.get_page(path, None).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.location.as_deref(), Some("/dashboard"), "{path}");
        let forged = app.get_page(path, Some(&"A".repeat(43))).await;
        assert_eq!(forged.status, 303, "{path} with an unknown token");
    }
    let post = app
        .post_form("/dashboard/jobs/x/redrive", None, &[("csrf", "x")], &[])
        .await;
    assert_eq!(post.status, 303);
    assert_eq!(post.location.as_deref(), Some("/dashboard"));
}

#[tokio::test]
async fn a_wrong_key_does_not_sign_in() {
    let app = spawn(|_| {}).await;
    for key in [
        "ck_admin_wrong_key_0000000000",
        "",
        app.merchant_key.as_str(),
    ] {
        let page = app.sign_in_with(key).await;
        assert_eq!(page.status, 401, "{key}");
        assert!(page.body.contains("not the admin key"));
        assert!(page.body.contains(r#"action="/dashboard/login""#));
        assert!(session_token(&page).is_none());
    }
}

#[tokio::test]
async fn the_admin_key_signs_in_with_an_http_only_strict_cookie_and_no_key_in_any_url() {
    let app = spawn(|_| {}).await;
    let page = app.sign_in_with(&app.admin_key).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/dashboard"));
    assert_eq!(page.set_cookies.len(), 1);
    let cookie = &page.set_cookies[0];
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    assert!(!cookie.contains(&app.admin_key));
    let token = session_token(&page).unwrap();

    // The database holds only the token's hash.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT session_hash FROM dashboard_sessions")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let admin_hash = corridor::api::auth::hash_key(&app.admin_key);
    assert_eq!(
        stored,
        vec![corridor::api::dashboard::session::stored_hash(
            &admin_hash,
            &token
        )]
    );
    assert!(!stored[0].contains(&token));

    // No page or link carries the key.
    let overview = app.get_page("/dashboard", Some(&token)).await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("Payments by state"));
    for path in [
        "/dashboard",
        "/dashboard/payments",
        "/dashboard/jobs",
        "/dashboard/rates",
    ] {
        let p = app.get_page(path, Some(&token)).await;
        assert!(!p.body.contains(&app.admin_key), "{path} shows the key");
        assert!(
            !p.location.unwrap_or_default().contains(&app.admin_key),
            "{path}"
        );
    }

    // Behind a TLS-terminating proxy the cookie is Secure.
    let https = app
        .post_form(
            "/dashboard/login",
            None,
            &[("key", &app.admin_key)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(https.status, 303);
    assert!(https.set_cookies[0].ends_with("; Secure"));
}

#[tokio::test]
async fn signing_out_ends_the_session_and_clears_the_cookie() {
    let app = spawn(|_| {}).await;
    let token = app.sign_in().await;
    let csrf = app.csrf(&token).await;
    let out = app
        .post_form("/dashboard/logout", Some(&token), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/dashboard"));
    assert!(out.set_cookies[0].starts_with("corridor_session=;"));
    assert!(out.set_cookies[0].contains("Max-Age=0"));
    // The old token no longer works, even if a client kept it.
    let page = app.get_page("/dashboard/payments", Some(&token)).await;
    assert_eq!(page.status, 303);
    let page = app.get_page("/dashboard", Some(&token)).await;
    assert!(page.body.contains(r#"action="/dashboard/login""#));
}

#[tokio::test]
async fn a_new_admin_key_ends_the_sessions_of_the_old_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let old = spawn(|cfg| cfg.database_url = url.clone()).await;
    let token = old.sign_in().await;
    assert_eq!(
        old.get_page("/dashboard/payments", Some(&token))
            .await
            .status,
        200
    );
    drop(old);
    // The operator rotates the admin key and restarts on the same database.
    let new = spawn(|cfg| {
        cfg.database_url = url.clone();
        cfg.admin_key = Some("ck_admin_rotated_0123456789abcdef".to_owned().into());
    })
    .await;
    let page = new.get_page("/dashboard/payments", Some(&token)).await;
    assert_eq!(page.status, 303, "a session of the old key still works");
    assert_eq!(page.location.as_deref(), Some("/dashboard"));
    // The new key signs in as usual.
    let fresh = new.sign_in().await;
    assert_eq!(
        new.get_page("/dashboard/payments", Some(&fresh))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_per_client() {
    let app = spawn(|_| {}).await;
    for _ in 0..5 {
        let page = app.sign_in_with("ck_admin_wrong_key_0000000000").await;
        assert_eq!(page.status, 401);
    }
    let page = app.sign_in_with("ck_admin_wrong_key_0000000000").await;
    assert_eq!(page.status, 429);
    assert!(page.body.contains("Wait"), "{}", page.body);
    let retry: u64 = page.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // While limited, even the right key is not tried.
    let page = app.sign_in_with(&app.admin_key).await;
    assert_eq!(page.status, 429);
    assert!(session_token(&page).is_none());
}

#[tokio::test]
async fn merchant_supplied_text_is_escaped_everywhere_it_is_shown() {
    let app = spawn(|_| {}).await;
    let id = app
        .pay(
            "<script>alert('src')</script>",
            json!({"note": "<script>alert(1)</script>", "<b>key</b>": "\"><img src=x onerror=alert(2)>"}),
        )
        .await;
    app.wait_for(&id, &["COMPLETED"]).await;
    let token = app.sign_in().await;
    let page = app
        .get_page(&format!("/dashboard/payments/{id}"), Some(&token))
        .await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img src=x"));
    assert!(!page.body.contains("<b>key</b>"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&#39;src&#39;)&lt;/script&gt;")
    );
    assert!(
        page.body
            .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;")
    );
    // The only scripts are the dashboard's own file.
    assert_eq!(page.body.matches("<script").count(), 1);
    assert!(
        page.body
            .contains(r#"<script src="/dashboard/assets/dashboard.js" defer></script>"#)
    );
}

#[tokio::test]
async fn signed_in_pages_show_counts_payments_and_a_timeline() {
    signed_in_pages_render(Backend::Sqlite).await;
}

#[tokio::test]
async fn signed_in_pages_show_counts_payments_and_a_timeline_on_postgres() {
    signed_in_pages_render(Backend::Postgres).await;
}

async fn signed_in_pages_render(backend: Backend) {
    let Some(app) = spawn_on(backend, |_| {}).await else {
        return;
    };
    let id = app.pay("acct_src", json!({"order": "A-17"})).await;
    app.wait_for(&id, &["COMPLETED"]).await;
    let token = app.sign_in().await;

    let overview = app.get_page("/dashboard", Some(&token)).await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("Payments by state"));
    assert!(overview.body.contains("created in the last 5 minutes"));
    assert!(
        overview
            .body
            .contains(r#"href="/dashboard/payments?status=COMPLETED">1</a>"#)
    );
    assert!(overview.body.contains("Open alerts (0)"));

    let list = app.get_page("/dashboard/payments", Some(&token)).await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(&format!(r#"href="/dashboard/payments/{id}""#))
    );
    assert!(list.body.contains("100.00 USD"));

    let timeline = app
        .get_page(&format!("/dashboard/payments/{id}"), Some(&token))
        .await;
    assert_eq!(timeline.status, 200);
    for text in [
        "Timeline",
        "PENDING",
        "ONRAMP_PENDING",
        "OFFRAMP_PENDING",
        "COMPLETED",
        "Legs",
        "onramp",
        "offramp",
        "A-17",
        "This payment is final",
        "Ledger",
        "platform:fees:USD",
        "payouts:EUR",
        "POSTED",
        "FX gain",
    ] {
        assert!(timeline.body.contains(text), "timeline lacks {text}");
    }
    assert!(!timeline.body.contains("Retry current step"));

    let missing = app
        .get_page("/dashboard/payments/pay_nope", Some(&token))
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("Payment not found"));

    let jobs = app.get_page("/dashboard/jobs", Some(&token)).await;
    assert_eq!(jobs.status, 200);
    assert!(jobs.body.contains("No dead jobs."));

    let css = app.get_page("/dashboard/assets/style.css", None).await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = app.get_page("/dashboard/assets/dashboard.js", None).await;
    assert_eq!(js.status, 200);
}

#[tokio::test]
async fn the_payment_list_pages_by_cursor_filters_by_state_and_finds_by_id() {
    payment_list_pages(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_payment_list_pages_by_cursor_filters_by_state_and_finds_by_id_on_postgres() {
    payment_list_pages(Backend::Postgres).await;
}

async fn payment_list_pages(backend: Backend) {
    let Some(app) = spawn_on(backend, |cfg| cfg.workers = 0).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..53 {
        ids.push(app.pay(&format!("acct_{i}"), json!({})).await);
    }
    let token = app.sign_in().await;
    let first = app.get_page("/dashboard/payments", Some(&token)).await;
    assert_eq!(first.status, 200);
    let shown = |body: &str| -> Vec<String> {
        ids.iter()
            .filter(|id| body.contains(&format!(r#"href="/dashboard/payments/{id}""#)))
            .cloned()
            .collect()
    };
    assert_eq!(shown(&first.body).len(), 50);
    let at = first
        .body
        .find(r#"rel="next" href=""#)
        .expect("a next link");
    let rest = &first.body[at + r#"rel="next" href=""#.len()..];
    let next = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
    let second = app.get_page(&next, Some(&token)).await;
    assert_eq!(second.status, 200);
    let page2 = shown(&second.body);
    assert_eq!(page2.len(), 3);
    assert!(page2.iter().all(|id| !shown(&first.body).contains(id)));
    assert!(!second.body.contains(r#"rel="next""#));

    // No worker runs, so every payment is still PENDING.
    let pending = app
        .get_page("/dashboard/payments?status=PENDING", Some(&token))
        .await;
    assert_eq!(shown(&pending.body).len(), 50);
    let completed = app
        .get_page("/dashboard/payments?status=COMPLETED", Some(&token))
        .await;
    assert!(completed.body.contains("No payments here."));
    let bad = app
        .get_page("/dashboard/payments?status=NOPE", Some(&token))
        .await;
    assert_eq!(bad.status, 400);
    let bad = app
        .get_page("/dashboard/payments?after=garbage", Some(&token))
        .await;
    assert_eq!(bad.status, 400);

    let found = app
        .get_page(&format!("/dashboard/payments?q={}", ids[7]), Some(&token))
        .await;
    assert_eq!(found.status, 303);
    assert_eq!(
        found.location.as_deref(),
        Some(format!("/dashboard/payments/{}", ids[7]).as_str())
    );
    let not_found = app
        .get_page("/dashboard/payments?q=%3Cb%3Epay_none", Some(&token))
        .await;
    assert_eq!(not_found.status, 200);
    assert!(
        not_found
            .body
            .contains("No payment has the id “&lt;b&gt;pay_none”.")
    );
}

#[tokio::test]
async fn actions_need_the_session_csrf_token_and_a_same_site_request() {
    let app = spawn(|_| {}).await;
    let token = app.sign_in().await;
    let csrf = app.csrf(&token).await;
    for (given, headers) in [
        ("", vec![]),
        ("0000", vec![]),
        (csrf.as_str(), vec![("sec-fetch-site", "cross-site")]),
    ] {
        let fields = [("csrf", given), ("pair", "USD-EUR"), ("rate", "0.91")];
        let page = app
            .post_form("/dashboard/rates", Some(&token), &fields, &headers)
            .await;
        assert_eq!(page.status, 403, "csrf {given:?} {headers:?}");
        assert!(page.body.contains("reload the page"));
    }
    // A CSRF token of another session does not do either.
    let other = app.sign_in().await;
    let other_csrf = app.csrf(&other).await;
    assert_ne!(other_csrf, csrf);
    let page = app
        .post_form(
            "/dashboard/jobs/x/redrive",
            Some(&token),
            &[("csrf", &other_csrf)],
            &[],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(
        app.admin_get("/v1/admin/rates").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn rates_can_be_pinned_and_unpinned_from_the_dashboard() {
    let app = spawn(|_| {}).await;
    let token = app.sign_in().await;
    let csrf = app.csrf(&token).await;
    let page = app
        .post_form(
            "/dashboard/rates",
            Some(&token),
            &[("csrf", &csrf), ("pair", "USD-EUR"), ("rate", "0.91")],
            &[],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.unwrap();
    assert_eq!(location, "/dashboard/rates?done=pinned&on=USD-EUR");
    let rates = app.get_page(&location, Some(&token)).await;
    assert!(rates.body.contains("Rate pinned"));
    assert!(
        rates
            .body
            .contains(r#"action="/dashboard/rates/USD/EUR/unpin""#)
    );
    let pins = app.admin_get("/v1/admin/rates").await;
    assert_eq!(pins["data"][0]["rate"], json!(0.91));

    for (pair, rate) in [
        ("USD-EUR", "-1"),
        ("USD-EUR", "0.123456789"),
        ("XXX-EUR", "1"),
    ] {
        let bad = app
            .post_form(
                "/dashboard/rates",
                Some(&token),
                &[("csrf", &csrf), ("pair", pair), ("rate", rate)],
                &[],
            )
            .await;
        assert_eq!(bad.status, 400, "{pair} {rate}");
        assert!(bad.body.contains(r#"class="notice bad""#));
    }

    let page = app
        .post_form(
            "/dashboard/rates/USD/EUR/unpin",
            Some(&token),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(page.status, 303);
    assert!(
        app.admin_get("/v1/admin/rates").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let again = app
        .post_form(
            "/dashboard/rates/USD/EUR/unpin",
            Some(&token),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(again.status, 404);

    // The audit log names the dashboard.
    let overview = app.get_page("/dashboard", Some(&token)).await;
    assert!(
        overview
            .body
            .contains("<td>dashboard</td><td>rate.unpin</td>")
    );
}

#[tokio::test]
async fn a_dead_step_can_be_retried_and_redriven_from_the_dashboard() {
    // The offramp is a closed port: the first offramp attempt fails and, with one attempt
    // allowed, the payment's step job goes dead.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn(|cfg| {
        cfg.job_max_attempts = 1;
        cfg.job_retry_for = corridor::config::Dur(Duration::ZERO);
        cfg.offramp_url = Some(format!("http://127.0.0.1:{port}/offramp"));
        cfg.provider_timeout = corridor::config::Dur(Duration::from_secs(2));
    })
    .await;
    let id = app.pay("acct_src", json!({})).await;
    let job_id = wait_for_dead_job(&app, &id).await;
    let token = app.sign_in().await;

    let timeline = app
        .get_page(&format!("/dashboard/payments/{id}"), Some(&token))
        .await;
    assert!(timeline.body.contains("Retry current step"));
    assert!(
        timeline
            .body
            .contains(r#"<span class="badge s-dead">dead</span>"#)
    );
    let csrf = csrf_in(&timeline.body).unwrap();

    let dead = app.get_page("/dashboard/jobs", Some(&token)).await;
    assert!(dead.body.contains(&format!(r#"data-job="{job_id}""#)));
    let page = app
        .post_form(
            &format!("/dashboard/jobs/{job_id}/redrive"),
            Some(&token),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(page.status, 303);
    let location = page.location.unwrap();
    assert_eq!(
        location,
        format!("/dashboard/jobs?done=redriven&on={job_id}")
    );
    let shown = app.get_page(&location, Some(&token)).await;
    assert!(
        shown
            .body
            .contains(&format!("Job {job_id} is back in the queue."))
    );

    // It fails again (the offramp is still down); then retry the step from the timeline.
    wait_for_dead_job(&app, &id).await;
    let page = app
        .post_form(
            &format!("/dashboard/payments/{id}/retry"),
            Some(&token),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(page.status, 303);
    let shown = app.get_page(&page.location.unwrap(), Some(&token)).await;
    assert!(shown.body.contains("Current step queued"));

    // Redriving a job that is not dead is refused with a page, not an error blob.
    let unknown = app
        .post_form(
            "/dashboard/jobs/no-such-job/redrive",
            Some(&token),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("Job not found"));

    let overview = app.get_page("/dashboard", Some(&token)).await;
    assert!(
        overview
            .body
            .contains("<td>dashboard</td><td>job.redrive</td>")
    );
    assert!(
        overview
            .body
            .contains("<td>dashboard</td><td>payment.retry</td>")
    );
}

/// Waits until the payment's step job is dead; returns its id.
async fn wait_for_dead_job(app: &crate::helpers::TestApp, payment_id: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dead = app.admin_get("/v1/admin/jobs/dead").await;
        let found = dead["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["payment_id"] == payment_id)
            .map(|j| j["id"].as_str().unwrap().to_owned());
        if let Some(id) = found {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead job for {payment_id}: {dead}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
