//! What a search is asked to do ([`SearchParams`]) and the memory it reuses ([`SearchScratch`]).
//! The search itself, unfiltered or filtered, is one executor: `crate::query::exec`.

use skysift_storage::segment::Segment;

use super::exact::TopK;
use super::graph_search::{GraphScratch, TwoHopScratch};

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

/// Caller-owned memory reused across searches (unfiltered and filtered alike): one per thread
/// that searches, never shared, so a search allocates only what its first use needs.
#[derive(Debug, Default)]
pub struct SearchScratch {
    /// The top-k collector.
    pub(crate) top: TopK,
    /// HNSW traversal.
    pub(crate) graph: GraphScratch,
    /// Two-hop traversal, and the nodes one expansion found.
    pub(crate) two_hop: TwoHopScratch,
    pub(crate) found: Vec<u32>,
    /// `(int8 score, row)` of an int8 scan, before rescoring.
    pub(crate) approx: Vec<(f32, u32)>,
    /// The query quantized for int8 scoring.
    pub(crate) qcodes: Vec<i8>,
    /// Distance evaluations of the last search (graph traversal plus rescoring).
    pub evaluations: usize,
    /// A block of queries searched together.
    pub(crate) block: BlockScratch,
}

/// What a block of queries searched together keeps per query.
#[derive(Debug, Default)]
pub(crate) struct BlockScratch {
    /// Each query's top-k.
    pub(crate) tops: Vec<TopK>,
    /// Each query quantized for int8 scoring, and its scale.
    pub(crate) qcodes: Vec<Vec<i8>>,
    pub(crate) scales: Vec<f32>,
    /// Each query's `(int8 score, row)` candidates of an int8 scan, and the score they must reach.
    pub(crate) approx: Vec<Vec<(f32, u32)>>,
    pub(crate) floors: Vec<f32>,
    /// The query codes widened for the block kernel, and one row's products with them.
    pub(crate) held: skysift_storage::hint::I8Queries,
    pub(crate) dots: Vec<i32>,
}
