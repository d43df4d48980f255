//! Time as a dependency: the app is built with a [`Clock`], so tests can move time (quote
//! expiry, backoff, stuck detection) without sleeping, and a simulator can drive it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// Wall-clock time, with an adjustable offset so tests can jump ahead while time still flows.
#[derive(Debug, Default)]
pub struct SystemClock {
    offset_ms: AtomicI64,
}

impl SystemClock {
    /// Real time, no offset.
    pub fn new() -> Arc<SystemClock> {
        Arc::new(SystemClock::default())
    }

    /// Moves this clock forward by `ms` milliseconds from now on.
    pub fn advance_millis(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(real.saturating_add(self.offset_ms.load(Ordering::SeqCst)))
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;
