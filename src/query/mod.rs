//! Search execution: the planner, the one executor (unfiltered search runs it over every live
//! row, filtered search over a prepared filter's rows) and `EXPLAIN`.
//!
//! A [`PreparedFilter`] holds, for one collection snapshot, the live rows of each segment that
//! pass a [`crate::filter::Filter`] (a roaring bitmap per segment, from the segment indexes) and
//! the passing in-memory rows. For each query the planner picks, per segment, an exact scan of
//! the passing rows, filtered HNSW traversal, or two-hop traversal, by the passing count and a
//! cost model; the executor runs the plans and merges the top-k.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `prepare.rs` | [`PreparedFilter`]: evaluation once per snapshot, passing bitmaps and bitsets |
//! | `plan.rs` | the cost model and [`Strategy`] choice with its reason; the unfiltered plan |
//! | `two_hop.rs` | ACORN-style traversal that scores only passing nodes |
//! | `exec.rs` | the search loop: plan, traverse or scan, rescore, fall back to the exact scan, merge the in-memory rows; a block of queries scanning each selected row once |
//! | `heatmap.rs` | semantic localisation: each tile of an imported scene scored against a query, drawn over the scene |
//! | `explain.rs` | [`Explain`]: per segment estimated/actual passing rows, strategy, why, time |
//!
//! Invariant: results hold `min(k, passing live rows)` unique ids, best first, each passing the
//! filter and live.

pub(crate) mod exec;
mod explain;
#[cfg(feature = "encode")]
pub mod heatmap;
pub mod plan;
mod prepare;
mod two_hop;

pub use exec::BLOCK;
pub use explain::{Explain, SegmentExplain};
pub use plan::{Plan, SegmentFacts, Strategy};
pub use prepare::{AllowedRows, PreparedFilter};
