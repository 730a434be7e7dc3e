//! Search over a collection snapshot.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `exact.rs` | exact top-k by SIMD inner product over live rows, with a reusable scratch |
//! | `params.rs` | index parameters kept in collection parameters (`index.*`) |
//! | `build.rs` | graph construction (`hnsw_rs`), freezing, query-guided edges, int8 codes |
//! | `native.rs` | skysift's own parallel HNSW construction on flat arrays (the default builder) |
//! | `hnsw.rs` | search over the mapped graph: int8 traversal, exact rescoring |
//! | `search.rs` | per-collection search: graph or exact per segment, merge with the memtable |
//!
//! Invariant: results are sorted by descending score (ties by ascending id), hold unique live
//! ids, and number `min(k, live rows)`.

pub mod build;
pub mod exact;
pub mod hnsw;
pub mod native;
pub mod params;
pub mod search;

pub use exact::{Hit, TopK};
pub use params::IndexParams;
pub use search::{SearchParams, SearchScratch};
