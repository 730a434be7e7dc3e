//! The storage crate's one error type.
//!
//! Context lives in typed fields so that callers can match on it; every message says what to
//! do next.

use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong below the database API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error on {path}: {source} (check free space and permissions, then retry)")]
    Io {
        /// File or directory the call was made on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another writer (thread or process) holds the database.
    #[error("database {path} is locked by another writer; close it or open this one read-only")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// Bytes on disk do not have the shape their format requires.
    #[error(
        "corrupted {file}, {region} at offset {offset}: {reason}; run `skysift verify` and restore \
         from a backup, or open with recovery to skip this file"
    )]
    Corrupted {
        /// The damaged file.
        file: PathBuf,
        /// Which part of the file (header, footer, a named section, a WAL frame, ...).
        region: String,
        /// Byte offset of the region inside the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A checksum did not match the bytes it covers.
    #[error(
        "checksum mismatch in {file}, {region} at offset {offset}: expected {expected:#010x}, got \
         {got:#010x}; run `skysift verify` and restore from a backup"
    )]
    ChecksumMismatch {
        /// The damaged file.
        file: PathBuf,
        /// Which part of the file.
        region: String,
        /// Byte offset of the region inside the file.
        offset: u64,
        /// Checksum stored in the file.
        expected: u32,
        /// Checksum computed over the bytes.
        got: u32,
    },
    /// A file was written by a format version this build does not read.
    #[error("{file} has format version {found}, this build reads {oldest}..={current}; upgrade skysift")]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// Version found in the file.
        found: u16,
        /// Oldest version this build reads.
        oldest: u16,
        /// Version this build writes.
        current: u16,
    },
    /// The caller asked for something the stored data cannot satisfy.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A segment to attach was written for another schema (dimension, metric, field names or
    /// types) than the collection's.
    #[error("cannot attach {}: {reason}", shard.display())]
    AttachSchema {
        /// The staged segment file.
        shard: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A segment to attach holds an id that is live in the collection or in another staged
    /// segment.
    #[error(
        "cannot attach {}: id {id} is also in {}; attach with upsert (--upsert) to replace the \
         collection's rows, or remove the duplicate",
        shard.display(),
        other.display()
    )]
    IdCollision {
        /// The colliding id.
        id: u64,
        /// The staged segment file that holds it.
        shard: PathBuf,
        /// Where else it is (the database directory or another staged file).
        other: PathBuf,
    },
    /// A previous I/O failure left the writer in an unknown state.
    #[error(
        "the writer stopped after an earlier I/O failure ({0}); reopen the database to recover the \
         last committed state"
    )]
    Poisoned(String),
}

impl Error {
    /// Wraps an `std::io::Error` with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Builds a [`Error::Corrupted`].
    pub fn corrupted(
        file: impl Into<PathBuf>,
        region: impl Into<String>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupted { file: file.into(), region: region.into(), offset, reason: reason.into() }
    }

    /// True for errors that say the bytes on disk are damaged.
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupted { .. } | Error::ChecksumMismatch { .. } | Error::UnsupportedVersion { .. })
    }
}
