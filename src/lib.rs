//! Corridor: a cross-border payment orchestrator on stablecoin rails.
//!
//! See `ARCHITECTURE.md` for the map. Layers depend downwards only:
//! `api` → `engine` → `providers` → `store` → `domain`.

pub mod api;
pub mod app;
pub mod bench;
pub mod clock;
pub mod config;
pub mod domain;
pub mod egress;
pub mod engine;
pub mod ops;
pub mod providers;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod views;
