//! Running the real `corridor serve` binary in process-level tests, and the outcomes those
//! tests expect of a payment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A started `corridor serve` process.
pub struct Served {
    /// The child process (the caller kills it).
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The demo merchant's key, printed only on a first start.
    pub merchant_key: Option<String>,
}

/// Starts `corridor serve` on a free loopback port with `env` set, and waits until it
/// prints its address.
pub fn serve(env: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corridor"));
    cmd.arg("serve")
        .env("CORRIDOR_LISTEN", "127.0.0.1:0")
        .env("CORRIDOR_RATE_LIMIT", "0")
        .env("CORRIDOR_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("corridor binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut merchant_key = None;
    let url = loop {
        let line = lines
            .next()
            .expect("corridor printed its address before exiting")
            .expect("stdout readable");
        if let Some(k) = line.trim().strip_prefix("demo merchant key:") {
            merchant_key = Some(k.trim().to_owned());
        }
        if let Some(addr) = line.strip_prefix("Corridor listening on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        url,
        merchant_key,
    }
}

/// The states a payment with this outcome passes through, in order.
pub fn expected_history(outcome: &str) -> &'static [&'static str] {
    match outcome {
        "COMPLETED" => &[
            "PENDING",
            "ONRAMP_PENDING",
            "ONRAMP_COMPLETE",
            "OFFRAMP_PENDING",
            "COMPLETED",
        ],
        "FAILED" => &["PENDING", "ONRAMP_PENDING", "FAILED"],
        _ => &[
            "PENDING",
            "ONRAMP_PENDING",
            "ONRAMP_COMPLETE",
            "OFFRAMP_PENDING",
            "REFUND_PENDING",
            "REFUNDED",
        ],
    }
}

/// The provider transfers (sorted by leg) a payment with this outcome made.
pub fn expected_legs(outcome: &str) -> &'static [&'static str] {
    match outcome {
        "COMPLETED" => &["offramp", "onramp"],
        "FAILED" => &["onramp"],
        _ => &["offramp", "onramp", "reversal"],
    }
}
