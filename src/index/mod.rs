//! Search over a collection snapshot.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `exact.rs` | exact top-k by SIMD inner product over live rows, with a reusable scratch |
//!
//! Invariant: results are sorted by descending score (ties by ascending id), hold unique live
//! ids, and number `min(k, live rows)`.

pub mod exact;

pub use exact::{Hit, SearchScratch, TopK};
