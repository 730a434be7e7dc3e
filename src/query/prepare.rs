//! `PreparedFilter`: a filter evaluated once against one collection snapshot, reused by every
//! query of a batch.
//!
//! Invariant: `segments[i]` holds the live rows of `state.segments[i]` that pass the filter
//! (tombstones removed), and `mem` the live in-memory rows that pass, in row order.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use roaring::RoaringBitmap;
use skysift_storage::store::CollectionState;

use super::plan::Strategy;
use crate::error::Result;
use crate::filter::Filter;
use crate::filter::eval::{eval_segment, matches_record};

/// The passing rows of one segment.
#[derive(Debug)]
pub struct AllowedRows {
    /// Live rows that pass, as a roaring bitmap.
    pub rows: RoaringBitmap,
    /// Time spent evaluating the filter on this segment.
    pub eval_time: Duration,
    dense: OnceLock<Vec<u64>>,
    spread: OnceLock<Vec<u32>>,
}

impl AllowedRows {
    fn new(rows: RoaringBitmap, eval_time: Duration) -> Self {
        AllowedRows { rows, eval_time, dense: OnceLock::new(), spread: OnceLock::new() }
    }

    /// A few passing rows spread over the segment (seeds of the two-hop traversal).
    pub(crate) fn spread(&self) -> &[u32] {
        self.spread.get_or_init(|| spread(&self.rows))
    }

    /// The rows as a plain bitset (one bit per segment row), built on first use: graph traversal
    /// tests membership for every node it touches, and a bit test is cheaper than a roaring probe.
    pub(crate) fn bits(&self, segment_rows: usize) -> &[u64] {
        self.dense.get_or_init(|| {
            let mut bits = vec![0u64; segment_rows.div_ceil(64)];
            for r in &self.rows {
                if let Some(w) = bits.get_mut(r as usize / 64) {
                    *w |= 1 << (r % 64);
                }
            }
            bits
        })
    }
}

/// Passing rows spread over a segment, scored as extra seeds of two-hop traversal.
const SPREAD_SEEDS: u32 = 16;

/// Up to [`SPREAD_SEEDS`] passing rows evenly spaced through `rows`.
fn spread(rows: &RoaringBitmap) -> Vec<u32> {
    let n = rows.len();
    if n == 0 {
        return Vec::new();
    }
    let step = (n / u64::from(SPREAD_SEEDS)).max(1);
    (0..u64::from(SPREAD_SEEDS)).filter_map(|i| rows.select(u32::try_from(i * step).ok()?)).collect()
}

/// Whether bit `row` is set.
#[inline]
pub(crate) fn bit(bits: &[u64], row: u32) -> bool {
    bits.get(row as usize / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
}

/// A filter evaluated against one snapshot of a collection.
#[derive(Debug)]
pub struct PreparedFilter {
    pub(crate) state: Arc<CollectionState>,
    pub(crate) filter: Filter,
    pub(crate) segments: Vec<AllowedRows>,
    pub(crate) mem: Vec<u32>,
    pub(crate) mem_time: Duration,
    pub(crate) force: Option<Strategy>,
}

impl PreparedFilter {
    /// Evaluates `filter` on every segment (indexes) and on the in-memory rows (row by row).
    pub fn new(state: Arc<CollectionState>, filter: Filter) -> Result<PreparedFilter> {
        let mut segments = Vec::with_capacity(state.segments.len());
        for s in &state.segments {
            let t = Instant::now();
            let mut rows = eval_segment(&filter, &s.segment)?;
            rows -= &*s.tombstones;
            segments.push(AllowedRows::new(rows, t.elapsed()));
        }
        let t = Instant::now();
        let mem = state
            .mem
            .live_rows()
            .filter(|(_, r)| matches_record(&filter, r.id, &r.values))
            .map(|(row, _)| row as u32)
            .collect();
        Ok(PreparedFilter { mem_time: t.elapsed(), state, filter, segments, mem, force: None })
    }

    /// Forces one strategy on every segment that can use it (benchmarks and tests; the planner
    /// chooses by itself otherwise). A forced graph strategy still falls back to an exact scan
    /// when it finds fewer than `k` rows.
    #[must_use]
    pub fn force(mut self, strategy: Option<Strategy>) -> Self {
        self.force = strategy;
        self
    }

    /// The filter.
    #[must_use]
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Live records that pass.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.segments.iter().map(|a| a.rows.len()).sum::<u64>() + self.mem.len() as u64
    }

    /// Ids of the live records that pass, ascending.
    #[must_use]
    pub fn ids(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(usize::try_from(self.count()).unwrap_or(0));
        for (a, s) in self.segments.iter().zip(&self.state.segments) {
            let ids = s.segment.ids();
            out.extend(a.rows.iter().filter_map(|r| ids.get(r as usize).copied()));
        }
        out.extend(self.mem.iter().filter_map(|r| self.state.mem.record(*r as usize).map(|r| r.id)));
        out.sort_unstable();
        out
    }

    /// Passing rows per segment (in snapshot order) and of the in-memory rows.
    #[must_use]
    pub fn segments(&self) -> &[AllowedRows] {
        &self.segments
    }

    /// Time spent evaluating, all segments and the in-memory rows together.
    #[must_use]
    pub fn eval_time(&self) -> Duration {
        self.segments.iter().map(|a| a.eval_time).sum::<Duration>() + self.mem_time
    }
}
