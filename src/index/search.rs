//! Collection search: each segment by its graph (or exactly, when it has none or is small),
//! the in-memory rows exactly, results merged into one top-k.
//!
//! Invariant: the result holds `min(k, live rows)` unique live ids, best first: a segment whose
//! graph search returns fewer than it can is scanned exactly instead.

use skysift_storage::segment::Segment;
use skysift_storage::store::CollectionState;

use super::exact::{Hit, TopK, dot};
use super::hnsw::{GraphScratch, Scorer, search};

/// Per-query search settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// Results wanted.
    pub k: usize,
    /// Graph search width (`ef`); `None` picks `max(64, 4k)`.
    pub ef: Option<usize>,
    /// Force an exact scan (ignores graphs).
    pub exact: bool,
    /// Traverse on f32 vectors even where int8 codes exist.
    pub f32_traversal: bool,
    /// Candidates rescored with f32 per segment; `None` rescores all `ef`.
    pub rescore: Option<usize>,
    /// Learned anchors scored per segment to seed layer 0; `None` uses all the graph has.
    pub anchors: Option<usize>,
}

impl SearchParams {
    /// `k` results with the default `ef`.
    #[must_use]
    pub fn k(k: usize) -> Self {
        SearchParams { k, ef: None, exact: false, f32_traversal: false, rescore: None, anchors: None }
    }

    /// The `ef` used where a segment has no calibration.
    #[must_use]
    pub fn ef_or_default(&self) -> usize {
        self.ef.unwrap_or(64.max(4 * self.k)).max(self.k)
    }

    /// The `ef` used on `seg`: the caller's when given; otherwise the width the segment's build
    /// measured to reach its recall target on held-out sample queries (at least `k`), or the
    /// default for a segment without calibration.
    #[must_use]
    pub fn ef_for(&self, seg: &Segment) -> usize {
        match (self.ef, seg.calibration()) {
            (Some(ef), _) => ef.max(self.k),
            (None, Some((ef, _, _))) => (ef as usize).max(self.k),
            (None, None) => self.ef_or_default(),
        }
    }
}

/// Caller-owned memory reused across searches.
#[derive(Debug, Default)]
pub struct SearchScratch {
    pub(crate) top: TopK,
    pub(crate) graph: GraphScratch,
    /// Distance evaluations of the last search (graph traversal plus rescoring).
    pub evaluations: usize,
}

/// How one segment was searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Exact SIMD scan.
    Exact,
    /// Graph traversal on int8 codes, exact rescoring.
    GraphInt8,
    /// Graph traversal on f32 vectors.
    GraphF32,
}

/// Searches `col` for `query` (already checked and normalised).
pub fn search_collection(
    col: &CollectionState,
    query: &[f32],
    p: &SearchParams,
    scratch: &mut SearchScratch,
) -> Vec<Hit> {
    scratch.top.reset(p.k);
    scratch.evaluations = 0;
    let dim = col.schema.dim as usize;
    let mut qcodes = std::mem::take(scratch.graph_qcodes());
    for s in &col.segments {
        let seg = &s.segment;
        let ef = p.ef_for(seg);
        let live_rows = s.live() as usize;
        let want = p.k.min(live_rows);
        let graph = if p.exact { None } else { seg.graph().and_then(Result::ok) };
        let mut done = false;
        if let Some(graph) = graph {
            let codes = if p.f32_traversal { None } else { seg.codes().and_then(Result::ok) };
            let live = |r: u32| !s.tombstones.contains(r);
            let scorer = Scorer::for_query(codes, seg.vectors(), dim, query, &mut qcodes);
            let found = search(&graph, &scorer, ef, p.anchors, &live, &mut scratch.graph);
            scratch.evaluations += scratch.graph.evaluations;
            if found.len() >= want {
                let ids = seg.ids();
                let take = p.rescore.map_or(found.len(), |r| r.max(want));
                for (_, row) in found.into_iter().take(take) {
                    let score = dot(seg.vector(row as usize), query);
                    scratch.evaluations += 1;
                    scratch.top.push(Hit { id: ids.get(row as usize).copied().unwrap_or(u64::MAX), score });
                }
                done = true;
            }
        }
        if !done {
            let ids = seg.ids();
            for (row, v) in seg.vectors().chunks_exact(dim).enumerate() {
                if s.tombstones.contains(row as u32) {
                    continue;
                }
                scratch.evaluations += 1;
                scratch.top.push(Hit { id: ids.get(row).copied().unwrap_or(u64::MAX), score: dot(v, query) });
            }
        }
    }
    for (_, r) in col.mem.live_rows() {
        scratch.evaluations += 1;
        scratch.top.push(Hit { id: r.id, score: dot(&r.vector, query) });
    }
    *scratch.graph_qcodes() = qcodes;
    scratch.top.drain_sorted()
}

impl SearchScratch {
    fn graph_qcodes(&mut self) -> &mut Vec<i8> {
        self.graph.qcodes_mut()
    }
}
