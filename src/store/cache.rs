//! Read-through caches of rows read on every request — API keys and rate pins — so a request
//! does not pay a database round trip for data that changes a few times a day.
//!
//! Every write to them goes through this store's units of work, which clear the cache when
//! they commit, so a change made through this process is seen at once. A change made by
//! another process (PostgreSQL scale-out) is seen within [`TTL`], when the entry expires.
//! Only positive answers are kept for keys (unknown keys are not cached: a stream of made-up
//! keys cannot grow it), and the cache is cleared whole when it reaches [`CAPACITY`].
//!
//! Besides, the payment counts of the terminal states, for callers that accept them a little
//! old (`payments::count_by_state_recent`): counting them walks every finished payment; and
//! the ids of the ledger's accounts ([`AccountIds`]), which never change once committed.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an entry is trusted without a local write clearing it.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most.
const CAPACITY: usize = 100_000;

/// A small TTL cache.
#[derive(Debug)]
pub(super) struct Cache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    /// Bumped by every clear: a read that began before a clear must not store its
    /// (possibly stale) answer after it.
    generation: AtomicU64,
}

impl<K: Eq + Hash, V: Clone> Default for Cache<K, V> {
    fn default() -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    /// A fresh entry for `key`, if any.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(v, _)| v.clone())
    }

    /// The generation to pass to [`Cache::put`], taken before reading the database.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Remembers `value` for `key`, read from the database at `generation` — unless a write
    /// cleared the cache since (the value may predate it).
    pub(super) fn put(&self, generation: u64, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Forgets everything (a write changed what it holds).
    pub(super) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

/// Ledger account name → id, for the accounts known to be committed: a transfer stores its
/// accounts' ids, and every step that writes transfers would otherwise look them up.
///
/// An account is never renamed or deleted, so an entry never goes stale. Only ids learned by
/// a unit of work that then committed are put here: an id read or assigned inside a unit that
/// was undone may belong to no account (or, once reassigned, to another).
#[derive(Debug, Default)]
pub(super) struct AccountIds(Mutex<HashMap<String, i64>>);

impl AccountIds {
    /// The id of the committed account `name`, if known.
    pub(super) fn get(&self, name: &str) -> Option<i64> {
        let ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.get(name).copied()
    }

    /// Remembers the accounts a unit that committed used.
    pub(super) fn learn(&self, learned: impl IntoIterator<Item = (String, i64)>) {
        let mut ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (name, id) in learned {
            if ids.len() >= CAPACITY {
                ids.clear();
            }
            ids.insert(name, id);
        }
    }

    /// Forgets every id (a restarted process starts without them).
    pub(super) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Payments per state.
type StateCounts = Vec<(crate::domain::PaymentState, i64)>;

/// The caches of one store.
#[derive(Debug, Default)]
pub(super) struct Caches {
    /// Payments per terminal state, and when they were counted.
    terminal: Mutex<Option<(StateCounts, Instant)>>,
    /// Key hash → merchant id.
    pub(super) keys: Cache<String, String>,
    /// Direction → pin (or none).
    pub(super) pins:
        Cache<(crate::domain::Currency, crate::domain::Currency), Option<super::ops::RatePin>>,
    /// Ledger account name → id.
    pub(super) accounts: AccountIds,
}

impl Caches {
    /// The terminal states' counts, if counted less than `age` ago.
    pub(super) fn terminal_counts(&self, age: Duration) -> Option<StateCounts> {
        let t = self.terminal.lock().unwrap_or_else(|p| p.into_inner());
        t.as_ref()
            .filter(|(_, at)| at.elapsed() < age)
            .map(|(counts, _)| counts.clone())
    }

    /// Remembers the terminal states' counts, counted now.
    pub(super) fn remember_terminal_counts(&self, counts: StateCounts) {
        let mut t = self.terminal.lock().unwrap_or_else(|p| p.into_inner());
        *t = Some((counts, Instant::now()));
    }
}
