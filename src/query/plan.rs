//! The planner: per segment, from the number of rows passing the filter and a cost model, picks
//! how to search it.
//!
//! Costs are per query, in *row reads*: one exact f32 inner product with a stored vector, one
//! query at a time, from memory = 1 ([`CostModel::row_read_ns`], 307 ns for 512 dimensions on the
//! AVX-512 machine of the fit; `EXPLAIN` shows the estimates in time with it). The constants were
//! fitted by `benches/ann/plan_fit.py` to runs of every strategy forced at 0.5 % to 50 % passing
//! on 1M rows of the bench's `medium` set (M = 16, int8 codes, out-of-distribution text queries),
//! once on a machine with AVX-512 ([`CostModel::AVX512`], the figures below, within 1.67x of every
//! measured time) and once on one with AVX2 only ([`CostModel::AVX2`]: the scans' kernels are half
//! as wide there and the machine slower; within 1.60x); a search takes its CPU's
//! ([`CostModel::this_cpu`]):
//!
//! | strategy | vectors scored | cost per query |
//! | --- | --- | --- |
//! | exact scan of the passing rows | `c` | `c (0.89 h / n + 0.11)` |
//! | int8 scan of the passing rows, exact rescoring of the best `max(ef, 4k)` | `c` | `c (0.323 h / n + 0.0282) + 5.18 max(ef, 4k)` |
//! | filtered graph (HNSW; non-passing nodes are traversed, never returned) | `min(rows, 21.7 ef / s^0.674)` | `0.767 · scored + 5.18 · ef` |
//! | two-hop (ACORN-1 style: only passing nodes scored, reached through non-passing ones) | `min(c, 56.7 ef s^0.452)` | `(0.767 + min(3.66, 0.173 / s)) · scored + 5.18 · ef` |
//!
//! `c` is the passing rows, `s = c / rows` the selectivity, `n` the queries searched together
//! (a block: a scan reads each passing row once for all of them, so the memory part of its
//! cost is shared, the arithmetic is not), `h` 1 for a scan from memory and
//! [`CostModel::exact_cached`] (0.504) or [`CostModel::int8_cached`] (0.508) for one whose rows
//! fit [`CACHE_BYTES`] (12 MiB: they may stay in the caches from one query to the next; on the
//! AVX-512 machine the f32 scan of 5,289 rows, 10.8 MB, ran at 103-287 ns a row across five
//! runs where those of 48k rows and more ran at 268-366), `ef` the search width: [`CALIBRATED_FILTERED_WIDTH`] of the segment's calibrated
//! width (filtered traversal visits more nodes than unfiltered at the same width, so the
//! fraction still reaches the calibration's recall target), or the caller's grown as `1/√s`
//! (graphs lose recall on sparse passing sets otherwise). A two-hop node also costs the
//! neighbour lists read to find it (one cache miss each, about `1/s` ids per passing node
//! found, up to [`CostModel::two_hop_lists_max`]). Rescoring reads `ef` f32 rows at random; its
//! constant also carries what a query costs beyond its rows.
//!
//! Recall bounds the choice as well as cost: below [`EXACT_BELOW`] passing rows a scan is always
//! chosen, and two-hop is never chosen by the planner, only forced: at the calibrated width
//! its recall@10 on the 1M set was 0.962 at 50 % passing, 0.927 at 30 %, 0.887 at 20 %, 0.813
//! at 10 % and 0.29 at 0.5 %, where filtered graph traversal held 0.97-0.998 throughout and
//! was as fast or faster from 20 % up (at half the calibrated width: 0.955, 0.920, 0.875,
//! 0.787, 0.289 against the graph's 0.966-0.996). A graph search that returns fewer than `min(k, c)` rows
//! falls back to the exact scan, so a filter matching `k` rows always yields `k` results.

use std::fmt;

use skysift_storage::hint::{Kernels, kernels};

/// How one segment is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Exact SIMD scan of the passing rows.
    Exact,
    /// SIMD scan of the passing rows' int8 codes, then exact f32 rescoring of the best
    /// [`rescored`] of them: a quarter of the bytes of the exact scan.
    Int8Scan,
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
            Strategy::Int8Scan => "int8-scan",
            Strategy::Graph => "graph",
            Strategy::TwoHop => "two-hop",
        }
    }

    /// Parses [`Strategy::name`].
    #[must_use]
    pub fn from_name(s: &str) -> Option<Strategy> {
        [Strategy::Exact, Strategy::Int8Scan, Strategy::Graph, Strategy::TwoHop].into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Passing rows at or below which a segment is always scanned exactly.
pub const EXACT_BELOW: usize = 2048;

/// Scans whose rows take at most this many bytes (f32 vectors for the exact scan, int8 codes
/// for the int8 scan) may find them in the CPU's caches from the query before: their memory part
/// costs [`CostModel::exact_cached`] or [`CostModel::int8_cached`] of a scan from memory. A third
/// of the last-level cache of the AVX-512 machine of the fit (32 MiB, shared with the rest of the
/// search and the machine's other work): a 10.8 MB passing set scanned faster per row in four
/// runs of five there, a 19.8 MB one in none.
pub const CACHE_BYTES: usize = 12 << 20;
/// Filtered traversal on a calibrated segment runs at this fraction of the calibrated width.
pub const CALIBRATED_FILTERED_WIDTH: f64 = 0.5;

/// The cost model's constants (see the module documentation for the model), fitted by
/// `benches/ann/plan_fit.py` (which prints them in this form) to runs of every strategy forced
/// at selectivities from 0.5 % to 50 % on 1M rows of the bench's `medium` set, one search
/// thread. Costs are in row reads; only [`CostModel::row_read_ns`] is a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Time of one row read (the exact scan's cost per passing row, one query at a time) on the
    /// machine of the fit; `EXPLAIN` shows estimated times with it.
    pub row_read_ns: f64,
    /// Exact scan, per passing row: the part that waits for memory (shared by the queries of a
    /// block, [`SegmentFacts::queries`]); the rest, `1 - exact_memory`, is arithmetic per query.
    pub exact_memory: f64,
    /// Exact scan from the caches ([`CACHE_BYTES`]): the fraction of `exact_memory` it still costs.
    pub exact_cached: f64,
    /// Int8 scan, per passing row: memory part (shared by a block) ...
    pub int8_memory: f64,
    /// ... and arithmetic per query.
    pub int8_arithmetic: f64,
    /// Int8 scan from the caches: the fraction of `int8_memory` it still costs.
    pub int8_cached: f64,
    /// Cost of scoring one node during traversal (random order), in row reads.
    pub score: f64,
    /// Cost of rescoring one traversal result with its f32 vector (random order), in row reads.
    pub rescore: f64,
    /// Graph: vectors scored per unit of `ef / s^graph_exponent`.
    pub graph_scored: f64,
    /// Graph: how fast the vectors scored grow as the passing set thins out.
    pub graph_exponent: f64,
    /// Two-hop: vectors scored per unit of `ef · s^two_hop_exponent`.
    pub two_hop_scored: f64,
    /// Two-hop: how the vectors scored shrink with the passing set.
    pub two_hop_exponent: f64,
    /// Two-hop: neighbour-list reads per scored node, `min(two_hop_lists_max, two_hop_lists / s)`.
    pub two_hop_lists: f64,
    /// Upper bound of the two-hop list-read cost per scored node, fitted below 5 % passing (where
    /// the lists read per node found stop growing as `1/s`).
    pub two_hop_lists_max: f64,
}

impl CostModel {
    /// Fitted on a 2-core machine with AVX-512 (two runs; the refitted model came within 1.67x of
    /// every measured time).
    pub const AVX512: CostModel = CostModel {
        row_read_ns: 307.0,
        exact_memory: 0.89,
        exact_cached: 0.504,
        int8_memory: 0.323,
        int8_arithmetic: 0.0282,
        int8_cached: 0.508,
        score: 0.767,
        rescore: 5.18,
        graph_scored: 21.7,
        graph_exponent: 0.674,
        two_hop_scored: 56.7,
        two_hop_exponent: 0.452,
        two_hop_lists: 0.173,
        two_hop_lists_max: 3.66,
    };

    /// Fitted on a 2-core AMD EPYC with AVX2 and FMA but no AVX-512 (about half the other's
    /// speed), to two runs (within 1.60x of every measured time). Its cached scans were no
    /// faster per row (`exact_cached` above 1: the virtual machine's share of the last-level
    /// cache did not keep the rows from one query to the next).
    pub const AVX2: CostModel = CostModel {
        row_read_ns: 485.0,
        exact_memory: 0.808,
        exact_cached: 1.4,
        int8_memory: 0.256,
        int8_arithmetic: 0.0238,
        int8_cached: 0.767,
        score: 0.949,
        rescore: 4.06,
        graph_scored: 20.6,
        graph_exponent: 0.664,
        two_hop_scored: 56.6,
        two_hop_exponent: 0.452,
        two_hop_lists: 0.162,
        two_hop_lists_max: 2.33,
    };

    /// The model for this CPU's kernel family ([`skysift_storage::hint::kernels`]): the AVX-512
    /// fit where those kernels run, else the AVX2 fit (also for the portable kernels, which no
    /// fit has measured: the narrower kernels' costs are the nearer).
    #[must_use]
    pub fn this_cpu() -> &'static CostModel {
        match kernels() {
            Kernels::Avx512 => &CostModel::AVX512,
            Kernels::Avx2 | Kernels::Portable => &CostModel::AVX2,
        }
    }
}

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
    /// Whether `ef` is the segment's calibrated width (measured at build to reach the recall
    /// target): it is used as it is, not grown as the passing set thins out.
    pub calibrated: bool,
    /// Queries searched together (a block, at least 1): a scan reads each passing row once for
    /// all of them, so its memory cost is shared.
    pub queries: usize,
    /// Dimensions of the vectors: with `passing`, whether a scan's rows fit [`CACHE_BYTES`].
    pub dim: usize,
    /// The cost model (this CPU's: [`CostModel::this_cpu`]).
    pub model: &'static CostModel,
}

/// The planner's decision for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Chosen strategy.
    pub strategy: Strategy,
    /// Search width for graph strategies.
    pub ef: usize,
    /// Rows rescored exactly after an int8 scan.
    pub rescore: usize,
    /// Estimated cost of each strategy (row reads), `None` where it does not apply.
    pub costs: [(Strategy, Option<f64>); 4],
    /// Time of one row read in the model that estimated `costs` ([`CostModel::row_read_ns`]).
    pub row_read_ns: f64,
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

/// The filtered traversal's width on a segment whose calibrated (unfiltered) width is `ef`.
#[must_use]
pub fn filtered_width(ef: usize, k: usize) -> usize {
    ((ef as f64 * CALIBRATED_FILTERED_WIDTH).ceil() as usize).max(k)
}

/// Rows an int8 scan rescores exactly: the best `max(ef, 4k)` by int8 score.
#[must_use]
pub fn rescored(ef: usize, k: usize) -> usize {
    ef.max(4 * k)
}

/// Estimated costs `(graph, two_hop)` for a segment with a graph.
fn graph_costs(f: &SegmentFacts, ef: usize, s: f64) -> (f64, f64) {
    let m = f.model;
    let score = if f.int8 { m.score } else { m.score * 2.0 };
    let s = s.max(1e-9);
    let ef_f = ef as f64;
    let graph_scored = (m.graph_scored * ef_f / s.powf(m.graph_exponent)).min(f.rows as f64);
    let graph = score * graph_scored + m.rescore * ef_f;
    let two_hop_scored = (m.two_hop_scored * ef_f * s.powf(m.two_hop_exponent)).min(f.passing as f64);
    let two_hop = (score + (m.two_hop_lists / s).min(m.two_hop_lists_max)) * two_hop_scored + m.rescore * ef_f;
    (graph, two_hop)
}

/// The estimated cost per query of each strategy on a segment, `None` where it does not apply:
/// the int8 scan rescoring `rescored(base_ef, k)` rows, the graph strategies at width `ef`.
fn costs(f: &SegmentFacts, k: usize, base_ef: usize, ef: usize, s: f64) -> [(Strategy, Option<f64>); 4] {
    let m = f.model;
    let c = f.passing as f64;
    let n = f.queries.max(1) as f64;
    let cached = |row_bytes: usize, fraction: f64| {
        if f.passing.saturating_mul(row_bytes) <= CACHE_BYTES { fraction } else { 1.0 }
    };
    let exact_memory = m.exact_memory * cached(f.dim * 4, m.exact_cached);
    let int8_memory = m.int8_memory * cached(f.dim, m.int8_cached);
    let exact = c * (exact_memory / n + (1.0 - m.exact_memory));
    let int8_scan = c * (int8_memory / n + m.int8_arithmetic) + m.rescore * rescored(base_ef, k).min(f.passing) as f64;
    let (graph, two_hop) = graph_costs(f, ef, s);
    [
        (Strategy::Exact, Some(exact)),
        (Strategy::Int8Scan, f.int8.then_some(int8_scan)),
        (Strategy::Graph, f.degree.map(|_| graph)),
        (Strategy::TwoHop, f.degree.map(|_| two_hop)),
    ]
}

/// The plan of an unfiltered search (every live row passes): graph search at `ef` (the caller's
/// or the segment's calibrated width, not grown for deleted rows) where the segment has a graph,
/// else the exact scan; `exact` asks for the scan.
#[must_use]
pub fn unfiltered(f: &SegmentFacts, k: usize, ef: usize, exact: bool) -> Plan {
    let ef = ef.max(k);
    let costs = costs(f, k, ef, ef, f.passing as f64 / f.rows.max(1) as f64);
    let (strategy, reason) = match f.degree {
        _ if exact => (Strategy::Exact, "unfiltered, exact scan asked"),
        Some(_) => (Strategy::Graph, "unfiltered: graph search"),
        None => (Strategy::Exact, "unfiltered: no graph in this segment"),
    };
    Plan { strategy, ef, rescore: rescored(ef, k), costs, row_read_ns: f.model.row_read_ns, reason: reason.into() }
}

/// Chooses the strategy for one segment; `force` overrides the choice where it applies.
#[must_use]
pub fn choose(f: &SegmentFacts, k: usize, ef: usize, force: Option<Strategy>) -> Plan {
    let base_ef = ef;
    let c = f.passing;
    let s = c as f64 / f.rows.max(1) as f64;
    // A calibrated width reaches the target unfiltered; filtered traversal visits more nodes
    // at the same width (non-passing ones route but do not fill the results), so a fraction of
    // it reaches the target as well.
    let ef = if f.calibrated { filtered_width(ef, k) } else { ef_for(ef, k, s) };
    // An int8 scan rescores as many rows as a traversal at the segment's filtered width keeps.
    let scan_ef = if f.calibrated { ef } else { base_ef };
    let costs = costs(f, k, scan_ef, ef, s);
    let cost = |i: usize| costs.get(i).and_then(|c| c.1).unwrap_or(f64::INFINITY);
    let (exact, int8_scan, graph, two_hop) = (cost(0), cost(1), cost(2), cost(3));
    let rescore = rescored(scan_ef, k);
    let plan =
        |strategy, reason: String| Plan { strategy, ef, rescore, costs, row_read_ns: f.model.row_read_ns, reason };
    if let Some(forced) = force {
        let usable = match forced {
            Strategy::Exact => true,
            Strategy::Int8Scan => f.int8,
            Strategy::Graph | Strategy::TwoHop => f.degree.is_some(),
        };
        if usable {
            return plan(forced, "forced".into());
        }
        return plan(Strategy::Exact, format!("{forced} was forced but the segment has no index for it"));
    }
    let pct = 100.0 * s;
    let mut best = (Strategy::Exact, exact);
    if int8_scan < best.1 {
        best = (Strategy::Int8Scan, int8_scan);
    }
    let traverse = f.degree.is_some() && c > EXACT_BELOW.max(k);
    if traverse && graph < best.1 {
        best = (Strategy::Graph, graph);
    }
    let _ = two_hop; // shown in the reason and by EXPLAIN, never chosen: see the module docs
    let others: Vec<String> = costs
        .iter()
        .filter(|(st, cost)| *st != best.0 && cost.is_some_and(f64::is_finite))
        .map(|(st, cost)| match st {
            Strategy::Graph | Strategy::TwoHop if !traverse => {
                format!("{st}: {c} passing rows are too few to traverse")
            }
            Strategy::TwoHop => format!("{st} {:.0} (forced only: recall)", cost.unwrap_or(0.0)),
            _ => format!("{st} {:.0}", cost.unwrap_or(0.0)),
        })
        .collect();
    let reason = if f.degree.is_none() && !f.int8 {
        "no graph or codes in this segment".to_owned()
    } else {
        format!("{pct:.2}% pass: {} {:.0} < {}", best.0, best.1, others.join(", "))
    };
    plan(best.0, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_passing_sets_are_scanned_and_large_ones_traversed() {
        for model in [&CostModel::AVX512, &CostModel::AVX2] {
            planned_by(model);
        }
    }

    fn planned_by(model: &'static CostModel) {
        let f = |passing| SegmentFacts {
            rows: 1_000_000,
            passing,
            degree: Some(48),
            int8: true,
            calibrated: false,
            queries: 1,
            dim: 512,
            model,
        };
        assert_eq!(choose(&f(10), 10, 64, None).strategy, Strategy::Exact);
        assert!(matches!(choose(&f(200), 10, 64, None).strategy, Strategy::Exact | Strategy::Int8Scan));
        assert_eq!(choose(&f(5_000), 10, 64, None).strategy, Strategy::Int8Scan);
        assert_eq!(choose(&f(500_000), 10, 64, None).strategy, Strategy::Graph);
        assert_eq!(choose(&f(50_000), 10, 64, None).strategy, Strategy::Int8Scan);
        assert_eq!(choose(&SegmentFacts { calibrated: true, ..f(50_000) }, 10, 96, None).strategy, Strategy::Graph);
        assert_eq!(choose(&f(150_000), 10, 64, None).strategy, Strategy::Graph);
        // A block shares a scan's memory reads: scanning 15 % of the rows then beats traversal.
        let block = |passing| SegmentFacts { queries: 32, ..f(passing) };
        assert_eq!(choose(&block(150_000), 10, 64, None).strategy, Strategy::Int8Scan);
        assert_eq!(choose(&block(500_000), 10, 64, None).strategy, Strategy::Graph);
        // Two-hop is only ever forced.
        assert!((1..=20).all(|i| choose(&f(i * 50_000), 10, 64, None).strategy != Strategy::TwoHop));
        assert_eq!(choose(&f(150_000), 10, 64, Some(Strategy::TwoHop)).strategy, Strategy::TwoHop);
        let cal = SegmentFacts { calibrated: true, ..f(50_000) };
        assert_eq!(choose(&cal, 10, 96, None).ef, 48);
        assert_eq!(choose(&cal, 10, 96, None).rescore, 48);
        assert_eq!(choose(&f(50_000), 10, 96, None).ef, 430);
        assert_eq!(choose(&f(20_000), 10, 64, None).strategy, Strategy::Int8Scan);
        let none = SegmentFacts { degree: None, int8: false, ..f(500_000) };
        assert_eq!(choose(&none, 10, 64, Some(Strategy::Graph)).strategy, Strategy::Exact);
        assert_eq!(ef_for(64, 10, 1.0), 64);
        assert_eq!(ef_for(64, 10, 0.25), 128);
        assert_eq!(ef_for(64, 100, 1.0), 100);
    }
}
