//! Corridor: a cross-border payment orchestrator on stablecoin rails.
//!
//! See `ARCHITECTURE.md` for the map. Layers depend downwards only:
//! `api` → `engine` → `providers` → `store` → `domain`.

pub mod clock;
pub mod config;
pub mod domain;
pub mod store;
