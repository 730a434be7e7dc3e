//! Exact top-k: every live row is scored with a SIMD inner product (simsimd).
//!
//! Scores are inner products; for cosine collections both sides are L2-normalised, so the
//! score is the cosine similarity.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use simsimd::SpatialSimilarity;
use skysift_storage::store::CollectionState;

/// One result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Record id.
    pub id: u64,
    /// Similarity (higher is closer).
    pub score: f32,
}

/// Heap entry ordered so that the *worst* hit is on top (min-heap on score, then max on id).
#[derive(Debug, Clone, Copy)]
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // Greater = worse: lower score, or equal score and larger id.
        other.0.score.total_cmp(&self.0.score).then(self.0.id.cmp(&other.0.id))
    }
}

/// Keeps the best `k` hits seen.
#[derive(Debug, Default)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    /// Empties the collector and sets `k`.
    pub fn reset(&mut self, k: usize) {
        self.k = k;
        self.heap.clear();
    }

    /// The score a new hit must beat to enter (`-inf` until `k` hits are held).
    #[must_use]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    /// Offers a hit.
    pub fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut top) = self.heap.peek_mut()
            && Worst(hit) < *top
        {
            *top = Worst(hit);
        }
    }

    /// The hits, best first.
    pub fn drain_sorted(&mut self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.drain().map(|w| w.0).collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        v
    }
}

/// Inner product of two equal-length slices (SIMD).
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    match f32::dot(a, b) {
        Some(d) => d as f32,
        None => a.iter().zip(b).map(|(x, y)| x * y).sum(),
    }
}

/// Scores every live row of `col` against `query` into `top`.
pub fn scan(col: &CollectionState, query: &[f32], top: &mut TopK) {
    let dim = col.schema.dim as usize;
    for s in &col.segments {
        let seg = &s.segment;
        let ids = seg.ids();
        let dead = &s.tombstones;
        for (row, v) in seg.vectors().chunks_exact(dim).enumerate() {
            if !dead.is_empty() && dead.contains(row as u32) {
                continue;
            }
            let score = dot(v, query);
            if score > top.threshold() || top.heap.len() < top.k {
                top.push(Hit { id: ids.get(row).copied().unwrap_or(u64::MAX), score });
            }
        }
    }
    for (_, r) in col.mem.live_rows() {
        top.push(Hit { id: r.id, score: dot(&r.vector, query) });
    }
}

/// Exact top-k with a plain scalar loop: the baseline the SIMD scan is benchmarked against.
#[must_use]
pub fn scan_scalar(col: &CollectionState, query: &[f32], k: usize) -> Vec<Hit> {
    let mut top = TopK::default();
    top.reset(k);
    let dim = col.schema.dim as usize;
    for s in &col.segments {
        for (row, v) in s.segment.vectors().chunks_exact(dim).enumerate() {
            if s.tombstones.contains(row as u32) {
                continue;
            }
            let mut acc = 0.0f32;
            for (x, y) in v.iter().zip(query) {
                acc += x * y;
            }
            top.push(Hit { id: s.segment.id(row), score: acc });
        }
    }
    for (_, r) in col.mem.live_rows() {
        let acc: f32 = r.vector.iter().zip(query).map(|(x, y)| x * y).sum();
        top.push(Hit { id: r.id, score: acc });
    }
    top.drain_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_keeps_the_best_with_id_tiebreak() {
        let mut t = TopK::default();
        t.reset(3);
        for (id, s) in [(5, 0.1), (1, 0.9), (2, 0.5), (3, 0.5), (4, 0.7), (0, 0.5)] {
            t.push(Hit { id, score: s });
        }
        let ids: Vec<u64> = t.drain_sorted().iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![1, 4, 0]);
    }
}
