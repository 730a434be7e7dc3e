//! Two-hop filtered traversal (after ACORN-1, Patel et al., SIGMOD 2024), on the ordinary
//! frozen HNSW graph: only passing nodes are scored and returned; a non-passing neighbour is not
//! scored but its own neighbours are, so the search stays connected when most nodes fail the
//! filter. Evaluations scale with `ef`, not with `ef / selectivity` as in plain filtered HNSW.
//!
//! Seeds: the greedy descent through the upper levels (scoring every node there, as HNSW does),
//! the graph's learned anchors, and a few passing rows spread over the segment, so that a
//! query whose region holds no passing row near the entry point still starts among passing rows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use skysift_storage::segment::graph::GraphView;

use super::prepare::bit;
use crate::index::hnsw::{Scorer, descend};

/// Passing rows spread over the segment, scored as extra seeds.
const SPREAD_SEEDS: u32 = 16;
/// Learned anchors scored as extra seeds (the best few of them are expanded).
const ANCHOR_SEEDS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// Reusable memory for the traversal.
#[derive(Debug, Default)]
pub(crate) struct TwoHopScratch {
    visited: crate::index::hnsw::VisitedSet,
    candidates: BinaryHeap<Scored>,
    results: BinaryHeap<Reverse<Scored>>,
    found: Vec<u32>,
    /// Scored nodes in the last search.
    pub evaluations: usize,
}

impl TwoHopScratch {
    fn start(&mut self, rows: usize) {
        self.visited.start(rows);
        self.candidates.clear();
        self.results.clear();
        self.evaluations = 0;
    }

    fn visit(&mut self, node: u32) -> bool {
        self.visited.visit(node)
    }

    fn offer(&mut self, ef: usize, s: f32, node: u32) {
        let worst = self.results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
        if self.results.len() < ef || s > worst {
            self.candidates.push(Scored(s, node));
            self.results.push(Reverse(Scored(s, node)));
            if self.results.len() > ef {
                self.results.pop();
            }
        }
    }
}

/// Runs the two-hop search; returns up to `ef` passing `(approx score, row)`, best first.
/// `passing` is a bitset over the segment's rows; `first` lists a few passing rows (any order).
pub(crate) fn search(
    graph: &GraphView<'_>,
    scorer: &Scorer<'_>,
    ef: usize,
    passing: &[u64],
    spread: &[u32],
    scratch: &mut TwoHopScratch,
) -> Vec<(f32, u32)> {
    let rows = graph.rows();
    if rows == 0 {
        return Vec::new();
    }
    let ef = ef.max(1);
    scratch.start(rows as usize);
    // Greedy descent through the upper levels (every node scored).
    let (cur, cur_s) = descend(graph, scorer, &mut scratch.evaluations);
    // Seeds: the entry (expanded even when it does not pass), the best anchors, spread rows.
    scratch.visit(cur);
    scratch.candidates.push(Scored(cur_s, cur));
    if bit(passing, cur) {
        scratch.results.push(Reverse(Scored(cur_s, cur)));
    }
    let mut anchors: Vec<Scored> = Vec::new();
    for &a in graph.anchors() {
        if a < rows && bit(passing, a) {
            anchors.push(Scored(scorer.score(a), a));
            scratch.evaluations += 1;
        }
    }
    anchors.sort_unstable_by(|a, b| b.cmp(a));
    for &Scored(s, a) in anchors.iter().take(ANCHOR_SEEDS) {
        if scratch.visit(a) {
            scratch.offer(ef, s, a);
        }
    }
    for &r in spread {
        if r < rows && scratch.visit(r) {
            let s = scorer.score(r);
            scratch.evaluations += 1;
            scratch.offer(ef, s, r);
        }
    }
    let limit = graph.slots0() as usize;
    let mut found = std::mem::take(&mut scratch.found);
    while let Some(Scored(cs, c)) = scratch.candidates.pop() {
        let worst = scratch.results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
        if scratch.results.len() >= ef && cs < worst {
            break;
        }
        // Passing neighbours first, then passing neighbours of non-passing neighbours, up to
        // `limit` new nodes per expansion (ACORN's truncation to the graph's degree).
        found.clear();
        let hood = graph.neighbours(0, c);
        for &nb in hood {
            if nb < rows && bit(passing, nb) && scratch.visit(nb) {
                found.push(nb);
            }
        }
        for &nb in hood {
            if found.len() >= limit {
                break;
            }
            // A non-passing node is never scored; marking it visited means its list is read at
            // most once per search (list reads are cache misses and dominate otherwise).
            if nb >= rows || bit(passing, nb) || !scratch.visit(nb) {
                continue;
            }
            for &nb2 in graph.neighbours(0, nb) {
                if nb2 < rows && bit(passing, nb2) && scratch.visit(nb2) {
                    found.push(nb2);
                    if found.len() >= limit {
                        break;
                    }
                }
            }
        }
        for &n in &found {
            let s = scorer.score(n);
            scratch.evaluations += 1;
            scratch.offer(ef, s, n);
        }
    }
    scratch.found = found;
    let mut out: Vec<(f32, u32)> = scratch.results.drain().map(|Reverse(Scored(s, n))| (s, n)).collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

/// Up to [`SPREAD_SEEDS`] passing rows evenly spaced through `rows`.
pub(crate) fn spread(rows: &roaring::RoaringBitmap) -> Vec<u32> {
    let n = rows.len();
    if n == 0 {
        return Vec::new();
    }
    let step = (n / u64::from(SPREAD_SEEDS)).max(1);
    (0..u64::from(SPREAD_SEEDS)).filter_map(|i| rows.select(u32::try_from(i * step).ok()?)).collect()
}
