//! Immutable segments: one file per segment, sections inside it.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `footer.rs` | container layout: header, section table, footer, section kinds |
//! | `writer.rs` | `write_segment`: streams rows into a new file, one pass per section |
//! | `reader.rs` | `Segment`: checks the container at open (header, footer, section table, bounds, lengths, the ids' checksum), each field's sections and the id index on first use, and hands each section to its view |
//! | `ids.rs` | row -> id and the id index: `IdsView` |
//! | `columns.rs` | fixed and variable-length columns with their validity bits: `FixedView`, `VarView` |
//! | `keywords.rs` | keyword dictionaries, row codes and per-value bitmaps: `KeywordView` |
//! | `graph.rs` | the frozen HNSW graph: `GraphData` (to write) and `GraphView` (searched in place) |
//! | `codes.rs` | int8 codes for quantized traversal: `encode_int8` and `CodesView` |
//! | `ranges.rs` | per-field range index (sorted values + bucket bitmaps): `RangesWriter`, `RangesView` |
//! | `geo.rs` | per-field spatial index (packed Hilbert R-tree of bboxes): `GeoWriter`, `GeoView` |
//!
//! Invariant: a segment file is written once, synced, published by a manifest, and never
//! modified again; deletes are tombstones in the manifest.

pub mod codes;
pub mod columns;
pub mod footer;
pub mod geo;
pub mod graph;
pub mod ids;
pub mod keywords;
pub mod ranges;
pub mod reader;
pub mod writer;

pub use reader::{Damage, Segment};
pub use writer::{RowSource, write_segment};
