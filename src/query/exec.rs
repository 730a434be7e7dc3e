//! The executor: the one search loop. For one query vector it plans each segment, runs the
//! plan (graph traversal, int8 scan or exact scan), rescores graph results exactly, falls back
//! to the exact scan where a traversal came back short, then merges the in-memory rows.
//! Unfiltered search is this loop over [`Selection::AllLive`]; filtered search over the rows of
//! a [`PreparedFilter`].
//!
//! Invariant: the result holds `min(k, selected live rows)` unique ids, best first; every
//! returned row is selected and live. A graph strategy that returns fewer than
//! `min(k, selected)` rows of a segment is replaced by the exact scan of that segment.

use std::time::{Duration, Instant};

use skysift_storage::hint::{VECTOR_LINES, prefetch};
use skysift_storage::segment::Segment;
use skysift_storage::store::{CollectionState, SegmentHandle};

use super::explain::{Explain, SegmentExplain};
use super::plan::{self, Plan, SegmentFacts, Strategy, choose, rescored};
use super::prepare::{AllowedRows, PreparedFilter, bit};
use super::two_hop;
use crate::index::exact::{Hit, dot};
use crate::index::graph_search::{self, quantize_query};
use crate::index::{SearchParams, SearchScratch};

/// The rows a search may return.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selection<'a> {
    /// Every live row of the collection (unfiltered search).
    AllLive(&'a CollectionState),
    /// The live rows passing a prepared filter.
    Filter(&'a PreparedFilter),
}

impl Selection<'_> {
    fn state(&self) -> &CollectionState {
        match self {
            Selection::AllLive(state) => state,
            Selection::Filter(prepared) => &prepared.state,
        }
    }
}

/// The selected rows of one segment.
#[derive(Debug, Clone, Copy)]
enum Passing<'a> {
    /// Every live row.
    Live(&'a SegmentHandle),
    /// The rows a filter let through (tombstones already removed).
    Rows(&'a AllowedRows),
}

impl Passing<'_> {
    fn count(&self) -> usize {
        match self {
            Passing::Live(h) => h.live() as usize,
            Passing::Rows(a) => a.rows.len() as usize,
        }
    }

    /// The selected rows, ascending.
    fn rows(&self) -> impl Iterator<Item = u32> + '_ {
        let (live, allowed) = match self {
            Passing::Live(h) => (Some(*h), None),
            Passing::Rows(a) => (None, Some(*a)),
        };
        let live = live.into_iter().flat_map(|h| {
            let rows = u32::try_from(h.segment.rows()).unwrap_or(u32::MAX);
            (0..rows).filter(move |&r| h.tombstones.is_empty() || !h.tombstones.contains(r))
        });
        live.chain(allowed.into_iter().flat_map(|a| a.rows.iter()))
    }
}

/// Searches the selected rows for `query` (checked and normalised). With `explain`, records
/// what was done per segment.
pub(crate) fn search(
    selection: Selection<'_>,
    query: &[f32],
    p: &SearchParams,
    scratch: &mut SearchScratch,
    mut explain: Option<&mut Explain>,
) -> Vec<Hit> {
    let state = selection.state();
    scratch.top.reset(p.k);
    scratch.evaluations = 0;
    for (i, s) in state.segments.iter().enumerate() {
        let started = Instant::now();
        let before = scratch.evaluations;
        let seg = &s.segment;
        let (passing, filter_time) = match selection {
            Selection::AllLive(_) => (Passing::Live(s), Duration::ZERO),
            Selection::Filter(prepared) => match prepared.segments.get(i) {
                Some(a) => (Passing::Rows(a), a.eval_time),
                None => continue,
            },
        };
        let graph = if p.exact { None } else { seg.graph().and_then(Result::ok) };
        let codes = if p.f32_traversal { None } else { seg.codes().and_then(Result::ok) };
        let facts = SegmentFacts {
            rows: seg.rows(),
            passing: passing.count(),
            degree: graph.as_ref().map(|g| g.slots0() as usize),
            int8: codes.is_some(),
            calibrated: p.ef.is_none() && seg.calibration().is_some(),
        };
        let plan = match selection {
            Selection::AllLive(_) => plan::unfiltered(&facts, p.k, p.ef_for(seg), p.exact),
            Selection::Filter(prepared) => {
                let force = if p.exact { Some(Strategy::Exact) } else { prepared.force };
                choose(&facts, p.k, p.ef_for(seg), force)
            }
        };
        let mut ran = plan.strategy;
        if facts.passing > 0 {
            ran = match (plan.strategy, graph, codes) {
                (Strategy::Int8Scan, _, Some(codes)) => {
                    int8_scan(seg, &codes, passing, query, rescored(p.ef_or_default(), p.k), scratch);
                    Strategy::Int8Scan
                }
                (Strategy::Graph | Strategy::TwoHop, Some(g), codes) => {
                    let found = traverse(s, &g, codes, passing, &plan, query, p, scratch);
                    if rescore(seg, found, facts.passing, query, p, scratch) { plan.strategy } else { Strategy::Exact }
                }
                _ => Strategy::Exact,
            };
            if ran == Strategy::Exact {
                exact_scan(seg, passing, query, scratch);
            }
        }
        if let Some(e) = explain.as_deref_mut() {
            e.segments.push(SegmentExplain {
                segment: Some(seg.segment_id()),
                rows: seg.rows() as u64,
                live: s.live(),
                estimated: None,
                passing: facts.passing as u64,
                fallback: ran != plan.strategy,
                plan,
                ran,
                filter_time,
                search_time: started.elapsed(),
                evaluations: scratch.evaluations - before,
            });
        }
    }
    search_memtable(selection, query, scratch, explain);
    scratch.top.drain_sorted()
}

/// Traverses `g` by the plan's graph strategy; returns the selected `(approx score, row)` found,
/// best first.
#[expect(clippy::too_many_arguments, reason = "one traversal's inputs, each used once")]
fn traverse(
    s: &SegmentHandle,
    g: &skysift_storage::segment::graph::GraphView<'_>,
    codes: Option<skysift_storage::segment::codes::CodesView<'_>>,
    passing: Passing<'_>,
    plan: &Plan,
    query: &[f32],
    p: &SearchParams,
    scratch: &mut SearchScratch,
) -> Vec<(f32, u32)> {
    let seg = &s.segment;
    let scorer = graph_search::Scorer::for_query(codes, seg.vectors(), seg.dim(), query, &mut scratch.qcodes);
    let bits = match passing {
        Passing::Rows(a) => Some(a.bits(seg.rows())),
        Passing::Live(_) => None,
    };
    let passes = |r: u32| match bits {
        Some(bits) => bit(bits, r),
        None => !s.tombstones.contains(r),
    };
    if plan.strategy == Strategy::TwoHop {
        let spread = match passing {
            Passing::Rows(a) => a.spread(),
            Passing::Live(_) => &[],
        };
        let found = two_hop::search(g, &scorer, plan.ef, passes, spread, &mut scratch.two_hop, &mut scratch.found);
        scratch.evaluations += scratch.two_hop.evaluations;
        found
    } else {
        let found = graph_search::search(g, &scorer, plan.ef, p.anchors, &passes, &mut scratch.graph);
        scratch.evaluations += scratch.graph.evaluations;
        found
    }
}

/// Rescores traversal results exactly into the top-k; returns false (and pushes nothing) when
/// the traversal found fewer than `min(k, passing)` rows, so the segment must be scanned.
fn rescore(
    seg: &Segment,
    found: Vec<(f32, u32)>,
    passing: usize,
    query: &[f32],
    p: &SearchParams,
    scratch: &mut SearchScratch,
) -> bool {
    let want = p.k.min(passing);
    if found.len() < want {
        return false;
    }
    let ids = seg.ids();
    let take = p.rescore.map_or(found.len(), |r| r.max(want));
    for (_, row) in found.into_iter().take(take) {
        scratch.evaluations += 1;
        let score = dot(seg.vector(row as usize), query);
        scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
    }
    true
}

/// How many selected rows ahead a scan asks for a row's int8 codes (whole) or the first
/// [`VECTOR_LINES`] of its vector.
const SCAN_AHEAD: usize = 8;

/// Scores the selected rows' int8 codes, then rescores the best `keep` exactly.
fn int8_scan(
    seg: &Segment,
    codes: &skysift_storage::segment::codes::CodesView<'_>,
    passing: Passing<'_>,
    query: &[f32],
    keep: usize,
    scratch: &mut SearchScratch,
) {
    let t = quantize_query(codes, query, &mut scratch.qcodes);
    let ids = seg.ids();
    let approx = &mut scratch.approx;
    approx.clear();
    // The selected rows are scattered over the codes: each is requested SCAN_AHEAD rows before
    // it is scored, so that the misses overlap.
    let mut ahead = passing.rows().skip(SCAN_AHEAD);
    for row in passing.rows() {
        if let Some(next) = ahead.next() {
            prefetch(codes.row(next as usize), usize::MAX);
        }
        let s = simsimd::SpatialSimilarity::dot(codes.row(row as usize), scratch.qcodes.as_slice())
            .map_or(f32::NEG_INFINITY, |d| d as f32 * t);
        approx.push((s, row));
    }
    scratch.evaluations += approx.len();
    let keep = keep.min(approx.len());
    if keep > 0 && keep < approx.len() {
        approx.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
    }
    for &(_, row) in approx.iter().take(keep) {
        scratch.evaluations += 1;
        let score = dot(seg.vector(row as usize), query);
        scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
    }
}

/// Scores every selected row exactly.
fn exact_scan(seg: &Segment, passing: Passing<'_>, query: &[f32], scratch: &mut SearchScratch) {
    let ids = seg.ids();
    let mut ahead = passing.rows().skip(SCAN_AHEAD);
    for row in passing.rows() {
        if let Some(next) = ahead.next() {
            prefetch(seg.vector(next as usize), VECTOR_LINES);
        }
        scratch.evaluations += 1;
        let score = dot(seg.vector(row as usize), query);
        if score >= scratch.top.threshold() {
            scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
        }
    }
}

/// Scores the selected in-memory rows exactly (they have no index), recorded in `explain` as one
/// more segment.
fn search_memtable(
    selection: Selection<'_>,
    query: &[f32],
    scratch: &mut SearchScratch,
    explain: Option<&mut Explain>,
) {
    let started = Instant::now();
    let before = scratch.evaluations;
    let state = selection.state();
    let (passing, filter_time) = match selection {
        Selection::AllLive(state) => {
            for (_, r) in state.mem.live_rows() {
                scratch.evaluations += 1;
                scratch.top.push(Hit { id: r.id, score: dot(&r.vector, query) });
            }
            (state.mem.live(), Duration::ZERO)
        }
        Selection::Filter(prepared) => {
            for r in prepared.mem.iter().filter_map(|&row| state.mem.record(row as usize)) {
                scratch.evaluations += 1;
                scratch.top.push(Hit { id: r.id, score: dot(&r.vector, query) });
            }
            (prepared.mem.len(), prepared.mem_time)
        }
    };
    if let Some(e) = explain.filter(|_| state.mem.rows() > 0) {
        e.segments.push(SegmentExplain {
            segment: None,
            rows: state.mem.rows() as u64,
            live: state.mem.live() as u64,
            estimated: None,
            passing: passing as u64,
            plan: Plan {
                strategy: Strategy::Exact,
                ef: 0,
                rescore: 0,
                costs: [
                    (Strategy::Exact, Some(passing as f64)),
                    (Strategy::Int8Scan, None),
                    (Strategy::Graph, None),
                    (Strategy::TwoHop, None),
                ],
                reason: "in-memory rows: evaluated row by row, scanned".into(),
            },
            ran: Strategy::Exact,
            fallback: false,
            filter_time,
            search_time: started.elapsed(),
            evaluations: scratch.evaluations - before,
        });
    }
}
