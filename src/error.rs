//! The `skysift` crate's error type.

use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library API can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the storage layer (I/O, corruption, locking, versions).
    #[error(transparent)]
    Storage(#[from] skysift_storage::Error),
    /// No collection has this name.
    #[error("no collection named {name:?}; existing: {existing}")]
    NoSuchCollection {
        /// The name asked for.
        name: String,
        /// Existing collection names, comma-separated.
        existing: String,
    },
    /// A record or query does not fit the collection's schema.
    #[error("{0}")]
    Schema(String),
    /// A record that does not fit the collection's schema (unknown field, wrong type or
    /// dimension, a zero vector under cosine): nothing of it was written. Importers skip the file
    /// it came from and go on.
    #[error("{reason}")]
    BadRecord {
        /// The record's id.
        id: u64,
        /// What does not fit, naming the record and the field.
        reason: String,
    },
    /// `insert` of an id that is already live; use `upsert` to replace it.
    #[error("record id {id} already exists in {collection:?}; use upsert to replace it")]
    DuplicateId {
        /// The collection.
        collection: String,
        /// The id.
        id: u64,
    },
    /// An input file could not be read as what it claims to be.
    #[error("{path}: {reason}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming row and field where known.
        reason: String,
    },
    /// A shard given to [`crate::Db::attach`] cannot be attached as it is.
    #[error("cannot attach {}: {reason}", shard.display())]
    AttachRefused {
        /// The shard database (or staging directory).
        shard: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A request the API cannot serve as asked.
    #[error("{0}")]
    Invalid(String),
    /// From the encoders (model files, ONNX Runtime, templates, provenance).
    #[cfg(feature = "encode")]
    #[error(transparent)]
    Encode(#[from] crate::encode::EncodeError),
    /// A filter that does not parse or does not fit the schema: the message, the position in the
    /// filter text, what was expected there, and a hint (such as the closest field name).
    #[error("filter: {0}")]
    Filter(Box<crate::filter::FilterError>),
}

impl Error {
    pub(crate) fn bad_input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadInput { path: path.into(), reason: reason.into() }
    }
}
