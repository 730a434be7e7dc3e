//! Single-band TIFFs whose samples are not yet 8-bit grey or RGB: packed 1-, 2- and 4-bit grey
//! (bilevel scans, masks) and palette colour (`PhotometricInterpretation` 3, a `ColorMap`).
//!
//! The `tiff` crate decodes packed grey (and inverts `WhiteIsZero`) but refuses palette images, whose
//! strips are nevertheless grey samples (indices) like any other: the decoder of a palette image reads
//! the file through a [`Source`] that presents its photometric value as `BlackIsZero`, and the
//! indices it decodes are looked up here. Nothing else of the file is changed.
//!
//! Invariants: [`Expand::apply`] never reads past the decoded chunk (a short chunk is an error, not a
//! panic); a palette always has `2^bits` entries (checked when the file is opened).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use tiff::decoder::DecodingResult;

use super::report::{Problem, Reason};

/// `PhotometricInterpretation` tag.
const TAG_PHOTOMETRIC: u16 = 262;
/// TIFF type SHORT.
const TYPE_SHORT: u16 = 3;
/// Most IFD entries looked at (real files have a few dozen).
const MAX_ENTRIES: u64 = 4096;

/// How decoded chunks of a single-band image become 8-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expand {
    /// Packed grey of `bits` (1, 2 or 4) per sample, scaled to 0..=255.
    Gray {
        /// Bits per sample.
        bits: u16,
    },
    /// Indices of `bits` (1, 2, 4 or 8) per sample, looked up as RGB.
    Palette {
        /// Bits per sample.
        bits: u16,
        /// `2^bits` colours, 8 bits per channel.
        colours: Vec<[u8; 3]>,
    },
}

impl Expand {
    /// Samples per pixel after the expansion.
    #[must_use]
    pub fn samples(&self) -> usize {
        match self {
            Expand::Gray { .. } => 1,
            Expand::Palette { .. } => 3,
        }
    }

    /// A palette from a TIFF `ColorMap` (`3 * 2^bits` 16-bit values: every red, then every green,
    /// then every blue).
    pub fn palette(bits: u16, map: Option<Vec<u16>>) -> Result<Expand, Problem> {
        if !matches!(bits, 1 | 2 | 4 | 8) {
            return Err(Problem::new(
                Reason::UnsupportedBandLayout,
                format!("palette colour with {bits}-bit indices (1, 2, 4 and 8 are read)"),
            ));
        }
        let n = 1usize << bits;
        let map = map.unwrap_or_default();
        if map.len() != 3 * n {
            return Err(Problem::new(
                Reason::Corrupt,
                format!(
                    "palette colour with a ColorMap of {} values, {} expected for {bits}-bit indices",
                    map.len(),
                    3 * n
                ),
            ));
        }
        let c = |i: usize| map.get(i).map_or(0, |v| (v >> 8) as u8);
        Ok(Expand::Palette { bits, colours: (0..n).map(|i| [c(i), c(n + i), c(2 * n + i)]).collect() })
    }

    /// The chunk `r` of `w x h` pixels as 8-bit samples ([`Expand::samples`] per pixel).
    pub fn apply(&self, r: &DecodingResult, w: u32, h: u32) -> Result<DecodingResult, Problem> {
        let (w, h) = (w as usize, h as usize);
        let bits = match self {
            Expand::Gray { bits } | Expand::Palette { bits, .. } => usize::from(*bits),
        };
        let DecodingResult::U8(src) = r else {
            return Err(Problem::new(Reason::Corrupt, "a packed chunk did not decode to bytes"));
        };
        let stride = (w * bits).div_ceil(8);
        if src.len() < stride * h {
            return Err(Problem::new(
                Reason::Corrupt,
                format!("a chunk decoded to {} bytes, {} expected", src.len(), stride * h),
            ));
        }
        let max = (1u16 << bits) - 1;
        let mut out = Vec::with_capacity(w * h * self.samples());
        for row in src.chunks(stride.max(1)).take(h) {
            for x in 0..w {
                let (byte, shift) = ((x * bits) / 8, 8 - bits - (x * bits) % 8);
                let v = row.get(byte).map_or(0, |b| (u16::from(*b) >> shift) & max);
                match self {
                    Expand::Gray { .. } => out.push((u32::from(v) * 255 / u32::from(max)) as u8),
                    Expand::Palette { colours, .. } => {
                        out.extend_from_slice(colours.get(usize::from(v)).unwrap_or(&[0, 0, 0]));
                    }
                }
            }
        }
        Ok(DecodingResult::U8(out))
    }
}

/// The file a TIFF decoder reads: as it is, or with the photometric value of one IFD presented as
/// `BlackIsZero` (palette images, see the module docs).
pub struct Source {
    inner: BufReader<File>,
    pos: u64,
    /// File offset and bytes shown there instead of the file's.
    patch: Option<(u64, [u8; 2])>,
}

impl Source {
    /// `file` as it is.
    #[must_use]
    pub fn plain(file: File) -> Source {
        Source { inner: BufReader::new(file), pos: 0, patch: None }
    }

    /// `file` with the photometric value of IFD `ifd` read as `BlackIsZero`; `None` when that
    /// value is not a short stored in its IFD entry.
    pub fn as_grey(mut file: File, ifd: usize) -> io::Result<Option<Source>> {
        let Some((at, big_endian)) = photometric_offset(&mut file, ifd)? else { return Ok(None) };
        file.seek(SeekFrom::Start(0))?;
        let one = if big_endian { 1u16.to_be_bytes() } else { 1u16.to_le_bytes() };
        Ok(Some(Source { inner: BufReader::new(file), pos: 0, patch: Some((at, one)) }))
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((at, bytes)) = self.patch {
            for (k, b) in bytes.iter().enumerate() {
                let off = at.saturating_add(k as u64);
                if off >= self.pos
                    && let Some(slot) = buf.get_mut(..n).and_then(|s| s.get_mut((off - self.pos) as usize))
                {
                    *slot = *b;
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Source {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

/// The file offset of the photometric value in IFD `ifd` (following the IFD chain, classic TIFF
/// or `BigTIFF`, either byte order), and whether the file is big-endian.
fn photometric_offset(f: &mut File, ifd: usize) -> io::Result<Option<(u64, bool)>> {
    let mut head = [0u8; 16];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut head)?;
    let be = head.starts_with(b"MM");
    // An unsigned integer of `b.len()` bytes in the file's byte order.
    let uint = |b: &[u8]| -> u64 {
        let fold = |r: u64, x: &u8| (r << 8) | u64::from(*x);
        if be { b.iter().take(8).fold(0, fold) } else { b.iter().take(8).rev().fold(0, fold) }
    };
    let u16_at = |b: &[u8]| uint(b.get(..2).unwrap_or_default());
    let big = u16_at(head.get(2..4).unwrap_or_default()) == 43;
    let (count_len, entry_len, off_len) = if big { (8u64, 20u64, 8usize) } else { (2, 12, 4) };
    let mut offset =
        if big { uint(head.get(8..16).unwrap_or_default()) } else { uint(head.get(4..8).unwrap_or_default()) };
    for k in 0..=ifd {
        f.seek(SeekFrom::Start(offset))?;
        let mut c = [0u8; 8];
        f.read_exact(c.get_mut(..count_len as usize).unwrap_or_default())?;
        let count = uint(c.get(..count_len as usize).unwrap_or_default());
        if count > MAX_ENTRIES {
            return Ok(None);
        }
        if k == ifd {
            let mut e = vec![0u8; entry_len as usize];
            for i in 0..count {
                f.read_exact(&mut e)?;
                if u16_at(e.get(..2).unwrap_or_default()) == u64::from(TAG_PHOTOMETRIC)
                    && u16_at(e.get(2..4).unwrap_or_default()) == u64::from(TYPE_SHORT)
                {
                    let value = if big { 12 } else { 8 };
                    return Ok(Some((offset.saturating_add(count_len + i * entry_len + value), be)));
                }
            }
            return Ok(None);
        }
        f.seek(SeekFrom::Start(offset.saturating_add(count_len + count * entry_len)))?;
        let mut next = [0u8; 8];
        f.read_exact(next.get_mut(..off_len).unwrap_or_default())?;
        offset = uint(next.get(..off_len).unwrap_or_default());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_grey_and_palette_expand_to_bytes() {
        let bilevel = Expand::Gray { bits: 1 };
        // 10 pixels per row: 2 bytes per row, the last 6 bits padding.
        let r = DecodingResult::U8(vec![0b1010_0000, 0b0100_0000, 0xFF, 0xC0]);
        let DecodingResult::U8(v) = bilevel.apply(&r, 10, 2).unwrap() else { panic!() };
        assert_eq!(&v[..10], &[255, 0, 255, 0, 0, 0, 0, 0, 0, 255]);
        assert!(v[10..].iter().all(|&x| x == 255));
        let mut map = vec![0u16; 3 * 16];
        map[1] = 0xFFFF; // index 1: red
        map[16 + 2] = 0x8000; // index 2: half green
        let p = Expand::palette(4, Some(map)).unwrap();
        let DecodingResult::U8(v) = p.apply(&DecodingResult::U8(vec![0x12]), 2, 1).unwrap() else { panic!() };
        assert_eq!(v, [255, 0, 0, 0, 128, 0]);
        assert_eq!(p.apply(&DecodingResult::U8(vec![]), 2, 1).unwrap_err().reason, Reason::Corrupt);
        assert_eq!(Expand::palette(8, Some(vec![0; 5])).unwrap_err().reason, Reason::Corrupt);
        assert_eq!(Expand::palette(16, None).unwrap_err().reason, Reason::UnsupportedBandLayout);
    }
}
