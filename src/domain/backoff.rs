//! Delays between attempts: settlement polls back off geometrically, failed jobs back off
//! exponentially with jitter so that a provider outage does not end in a synchronised storm.

/// Longest wait between two settlement polls.
pub const MAX_POLL_MS: i64 = 60_000;
/// Longest wait before retrying a failed job.
pub const MAX_RETRY_MS: i64 = 300_000;

/// Delay before settlement poll number `polls` (0 = the first poll after initiation).
pub fn poll_delay_ms(base_ms: i64, polls: u32) -> i64 {
    let mut d = base_ms.max(1) as f64;
    for _ in 0..polls.min(20) {
        d *= 1.5;
    }
    (d as i64).clamp(base_ms.max(1), MAX_POLL_MS.max(base_ms))
}

/// Delay before retrying a job that failed `attempts` times, scaled by `jitter` in
/// `[0.8, 1.2]` (drawn by the caller, so this stays deterministic).
pub fn retry_delay_ms(attempts: i64, jitter: f64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    let base = (1_000i64 << exp.min(19)).min(MAX_RETRY_MS);
    ((base as f64) * jitter.clamp(0.8, 1.2)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_and_cap() {
        assert_eq!(poll_delay_ms(5_000, 0), 5_000);
        assert_eq!(poll_delay_ms(5_000, 1), 7_500);
        assert!(poll_delay_ms(5_000, 2) > poll_delay_ms(5_000, 1));
        assert_eq!(poll_delay_ms(5_000, 50), MAX_POLL_MS);
        assert_eq!(poll_delay_ms(100, 0), 100);
    }

    #[test]
    fn retries_grow_exponentially_within_jitter() {
        assert_eq!(retry_delay_ms(1, 1.0), 1_000);
        assert_eq!(retry_delay_ms(2, 1.0), 2_000);
        assert_eq!(retry_delay_ms(4, 1.0), 8_000);
        assert_eq!(retry_delay_ms(30, 1.0), MAX_RETRY_MS);
        assert_eq!(retry_delay_ms(1, 0.8), 800);
        assert_eq!(retry_delay_ms(1, 5.0), 1_200);
    }
}
