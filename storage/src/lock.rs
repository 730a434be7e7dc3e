//! The writer lock: an exclusive `flock` on `DB/LOCK`.
//!
//! Invariant: at most one [`WriterLock`] exists per database directory across all threads and
//! processes. `flock` locks belong to an open file description, so a second open in the same
//! process is refused just like one in another process, and the kernel drops the lock when the
//! holder dies (a killed writer never leaves a stale lock behind).
//!
//! Dropping the lock unlocks explicitly rather than only closing the file: a child process that
//! another thread forks copies the open file description until it execs, and a lock released only
//! by `close` would stay held by that copy for that moment (a reopen right after a drop then saw
//! `Locked` while a test suite spawned processes).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name of the lock inside the database directory.
pub const LOCK_FILE: &str = "LOCK";

/// Held by the single writer of a database; released on drop.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock or fails at once with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(WriterLock { file, path }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_path_buf() }),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Path of the lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Unlocks the open file description, copies in half-spawned children included.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        assert!(matches!(WriterLock::acquire(dir.path()), Err(Error::Locked { .. })));
        drop(first);
        WriterLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_copy_of_the_descriptor_does_not_keep_the_lock_after_drop() {
        // A forked child holds such a copy until it execs.
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        let copy = first.file.try_clone().unwrap();
        drop(first);
        WriterLock::acquire(dir.path()).unwrap();
        drop(copy);
    }
}
