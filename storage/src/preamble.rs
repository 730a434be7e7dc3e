//! The checks every skysift file header shares: magic, header checksum, version.
//!
//! Little-endian. Each header (manifest, WAL, segment, vector blob) starts the same way and ends
//! with the checksum of the bytes before it:
//!
//! ```text
//! | magic 4 | version u16 | ... (the format's own fields) | header crc32c u32 |
//!                                                          ^ crc_offset = header_len - 4
//! ```
//!
//! [`check_preamble`] checks them in one order for every format: length, magic, checksum, then
//! version (a damaged version field reads as a checksum mismatch, not as an unknown version).

use std::path::Path;

use crate::codec::{u16_at, u32_at};
use crate::error::Error;

/// Offset of the version field, right after the magic.
const VERSION_OFFSET: usize = 4;

/// What one format's header looks like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preamble {
    /// The magic bytes at offset 0.
    pub magic: [u8; 4],
    /// What the file is, in words ("manifest", "WAL", ...), for errors.
    pub what: &'static str,
    /// Header length; its last 4 bytes are the header checksum.
    pub header_len: usize,
    /// Oldest version read.
    pub oldest: u16,
    /// Version written.
    pub current: u16,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreambleError {
    /// Fewer bytes than the header.
    Short(usize),
    /// The magic is not the format's.
    Magic,
    /// The header checksum does not match.
    Checksum {
        /// Stored checksum.
        expected: u32,
        /// Computed checksum.
        got: u32,
    },
    /// A version outside `oldest..=current`.
    Version(u16),
}

impl Preamble {
    /// The preamble of a format whose header checksum sits at `crc_offset`; fails to compile
    /// (in a `const`) unless the checksum closes the header.
    pub const fn new(
        magic: [u8; 4],
        what: &'static str,
        header_len: usize,
        crc_offset: usize,
        (oldest, current): (u16, u16),
    ) -> Preamble {
        assert!(crc_offset + 4 == header_len, "the header checksum must close the header");
        Preamble { magic, what, header_len, oldest, current }
    }

    /// Offset of the header checksum.
    pub const fn crc_offset(&self) -> usize {
        self.header_len - 4
    }

    /// The storage error for `e` in `file`, at offset 0 of `region`.
    pub fn error(&self, file: &Path, region: &str, e: PreambleError) -> Error {
        match e {
            PreambleError::Short(len) => {
                Error::corrupted(file, region, 0, format!("{len} bytes, need {}", self.header_len))
            }
            PreambleError::Magic => {
                Error::corrupted(file, region, 0, format!("bad magic: not a skysift {}", self.what))
            }
            PreambleError::Checksum { expected, got } => {
                Error::ChecksumMismatch { file: file.into(), region: region.into(), offset: 0, expected, got }
            }
            PreambleError::Version(found) => {
                Error::UnsupportedVersion { file: file.into(), found, oldest: self.oldest, current: self.current }
            }
        }
    }
}

/// Checks that `bytes` (at `offset` of `file`, the part named `region`) have the checksum
/// `expected` stored for them.
pub(crate) fn check_crc(file: &Path, region: &str, offset: u64, bytes: &[u8], expected: u32) -> Result<(), Error> {
    let got = crc32c::crc32c(bytes);
    if got == expected {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch { file: file.into(), region: region.into(), offset, expected, got })
    }
}

/// Checks length, magic, header checksum and version of `b`; returns the version.
pub(crate) fn check_preamble(b: &[u8], p: &Preamble) -> Result<u16, PreambleError> {
    if b.len() < p.header_len {
        return Err(PreambleError::Short(b.len()));
    }
    if b.get(..p.magic.len()) != Some(&p.magic[..]) {
        return Err(PreambleError::Magic);
    }
    let expected = u32_at(b, p.crc_offset()).unwrap_or(0);
    let got = crc32c::crc32c(b.get(..p.crc_offset()).unwrap_or(&[]));
    if expected != got {
        return Err(PreambleError::Checksum { expected, got });
    }
    let version = u16_at(b, VERSION_OFFSET).unwrap_or(0);
    if !(p.oldest..=p.current).contains(&version) {
        return Err(PreambleError::Version(version));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Enc;

    const P: Preamble = Preamble { magic: *b"TEST", what: "test file", header_len: 12, oldest: 1, current: 2 };

    fn header(version: u16) -> Vec<u8> {
        let mut e = Enc::default();
        e.buf.extend_from_slice(&P.magic);
        e.u16(version);
        e.u16(0);
        let crc = crc32c::crc32c(&e.buf);
        e.u32(crc);
        e.buf
    }

    #[test]
    fn checks_length_magic_checksum_then_version() {
        assert_eq!(check_preamble(&header(2), &P), Ok(2));
        assert_eq!(check_preamble(header(2).get(..11).unwrap(), &P), Err(PreambleError::Short(11)));
        let damaged = |at: usize, to: u8| {
            let mut b = header(1);
            if let Some(x) = b.get_mut(at) {
                *x = to;
            }
            b
        };
        assert_eq!(check_preamble(&damaged(0, b'X'), &P), Err(PreambleError::Magic));
        let bad = damaged(4, 9);
        assert!(matches!(check_preamble(&bad, &P), Err(PreambleError::Checksum { .. })));
        assert_eq!(check_preamble(&header(3), &P), Err(PreambleError::Version(3)));
    }
}
