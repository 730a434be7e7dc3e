//! [`TextCache`]: a bounded LRU of text embeddings, shareable between encoders.
//!
//! The key is (model fingerprint, exact text), so one cache can serve several models without ever
//! returning a vector of the wrong embedding space. Values are `Arc<[f32]>`: a hit returns the very vector
//! stored (bit-identical), without copying.
//!
//! Invariants: `len() <= capacity()` after every call; a capacity of 0 stores nothing; recency is a
//! strictly increasing tick, so eviction order is exact LRU (O(log n) per operation).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::manifest::Fingerprint;

/// Default number of cached texts (512-d vectors: about 8 MiB).
pub const DEFAULT_CAPACITY: usize = 4096;

type Key = (Fingerprint, String);

#[derive(Default)]
struct Inner {
    map: HashMap<Key, (Arc<[f32]>, u64)>,
    by_age: BTreeMap<u64, Key>,
    tick: u64,
}

/// Cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found a vector.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries now held.
    pub len: usize,
    /// Entries at most.
    pub capacity: usize,
}

/// A bounded, thread-safe LRU of text embeddings keyed by (fingerprint, text).
pub struct TextCache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for TextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCache").field("stats", &self.stats()).finish()
    }
}

impl TextCache {
    /// A cache holding at most `capacity` texts (0 disables caching).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        TextCache { inner: Mutex::new(Inner::default()), capacity, hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// The vector of `text` under `model`, refreshing its recency.
    pub fn get(&self, model: Fingerprint, text: &str) -> Option<Arc<[f32]>> {
        let found = self.inner.lock().ok().and_then(|mut g| {
            let inner = &mut *g;
            inner.tick += 1;
            let tick = inner.tick;
            let key = (model, text.to_string());
            let (v, age) = inner.map.get_mut(&key)?;
            let old = std::mem::replace(age, tick);
            let v = Arc::clone(v);
            if let Some(k) = inner.by_age.remove(&old) {
                inner.by_age.insert(tick, k);
            }
            Some(v)
        });
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores the vector of `text` under `model`, evicting the least recently used entries beyond capacity.
    pub fn insert(&self, model: Fingerprint, text: &str, vector: Arc<[f32]>) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut g) = self.inner.lock() else { return };
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let key = (model, text.to_string());
        if let Some((_, old)) = inner.map.insert(key.clone(), (vector, tick)) {
            inner.by_age.remove(&old);
        }
        inner.by_age.insert(tick, key);
        while inner.map.len() > self.capacity {
            let Some((_, oldest)) = inner.by_age.pop_first() else { break };
            inner.map.remove(&oldest);
        }
    }

    /// Drops every entry (counters are kept).
    pub fn clear(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.map.clear();
            g.by_age.clear();
        }
    }

    /// Entries held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.map.len())
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most entries held.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hit and miss counters and size.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: self.len(),
            capacity: self.capacity,
        }
    }
}

impl Default for TextCache {
    fn default() -> Self {
        TextCache::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f32) -> Arc<[f32]> {
        Arc::from(vec![x, 0.0])
    }

    #[test]
    fn lru_order_and_model_separation() {
        let (a, b) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        let c = TextCache::new(2);
        c.insert(a, "x", v(1.0));
        c.insert(a, "y", v(2.0));
        assert_eq!(c.get(a, "x").unwrap()[0].to_bits(), 1.0f32.to_bits()); // x is now the most recent
        c.insert(a, "z", v(3.0)); // evicts y
        assert!(c.get(a, "y").is_none());
        assert!(c.get(a, "x").is_some());
        assert!(c.get(b, "x").is_none(), "another model never sees a's vectors");
        assert_eq!(c.len(), 2);
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (2, 2));
        c.insert(a, "x", v(9.0)); // replace keeps the bound
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(a, "x").unwrap()[0].to_bits(), 9.0f32.to_bits());
    }

    #[test]
    fn model_against_a_vec_lru() {
        // Compare with a trivial model: a Vec ordered by recency.
        let f = Fingerprint([0; 32]);
        let cache = TextCache::new(5);
        let mut model: Vec<(String, f32)> = Vec::new();
        let mut seed = 12345u64;
        for step in 0..2000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let key = format!("k{}", (seed >> 33) % 9);
            if (seed >> 20).is_multiple_of(3) {
                let val = step as f32;
                cache.insert(f, &key, v(val));
                model.retain(|(k, _)| *k != key);
                model.push((key, val));
                if model.len() > 5 {
                    model.remove(0);
                }
            } else {
                let got = cache.get(f, &key).map(|x| x[0]);
                let pos = model.iter().position(|(k, _)| *k == key);
                let want = pos.map(|p| model[p].1);
                if let Some(p) = pos {
                    let e = model.remove(p);
                    model.push(e);
                }
                assert_eq!(got, want, "step {step} key {key}");
            }
        }
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let c = TextCache::new(0);
        c.insert(Fingerprint([0; 32]), "x", v(1.0));
        assert!(c.is_empty());
    }
}
