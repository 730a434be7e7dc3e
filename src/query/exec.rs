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
use super::plan::{self, Plan, SegmentFacts, Strategy, choose};
use super::prepare::{AllowedRows, PreparedFilter, bit};
use super::two_hop;
use crate::index::exact::{Hit, TopK, dot};
use crate::index::graph_search::{self, quantize_query};
use crate::index::search::BlockScratch;
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
/// One segment as a search sees it: its selected rows, its indexes and the plan for them. The
/// plan depends on the segment, the filter and the parameters, never on the query.
struct SegmentRun<'a> {
    handle: &'a SegmentHandle,
    passing: Passing<'a>,
    filter_time: Duration,
    graph: Option<skysift_storage::segment::graph::GraphView<'a>>,
    codes: Option<skysift_storage::segment::codes::CodesView<'a>>,
    facts: SegmentFacts,
    plan: Plan,
}

/// Plans segment `i` of the selection; `None` when the filter has no rows of it.
fn plan_segment<'a>(
    selection: Selection<'a>,
    i: usize,
    s: &'a SegmentHandle,
    p: &SearchParams,
    queries: usize,
) -> Option<SegmentRun<'a>> {
    let seg = &s.segment;
    let (passing, filter_time) = match selection {
        Selection::AllLive(_) => (Passing::Live(s), Duration::ZERO),
        Selection::Filter(prepared) => {
            let a = prepared.segments.get(i)?;
            (Passing::Rows(a), a.eval_time)
        }
    };
    let graph = if p.exact { None } else { seg.graph().and_then(Result::ok) };
    let codes = if p.f32_traversal { None } else { seg.codes().and_then(Result::ok) };
    let facts = SegmentFacts {
        rows: seg.rows(),
        passing: passing.count(),
        degree: graph.as_ref().map(|g| g.slots0() as usize),
        int8: codes.is_some(),
        calibrated: p.ef.is_none() && seg.calibration().is_some(),
        queries,
        dim: seg.dim(),
        model: plan::CostModel::this_cpu(),
    };
    let plan = match selection {
        Selection::AllLive(_) => plan::unfiltered(&facts, p.k, p.ef_for(seg), p.exact),
        Selection::Filter(prepared) => {
            let force = if p.exact { Some(Strategy::Exact) } else { prepared.force };
            choose(&facts, p.k, p.ef_for(seg), force)
        }
    };
    Some(SegmentRun { handle: s, passing, filter_time, graph, codes, facts, plan })
}

impl SegmentRun<'_> {
    /// What `EXPLAIN` shows of this segment's search by `ran` of `queries` queries.
    fn explain(&self, ran: Strategy, search_time: Duration, evaluations: usize, queries: usize) -> SegmentExplain {
        let seg = &self.handle.segment;
        SegmentExplain {
            segment: Some(seg.segment_id()),
            rows: seg.rows() as u64,
            live: self.handle.live(),
            estimated: None,
            passing: self.facts.passing as u64,
            fallback: ran != self.plan.strategy,
            plan: self.plan.clone(),
            ran,
            filter_time: self.filter_time,
            search_time,
            evaluations,
            queries,
        }
    }

    /// Whether the plan reads every selected row (then a block of queries shares the reads).
    fn scans(&self) -> bool {
        self.facts.passing > 0
            && match self.plan.strategy {
                Strategy::Exact => true,
                Strategy::Int8Scan => self.codes.is_some(),
                Strategy::Graph | Strategy::TwoHop => self.graph.is_none(),
            }
    }

    /// Runs the plan for one query into `scratch.top`; returns the strategy that produced the
    /// results.
    fn run(&self, query: &[f32], p: &SearchParams, scratch: &mut SearchScratch) -> Strategy {
        let seg = &self.handle.segment;
        if self.facts.passing == 0 {
            return self.plan.strategy;
        }
        let ran = match (self.plan.strategy, &self.graph, &self.codes) {
            (Strategy::Int8Scan, _, Some(codes)) => {
                int8_scan(seg, codes, self.passing, query, self.plan.rescore, scratch);
                Strategy::Int8Scan
            }
            (Strategy::Graph | Strategy::TwoHop, Some(g), codes) => {
                let found = traverse(self.handle, g, *codes, self.passing, &self.plan, query, p, scratch);
                if rescore(seg, found, self.facts.passing, query, p, scratch) {
                    self.plan.strategy
                } else {
                    Strategy::Exact
                }
            }
            _ => Strategy::Exact,
        };
        if ran == Strategy::Exact {
            exact_scan(seg, self.passing, query, &mut scratch.top, &mut scratch.evaluations);
        }
        ran
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
        let Some(run) = plan_segment(selection, i, s, p, 1) else { continue };
        let ran = run.run(query, p, scratch);
        if let Some(e) = explain.as_deref_mut() {
            e.segments.push(run.explain(ran, started.elapsed(), scratch.evaluations - before, 1));
        }
    }
    search_memtable(selection, query, scratch, explain);
    scratch.top.drain_sorted()
}

/// Queries searched together (by `CollectionSnapshot::search_batch`): a scanned segment's rows
/// are read once for all of them. Int8 scans of 1M rows, one thread, QPS at 2.6 % and 0.5 % passing, blocks of 16:
/// 891-1,337 and 3,929-5,217; of 32: 1,346-1,677 and 4,712-5,774; of 64: 1,496-1,551 and
/// 5,532-5,894 (two interleaved rounds); one query at a time: about 200 and 900.
pub const BLOCK: usize = 32;

/// Searches up to [`BLOCK`] queries (each checked and normalised, `dim` components, end to end)
/// over the same selection, the results in query order: under the same plan, the ones [`search`]
/// gives each of them. Each segment is planned once, for the block; where the plan scans, every
/// selected row is read once and scored against all the queries (the scan then waits on
/// arithmetic, not memory); a traversal runs query by query. `scratch.evaluations` counts the
/// vectors scored for all of them.
pub(crate) fn search_block(
    selection: Selection<'_>,
    queries: &[f32],
    dim: usize,
    p: &SearchParams,
    scratch: &mut SearchScratch,
    mut explain: Option<&mut Explain>,
) -> Vec<Vec<Hit>> {
    let state = selection.state();
    let n = queries.len() / dim.max(1);
    let mut block = std::mem::take(&mut scratch.block);
    block.tops.resize_with(n, Default::default);
    for top in &mut block.tops[..n] {
        top.reset(p.k);
    }
    scratch.evaluations = 0;
    for (i, s) in state.segments.iter().enumerate() {
        let started = Instant::now();
        let before = scratch.evaluations;
        let Some(run) = plan_segment(selection, i, s, p, n) else { continue };
        let mut ran = run.plan.strategy;
        if run.scans() && n > 1 {
            let keep = run.plan.rescore;
            if let (Strategy::Int8Scan, Some(codes)) = (run.plan.strategy, &run.codes) {
                int8_scan_block(
                    &s.segment,
                    codes,
                    run.passing,
                    queries,
                    dim,
                    keep,
                    &mut block,
                    &mut scratch.evaluations,
                );
            } else {
                exact_scan_block(&s.segment, run.passing, queries, dim, &mut block.tops, &mut scratch.evaluations);
                ran = Strategy::Exact;
            }
        } else {
            for (q, top) in queries.chunks_exact(dim).zip(&mut block.tops) {
                std::mem::swap(&mut scratch.top, top);
                let r = run.run(q, p, scratch);
                std::mem::swap(&mut scratch.top, top);
                if r != run.plan.strategy {
                    ran = r;
                }
            }
        }
        if let Some(e) = explain.as_deref_mut() {
            e.segments.push(run.explain(ran, started.elapsed(), scratch.evaluations - before, n));
        }
    }
    let mut out = Vec::with_capacity(n);
    for (j, (q, top)) in queries.chunks_exact(dim).zip(&mut block.tops).enumerate() {
        std::mem::swap(&mut scratch.top, top);
        search_memtable(selection, q, scratch, if j == 0 { explain.as_deref_mut() } else { None });
        out.push(scratch.top.drain_sorted());
        std::mem::swap(&mut scratch.top, top);
    }
    scratch.block = block;
    out
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
    let approx = &mut scratch.approx;
    approx.clear();
    // The selected rows are scattered over the codes: each is requested SCAN_AHEAD rows before
    // it is scored, so that the misses overlap.
    let (room, mut floor) = (candidate_room(keep), f32::NEG_INFINITY);
    let mut ahead = passing.rows().skip(SCAN_AHEAD);
    for row in passing.rows() {
        if let Some(next) = ahead.next() {
            prefetch(codes.row(next as usize), usize::MAX);
        }
        let s = simsimd::SpatialSimilarity::dot(codes.row(row as usize), scratch.qcodes.as_slice())
            .map_or(f32::NEG_INFINITY, |d| d as f32 * t);
        offer(approx, &mut floor, keep, room, s, row);
    }
    scratch.evaluations += passing.count();
    rescore_best(seg, approx, keep, query, &mut scratch.top, &mut scratch.evaluations);
}

/// The order of an int8 scan's candidates: by score, best first, ties to the lower row (the
/// same for a query alone and in a block, so both keep the same candidates).
#[expect(clippy::trivially_copy_pass_by_ref, reason = "the comparator form `select_nth_unstable_by` calls")]
fn best_first(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Candidates an int8 scan holds per query before it prunes them to the best `keep`.
fn candidate_room(keep: usize) -> usize {
    (4 * keep).max(1024)
}

/// Offers `(s, row)` to an int8 scan's candidates: kept when it reaches `floor`, the `keep`-th
/// best score of the last pruning; once `room` are held they are pruned to the best `keep`
/// (which raises the floor). Deterministic: the same offers keep the same candidates.
#[inline]
fn offer(approx: &mut Vec<(f32, u32)>, floor: &mut f32, keep: usize, room: usize, s: f32, row: u32) {
    if s < *floor {
        return;
    }
    approx.push((s, row));
    if approx.len() >= room && keep > 0 {
        approx.select_nth_unstable_by(keep - 1, best_first);
        approx.truncate(keep);
        *floor = approx.get(keep - 1).map_or(f32::NEG_INFINITY, |x| x.0);
    }
}

/// Rescores exactly the best `keep` of `approx` (int8 scores) into `top`.
fn rescore_best(
    seg: &Segment,
    approx: &mut [(f32, u32)],
    keep: usize,
    query: &[f32],
    top: &mut TopK,
    evaluations: &mut usize,
) {
    let ids = seg.ids();
    let keep = keep.min(approx.len());
    if keep > 0 && keep < approx.len() {
        approx.select_nth_unstable_by(keep - 1, best_first);
    }
    for &(_, row) in approx.iter().take(keep) {
        *evaluations += 1;
        let score = dot(seg.vector(row as usize), query);
        top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
    }
}

/// [`int8_scan`] for a block of queries: each selected row's codes are read once and scored
/// against every query's codes; then each query rescores its own best `keep`.
#[expect(clippy::too_many_arguments, reason = "one block scan's inputs, each used once")]
fn int8_scan_block(
    seg: &Segment,
    codes: &skysift_storage::segment::codes::CodesView<'_>,
    passing: Passing<'_>,
    queries: &[f32],
    dim: usize,
    keep: usize,
    block: &mut BlockScratch,
    evaluations: &mut usize,
) {
    let n = queries.len() / dim.max(1);
    block.qcodes.resize_with(n, Vec::new);
    block.approx.resize_with(n, Vec::new);
    block.scales.clear();
    for (q, qc) in queries.chunks_exact(dim).zip(&mut block.qcodes) {
        block.scales.push(quantize_query(codes, q, qc));
    }
    for a in &mut block.approx[..n] {
        a.clear();
    }
    block.held.set(dim, block.qcodes[..n].iter().map(Vec::as_slice));
    block.dots.resize(n, 0);
    block.floors.clear();
    block.floors.resize(n, f32::NEG_INFINITY);
    let room = candidate_room(keep);
    let mut ahead = passing.rows().skip(SCAN_AHEAD);
    for row in passing.rows() {
        if let Some(next) = ahead.next() {
            prefetch(codes.row(next as usize), usize::MAX);
        }
        let c = codes.row(row as usize);
        block.held.dots(c, &mut block.dots);
        let valid = c.len() == dim;
        let per_query = block.dots.iter().zip(&block.scales).zip(&mut block.approx).zip(&mut block.floors);
        for (((&d, &t), approx), floor) in per_query {
            offer(approx, floor, keep, room, if valid { d as f32 * t } else { f32::NEG_INFINITY }, row);
        }
    }
    for ((q, approx), top) in queries.chunks_exact(dim).zip(&mut block.approx).zip(&mut block.tops) {
        *evaluations += passing.count();
        rescore_best(seg, approx, keep, q, top, evaluations);
    }
}

/// Scores every selected row exactly into `top`.
fn exact_scan(seg: &Segment, passing: Passing<'_>, query: &[f32], top: &mut TopK, evaluations: &mut usize) {
    let ids = seg.ids();
    let mut ahead = passing.rows().skip(SCAN_AHEAD);
    for row in passing.rows() {
        if let Some(next) = ahead.next() {
            prefetch(seg.vector(next as usize), VECTOR_LINES);
        }
        *evaluations += 1;
        let score = dot(seg.vector(row as usize), query);
        if score >= top.threshold() {
            top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
        }
    }
}

/// [`exact_scan`] for a block of queries: each selected row is read once and scored against
/// every query, into that query's top.
fn exact_scan_block(
    seg: &Segment,
    passing: Passing<'_>,
    queries: &[f32],
    dim: usize,
    tops: &mut [TopK],
    evaluations: &mut usize,
) {
    let ids = seg.ids();
    let mut ahead = passing.rows().skip(SCAN_AHEAD);
    for row in passing.rows() {
        if let Some(next) = ahead.next() {
            prefetch(seg.vector(next as usize), VECTOR_LINES);
        }
        let v = seg.vector(row as usize);
        for (q, top) in queries.chunks_exact(dim).zip(tops.iter_mut()) {
            *evaluations += 1;
            let score = dot(v, q);
            if score >= top.threshold() {
                top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
            }
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
                row_read_ns: plan::CostModel::this_cpu().row_read_ns,
                reason: "in-memory rows: evaluated row by row, scanned".into(),
            },
            ran: Strategy::Exact,
            fallback: false,
            filter_time,
            search_time: started.elapsed(),
            evaluations: scratch.evaluations - before,
            queries: 1,
        });
    }
}
