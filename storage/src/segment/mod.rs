//! Immutable segments: one file per segment, sections inside it.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `footer.rs` | container layout: header, section table, footer, section kinds |
//! | `writer.rs` | `write_segment`: streams rows into a new file, one pass per section |
//! | `reader.rs` | `Segment`: checks a file at open and views vectors, ids, columns, bitmaps in place |
//!
//! Invariant: a segment file is written once, synced, published by a manifest, and never
//! modified again; deletes are tombstones in the manifest.

pub mod footer;
pub mod reader;
pub mod writer;

pub use reader::{Damage, Segment};
pub use writer::{RowSource, write_segment};
