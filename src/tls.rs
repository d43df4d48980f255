//! TLS set-up for outbound HTTPS (merchant webhooks, HTTP providers, the bench client).
//!
//! reqwest is built without a bundled crypto provider (ring builds lighter than aws-lc), so
//! the process must choose one before its first client is made.

/// Installs ring as the process-wide rustls provider; safe to call any number of times.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
