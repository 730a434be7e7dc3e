//! Reading what users bring: precomputed vector files and JSON-lines metadata.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `vectors.rs` | `.npy` (float32/float64, 2-D, C order) and `.fbin` (big-ann) readers |
//! | `metadata.rs` | JSON-lines metadata: schema inference, typed conversion with row/field errors |

pub mod metadata;
pub mod vectors;
