//! The operator dashboard: HTTP tests against an in-process app (`pages.rs`) and a real
//! browser driving the `corridor` binary (`browser.rs`).

mod browser;
mod helpers;
mod pages;
#[path = "../support/serve.rs"]
mod support;
