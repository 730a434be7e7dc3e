//! Two-hop filtered traversal (after ACORN-1, Patel et al., SIGMOD 2024), on the ordinary
//! frozen HNSW graph: only passing nodes are scored and returned; a non-passing neighbour is not
//! scored but its own neighbours are, so the search stays connected when most nodes fail the
//! filter. Evaluations scale with `ef`, not with `ef / selectivity` as in plain filtered HNSW.
//!
//! Seeds: the greedy descent through the upper levels (scoring every node there, as HNSW does),
//! the graph's learned anchors, and a few passing rows spread over the segment, so that a
//! query whose region holds no passing row near the entry point still starts among passing rows.

use std::cmp::Reverse;

use skysift_storage::segment::graph::GraphView;

use crate::index::graph_search::{Score, Scorer, TwoHopScratch, descend};

/// A `(score, row)` in two-hop order: by score, ties to the lower row.
type Ranked = (Score, Reverse<u32>);

fn ranked(s: f32, node: u32) -> Ranked {
    (Score(s), Reverse(node))
}

/// Learned anchors scored as extra seeds (the best few of them are expanded).
const ANCHOR_SEEDS: usize = 4;

/// Offers `(s, node)`: kept (and queued for expansion) when the results have room or it beats
/// the worst of them.
fn offer(walk: &mut TwoHopScratch, ef: usize, s: f32, node: u32) {
    let worst = walk.results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0.0);
    if walk.results.len() < ef || s > worst {
        walk.candidates.push(ranked(s, node));
        walk.results.push(Reverse(ranked(s, node)));
        if walk.results.len() > ef {
            walk.results.pop();
        }
    }
}

/// Runs the two-hop search; returns up to `ef` passing `(approx score, row)`, best first.
/// `passes` tells whether a row passes; `spread` lists a few passing rows (any order); `found`
/// is the buffer of one expansion.
pub(crate) fn search(
    graph: &GraphView<'_>,
    scorer: &Scorer<'_>,
    ef: usize,
    passes: impl Fn(u32) -> bool,
    spread: &[u32],
    scratch: &mut TwoHopScratch,
    found: &mut Vec<u32>,
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
    scratch.candidates.push(ranked(cur_s, cur));
    if passes(cur) {
        scratch.results.push(Reverse(ranked(cur_s, cur)));
    }
    let mut anchors: Vec<Ranked> = Vec::new();
    for &a in graph.anchors() {
        if a < rows && passes(a) {
            anchors.push(ranked(scorer.score(a), a));
            scratch.evaluations += 1;
        }
    }
    anchors.sort_unstable_by(|a, b| b.cmp(a));
    for &(Score(s), Reverse(a)) in anchors.iter().take(ANCHOR_SEEDS) {
        if scratch.visit(a) {
            offer(scratch, ef, s, a);
        }
    }
    for &r in spread {
        if r < rows && scratch.visit(r) {
            let s = scorer.score(r);
            scratch.evaluations += 1;
            offer(scratch, ef, s, r);
        }
    }
    let limit = graph.slots0() as usize;
    while let Some((Score(cs), Reverse(c))) = scratch.candidates.pop() {
        let worst = scratch.results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0.0);
        if scratch.results.len() >= ef && cs < worst {
            break;
        }
        // Passing neighbours first, then passing neighbours of non-passing neighbours, up to
        // `limit` new nodes per expansion (ACORN's truncation to the graph's degree).
        found.clear();
        let hood = graph.neighbours(0, c);
        for &nb in hood {
            if nb < rows && passes(nb) && scratch.visit(nb) {
                found.push(nb);
            }
        }
        for &nb in hood {
            if found.len() >= limit {
                break;
            }
            // A non-passing node is never scored; marking it visited means its list is read at
            // most once per search (list reads are cache misses and dominate otherwise).
            if nb >= rows || passes(nb) || !scratch.visit(nb) {
                continue;
            }
            for &nb2 in graph.neighbours(0, nb) {
                if nb2 < rows && passes(nb2) && scratch.visit(nb2) {
                    found.push(nb2);
                    if found.len() >= limit {
                        break;
                    }
                }
            }
        }
        for &n in found.iter() {
            let s = scorer.score(n);
            scratch.evaluations += 1;
            offer(scratch, ef, s, n);
        }
    }
    let mut out: Vec<(f32, u32)> = scratch.results.drain().map(|Reverse((Score(s), Reverse(n)))| (s, n)).collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}
