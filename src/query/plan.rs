//! The planner: per segment, from the number of rows passing the filter and a cost model, picks
//! how to search it.
//!
//! Costs are in *row reads*: one exact f32 inner product with a stored vector = 1. The constants
//! were measured on the bench data (512-d, M = 16, int8 codes; see `benches/ann/filtered.py`),
//! where all three strategies were run on every segment at every selectivity:
//!
//! | strategy | evaluations | cost |
//! | --- | --- | --- |
//! | exact scan of the passing rows | `c` | `c` |
//! | filtered graph (HNSW; non-passing nodes are traversed, never returned) | `≈ GRAPH_EVALS · ef / s` | `INT8 · evals + ef` |
//! | two-hop graph (ACORN-1 style: only passing nodes are scored, reached through one non-passing hop) | `≈ TWO_HOP_EVALS · ef` | `INT8 · evals + NEIGHBOUR · reads + ef` |
//!
//! where `c` is the passing rows, `s = c / rows` the selectivity and `ef` the search width, which
//! grows as `s` drops (graphs lose recall on sparse passing sets otherwise). Below
//! [`EXACT_BELOW`] passing rows the scan is always chosen: it is exact and costs less than
//! finding an entry point. A graph search that returns fewer than `min(k, c)` rows falls back to
//! the exact scan, so a filter matching `k` rows always yields `k` results.

use std::fmt;

/// How one segment is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Exact SIMD scan of the passing rows.
    Exact,
    /// HNSW traversal of all nodes, returning only passing ones.
    Graph,
    /// Traversal that scores only passing nodes, expanding through non-passing neighbours to
    /// their neighbours (two hops), after ACORN (Patel et al., SIGMOD 2024).
    TwoHop,
}

impl Strategy {
    /// Name shown by `EXPLAIN` and accepted by `--plan`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Exact => "exact",
            Strategy::Graph => "graph",
            Strategy::TwoHop => "two-hop",
        }
    }

    /// Parses [`Strategy::name`].
    #[must_use]
    pub fn from_name(s: &str) -> Option<Strategy> {
        [Strategy::Exact, Strategy::Graph, Strategy::TwoHop].into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Passing rows at or below which a segment is always scanned exactly.
pub const EXACT_BELOW: usize = 2048;
/// Cost of scoring one row on int8 codes, relative to an exact f32 inner product.
pub const INT8: f64 = 0.35;
/// Cost of reading one neighbour id and testing it (visited set, passing bitset).
pub const NEIGHBOUR: f64 = 0.01;
/// Graph evaluations per unit of `ef / s`, measured.
pub const GRAPH_EVALS: f64 = 9.0;
/// Two-hop evaluations per unit of `ef`, measured.
pub const TWO_HOP_EVALS: f64 = 14.0;
/// Selectivity below which plain filtered HNSW is not trusted to keep recall (the passing nodes
/// become too sparse along the graph's paths); two-hop or exact is used instead.
pub const GRAPH_MIN_SELECTIVITY: f64 = 0.2;
/// Selectivity below which two-hop expansion is not trusted either (a node's two-hop
/// neighbourhood holds too few passing nodes to keep the search connected).
pub const TWO_HOP_MIN_SELECTIVITY: f64 = 0.01;

/// What the planner knows about one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentFacts {
    /// Rows in the segment (live and deleted).
    pub rows: usize,
    /// Live rows passing the filter.
    pub passing: usize,
    /// Layer-0 neighbour slots, when the segment has a graph.
    pub degree: Option<usize>,
    /// Whether traversal runs on int8 codes.
    pub int8: bool,
}

/// The planner's decision for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Chosen strategy.
    pub strategy: Strategy,
    /// Search width for graph strategies.
    pub ef: usize,
    /// Estimated cost of each strategy (row reads), `None` where it does not apply.
    pub costs: [(Strategy, Option<f64>); 3],
    /// Why, in words.
    pub reason: String,
}

/// The search width for selectivity `s`: the caller's `ef` at `s = 1`, growing as `1/√s` (the
/// passing nodes near the query thin out as `s` drops), at least `k`.
#[must_use]
pub fn ef_for(ef: usize, k: usize, s: f64) -> usize {
    let grown = ef as f64 / s.clamp(1e-6, 1.0).sqrt();
    (grown.ceil() as usize).clamp(ef.max(k), (ef * 16).max(k))
}

/// Estimated costs `(graph, two_hop)` for a segment with a graph.
fn graph_costs(f: &SegmentFacts, ef: usize, s: f64) -> (f64, f64) {
    let score = if f.int8 { INT8 } else { 1.0 };
    let deg = f.degree.unwrap_or(32) as f64;
    let graph_evals = GRAPH_EVALS * ef as f64 / s;
    let graph = score * graph_evals + ef as f64;
    let two_hop_evals = TWO_HOP_EVALS * ef as f64;
    // A passing node is found among `1 / s` neighbour ids read (one-hop, then two-hop lists).
    let reads = (two_hop_evals / s.max(1e-6)).min(f.rows as f64 * deg);
    let two_hop = score * two_hop_evals + NEIGHBOUR * reads + ef as f64;
    (graph, two_hop)
}

/// Chooses the strategy for one segment; `force` overrides the choice where it applies.
#[must_use]
pub fn choose(f: &SegmentFacts, k: usize, ef: usize, force: Option<Strategy>) -> Plan {
    let c = f.passing;
    let s = c as f64 / f.rows.max(1) as f64;
    let ef = ef_for(ef, k, s);
    let exact = c as f64;
    let (graph, two_hop) = if f.degree.is_some() { graph_costs(f, ef, s) } else { (f64::INFINITY, f64::INFINITY) };
    let costs = [
        (Strategy::Exact, Some(exact)),
        (Strategy::Graph, f.degree.map(|_| graph)),
        (Strategy::TwoHop, f.degree.map(|_| two_hop)),
    ];
    let plan = |strategy, reason: String| Plan { strategy, ef, costs, reason };
    if let Some(forced) = force {
        if forced == Strategy::Exact || f.degree.is_some() {
            return plan(forced, "forced".into());
        }
        return plan(Strategy::Exact, format!("{forced} was forced but the segment has no graph"));
    }
    if f.degree.is_none() {
        return plan(Strategy::Exact, "no graph in this segment".into());
    }
    if c <= EXACT_BELOW.max(k) {
        return plan(Strategy::Exact, format!("{c} passing rows <= {}: a scan is exact and cheap", EXACT_BELOW.max(k)));
    }
    let pct = 100.0 * s;
    let mut best = (Strategy::Exact, exact);
    if s >= GRAPH_MIN_SELECTIVITY && graph < best.1 {
        best = (Strategy::Graph, graph);
    }
    if s >= TWO_HOP_MIN_SELECTIVITY && two_hop < best.1 {
        best = (Strategy::TwoHop, two_hop);
    }
    let reason = match best.0 {
        Strategy::Exact if s < TWO_HOP_MIN_SELECTIVITY => {
            format!("{pct:.2}% pass: too sparse for graph traversal; scan cost {exact:.0} row reads")
        }
        Strategy::Exact => format!("scan cost {exact:.0} < graph {graph:.0} / two-hop {two_hop:.0} row reads"),
        Strategy::Graph => format!("{pct:.1}% pass: graph cost {graph:.0} < scan {exact:.0}, two-hop {two_hop:.0}"),
        Strategy::TwoHop => format!(
            "{pct:.2}% pass: two-hop cost {two_hop:.0} < scan {exact:.0}{}",
            if s >= GRAPH_MIN_SELECTIVITY {
                format!(", graph {graph:.0}")
            } else {
                ", too sparse for plain graph".into()
            }
        ),
    };
    plan(best.0, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_passing_sets_are_scanned_and_large_ones_traversed() {
        let f = |passing| SegmentFacts { rows: 1_000_000, passing, degree: Some(48), int8: true };
        assert_eq!(choose(&f(10), 10, 64, None).strategy, Strategy::Exact);
        assert_eq!(choose(&f(5_000), 10, 64, None).strategy, Strategy::Exact);
        assert_ne!(choose(&f(500_000), 10, 64, None).strategy, Strategy::Exact);
        let none = SegmentFacts { degree: None, ..f(500_000) };
        assert_eq!(choose(&none, 10, 64, Some(Strategy::Graph)).strategy, Strategy::Exact);
        assert_eq!(ef_for(64, 10, 1.0), 64);
        assert_eq!(ef_for(64, 10, 0.25), 128);
        assert_eq!(ef_for(64, 100, 1.0), 100);
    }
}
