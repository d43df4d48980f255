//! Black-box tests: a real Corridor on port 0 over real HTTP, run twice — on a temporary
//! SQLite file and on a fresh PostgreSQL database per test (127.0.0.1:5432 by default,
//! `CORRIDOR_TEST_PG_URL` to change it). Without a reachable PostgreSQL the `postgres::`
//! tests fail, unless `CORRIDOR_TEST_PG=skip` is set, in which case they print why and pass.

// Each test file is compiled once per backend on purpose.
#![allow(clippy::duplicate_mod)]

mod helpers;

/// One copy of the whole suite bound to one backend.
macro_rules! suite {
    ($backend:expr) => {
        pub use crate::helpers::*;

        /// A fresh app on this suite's backend (`None`: backend skipped on purpose).
        pub async fn spawn_app() -> Option<TestApp> {
            crate::helpers::spawn_on($backend, |_| {}).await
        }

        /// Like [`spawn_app`], with the configuration adjusted first.
        pub async fn spawn_app_with(
            configure: impl FnOnce(&mut corridor::config::Config),
        ) -> Option<TestApp> {
            crate::helpers::spawn_on($backend, configure).await
        }

        #[path = "admin.rs"]
        mod admin;
        #[path = "auth.rs"]
        mod auth;
        #[path = "connections.rs"]
        mod connections;
        #[path = "corridors.rs"]
        mod corridors;
        #[path = "errors.rs"]
        mod errors;
        #[path = "health.rs"]
        mod health;
        #[path = "idempotency.rs"]
        mod idempotency;
        #[path = "ledger.rs"]
        mod ledger;
        #[path = "payments.rs"]
        mod payments;
        #[path = "provider_webhooks.rs"]
        mod provider_webhooks;
        #[path = "quotes.rs"]
        mod quotes;
        #[path = "state_machine.rs"]
        mod state_machine;
        #[path = "webhooks.rs"]
        mod webhooks;
    };
}

mod postgres;
mod sqlite;
