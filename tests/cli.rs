//! The `corridor` command's administrative subcommands, run as a user would.

use std::process::Command;

/// `merchant create` against a database that does not exist creates nothing: a key written
/// to a new, empty file would be one the running server has never heard of.
#[test]
fn merchant_create_never_creates_a_database_and_names_the_one_it_used() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("elsewhere.db");
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["merchant", "create", "--name", "acme", "--database-url"])
        .arg(format!("sqlite://{}", missing.display()))
        .env_remove("DATABASE_URL")
        .output()
        .expect("corridor runs");
    assert!(
        !out.status.success(),
        "merchant create succeeded on a missing database"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Corridor database at"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(
        !missing.exists(),
        "the command created {}",
        missing.display()
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("api_key"));
}

/// On the database a server started, `merchant create` prints a key that server accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_create_on_a_started_database_prints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("corridor.db").display());
    let mut cfg = corridor::config::Config::from_args(Vec::<String>::new()).unwrap();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database_url = url.clone();
    cfg.admin_key = Some("ck_admin_cli_test_0123456789abcdef".to_owned().into());
    let app = corridor::app::Application::start(cfg, corridor::clock::SystemClock::new(), 1)
        .await
        .expect("corridor starts");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_corridor"))
            .args([
                "merchant",
                "create",
                "--name",
                "acme",
                "--database-url",
                &url,
            ])
            .output()
            .expect("corridor runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "database: {}",
            dir.path().join("corridor.db").display()
        )),
        "{stdout}"
    );
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("api_key: "))
        .expect("a key is printed");
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/payments", app.addr()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop();
    app.wait().await;
}
