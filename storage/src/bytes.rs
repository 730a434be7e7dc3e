//! `Bytes`: a cheap, clonable, immutable byte slice that views parse from.
//!
//! The backing is either a read-only memory map (see the private `mmap` module) or an 8-byte-aligned heap
//! buffer. Views borrow `&[u8]` from it and never see a `File` or an `Mmap`, so every parser can be
//! tested and fuzzed on plain heap bytes.
//!
//! Invariant: the backing never changes while a `Bytes` points into it.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Where the bytes live.
pub(crate) trait Backing: Send + Sync {
    fn bytes(&self) -> &[u8];
    /// Tells the kernel that `range` will be read in random order (no read-around). A no-op
    /// for heap buffers.
    fn advise_random(&self, _range: Range<usize>) {}
}

/// A heap buffer whose first byte is 8-byte aligned, so that `f32`/`u64` sections can be cast
/// in place exactly as they are from a page-aligned map.
struct AlignedHeap {
    words: Vec<u64>,
    len: usize,
}

impl Backing for AlignedHeap {
    fn bytes(&self) -> &[u8] {
        let all: &[u8] = bytemuck::cast_slice(&self.words);
        all.get(..self.len).unwrap_or(all)
    }
}

/// Immutable bytes shared between views.
#[derive(Clone)]
pub struct Bytes {
    backing: Arc<dyn Backing>,
    range: Range<usize>,
}

impl Bytes {
    pub(crate) fn from_backing(backing: Arc<dyn Backing>) -> Self {
        let len = backing.bytes().len();
        Bytes { backing, range: 0..len }
    }

    /// Hints that `range` (relative to these bytes) is read in random order: graph traversal
    /// and rescoring, where read-around would fetch and keep resident rows nobody asked for.
    pub fn advise_random(&self, range: Range<usize>) {
        if range.start <= range.end && range.end <= self.range.len() {
            self.backing.advise_random(self.range.start + range.start..self.range.start + range.end);
        }
    }

    /// Copies `data` into an aligned heap buffer.
    #[must_use]
    pub fn copy_from(data: &[u8]) -> Self {
        let mut words = vec![0u64; data.len().div_ceil(8)];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        if let Some(dst) = dst.get_mut(..data.len()) {
            dst.copy_from_slice(data);
        }
        Bytes::from_backing(Arc::new(AlignedHeap { words, len: data.len() }))
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        self.backing.bytes().get(self.range.clone()).unwrap_or(&[])
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// True when there are no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A sub-slice sharing the same backing, or `None` when `range` is out of bounds.
    #[must_use]
    pub fn slice(&self, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.range.len() {
            return None;
        }
        let start = self.range.start + range.start;
        Some(Bytes { backing: Arc::clone(&self.backing), range: start..start + range.len() })
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bytes").field("len", &self.len()).finish()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_is_aligned_and_slices_share() {
        let b = Bytes::copy_from(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(b.as_slice().as_ptr() as usize % 8, 0);
        let s = b.slice(2..5).unwrap();
        assert_eq!(s.as_slice(), &[3, 4, 5]);
        assert!(b.slice(5..10).is_none());
        assert_eq!(s.slice(1..3).unwrap().as_slice(), &[4, 5]);
    }
}
