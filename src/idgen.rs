//! Where fresh identifiers come from.
//!
//! Serving, every id is a UUIDv7 from the wall clock and the operating system's randomness.
//! Under `corridor simulate` they come from the simulated clock and the run's seed instead
//! ([`deterministic`]): ids order lists, claims and keyset pages, so a run can only replay
//! exactly — same seed, same ids, same digest — if its ids replay too. The generator is
//! process-wide because ids are minted wherever a row is built, the SQLite writer thread
//! included; one simulation holds it at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::SharedClock;

/// Whether a seeded generator is installed (checked before taking the lock, so serving
/// never contends on it).
static SEEDED: AtomicBool = AtomicBool::new(false);
static GENERATOR: Mutex<Option<Seeded>> = Mutex::new(None);
/// Held by a simulation for its whole run: two runs in one process would share the
/// generator and neither would replay.
static RUN: Mutex<()> = Mutex::new(());

struct Seeded {
    rng: StdRng,
    clock: SharedClock,
}

impl Seeded {
    fn v7(&mut self) -> uuid::Uuid {
        let ms = u64::try_from(self.clock.now().millis()).unwrap_or(0);
        let bytes: [u8; 10] = self.rng.random();
        uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
    }

    fn v4(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }
}

fn generator() -> MutexGuard<'static, Option<Seeded>> {
    GENERATOR.lock().unwrap_or_else(|p| p.into_inner())
}

/// A time-ordered UUID (v7).
pub fn v7() -> uuid::Uuid {
    if SEEDED.load(Ordering::Acquire)
        && let Some(s) = generator().as_mut()
    {
        return s.v7();
    }
    uuid::Uuid::now_v7()
}

/// A random UUID (v4), for ids nothing is ordered by.
pub fn v4() -> uuid::Uuid {
    if SEEDED.load(Ordering::Acquire)
        && let Some(s) = generator().as_mut()
    {
        return s.v4();
    }
    uuid::Uuid::new_v4()
}

/// While the returned guard lives, ids come from `clock` and `seed` (and other
/// simulations in this process wait for it to drop).
pub fn deterministic(seed: u64, clock: SharedClock) -> Deterministic {
    let run = RUN.lock().unwrap_or_else(|p| p.into_inner());
    *generator() = Some(Seeded {
        rng: StdRng::seed_from_u64(seed),
        clock,
    });
    SEEDED.store(true, Ordering::Release);
    Deterministic { _run: run }
}

/// Keeps ids deterministic; dropping it returns to the wall clock and the OS.
pub struct Deterministic {
    _run: MutexGuard<'static, ()>,
}

impl Drop for Deterministic {
    fn drop(&mut self) {
        SEEDED.store(false, Ordering::Release);
        *generator() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::domain::Timestamp;

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> Timestamp {
            Timestamp(1_700_000_000_000)
        }
    }

    fn seeded(seed: u64) -> Seeded {
        Seeded {
            rng: StdRng::seed_from_u64(seed),
            clock: std::sync::Arc::new(Fixed),
        }
    }

    #[test]
    fn a_seed_replays_the_same_ids_and_carries_the_clock_time() {
        let draw = |seed| {
            let mut s = seeded(seed);
            (s.v7(), s.v7(), s.v4())
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert_ne!(a.0, a.1);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.2.get_version_num(), 4);
        let (secs, _) = a.0.get_timestamp().expect("v7 has a time").to_unix();
        assert_eq!(secs, 1_700_000_000);
    }
}
