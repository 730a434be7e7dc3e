//! Search primitives over a collection snapshot; the search loop that uses them (unfiltered and
//! filtered alike) is the executor, `crate::query::exec`.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `exact.rs` | exact top-k by SIMD inner product over live rows, with a reusable scratch |
//! | `params.rs` | index parameters kept in collection parameters (`index.*`) |
//! | `segment_index.rs` | a segment's index: the graph by the chosen builder, query-guided edges, int8 codes, calibration |
//! | `graph_builder.rs` | skysift's own parallel HNSW construction on flat arrays (the default builder) |
//! | `hnsw_rs_adapter.rs` | the graph built by `hnsw_rs` and frozen into the segment layout |
//! | `graph_search.rs` | search over the mapped graph (int8 or f32 scoring) and `Walk`, the traversal memory HNSW and two-hop share |
//! | `search.rs` | `SearchParams` (what a search asks) and `SearchScratch` (the caller-owned memory it reuses) |
//!
//! Invariant: results are sorted by descending score (ties by ascending id), hold unique live
//! ids, and number `min(k, live rows)`.

pub mod exact;
pub mod graph_builder;
pub mod graph_search;
pub mod hnsw_rs_adapter;
pub mod params;
pub mod search;
pub mod segment_index;

pub use exact::{Hit, TopK};
pub use params::IndexParams;
pub use search::{SearchParams, SearchScratch};
