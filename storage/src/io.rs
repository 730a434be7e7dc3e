//! One file-system trait for every byte skysift reads or writes.
//!
//! | type | role |
//! | --- | --- |
//! | [`Vfs`] | the operations the engine needs (create, append, sync, rename, remove, map, ...) |
//! | [`RealVfs`] | the operating system |
//! | [`FaultVfs`] | wraps another `Vfs` and fails the k-th mutating operation with a chosen error |
//!
//! Invariant: the engine never calls `std::fs` directly for database files; everything goes
//! through a `Vfs`, so fault-injection tests exercise the same code paths as production.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::bytes::Bytes;
use crate::error::{Error, Result};

/// A file opened for writing.
pub trait WriteFile: Send {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync(&mut self) -> Result<()>;
}

/// The file-system operations the engine uses.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> Result<Box<dyn WriteFile>>;
    /// Opens an existing file for appending.
    fn append(&self, path: &Path) -> Result<Box<dyn WriteFile>>;
    /// Reads a whole (small) file into memory.
    fn read(&self, path: &Path) -> Result<Vec<u8>>;
    /// Maps a sealed file read-only and holds a shared lock on it while the bytes live.
    fn map(&self, path: &Path) -> Result<Bytes>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file. A missing file is not an error.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Removes a sealed file only if no process has it mapped; returns whether it was removed.
    fn remove_if_unused(&self, path: &Path) -> Result<bool>;
    /// Shortens a file to `len` bytes (only ever used on the WAL, which is never mapped).
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
    /// Fsyncs a directory so that renames and creations inside it are durable.
    fn sync_dir(&self, path: &Path) -> Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, path: &Path) -> Result<Vec<String>>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealVfs;

struct RealFile {
    file: File,
    path: PathBuf,
}

impl WriteFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf).map_err(|e| Error::io(&self.path, e))
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

impl Vfs for RealVfs {
    fn create(&self, path: &Path) -> Result<Box<dyn WriteFile>> {
        let file =
            OpenOptions::new().create(true).truncate(true).write(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(RealFile { file, path: path.to_path_buf() }))
    }

    fn append(&self, path: &Path) -> Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(RealFile { file, path: path.to_path_buf() }))
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
        Ok(buf)
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        crate::mmap::map_sealed(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io(from, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn remove_if_unused(&self, path: &Path) -> Result<bool> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io(path, e)),
        };
        match file.try_lock() {
            Ok(()) => {
                self.remove(path)?;
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let file = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
        file.set_len(len).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let dir = File::open(path).map_err(|e| Error::io(path, e))?;
        dir.sync_all().map_err(|e| Error::io(path, e))
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).map_err(|e| Error::io(path, e))
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        match fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn list(&self, path: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// Which error a [`FaultVfs`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`: the device failed.
    Eio,
    /// `ENOSPC`: the disk is full. A failing write first writes half of its buffer, as a real
    /// short write on a full disk does.
    Enospc,
}

impl Fault {
    fn error(self) -> std::io::Error {
        match self {
            Fault::Eio => std::io::Error::from_raw_os_error(5),
            Fault::Enospc => std::io::Error::from_raw_os_error(28),
        }
    }
}

#[derive(Debug)]
struct FaultState {
    /// Mutating operations seen so far.
    ops: AtomicU64,
    /// 1-based index of the operation to fail; 0 = never.
    fail_at: AtomicU64,
    /// After the first injected fault, fail every later mutating operation too (a dead disk).
    sticky: AtomicBool,
    /// A fault was injected since the start or the last disarm.
    tripped: AtomicBool,
    /// A fault was injected since the last arm (with `sticky`, every later operation fails).
    failing: AtomicBool,
    /// ENOSPC rather than EIO.
    enospc: AtomicBool,
}

impl FaultState {
    /// Counts one mutating operation and says whether it must fail.
    fn should_fail(&self) -> bool {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        let at = self.fail_at.load(Ordering::SeqCst);
        let fail = (at != 0 && n == at) || (self.sticky.load(Ordering::SeqCst) && self.failing.load(Ordering::SeqCst));
        if fail {
            self.failing.store(true, Ordering::SeqCst);
            self.tripped.store(true, Ordering::SeqCst);
        }
        fail
    }

    fn fault(&self) -> Fault {
        if self.enospc.load(Ordering::SeqCst) { Fault::Enospc } else { Fault::Eio }
    }
}

/// A [`Vfs`] that fails the k-th mutating operation (create, write, sync, rename, remove,
/// truncate, directory sync/creation) with [`Fault`]. Reads and maps are passed through.
#[derive(Debug, Clone)]
pub struct FaultVfs {
    inner: Arc<dyn Vfs>,
    state: Arc<FaultState>,
}

impl FaultVfs {
    /// Wraps `inner`; fails operation number `fail_at` (1-based; 0 = never).
    #[must_use]
    pub fn new(inner: Arc<dyn Vfs>, fail_at: u64, fault: Fault, sticky: bool) -> FaultVfs {
        FaultVfs {
            inner,
            state: Arc::new(FaultState {
                ops: AtomicU64::new(0),
                fail_at: AtomicU64::new(fail_at),
                sticky: AtomicBool::new(sticky),
                tripped: AtomicBool::new(false),
                failing: AtomicBool::new(false),
                enospc: AtomicBool::new(fault == Fault::Enospc),
            }),
        }
    }

    /// Re-arms, also while a database keeps files open (they share this state): counting starts
    /// again and operation `fail_at` (1-based) fails with `fault`. [`FaultVfs::tripped`] keeps
    /// saying whether a fault was injected before: an error may still come from it (a writer that
    /// stopped on an earlier fault).
    pub fn arm(&self, fail_at: u64, fault: Fault, sticky: bool) {
        let st = &self.state;
        st.fail_at.store(0, Ordering::SeqCst);
        st.ops.store(0, Ordering::SeqCst);
        st.failing.store(false, Ordering::SeqCst);
        st.sticky.store(sticky, Ordering::SeqCst);
        st.enospc.store(fault == Fault::Enospc, Ordering::SeqCst);
        st.fail_at.store(fail_at, Ordering::SeqCst);
    }

    /// Stops injecting faults and clears [`FaultVfs::tripped`].
    pub fn disarm(&self) {
        let st = &self.state;
        st.fail_at.store(0, Ordering::SeqCst);
        st.sticky.store(false, Ordering::SeqCst);
        st.failing.store(false, Ordering::SeqCst);
        st.tripped.store(false, Ordering::SeqCst);
    }

    /// Mutating operations counted so far.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.state.ops.load(Ordering::SeqCst)
    }

    /// Whether a fault has been injected (since the start or the last [`FaultVfs::disarm`]).
    #[must_use]
    pub fn tripped(&self) -> bool {
        self.state.tripped.load(Ordering::SeqCst)
    }

    fn check(&self, path: &Path) -> Result<()> {
        if self.state.should_fail() { Err(Error::io(path, self.state.fault().error())) } else { Ok(()) }
    }
}

struct FaultFile {
    inner: Box<dyn WriteFile>,
    vfs: FaultVfs,
    path: PathBuf,
}

impl WriteFile for FaultFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        if self.vfs.state.should_fail() {
            let fault = self.vfs.state.fault();
            if fault == Fault::Enospc {
                let half = buf.get(..buf.len() / 2).unwrap_or(&[]);
                self.inner.write_all(half)?;
            }
            return Err(Error::io(&self.path, fault.error()));
        }
        self.inner.write_all(buf)
    }

    fn sync(&mut self) -> Result<()> {
        self.vfs.check(&self.path)?;
        self.inner.sync()
    }
}

impl Vfs for FaultVfs {
    fn create(&self, path: &Path) -> Result<Box<dyn WriteFile>> {
        self.check(path)?;
        let inner = self.inner.create(path)?;
        Ok(Box::new(FaultFile { inner, vfs: self.clone(), path: path.to_path_buf() }))
    }

    fn append(&self, path: &Path) -> Result<Box<dyn WriteFile>> {
        self.check(path)?;
        let inner = self.inner.append(path)?;
        Ok(Box::new(FaultFile { inner, vfs: self.clone(), path: path.to_path_buf() }))
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        self.inner.read(path)
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        self.inner.map(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.check(from)?;
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.check(path)?;
        self.inner.remove(path)
    }

    fn remove_if_unused(&self, path: &Path) -> Result<bool> {
        self.check(path)?;
        self.inner.remove_if_unused(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.check(path)?;
        self.inner.truncate(path, len)
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        self.check(path)?;
        self.inner.sync_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.check(path)?;
        self.inner.create_dir_all(path)
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        self.check(path)?;
        self.inner.remove_dir_all(path)
    }

    fn list(&self, path: &Path) -> Result<Vec<String>> {
        self.inner.list(path)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(vfs: &FaultVfs, dir: &Path, name: &str) -> Result<()> {
        vfs.create(&dir.join(name)).map(drop)
    }

    #[test]
    fn rearming_counts_again_and_keeps_the_trip_until_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = FaultVfs::new(Arc::new(RealVfs), 2, Fault::Eio, false);
        assert!(touch(&vfs, dir.path(), "a").is_ok());
        assert!(touch(&vfs, dir.path(), "b").is_err(), "operation 2 fails");
        assert!(touch(&vfs, dir.path(), "c").is_ok(), "EIO without sticky fails once");
        assert!(vfs.tripped());

        // Sticky ENOSPC from the 3rd operation after the arm: the earlier EIO does not make the
        // first two fail, and the trip is still reported.
        vfs.arm(3, Fault::Enospc, true);
        assert!(vfs.tripped());
        assert!(touch(&vfs, dir.path(), "d").is_ok());
        assert!(touch(&vfs, dir.path(), "e").is_ok());
        let err = touch(&vfs, dir.path(), "f").unwrap_err();
        assert!(err.to_string().contains("os error 28"), "{err}");
        assert!(touch(&vfs, dir.path(), "g").is_err(), "the disk stays full");

        vfs.disarm();
        assert!(!vfs.tripped());
        assert!(touch(&vfs, dir.path(), "h").is_ok());
        assert_eq!(vfs.ops(), 5, "counted since the arm");
    }
}
