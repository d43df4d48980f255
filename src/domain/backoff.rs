//! Delays between attempts: settlement polls back off geometrically, failed jobs back off
//! exponentially with jitter so that a provider outage does not end in a synchronised storm.

/// Longest wait between two settlement polls.
pub const MAX_POLL_MS: i64 = 60_000;
/// Longest wait before retrying a failed job.
pub const MAX_RETRY_MS: i64 = 300_000;

/// Delay before settlement poll number `polls` (0 = the first poll after initiation).
pub fn poll_delay_ms(base_ms: i64, polls: u32) -> i64 {
    let cap = MAX_POLL_MS.max(base_ms);
    let mut d = base_ms.max(1);
    for _ in 0..polls.min(20) {
        d = d.saturating_mul(3) / 2;
        if d >= cap {
            break;
        }
    }
    d.clamp(base_ms.max(1), cap)
}

/// Delay before retrying a job that failed `attempts` times, scaled by `jitter_permille` in
/// `[800, 1200]` (drawn by the caller, so this stays deterministic).
pub fn retry_delay_ms(attempts: i64, jitter_permille: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    let base = (1_000i64 << exp.min(19)).min(MAX_RETRY_MS);
    base * jitter_permille.clamp(800, 1_200) / 1_000
}

/// How long a job has been backing off after failing `attempts` times (the delays before
/// each retry, without jitter): what the retry window is measured against, so it needs no
/// record of when the first failure was.
pub fn retried_for_ms(attempts: i64) -> i64 {
    (1..=attempts.clamp(0, 100_000))
        .fold(0i64, |sum, a| sum.saturating_add(retry_delay_ms(a, 1_000)))
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
        assert_eq!(retry_delay_ms(1, 1_000), 1_000);
        assert_eq!(retry_delay_ms(2, 1_000), 2_000);
        assert_eq!(retry_delay_ms(4, 1_000), 8_000);
        assert_eq!(retry_delay_ms(30, 1_000), MAX_RETRY_MS);
        assert_eq!(retry_delay_ms(1, 800), 800);
        assert_eq!(retry_delay_ms(1, 5_000), 1_200);
    }

    #[test]
    fn the_retry_window_is_the_sum_of_the_delays() {
        assert_eq!(retried_for_ms(0), 0);
        assert_eq!(retried_for_ms(1), 1_000);
        assert_eq!(retried_for_ms(3), 7_000);
        // 1 + 2 + … + 256 s, then every 5 minutes: a day of retries is ~290 attempts.
        let day = 24 * 3_600 * 1_000;
        let n = (1..).find(|&a| retried_for_ms(a) >= day).unwrap();
        assert!((280..300).contains(&n), "{n}");
        assert_eq!(retried_for_ms(i64::MAX), retried_for_ms(100_000));
    }
}
