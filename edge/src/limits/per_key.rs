//! Counters per key with RAII guards: requests in flight and sessions per principal.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use super::lock::lock;

/// How many of something each key holds, with guards that give back on drop.
#[derive(Debug)]
pub struct PerKey<K: Hash + Eq> {
    pub(super) counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq> Default for PerKey<K> {
    fn default() -> Self {
        PerKey {
            counts: Arc::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> PerKey<K> {
    /// One more for `key`, unless it already holds `cap`.
    pub fn try_acquire(&self, key: &K, cap: usize) -> Option<KeyGuard<K>> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                counts.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(KeyGuard {
            counts: self.counts.clone(),
            key: key.clone(),
        })
    }

    /// One more for `key`, whatever it holds.
    pub fn acquire(&self, key: &K) -> KeyGuard<K> {
        *lock(&self.counts).entry(key.clone()).or_insert(0) += 1;
        KeyGuard {
            counts: self.counts.clone(),
            key: key.clone(),
        }
    }

    pub fn count(&self, key: &K) -> usize {
        lock(&self.counts).get(key).copied().unwrap_or(0)
    }
}

/// One unit held by a key of a [`PerKey`].
pub struct KeyGuard<K: Hash + Eq> {
    pub(super) counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Hash + Eq + std::fmt::Debug> std::fmt::Debug for KeyGuard<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyGuard").field(&self.key).finish()
    }
}

impl<K: Hash + Eq> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}
