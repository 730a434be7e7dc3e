//! skysift: an embedded engine for cross-modal retrieval over remote-sensing archives.
//!
//! | module | responsibility |
//! | --- | --- |
//! | [`db`] | `Db` handle, builder, collections, write transactions, snapshots |
//! | [`index`] | search over a snapshot (exact SIMD scan today) |
//! | [`ingest`] | reading vector files and JSON-lines metadata |
//! | [`filter`] | the filter language: parse, type-check, evaluate to per-segment bitmaps |
//! | [`query`] | filtered search: planner (cost model), executor, `EXPLAIN` |
//! | [`analyst`] | relevance feedback, few-shot classifier, every match above a score, paging, grouping, MMR, merged places, change over time |
//! | [`error`] | the crate's error type |
//!
//! Every byte on disk belongs to the `skysift-storage` crate; this crate has no `unsafe`.
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

pub mod analyst;
pub mod db;
pub mod encode;
pub mod error;
pub mod filter;
pub mod fuzzing;
pub mod gallery;
pub mod index;
pub mod ingest;
pub mod query;
pub mod repl;
pub mod session;

pub use db::{
    CollectionSnapshot, CollectionSpec, CommitInfo, Db, DbBuilder, NewRecord, SegmentIndexInfo, SegmentInfo, Snapshot,
    StoredRecord, WriteTxn,
};
pub use error::{Error, Result};
pub use index::{Hit, IndexParams, SearchParams, SearchScratch};
pub use skysift_storage::schema;
pub use skysift_storage::{io, verify};
