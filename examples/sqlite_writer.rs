//! How fast can one SQLite writer commit payment creations, by driver?
//!
//! The group-commit writer (`src/store/group.rs`) is the ceiling of every SQLite figure in
//! `scripts/bench`: one thread applies every unit. This measures that ceiling alone — no HTTP,
//! no JSON, no tokio tasks waiting on answers — on Corridor's real schema (its migrations),
//! with the write set of one `POST /v1/payments` without a quote: the quote row, its
//! single-use mark, the payment, its first history row and its first job, each unit in its own
//! savepoint, many units per durable commit (`synchronous = FULL`, WAL).
//!
//! Three drivers run the same statements:
//! - `any`: sqlx's `AnyConnection`, what the store uses today;
//! - `sqlx-sqlite`: sqlx's native SQLite connection (no `Any` conversion);
//! - `rusqlite`: a plain connection on this thread with cached prepared statements.
//!
//! sqlx runs SQLite on a worker thread and hands every statement to it and back; rusqlite
//! calls SQLite directly. The difference is the price of those hand-offs.
//!
//! ```text
//! cargo run --release --example sqlite_writer -- [UNITS] [BATCH] [EXISTING]
//! ```
//! `EXISTING` payments (rusqlite, default 0) are written first, to show whether the cost of a
//! unit stays flat as the table grows; `SQLITE_CACHE_KIB` sets rusqlite's page cache.

use std::time::Instant;

use sqlx::{Arguments, Connection, Executor};

#[derive(Clone)]
enum V {
    T(String),
    I(i64),
    N,
}

/// The statements of one payment creation (payment number `n`, at `now` ms).
fn creation(n: u64, now: i64) -> Vec<(&'static str, Vec<V>)> {
    use V::*;
    // Time-ordered ids, as the service makes them (UUIDv7).
    let pay = format!("pay_{}", uuid::Uuid::now_v7());
    let quote = format!("quote_{}", uuid::Uuid::now_v7());
    let job = uuid::Uuid::now_v7().to_string();
    let merchant = T("mer_bench".into());
    vec![
        (
            "INSERT INTO quotes (quote_id, merchant_id, from_currency, to_currency, amount, platform_fee, \
             onramp_fee, offramp_fee, total_fees, mid_rate, exchange_rate, payout, created_at, expires_at) \
             VALUES (?1, ?2, 'USD', 'EUR', 100000, 500, 250, 250, 1000, '0.92', '0.9154', 90625, ?3, ?4)",
            vec![T(quote.clone()), merchant.clone(), I(now), I(now + 60_000)],
        ),
        (
            "UPDATE quotes SET payment_id = ?1 WHERE quote_id = ?2 AND payment_id IS NULL",
            vec![T(pay.clone()), T(quote.clone())],
        ),
        (
            "INSERT INTO payments (payment_id, merchant_id, quote_id, state, version, amount, currency, \
             payout_amount, payout_currency, exchange_rate, mid_rate, platform_fee, onramp_fee, offramp_fee, \
             total_fees, source_account, destination_account, metadata, created_at, updated_at, state_since) \
             VALUES (?1, ?2, ?3, 'PENDING', 1, 100000, 'USD', 90625, 'EUR', '0.9154', '0.92', 500, 250, 250, \
             1000, ?4, 'bench-dst', '{}', ?5, ?5, ?5)",
            vec![
                T(pay.clone()),
                merchant,
                T(quote),
                T(format!("bench-src-{n}")),
                I(now),
            ],
        ),
        (
            "INSERT INTO payment_history (payment_id, seq, from_state, to_state, at, reason) \
             VALUES (?1, 1, ?2, 'PENDING', ?3, 'created')",
            vec![T(pay.clone()), N, I(now)],
        ),
        (
            "INSERT INTO jobs (id, kind, payment_id, payload, state, run_at, attempts, max_attempts, created_at) \
             VALUES (?1, 'payment.step', ?2, '{\"state\":\"PENDING\",\"polls\":0}', 'ready', ?3, 0, 8, ?3)",
            vec![T(job), T(pay), I(now)],
        ),
    ]
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() * 1000
}

/// A fresh database file with Corridor's schema.
async fn fresh(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(format!("{name}.db"));
    let url = format!("sqlite://{}", path.display());
    let store = corridor::store::Store::connect(&url, Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    drop(store);
    path.display().to_string()
}

const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

fn report(driver: &str, units: u64, batch: usize, existing: u64, secs: f64, statements: usize) {
    println!(
        "{driver:<12} {:>9.0} units/s  {:>6.1} µs/unit  ({units} units, batch {batch}, {statements} statements + savepoint each, {existing} payments before)",
        units as f64 / secs,
        secs * 1e6 / units as f64,
    );
}

/// The same loop for each sqlx connection type (their argument types differ).
macro_rules! run_sqlx {
    ($conn:expr, $units:expr, $batch:expr, $args:ty) => {{
        let mut conn = $conn;
        for p in PRAGMAS.split(';').filter(|s| !s.trim().is_empty()) {
            conn.execute(p).await.expect("pragma");
        }
        let start = Instant::now();
        let mut n = 0;
        while n < $units {
            conn.execute("BEGIN").await.expect("begin");
            let now = now_ms();
            for _ in 0..$batch.min(($units - n) as usize) {
                conn.execute("SAVEPOINT unit").await.expect("savepoint");
                for (sql, values) in creation(n, now) {
                    let mut args = <$args>::default();
                    for v in values {
                        match v {
                            V::T(s) => args.add(s).expect("bind"),
                            V::I(i) => args.add(i).expect("bind"),
                            V::N => args.add(None::<String>).expect("bind"),
                        }
                    }
                    conn.execute(sqlx::query_with(sql, args))
                        .await
                        .expect("statement");
                }
                conn.execute("RELEASE unit").await.expect("release");
                n += 1;
            }
            conn.execute("COMMIT").await.expect("commit");
        }
        start.elapsed().as_secs_f64()
    }};
}

fn run_rusqlite(conn: &rusqlite::Connection, from: u64, units: u64, batch: usize) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while n < units {
        conn.execute_batch("BEGIN").expect("begin");
        let now = now_ms();
        for _ in 0..batch.min((units - n) as usize) {
            conn.prepare_cached("SAVEPOINT unit")
                .and_then(|mut s| s.execute([]))
                .expect("savepoint");
            for (sql, values) in creation(from + n, now) {
                let mut stmt = conn.prepare_cached(sql).expect("prepare");
                let values = values.into_iter().map(|v| match v {
                    V::T(s) => rusqlite::types::Value::Text(s),
                    V::I(i) => rusqlite::types::Value::Integer(i),
                    V::N => rusqlite::types::Value::Null,
                });
                stmt.execute(rusqlite::params_from_iter(values))
                    .expect("statement");
            }
            conn.prepare_cached("RELEASE unit")
                .and_then(|mut s| s.execute([]))
                .expect("release");
            n += 1;
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let units = arg(1, 20_000);
    let batch = arg(2, 64) as usize;
    let existing = arg(3, 0);
    let dir = tempfile::tempdir().expect("temp dir");
    let statements = creation(0, 0).len();

    sqlx::any::install_default_drivers();
    let path = fresh(dir.path(), "any").await;
    let conn = sqlx::AnyConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("open");
    let secs = run_sqlx!(conn, units, batch, sqlx::any::AnyArguments);
    report("any", units, batch, 0, secs, statements);

    let path = fresh(dir.path(), "native").await;
    let conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("open");
    let secs = run_sqlx!(conn, units, batch, sqlx::sqlite::SqliteArguments);
    report("sqlx-sqlite", units, batch, 0, secs, statements);

    let path = fresh(dir.path(), "rusqlite").await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(PRAGMAS).expect("pragmas");
    // SQLITE_CACHE_KIB: the page cache (SQLite's default is 2 MiB), to see whether a bigger
    // one keeps the cost flat as the tables grow.
    if let Ok(kib) = std::env::var("SQLITE_CACHE_KIB") {
        let kib: i64 = kib.parse().expect("a number of KiB");
        conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))
            .expect("cache size");
    }
    let secs = run_rusqlite(&conn, 0, units, batch);
    report("rusqlite", units, batch, 0, secs, statements);
    if existing > 0 {
        // Fill to `existing` payments (in big batches: only the measurement after counts).
        run_rusqlite(&conn, units, existing.saturating_sub(units), 4096);
        let secs = run_rusqlite(&conn, existing, units, batch);
        report("rusqlite", units, batch, existing, secs, statements);
    }
}
