//! The image file directories of a TIFF beyond the first: reduced-resolution images (overviews,
//! `NewSubfileType` bit 0, as in cloud-optimised `GeoTIFFs`) and transparency masks (bit 2, GDAL's
//! internal masks), and the choice of the overview level a `--gsd` import reads.
//!
//! Rules:
//! - level 0 is the first IFD; the other levels are the reduced-resolution IFDs that are not masks,
//!   finest first; a level's ground resolution is level 0's times the ratio of their widths;
//! - `--gsd g` reads the coarsest level whose pixels are no larger than `g` (the closest level that
//!   does not upsample, as GDAL picks overviews); without `--gsd`, or when level 0 is already coarser,
//!   level 0 is read;
//! - the mask of a level is the mask IFD of the same width and height; it is read chunk by chunk
//!   alongside the image, and must share its chunk layout (GDAL writes it so); otherwise it is
//!   ignored with a note;
//! - at most [`MAX_IFDS`] directories are looked at, and a directory that cannot be read ends the walk
//!   (the scene is then read from what was found, level 0 at least).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use tiff::decoder::{ChunkType, Decoder, DecodingResult};
use tiff::tags::Tag;

use super::decode::Limits;
use super::nodata;
use super::report::{Problem, Reason};
use super::tiff::problem;

/// Most image file directories looked at in one file.
pub const MAX_IFDS: usize = 64;

/// `NewSubfileType` bit: a reduced-resolution version of another image.
const REDUCED: u32 = 1;
/// `NewSubfileType` bit: a transparency mask.
const MASK: u32 = 4;

/// One image file directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ifd {
    /// Position in the file's chain of IFDs.
    pub index: usize,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `NewSubfileType`.
    pub subfile: u32,
    /// Byte offset of the directory.
    pub offset: u64,
}

impl Ifd {
    /// Whether this is a transparency mask.
    #[must_use]
    pub fn is_mask(&self) -> bool {
        self.subfile & MASK != 0
    }
}

/// The directories of `path`, in file order (best effort: see the module rules).
#[must_use]
pub fn scan(path: &Path) -> Vec<Ifd> {
    let mut out = Vec::new();
    let Ok(f) = File::open(path) else { return out };
    let Ok(mut dec) = Decoder::new(BufReader::new(f)) else { return out };
    for index in 0..MAX_IFDS {
        let Ok((width, height)) = dec.dimensions() else { break };
        let subfile = dec.find_tag_unsigned::<u32>(Tag::NewSubfileType).ok().flatten().unwrap_or(0);
        let offset = dec.ifd_pointer().map_or(0, |p| p.0);
        out.push(Ifd { index, width, height, subfile, offset });
        if !dec.more_images() || dec.next_image().is_err() {
            break;
        }
    }
    out
}

/// Level 0 and the overviews, finest first.
#[must_use]
pub fn levels(ifds: &[Ifd]) -> Vec<Ifd> {
    let Some(first) = ifds.first().copied() else { return Vec::new() };
    let mut v: Vec<Ifd> = ifds
        .iter()
        .skip(1)
        .filter(|d| !d.is_mask() && d.subfile & REDUCED != 0 && d.width < first.width && d.height < first.height)
        .copied()
        .collect();
    v.sort_by_key(|d| std::cmp::Reverse(d.width));
    v.dedup_by_key(|d| d.width);
    v.insert(0, first);
    v
}

/// The mask IFD of an image `width` x `height`.
#[must_use]
pub fn mask_for(ifds: &[Ifd], width: u32, height: u32) -> Option<Ifd> {
    ifds.iter().find(|d| d.is_mask() && d.width == width && d.height == height).copied()
}

/// The level a `target` m/pixel import reads, given level 0's `src_gsd` and the levels' widths
/// (finest first): the coarsest level whose pixels are no larger than `target`.
#[must_use]
pub fn choose(widths: &[u32], src_gsd: f64, target: f64) -> usize {
    let Some(&w0) = widths.first() else { return 0 };
    let mut best = 0;
    for (i, &w) in widths.iter().enumerate() {
        let g = level_gsd(src_gsd, w0, w);
        if g <= target * (1.0 + 1e-6) {
            best = i;
        }
    }
    best
}

/// The ground resolution of a level `w` pixels wide, when level 0 is `w0` wide at `src_gsd`.
#[must_use]
pub fn level_gsd(src_gsd: f64, w0: u32, w: u32) -> f64 {
    src_gsd * f64::from(w0) / f64::from(w.max(1))
}

/// A file read with a few bytes replaced: the mask IFD's `PhotometricInterpretation` (4, transparency
/// mask, which the `tiff` crate does not decode) is read as 1 (min-is-black), which is what a mask's
/// samples are.
struct Patched {
    inner: BufReader<File>,
    pos: u64,
    at: u64,
    bytes: Vec<u8>,
}

impl Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        for (k, b) in self.bytes.iter().enumerate() {
            let p = self.at + k as u64;
            if p >= start
                && p < end
                && let Some(slot) = buf.get_mut((p - start) as usize)
            {
                *slot = *b;
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl Seek for Patched {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

/// Where the value of tag `tag` of the IFD at `offset` lies, and its type, from the file's header.
fn entry_value(f: &mut File, offset: u64, tag: u16) -> Option<(u64, u16, bool)> {
    let mut head = [0u8; 4];
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_exact(&mut head).ok()?;
    let le = head.get(..2)? == b"II";
    let u16_at = |b: &[u8]| -> Option<u16> {
        let a: [u8; 2] = b.get(..2)?.try_into().ok()?;
        Some(if le { u16::from_le_bytes(a) } else { u16::from_be_bytes(a) })
    };
    let big = u16_at(head.get(2..4)?)? == 43;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let (count, first, size, value_at) = if big {
        let mut c = [0u8; 8];
        f.read_exact(&mut c).ok()?;
        let n = if le { u64::from_le_bytes(c) } else { u64::from_be_bytes(c) };
        (n, offset + 8, 20u64, 12u64)
    } else {
        let mut c = [0u8; 2];
        f.read_exact(&mut c).ok()?;
        (u64::from(u16_at(&c)?), offset + 2, 12u64, 8u64)
    };
    let mut e = vec![0u8; usize::try_from(count.min(4096) * size).ok()?];
    f.read_exact(&mut e).ok()?;
    for (i, entry) in e.chunks_exact(size as usize).enumerate() {
        if u16_at(entry)? == tag {
            let ty = u16_at(entry.get(2..4)?)?;
            return Some((first + i as u64 * size + value_at, ty, le));
        }
    }
    None
}

/// An internal mask, read chunk by chunk.
pub struct MaskPlane {
    dec: Decoder<Patched>,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Chunk width and height.
    pub chunk: (u32, u32),
    tiled: bool,
    bits: u16,
    empty: Vec<bool>,
}

impl std::fmt::Debug for MaskPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskPlane")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("chunk", &self.chunk)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl MaskPlane {
    /// Opens the mask IFD `ifd` of `path` (`file_len` bytes).
    pub fn open(path: &Path, file_len: u64, ifd: &Ifd, limits: &Limits) -> Result<MaskPlane, Problem> {
        let mut f = File::open(path).map_err(|e| Problem::new(Reason::Unreadable, e.to_string()))?;
        let (at, bytes) = match entry_value(&mut f, ifd.offset, Tag::PhotometricInterpretation.to_u16()) {
            Some((at, 3, le)) => (at, if le { 1u16.to_le_bytes().to_vec() } else { 1u16.to_be_bytes().to_vec() }),
            Some((at, 4, le)) => (at, if le { 1u32.to_le_bytes().to_vec() } else { 1u32.to_be_bytes().to_vec() }),
            _ => (0, Vec::new()),
        };
        f.seek(SeekFrom::Start(0)).map_err(|e| Problem::new(Reason::Unreadable, e.to_string()))?;
        let inner = BufReader::new(f);
        let reader = Patched { inner, pos: 0, at, bytes };
        let mut tl = tiff::decoder::Limits::default();
        tl.decoding_buffer_size = usize::try_from(limits.max_chunk_bytes).unwrap_or(usize::MAX);
        tl.intermediate_buffer_size = tl.decoding_buffer_size;
        let mut dec = Decoder::new(reader).map_err(|e| problem(&e))?.with_limits(tl);
        dec.seek_to_image(ifd.index).map_err(|e| problem(&e))?;
        let samples = dec.find_tag_unsigned::<u16>(Tag::SamplesPerPixel).ok().flatten().unwrap_or(1);
        let bits = dec.find_tag_unsigned::<u16>(Tag::BitsPerSample).ok().flatten().unwrap_or(1);
        if samples != 1 || !(bits == 1 || bits == 8) {
            return Err(Problem::new(
                Reason::UnsupportedBandLayout,
                format!("a mask of {samples} samples of {bits} bits (1 sample of 1 or 8 bits is read)"),
            ));
        }
        dec.colortype().map_err(|e| problem(&e))?;
        let tiled = dec.get_chunk_type() == ChunkType::Tile;
        let chunk = dec.chunk_dimensions();
        let (off_tag, len_tag) =
            if tiled { (Tag::TileOffsets, Tag::TileByteCounts) } else { (Tag::StripOffsets, Tag::StripByteCounts) };
        let offsets = dec.find_tag_unsigned_vec::<u64>(off_tag).map_err(|e| problem(&e))?.unwrap_or_default();
        let counts = dec.find_tag_unsigned_vec::<u64>(len_tag).map_err(|e| problem(&e))?.unwrap_or_default();
        if chunk.0 == 0 || chunk.1 == 0 {
            return Err(Problem::new(Reason::Corrupt, "a mask with empty chunks"));
        }
        let expected = u64::from(ifd.width.div_ceil(chunk.0)) * u64::from(ifd.height.div_ceil(chunk.1));
        if (offsets.len() as u64) < expected || (counts.len() as u64) < expected {
            return Err(Problem::new(Reason::Corrupt, format!("a mask with {} chunks for {expected}", offsets.len())));
        }
        for (o, c) in offsets.iter().zip(&counts) {
            if *c > 0 && o.checked_add(*c).is_none_or(|end| end > file_len) {
                return Err(Problem::new(Reason::Truncated, "a mask chunk ends after the end of the file"));
            }
        }
        Ok(MaskPlane {
            dec,
            width: ifd.width,
            height: ifd.height,
            chunk,
            tiled,
            bits,
            empty: counts.iter().map(|c| *c == 0).collect(),
        })
    }

    /// Whether this mask is laid out in chunks `chunk_w` x `chunk_h`, tiled or striped, like the image.
    #[must_use]
    pub fn matches(&self, chunk_w: u32, chunk_h: u32, tiled: bool) -> bool {
        self.chunk == (chunk_w, chunk_h) && self.tiled == tiled
    }

    /// Marks invalid, in `out` (`out_w` pixels per row, at `out_pos`), the pixels chunk `idx` masks out;
    /// a sparse mask chunk masks out all of its pixels.
    pub fn mark(&mut self, idx: u32, out: &mut [u8], out_w: usize, out_pos: (usize, usize)) -> Result<(), Problem> {
        let across = self.width.div_ceil(self.chunk.0).max(1);
        let (cr, cc) = (idx / across, idx % across);
        let w = self.chunk.0.min(self.width.saturating_sub(cc * self.chunk.0)) as usize;
        let h = self.chunk.1.min(self.height.saturating_sub(cr * self.chunk.1)) as usize;
        if self.empty.get(idx as usize).copied().unwrap_or(true) {
            nodata::mark_all(w, h, out, out_w, out_pos);
            return Ok(());
        }
        let r = self.dec.read_chunk(idx).map_err(|e| problem(&e))?;
        let DecodingResult::U8(v) = r else {
            return Err(Problem::new(Reason::UnsupportedBandLayout, "a mask decoded to samples wider than 8 bits"));
        };
        // The decoder returns the chunk's data rows (edge chunks cut to the image), packed for 1 bit.
        if self.bits == 1 {
            nodata::mark_bits(&v, w, h, out, out_w, out_pos);
        } else {
            nodata::mark_zero(&v, w, h, out, out_w, out_pos);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarsest_level_not_coarser_than_the_target() {
        let widths = [10_980, 5_490, 2_745, 1_373];
        assert_eq!(choose(&widths, 10.0, 60.0), 2);
        assert_eq!(choose(&widths, 10.0, 10.0), 0);
        assert_eq!(choose(&widths, 10.0, 5.0), 0);
        assert_eq!(choose(&widths, 10.0, 80.0), 3);
        assert_eq!(choose(&widths, 10.0, 1000.0), 3);
        assert_eq!(choose(&widths[..1], 10.0, 60.0), 0);
    }
}
