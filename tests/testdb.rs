//! A fresh PostgreSQL database per test, dropped when the test ends.
//!
//! The server is `CORRIDOR_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! trust auth). An unreachable server fails the test, unless `CORRIDOR_TEST_PG=skip` is set:
//! then [`PgDatabase::create`] prints why and returns `None`.

#![allow(dead_code)]

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The maintenance connection string.
pub fn admin_url() -> String {
    std::env::var("CORRIDOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether PostgreSQL tests were explicitly switched off.
pub fn skipped() -> bool {
    std::env::var("CORRIDOR_TEST_PG").is_ok_and(|v| v == "skip")
}

/// A database that exists until this value is dropped.
pub struct PgDatabase {
    /// Connection string of the new database.
    pub url: String,
    name: String,
}

impl PgDatabase {
    /// Creates `corridor_t_<random>`; `None` only when PostgreSQL tests are skipped.
    pub async fn create() -> Option<PgDatabase> {
        if skipped() {
            eprintln!("skipped: CORRIDOR_TEST_PG=skip, PostgreSQL tests not run");
            return None;
        }
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {admin} is unreachable ({e}); start it or set CORRIDOR_TEST_PG=skip"
            )
        });
        let name = format!("corridor_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin);
        Some(PgDatabase {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
