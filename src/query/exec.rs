//! The executor: runs each segment's plan for one query vector and merges the top-k.
//!
//! Invariant (as for unfiltered search): the result holds `min(k, passing live rows)` unique ids,
//! best first; every returned row passes the filter and is live. A graph strategy that returns
//! fewer than `min(k, passing)` rows of a segment is replaced by the exact scan of that segment.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::explain::{Explain, SegmentExplain};
use super::plan::{Plan, SegmentFacts, Strategy, choose, rescored};
use super::prepare::{PreparedFilter, bit};
use super::two_hop::{self, TwoHopScratch};
use crate::index::exact::{Hit, dot};
use crate::index::hnsw::{self, quantize_query};
use crate::index::{SearchParams, SearchScratch};

thread_local! {
    static TWO_HOP: RefCell<TwoHopScratch> = RefCell::new(TwoHopScratch::default());
    static APPROX: RefCell<Vec<(f32, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Searches the passing rows of `prepared` for `query` (checked and normalised). With `explain`,
/// records what was done per segment.
pub(crate) fn search(
    prepared: &PreparedFilter,
    query: &[f32],
    p: &SearchParams,
    scratch: &mut SearchScratch,
    mut explain: Option<&mut Explain>,
) -> Vec<Hit> {
    let state = &prepared.state;
    scratch.top.reset(p.k);
    scratch.evaluations = 0;
    let mut qcodes: Vec<i8> = Vec::new();
    for (s, allowed) in state.segments.iter().zip(&prepared.segments) {
        let started = Instant::now();
        let before = scratch.evaluations;
        let seg = &s.segment;
        let passing = allowed.rows.len() as usize;
        let want = p.k.min(passing);
        let graph = if p.exact { None } else { seg.graph().and_then(Result::ok) };
        let codes = if p.f32_traversal { None } else { seg.codes().and_then(Result::ok) };
        let facts = SegmentFacts {
            rows: seg.rows(),
            passing,
            degree: graph.as_ref().map(|g| g.slots0() as usize),
            int8: codes.is_some(),
            calibrated: p.ef.is_none() && seg.calibration().is_some(),
        };
        let force = if p.exact { Some(Strategy::Exact) } else { prepared.force };
        let plan: Plan = choose(&facts, p.k, p.ef_for(seg), force);
        let mut strategy = plan.strategy;
        let mut fallback = false;
        if passing > 0
            && plan.strategy == Strategy::Int8Scan
            && let Some(codes) = codes
        {
            let t = quantize_query(&codes, query, &mut qcodes);
            let ids = seg.ids();
            APPROX.with_borrow_mut(|approx| {
                approx.clear();
                for row in &allowed.rows {
                    let s = simsimd::SpatialSimilarity::dot(codes.row(row as usize), qcodes.as_slice())
                        .map_or(f32::NEG_INFINITY, |d| d as f32 * t);
                    approx.push((s, row));
                }
                scratch.evaluations += approx.len();
                let keep = rescored(p.ef_or_default(), p.k).min(approx.len());
                if keep > 0 && keep < approx.len() {
                    approx.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
                }
                for &(_, row) in approx.iter().take(keep) {
                    scratch.evaluations += 1;
                    let score = dot(seg.vector(row as usize), query);
                    scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
                }
            });
        } else if passing > 0
            && let Some(g) = graph.as_ref().filter(|_| matches!(plan.strategy, Strategy::Graph | Strategy::TwoHop))
        {
            let scorer = hnsw::Scorer::for_query(codes, seg.vectors(), seg.dim(), query, &mut qcodes);
            let bits = allowed.bits(seg.rows());
            let found = if plan.strategy == Strategy::Graph {
                let live = |r: u32| bit(bits, r);
                let found = hnsw::search(g, &scorer, plan.ef, p.anchors, &live, &mut scratch.graph);
                scratch.evaluations += scratch.graph.evaluations;
                found
            } else {
                TWO_HOP.with_borrow_mut(|th| {
                    let found = two_hop::search(g, &scorer, plan.ef, bits, allowed.spread(), th);
                    scratch.evaluations += th.evaluations;
                    found
                })
            };
            if found.len() >= want {
                let ids = seg.ids();
                let take = p.rescore.map_or(found.len(), |r| r.max(want));
                for (_, row) in found.into_iter().take(take) {
                    scratch.evaluations += 1;
                    let score = dot(seg.vector(row as usize), query);
                    scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
                }
            } else {
                fallback = true;
                strategy = Strategy::Exact;
            }
        }
        if passing > 0 && strategy == Strategy::Exact {
            let ids = seg.ids();
            for row in &allowed.rows {
                scratch.evaluations += 1;
                let score = dot(seg.vector(row as usize), query);
                if score >= scratch.top.threshold() {
                    scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
                }
            }
        }
        if let Some(e) = explain.as_deref_mut() {
            e.segments.push(SegmentExplain {
                segment: Some(seg.segment_id()),
                rows: seg.rows() as u64,
                live: s.live(),
                estimated: None,
                passing: passing as u64,
                plan,
                ran: strategy,
                fallback,
                filter_time: allowed.eval_time,
                search_time: started.elapsed(),
                evaluations: scratch.evaluations - before,
            });
        }
    }
    let started = Instant::now();
    let before = scratch.evaluations;
    for &row in &prepared.mem {
        if let Some(r) = state.mem.record(row as usize) {
            scratch.evaluations += 1;
            scratch.top.push(Hit { id: r.id, score: dot(&r.vector, query) });
        }
    }
    if let Some(e) = explain.filter(|_| state.mem.rows() > 0) {
        let passing = prepared.mem.len();
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
            filter_time: prepared.mem_time,
            search_time: started.elapsed(),
            evaluations: scratch.evaluations - before,
        });
    }
    scratch.top.drain_sorted()
}

/// Total time in `explain`'s segments.
#[must_use]
pub(crate) fn total(e: &Explain) -> Duration {
    e.segments.iter().map(|s| s.filter_time + s.search_time).sum()
}
