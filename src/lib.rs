//! Corridor: a cross-border payment orchestrator on stablecoin rails.
//!
//! See `ARCHITECTURE.md` for the map. Layers depend downwards only:
//! `api` → `engine` → `service` → `providers` → `store` → `domain`.

pub mod api;
pub mod app;
#[cfg(feature = "aws")]
pub mod aws;
pub mod bench;
pub mod clock;
pub mod config;
pub mod domain;
pub mod egress;
pub mod engine;
pub mod idgen;
pub mod keys;
pub mod providers;
pub mod server;
pub mod service;
pub mod signing;
pub mod simulation;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod views;
