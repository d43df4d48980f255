//! Per-key rate limiting (`CORRIDOR_RATE_LIMIT`, `N/s` or `N/m`): a GCRA limiter (governor)
//! keyed by the SHA-256 of an API key that has already authenticated, one per process. A key
//! may burst up to `N` requests, then gets one more every `period / N`; a refused request
//! does not spend budget. Unauthenticated traffic never reaches the limiter, so its state
//! holds one small entry per real key (and stale entries are pruned now and then).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::error::{ApiError, Code};
use crate::config::RateLimit;

/// Stale entries (keys whose budget is full again) are dropped every this many checks.
const PRUNE_EVERY: u64 = 4096;

type Keyed<C> =
    RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The process's limiter: `None` inside when the limit is off (`0`).
pub struct Limiter<C: Clock = DefaultClock> {
    keyed: Option<Keyed<C>>,
    clock: C,
    checks: AtomicU64,
}

impl Limiter<DefaultClock> {
    /// A limiter for `limit` on the monotonic clock.
    pub fn new(limit: RateLimit) -> Self {
        Limiter::with_clock(limit, DefaultClock::default())
    }
}

/// The quota for `limit`: bursts of `N`, one request back every `period / N`; `None` = no limit.
fn quota(limit: RateLimit) -> Option<Quota> {
    let burst = NonZeroU32::new(limit.requests)?;
    let every = (limit.per / limit.requests).max(Duration::from_nanos(1));
    Some(Quota::with_period(every)?.allow_burst(burst))
}

/// Whole seconds a client should wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl<C: Clock + Clone> Limiter<C> {
    /// A limiter for `limit` reading time from `clock` (tests use a fake one).
    pub fn with_clock(limit: RateLimit, clock: C) -> Self {
        Limiter {
            keyed: quota(limit).map(|q| RateLimiter::hashmap_with_clock(q, clock.clone())),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Spends one request of `key_hash`'s budget, or says how many whole seconds (≥ 1) to
    /// wait when it is used up. A refusal spends nothing.
    pub fn check(&self, key_hash: &str) -> Result<(), u64> {
        let Some(keyed) = &self.keyed else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            keyed.retain_recent();
            keyed.shrink_to_fit();
        }
        keyed
            .check_key(&key_hash.to_owned())
            .map_err(|not_until| retry_after_secs(not_until.wait_time_from(self.clock.now())))
    }

    /// Keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.keyed.as_ref().map_or(0, |k| k.len())
    }
}

/// `429 RATE_LIMITED` with `Retry-After: secs`.
pub fn too_many_requests(secs: u64) -> Response {
    refused(
        format!("rate limit exceeded for this API key, retry in {secs} s"),
        secs,
    )
}

/// `429 RATE_LIMITED` saying `message`, with `Retry-After: secs`.
pub fn refused(message: String, secs: u64) -> Response {
    let mut resp = ApiError::new(Code::RateLimited, message).into_response();
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    resp
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(requests: u32, per_secs: u64) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit {
            requests,
            per: Duration::from_secs(per_secs),
        };
        (Limiter::with_clock(limit, clock.clone()), clock)
    }

    #[test]
    fn a_key_bursts_up_to_n_then_waits_for_one_request_s_worth() {
        let (l, clock) = limiter(3, 60);
        for _ in 0..3 {
            assert_eq!(l.check("a"), Ok(()));
        }
        // 3 per minute: one request comes back every 20 s.
        assert_eq!(l.check("a"), Err(20));
        clock.advance(Duration::from_secs(5));
        assert_eq!(l.check("a"), Err(15));
        clock.advance(Duration::from_millis(14_500));
        assert_eq!(l.check("a"), Err(1), "0.5 s left rounds up to 1");
        clock.advance(Duration::from_millis(500));
        assert_eq!(l.check("a"), Ok(()));
        assert_eq!(l.check("a"), Err(20));
    }

    #[test]
    fn refused_requests_do_not_spend_budget() {
        let (l, clock) = limiter(2, 1);
        assert_eq!(l.check("k"), Ok(()));
        assert_eq!(l.check("k"), Ok(()));
        for _ in 0..1000 {
            assert_eq!(l.check("k"), Err(1));
        }
        // Half a second later one request (of 2/s) is back, despite the hammering.
        clock.advance(Duration::from_millis(500));
        assert_eq!(l.check("k"), Ok(()));
        // After a full idle period the whole burst is back, and no more.
        clock.advance(Duration::from_secs(5));
        assert_eq!(l.check("k"), Ok(()));
        assert_eq!(l.check("k"), Ok(()));
        assert!(l.check("k").is_err());
    }

    #[test]
    fn keys_have_separate_budgets() {
        let (l, _clock) = limiter(100, 1);
        for _ in 0..100 {
            assert_eq!(l.check("first"), Ok(()));
        }
        assert_eq!(l.check("first"), Err(1), "10 ms rounds up to 1 s");
        for _ in 0..100 {
            assert_eq!(l.check("second"), Ok(()));
        }
        assert_eq!(l.tracked_keys(), 2);
    }

    #[test]
    fn zero_means_no_limit_and_no_state() {
        let (l, _clock) = limiter(0, 1);
        for _ in 0..10_000 {
            assert_eq!(l.check("k"), Ok(()));
        }
        assert_eq!(l.tracked_keys(), 0);
    }

    #[test]
    fn idle_keys_are_pruned() {
        let (l, clock) = limiter(1, 1);
        for i in 0..PRUNE_EVERY - 1 {
            assert_eq!(l.check(&format!("key{i}")), Ok(()));
        }
        clock.advance(Duration::from_secs(2));
        assert_eq!(l.check("last"), Ok(()));
        assert!(l.tracked_keys() <= 1, "{} keys kept", l.tracked_keys());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }

    #[test]
    fn the_refusal_is_a_429_with_retry_after() {
        let resp = too_many_requests(7);
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()[RETRY_AFTER], "7");
    }
}
