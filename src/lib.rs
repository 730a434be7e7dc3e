//! skysift: an embedded engine for cross-modal retrieval over remote-sensing archives.
//!
//! | module | responsibility |
//! | --- | --- |
//! | [`attach`] | `Db::attach`: shards built elsewhere published in one commit |
//! | [`db`] | `Db` handle, builder, collections, write transactions, snapshots and their searches |
//! | [`index`] | search primitives: exact SIMD scan, graph construction, HNSW traversal, `SearchParams`, `SearchScratch` |
//! | [`query`] | the one search executor (unfiltered = every live row), the planner's cost model, `EXPLAIN`, scene heat maps |
//! | [`filter`] | the filter language: parse, type-check, evaluate to per-segment bitmaps |
//! | [`ingest`] | reading vector files, JSON-lines metadata and image archives, the import pipeline |
//! | [`encode`] | the ONNX Runtime encoders, prompt templates and ensembles, query language detection |
//! | [`session`] | a REPL/CLI session over one collection: encode, search, show records |
//! | [`repl`] | the interactive shell |
//! | [`present`] | results and how they are shown: key fields, display and JSON values, one `clean` for control characters, the result table |
//! | [`gallery`] | HTML galleries of search results, with a map of their footprints |
//! | [`export`] | result rows and whole collections to `GeoJSON`, `GeoParquet` (feature `parquet`), CSV, JSON lines; STAC with `emb:` fields; loading embedding products |
//! | [`time`] | timestamps as text (parse and format), used by filter and ingest alike |
//! | `fuzzing` | byte-level entry points of the fuzz targets (feature `fuzzing`) |
//! | [`analyst`] | relevance feedback, few-shot classifier, every match above a score, paging, grouping, MMR, merged places, change over time |
//! | [`error`] | the crate's error type |
//!
//! Every byte on disk belongs to the `skysift-storage` crate; this crate has no `unsafe`.
//!
//! Features: `encode` (default; ONNX Runtime encoders, imagery import, sessions, galleries,
//! analyst search; without it the crate is storage, index, filters, queries, attach and vector
//! files, for users who bring their own vectors), `cli` (default; the `skysift` binary's
//! dependencies: clap, anyhow, rustyline, ctrlc, indicatif), `parquet` (default; `GeoParquet` export and
//! `load --from` Parquet through the arrow and parquet crates; implies `encode`), `fuzzing` (the fuzz targets' entry points in
//! `fuzzing` for `fuzz/` and `tests/fuzz_corpus.rs`).
//!
//! ```
//! use skysift::{CollectionSpec, Db, NewRecord, SearchScratch};
//! use skysift::schema::{FieldType, Metric, Value};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path()).unwrap();
//! db.create_collection("scenes", CollectionSpec::new(3, Metric::Cosine).field("class", FieldType::Keyword)).unwrap();
//! let mut tx = db.begin_write("scenes").unwrap();
//! tx.insert(NewRecord::new(1, vec![1.0, 0.0, 0.0]).with("class", Value::Keyword("Port".into()))).unwrap();
//! tx.insert(NewRecord::new(2, vec![0.0, 1.0, 0.0])).unwrap();
//! tx.commit().unwrap();
//!
//! let snap = db.snapshot().collection("scenes").unwrap();
//! let hits = snap.search_exact(&[0.9, 0.1, 0.0], 1, &mut SearchScratch::default()).unwrap();
//! assert_eq!(hits[0].id, 1);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "encode")]
pub mod analyst;
pub mod attach;
pub mod db;
#[cfg(feature = "encode")]
pub mod encode;
pub mod error;
#[cfg(feature = "encode")]
pub mod export;
pub mod filter;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(feature = "encode")]
pub mod gallery;
pub mod index;
pub mod ingest;
pub mod present;
pub mod query;
#[cfg(feature = "encode")]
pub mod repl;
#[cfg(feature = "encode")]
pub mod session;
pub mod time;

pub use attach::AttachSummary;
pub use db::{
    CollectionSnapshot, CollectionSpec, CommitInfo, Db, DbBuilder, NewRecord, SegmentIndexInfo, SegmentInfo, Snapshot,
    StoredRecord, WriteTxn,
};
pub use error::{Error, Result};
pub use index::{Hit, IndexParams, SearchParams, SearchScratch};
pub use skysift_storage::schema;
pub use skysift_storage::store::{AppendReport, RowBatch};
pub use skysift_storage::{io, verify};
