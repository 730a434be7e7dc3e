//! The only place that memory-maps files.
//!
//! # Safety
//!
//! A read-only map is sound only while nobody changes or truncates the file under it. skysift
//! maps only *sealed* files (segments), and relies on this contract:
//!
//! - a sealed file is written completely, fsynced and renamed into place before it is ever
//!   mapped, and is never opened for writing again;
//! - the database directory is locked by a single writer ([`crate::lock`]), and that writer
//!   never truncates or rewrites a sealed file: it only unlinks it, and only after taking an
//!   exclusive `flock` on it, which fails while any mapping process holds its shared `flock`
//!   ([`MappedFile`] holds one for as long as the map lives);
//! - unlinking a mapped file keeps its pages alive until the last map goes away, so readers
//!   never see SIGBUS from the writer's deletions.
//!
//! Another program that truncates our files breaks the contract; that is outside what an
//! embedded store can defend against, and is written down in `storage/FORMAT.md`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::bytes::{Backing, Bytes};
use crate::error::{Error, Result};

struct MapBacking {
    map: memmap2::Mmap,
    /// Holds the shared `flock` that keeps the writer from deleting the file under us.
    file: File,
}

impl Drop for MapBacking {
    fn drop(&mut self) {
        // Explicitly, as `lock.rs` explains: a half-spawned child's copy of the descriptor would
        // otherwise keep the file from being removed for that moment.
        let _ = self.file.unlock();
    }
}

impl Backing for MapBacking {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn advise_random(&self, range: std::ops::Range<usize>) {
        // Advice only: a kernel that ignores it changes memory use, nothing else.
        let _ = self.map.advise_range(memmap2::Advice::Random, range.start, range.len());
    }
}

/// Opens `path`, takes a shared `flock` on it and maps it read-only.
///
/// A zero-length file gives empty bytes without mapping.
pub(crate) fn map_sealed(path: &Path) -> Result<Bytes> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::WouldBlock, "file is being deleted by the writer"),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
    }
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(Bytes::copy_from(&[]));
    }
    #[expect(unsafe_code, reason = "memory-mapping a sealed file; contract in the module docs")]
    // SAFETY: the file is sealed (never written or truncated again) and we hold a shared flock
    // that the writer must defeat before unlinking; see the module-level `# Safety` section.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Bytes::from_backing(Arc::new(MapBacking { map, file })))
}
