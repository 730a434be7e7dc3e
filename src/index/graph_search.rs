//! Search over a frozen graph, in place from the map (paper names: `ef`, `M`, entry point).
//!
//! Traversal scores candidates with int8 codes when the segment has them (4x fewer bytes per
//! visited node than f32), then rescores the `ef` best with the exact f32 vectors. Tombstoned
//! rows are traversed but never returned. Every neighbour id read from the graph is
//! bounds-checked, so a damaged graph degrades results, never panics.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use simsimd::SpatialSimilarity;
use skysift_storage::hint::{VECTOR_LINES, prefetch};
use skysift_storage::segment::codes::CodesView;
use skysift_storage::segment::graph::GraphView;

use super::exact::dot;

/// An `f32` score ordered totally (NaN sorts lowest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Score(pub f32);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Reusable memory for two-hop traversal: `(score, row)` ordered by score, ties to the lower row.
pub(crate) type TwoHopScratch = Walk<(Score, Reverse<u32>)>;

/// Anchors a search starts from, besides the greedy descent's node.
const ANCHOR_STARTS: usize = 4;

/// Nodes seen by one search, cleared in O(1) per search by bumping an epoch.
#[derive(Debug, Default)]
pub(crate) struct VisitedSet {
    marks: Vec<u32>,
    epoch: u32,
}

impl VisitedSet {
    /// Starts a new search over `rows` nodes.
    pub(crate) fn start(&mut self, rows: usize) {
        if self.marks.len() < rows {
            self.marks.resize(rows, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|v| *v = 0);
            self.epoch = 1;
        }
    }

    /// Marks `node` visited; returns false when it already was (or is out of range).
    pub(crate) fn visit(&mut self, node: u32) -> bool {
        match self.marks.get_mut(node as usize) {
            Some(v) if *v != self.epoch => {
                *v = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// The memory of one best-first traversal, reused across searches: visited marks and the
/// candidate and result heaps, ordered by `K` (HNSW search and two-hop traversal each bring
/// their own order of `(score, row)`).
#[derive(Debug)]
pub(crate) struct Walk<K> {
    visited: VisitedSet,
    /// Nodes to expand, best on top.
    pub(crate) candidates: BinaryHeap<K>,
    /// The best nodes found, worst on top.
    pub(crate) results: BinaryHeap<Reverse<K>>,
    /// Distance evaluations in the last search (for `EXPLAIN` and benchmarks).
    pub(crate) evaluations: usize,
    /// The unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
}

impl<K: Ord> Default for Walk<K> {
    fn default() -> Self {
        Walk {
            visited: VisitedSet::default(),
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            evaluations: 0,
            fresh: Vec::new(),
        }
    }
}

impl<K: Ord> Walk<K> {
    /// Starts a new search over `rows` nodes.
    pub(crate) fn start(&mut self, rows: usize) {
        self.visited.start(rows);
        self.candidates.clear();
        self.results.clear();
        self.evaluations = 0;
    }

    /// Marks `node` visited; returns false when it already was (or is out of range).
    pub(crate) fn visit(&mut self, node: u32) -> bool {
        self.visited.visit(node)
    }
}

/// Reusable memory for HNSW search.
pub(crate) type GraphScratch = Walk<(Score, u32)>;

/// How traversal scores a node.
pub(crate) enum Scorer<'a> {
    /// Exact inner product on f32 vectors.
    Exact { vectors: &'a [f32], dim: usize, query: &'a [f32] },
    /// Approximate inner product on int8 codes (query quantized with scale `t`).
    Int8 { codes: CodesView<'a>, query: &'a [i8], t: f32 },
}

impl<'a> Scorer<'a> {
    /// The scorer traversal uses for `query`: int8 on `codes` when given (the query quantized into
    /// `qcodes`), else exact on the f32 `vectors`.
    pub(crate) fn for_query(
        codes: Option<CodesView<'a>>,
        vectors: &'a [f32],
        dim: usize,
        query: &'a [f32],
        qcodes: &'a mut Vec<i8>,
    ) -> Scorer<'a> {
        match codes {
            Some(codes) => {
                let t = quantize_query(&codes, query, qcodes);
                Scorer::Int8 { codes, query: qcodes, t }
            }
            None => Scorer::Exact { vectors, dim, query },
        }
    }
}

impl Scorer<'_> {
    /// Asks the CPU for what scoring `node` reads.
    #[inline]
    fn prefetch(&self, node: u32) {
        match self {
            Scorer::Exact { vectors, dim, .. } => {
                let start = node as usize * dim;
                if let Some(v) = vectors.get(start..start + dim) {
                    prefetch(v, VECTOR_LINES);
                }
            }
            Scorer::Int8 { codes, .. } => prefetch(codes.row(node as usize), VECTOR_LINES),
        }
    }

    #[inline]
    pub(crate) fn score(&self, node: u32) -> f32 {
        match self {
            Scorer::Exact { vectors, dim, query } => {
                let start = node as usize * dim;
                vectors.get(start..start + dim).map_or(f32::NEG_INFINITY, |v| dot(v, query))
            }
            Scorer::Int8 { codes, query, t } => {
                let row = codes.row(node as usize);
                if row.len() != query.len() {
                    return f32::NEG_INFINITY;
                }
                match i8::dot(row, query) {
                    Some(d) => d as f32 * t,
                    None => f32::NEG_INFINITY,
                }
            }
        }
    }
}

/// Quantizes `query` for int8 traversal against `codes`: `score ≈ t · (qcodes · codes)` plus a
/// per-query constant, which does not change the ranking.
pub(crate) fn quantize_query(codes: &CodesView<'_>, query: &[f32], out: &mut Vec<i8>) -> f32 {
    let w: Vec<f32> = query.iter().zip(codes.scale()).map(|(q, s)| q * s).collect();
    let max = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let t = if max > 0.0 { max / 127.0 } else { 1.0 };
    out.clear();
    out.extend(w.iter().map(|x| (x / t).round().clamp(-127.0, 127.0) as i8));
    t
}

/// Greedy descent from the entry point through the upper levels (every neighbour scored): the
/// layer-0 start, with its score. Counts the scores in `evaluations`.
pub(crate) fn descend(graph: &GraphView<'_>, scorer: &Scorer<'_>, evaluations: &mut usize) -> (u32, f32) {
    let rows = graph.rows();
    let mut cur = graph.entry();
    let mut cur_s = scorer.score(cur);
    *evaluations += 1;
    for level in (1..graph.levels()).rev() {
        loop {
            let mut moved = false;
            for &nb in graph.neighbours(level, cur) {
                if nb >= rows {
                    continue;
                }
                let s = scorer.score(nb);
                *evaluations += 1;
                if s > cur_s {
                    (cur, cur_s, moved) = (nb, s, true);
                }
            }
            if !moved {
                break;
            }
        }
    }
    (cur, cur_s)
}

/// Runs HNSW search: greedy descent through the upper levels, then a best-first search of
/// width `ef` on layer 0. Returns up to `ef` live `(approx score, row)` pairs, best first.
pub(crate) fn search(
    graph: &GraphView<'_>,
    scorer: &Scorer<'_>,
    ef: usize,
    anchors: Option<usize>,
    live: &dyn Fn(u32) -> bool,
    scratch: &mut GraphScratch,
) -> Vec<(f32, u32)> {
    let rows = graph.rows();
    if rows == 0 {
        return Vec::new();
    }
    scratch.start(rows as usize);
    let (cur, cur_s) = descend(graph, scorer, &mut scratch.evaluations);
    let ef = ef.max(1);
    scratch.visit(cur);
    scratch.candidates.push((Score(cur_s), cur));
    if live(cur) {
        scratch.results.push(Reverse((Score(cur_s), cur)));
    }
    // Learned anchors: also start from the best few of them.
    let all = graph.anchors();
    let anchors = all.get(..anchors.unwrap_or(all.len()).min(all.len())).unwrap_or(&[]);
    if !anchors.is_empty() {
        let mut best: Vec<(f32, u32)> = Vec::with_capacity(ANCHOR_STARTS + 1);
        for &a in anchors {
            if a >= rows {
                continue;
            }
            let s = scorer.score(a);
            scratch.evaluations += 1;
            if best.len() < ANCHOR_STARTS || best.last().is_some_and(|l| s > l.0) {
                best.push((s, a));
                best.sort_by(|x, y| y.0.total_cmp(&x.0));
                best.truncate(ANCHOR_STARTS);
            }
        }
        for (s, a) in best {
            if scratch.visit(a) {
                scratch.candidates.push((Score(s), a));
                if live(a) {
                    scratch.results.push(Reverse((Score(s), a)));
                }
            }
        }
    }
    while let Some((Score(cs), c)) = scratch.candidates.pop() {
        let worst = scratch.results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0.0);
        if scratch.results.len() >= ef && cs < worst {
            break;
        }
        // The next candidate's list and the unvisited neighbours' rows are requested together
        // before any is scored: at 1M rows they are rarely in the caches.
        if let Some(&(_, next)) = scratch.candidates.peek() {
            prefetch(graph.neighbours(0, next), usize::MAX);
        }
        let mut fresh = std::mem::take(&mut scratch.fresh);
        fresh.clear();
        for &nb in graph.neighbours(0, c) {
            if nb < rows && scratch.visit(nb) {
                scorer.prefetch(nb);
                fresh.push(nb);
            }
        }
        for &nb in &fresh {
            let s = scorer.score(nb);
            scratch.evaluations += 1;
            let worst = scratch.results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0.0);
            if scratch.results.len() < ef || s > worst {
                scratch.candidates.push((Score(s), nb));
                if live(nb) {
                    scratch.results.push(Reverse((Score(s), nb)));
                    if scratch.results.len() > ef {
                        scratch.results.pop();
                    }
                }
            }
        }
        scratch.fresh = fresh;
    }
    let mut out: Vec<(f32, u32)> = scratch.results.drain().map(|Reverse((Score(s), n))| (s, n)).collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}
