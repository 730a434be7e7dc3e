//! skysift-storage: every byte skysift keeps on disk, and every `unsafe`.
//!
//! | module | responsibility |
//! | --- | --- |
//! | [`io`] | the one file-system trait, real and fault-injecting |
//! | `mmap` (private) | the only place that maps files |
//! | `preamble` (private) | `check_preamble`: magic, header checksum and version, for every file header |
//! | [`bytes`] | immutable byte buffers the views parse from |
//! | [`lock`] | the single-writer lock |
//! | [`codec`] | little-endian encoding helpers |
//! | [`schema`] | schemas, values and records |
//! | [`manifest`] | the atomically published manifest |
//! | [`wal`] | the write-ahead log |
//! | [`segment`] | immutable segment files |
//! | [`memtable`] | the mutable in-memory segment |
//! | [`store`] | the durable state machine: open, commit, flush, compact, snapshots |
//! | [`verify`] | reads every byte and checks every checksum |
//! | [`hint`] | the index's hot loops: prefetch hints and the build's AVX-512 inner product |
//! | [`fuzzing`] | byte-level entry points of the fuzz targets and the corpus replay |
//! | [`vecblob`] | named vector blobs beside a collection (the query sample) |
//!
//! The layouts and the commit protocol are specified in `storage/FORMAT.md`.
//!
//! ```
//! use skysift_storage::schema::{Metric, Record, Schema};
//! use skysift_storage::store::{Store, StoreOptions};
//! use skysift_storage::wal::Op;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! let schema = Schema::new(2, Metric::InnerProduct, vec![]).unwrap();
//! store.create_collection("c", schema.clone(), vec![]).unwrap();
//! let values = vec![None; schema.fields.len()];
//! store.commit("c", vec![Op::Put(Record { id: 7, vector: vec![1.0, 0.0], values })]).unwrap();
//! store.flush("c").unwrap();
//! assert_eq!(store.snapshot().collections["c"].count(), 1);
//! ```

#![warn(missing_docs)]
#![deny(clippy::indexing_slicing)]

pub mod bytes;
pub mod codec;
pub mod error;
pub mod fuzzing;
pub mod hint;
pub mod io;
pub mod lock;
pub mod manifest;
pub mod memtable;
mod mmap;
mod preamble;
pub mod schema;
pub mod segment;
pub mod store;
pub mod vecblob;
pub mod verify;
pub mod wal;

pub use error::{Error, Result};
