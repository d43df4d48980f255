//! Black-box tests: a real Corridor on port 0 over real HTTP, on a real SQLite file.

mod auth;
mod corridors;
mod errors;
mod health;
mod helpers;
mod idempotency;
mod payments;
mod quotes;
mod state_machine;
