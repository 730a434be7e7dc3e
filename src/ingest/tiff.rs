//! TIFF and `GeoTIFF` scenes read window by window (crate `tiff`): striped or tiled (cloud-optimised
//! `GeoTIFFs` are tiled TIFFs), chunky or planar, 8/16/32-bit integer and 16/32/64-bit float samples,
//! 1..N bands; single-band packed 1/2/4-bit grey and palette colour through [`super::palette`].
//!
//! Memory: the reader keeps the 8-bit RGB rendering of the chunk rows (strips, or rows of tiles) that
//! the current window touches, and decodes one chunk at a time; a window never makes it hold more than
//! `(ceil(window_h / chunk_h) + 1) * chunk_h * width * 3` bytes plus one raw chunk, whatever the
//! scene's height or band count. Chunks are decoded once per pass when windows come in row-major
//! order (rows above the current window are dropped).
//!
//! Checks before any pixel is allocated: declared pixels against [`Limits::max_scene_pixels`], the
//! size of one raw chunk against [`Limits::max_chunk_bytes`], and every chunk's byte range against the
//! file length (truncated downloads are caught here rather than mid-scene).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use image::RgbImage;
use tiff::decoder::{ChunkType, Decoder, DecodingResult};
use tiff::tags::Tag;
use tiff::{TiffError, TiffFormatError, TiffUnsupportedError};

use super::bands::{STRETCH_SAMPLES, SampleKind, Stretch, blit, blit_plane, collect};
use super::geo::GeoTags;
use super::limits::Limits;
use super::nodata::{self, Validity};
use super::overview::MaskPlane;
use super::palette::{Expand, Source};
use super::report::{Problem, Reason};

/// Evaluates `$body` with `$s` bound to the samples of `$r` as a typed slice.
macro_rules! with_samples {
    ($r:expr, $s:ident => $body:expr) => {
        match $r {
            DecodingResult::U8(v) => {
                let $s: &[u8] = v;
                $body
            }
            DecodingResult::U16(v) => {
                let $s: &[u16] = v;
                $body
            }
            DecodingResult::U32(v) => {
                let $s: &[u32] = v;
                $body
            }
            DecodingResult::U64(v) => {
                let $s: &[u64] = v;
                $body
            }
            DecodingResult::F16(v) => {
                let widened: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
                let $s: &[f32] = &widened;
                $body
            }
            DecodingResult::F32(v) => {
                let $s: &[f32] = v;
                $body
            }
            DecodingResult::F64(v) => {
                let $s: &[f64] = v;
                $body
            }
            DecodingResult::I8(v) => {
                let $s: &[i8] = v;
                $body
            }
            DecodingResult::I16(v) => {
                let $s: &[i16] = v;
                $body
            }
            DecodingResult::I32(v) => {
                let $s: &[i32] = v;
                $body
            }
            DecodingResult::I64(v) => {
                let $s: &[i64] = v;
                $body
            }
        }
    };
}

/// Chunks decoded at most to estimate the stretch of a scene.
pub const STRETCH_MAX_CHUNKS: usize = 64;

/// An open TIFF scene.
pub struct TiffRaster {
    dec: Decoder<Source>,
    /// The file and its length when opened (a chunk that ends early is told apart from a file cut
    /// short since).
    path: std::path::PathBuf,
    file_len: u64,
    /// Packed grey or palette indices turned into 8-bit samples, for single-band images of those.
    expand: Option<Expand>,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Samples per pixel (3 for a palette image: its colours).
    pub samples: usize,
    /// Sample type.
    pub sample: SampleKind,
    /// `PhotometricInterpretation` is RGB (or YCbCr decoded to RGB).
    pub rgb: bool,
    /// `GeoTIFF` tags.
    pub geo: GeoTags,
    /// GDAL no-data value.
    pub nodata: Option<f64>,
    /// Compression name for reports.
    pub compression: u16,
    planar: bool,
    tiled: bool,
    chunk_w: u32,
    chunk_h: u32,
    across: u32,
    down: u32,
    empty: Vec<bool>,
    bands: [usize; 3],
    stretch: Stretch,
    rows: BTreeMap<u32, RgbImage>,
    peak: u64,
    /// What makes a pixel no-data (see [`super::nodata`]).
    pub validity: Validity,
    mask: Option<Box<MaskPlane>>,
    masks: BTreeMap<u32, Vec<u8>>,
}

impl std::fmt::Debug for TiffRaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffRaster")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("samples", &self.samples)
            .field("sample", &self.sample)
            .field("tiled", &self.tiled)
            .field("planar", &self.planar)
            .finish_non_exhaustive()
    }
}

/// Maps a `tiff` error to a report problem.
#[must_use]
pub fn problem(e: &TiffError) -> Problem {
    let d = e.to_string();
    match e {
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Problem::new(Reason::Truncated, d),
        TiffError::IoError(_) => Problem::new(Reason::Unreadable, d),
        TiffError::LimitsExceeded | TiffError::IntSizeError => Problem::new(Reason::TooLarge, d),
        TiffError::UnsupportedError(
            TiffUnsupportedError::UnsupportedCompressionMethod(_) | TiffUnsupportedError::UnknownInterpretation,
        ) => Problem::new(Reason::UnsupportedFormat, d),
        TiffError::UnsupportedError(_) => Problem::new(Reason::UnsupportedBandLayout, d),
        TiffError::FormatError(TiffFormatError::TiffSignatureNotFound | TiffFormatError::TiffSignatureInvalid) => {
            Problem::new(Reason::Corrupt, d)
        }
        _ => Problem::new(Reason::Corrupt, d),
    }
}

fn f64s(dec: &mut Decoder<Source>, tag: Tag) -> Option<Vec<f64>> {
    dec.find_tag(tag).ok().flatten().and_then(|v| v.into_f64_vec().ok())
}

impl TiffRaster {
    /// Opens `path` (of `file_len` bytes) and checks its layout and sizes; reads no pixels.
    pub fn open(path: &Path, file_len: u64, limits: &Limits) -> Result<TiffRaster, Problem> {
        Self::open_ifd(path, file_len, limits, 0)
    }

    /// Like [`TiffRaster::open`], for the image of IFD `ifd` (an overview level: see
    /// [`super::overview`]).
    #[expect(clippy::too_many_lines, reason = "every TIFF tag check in file order, each refusing with its own reason")]
    pub fn open_ifd(path: &Path, file_len: u64, limits: &Limits, ifd: usize) -> Result<TiffRaster, Problem> {
        let open = |source: Source| -> Result<Decoder<Source>, Problem> {
            let mut tl = tiff::decoder::Limits::default();
            tl.decoding_buffer_size = usize::try_from(limits.max_chunk_bytes).unwrap_or(usize::MAX);
            tl.intermediate_buffer_size = tl.decoding_buffer_size;
            let mut dec = Decoder::new(source).map_err(|e| problem(&e))?.with_limits(tl);
            if ifd > 0 {
                dec.seek_to_image(ifd).map_err(|e| problem(&e))?;
            }
            Ok(dec)
        };
        let file = || File::open(path).map_err(|e| Problem::new(Reason::Unreadable, e.to_string()));
        let mut dec = open(Source::plain(file()?))?;
        let (width, height) = dec.dimensions().map_err(|e| problem(&e))?;
        if width == 0 || height == 0 {
            return Err(Problem::new(Reason::Corrupt, format!("declares {width}x{height} pixels")));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > limits.max_scene_pixels {
            return Err(Problem::new(
                Reason::TooLarge,
                format!("declares {width}x{height} pixels, over the limit of {}", limits.max_scene_pixels),
            ));
        }
        let tag_u16 = |dec: &mut Decoder<_>, t: Tag| dec.find_tag_unsigned::<u16>(t).map_err(|e| problem(&e));
        let samples = usize::from(tag_u16(&mut dec, Tag::SamplesPerPixel)?.unwrap_or(1).max(1));
        let bits = dec.find_tag_unsigned_vec::<u16>(Tag::BitsPerSample).map_err(|e| problem(&e))?.unwrap_or(vec![1]);
        let formats = dec.find_tag_unsigned_vec::<u16>(Tag::SampleFormat).map_err(|e| problem(&e))?.unwrap_or(vec![1]);
        let photometric = tag_u16(&mut dec, Tag::PhotometricInterpretation)?.unwrap_or(1);
        let compression = tag_u16(&mut dec, Tag::Compression)?.unwrap_or(1);
        let planar = tag_u16(&mut dec, Tag::PlanarConfiguration)?.unwrap_or(1) == 2;
        let unsupported = |why: String| Problem::new(Reason::UnsupportedBandLayout, why);
        if bits.iter().any(|b| Some(b) != bits.first()) || formats.iter().any(|f| Some(f) != formats.first()) {
            return Err(unsupported(format!("mixed sample types (bits {bits:?}, formats {formats:?})")));
        }
        let (b, fmt) = (bits.first().copied().unwrap_or(1), formats.first().copied().unwrap_or(1));
        let mut expand = None;
        let sample = match (fmt, b) {
            (1 | 4, 8) => SampleKind::U8,
            (1 | 4, 1 | 2 | 4) if samples == 1 => {
                expand = Some(Expand::Gray { bits: b });
                SampleKind::U8
            }
            (1 | 4, 16) => SampleKind::U16,
            (1 | 4, 32) => SampleKind::U32,
            (2, 8) => SampleKind::I8,
            (2, 16) => SampleKind::I16,
            (2, 32) => SampleKind::I32,
            (3, 16) => SampleKind::F16,
            (3, 32) => SampleKind::F32,
            (3, 64) => SampleKind::F64,
            _ => {
                return Err(unsupported(format!(
                    "{b}-bit samples of format {fmt} (8/16/32-bit integers and floats are read)"
                )));
            }
        };
        let rgb = match photometric {
            1 => false,
            2 => samples >= 3,
            6 if compression == 7 => true,
            // The decoder inverts single-band WhiteIsZero samples itself.
            0 if samples == 1 => false,
            0 => return Err(unsupported(format!("WhiteIsZero photometric interpretation with {samples} bands"))),
            3 if samples == 1 && fmt == 1 => {
                let map = dec.find_tag_unsigned_vec::<u16>(Tag::ColorMap).map_err(|e| problem(&e))?;
                expand = Some(Expand::palette(b, map)?);
                // The decoder refuses palette images: it reads this one's indices as grey.
                let grey = Source::as_grey(file()?, ifd).map_err(|e| Problem::new(Reason::Corrupt, e.to_string()))?;
                dec = open(grey.ok_or_else(|| {
                    Problem::new(Reason::Corrupt, "palette colour without a readable photometric entry")
                })?)?;
                true
            }
            3 => return Err(unsupported(format!("palette colour with {samples} bands"))),
            5 => return Err(unsupported("CMYK".into())),
            p => return Err(unsupported(format!("photometric interpretation {p}"))),
        };
        dec.colortype().map_err(|e| problem(&e))?;
        let tiled = dec.get_chunk_type() == ChunkType::Tile;
        let (chunk_w, chunk_h) = if tiled {
            let tw = tag_u16(&mut dec, Tag::TileWidth).ok().flatten().map(u32::from);
            let tw = tw.or_else(|| dec.find_tag_unsigned::<u32>(Tag::TileWidth).ok().flatten()).unwrap_or(0);
            let th = dec.find_tag_unsigned::<u32>(Tag::TileLength).ok().flatten().unwrap_or(0);
            (tw, th)
        } else {
            let rps = dec.find_tag_unsigned::<u32>(Tag::RowsPerStrip).map_err(|e| problem(&e))?.unwrap_or(height);
            (width, rps.clamp(1, height))
        };
        if chunk_w == 0 || chunk_h == 0 {
            return Err(Problem::new(Reason::Corrupt, format!("chunks of {chunk_w}x{chunk_h} pixels")));
        }
        let out_samples = expand.as_ref().map_or(samples, Expand::samples);
        let per_chunk = if planar { 1 } else { out_samples as u64 };
        let chunk_bytes = u64::from(chunk_w) * u64::from(chunk_h) * per_chunk * sample.bytes();
        if chunk_bytes > limits.max_chunk_bytes {
            return Err(Problem::new(
                Reason::TooLarge,
                format!(
                    "one {} of {chunk_w}x{chunk_h} pixels is {chunk_bytes} bytes, over the limit of {} \
                     (re-tile it, e.g. gdal_translate -co TILED=YES)",
                    if tiled { "tile" } else { "strip" },
                    limits.max_chunk_bytes
                ),
            ));
        }
        let across = width.div_ceil(chunk_w);
        let down = height.div_ceil(chunk_h);
        let planes = if planar { samples as u64 } else { 1 };
        let expected = u64::from(across) * u64::from(down) * planes;
        let (off_tag, len_tag) =
            if tiled { (Tag::TileOffsets, Tag::TileByteCounts) } else { (Tag::StripOffsets, Tag::StripByteCounts) };
        let offsets = dec.find_tag_unsigned_vec::<u64>(off_tag).map_err(|e| problem(&e))?.unwrap_or_default();
        let counts = dec.find_tag_unsigned_vec::<u64>(len_tag).map_err(|e| problem(&e))?.unwrap_or_default();
        if (offsets.len() as u64) < expected || (counts.len() as u64) < expected {
            return Err(Problem::new(
                Reason::Corrupt,
                format!("{} chunk offsets and {} byte counts for {expected} chunks", offsets.len(), counts.len()),
            ));
        }
        for (i, (o, c)) in offsets.iter().zip(&counts).enumerate() {
            if *c > 0 && o.checked_add(*c).is_none_or(|end| end > file_len) {
                return Err(Problem::new(
                    Reason::Truncated,
                    format!("chunk {i} ends at byte {}, the file has {file_len}", o.saturating_add(*c)),
                ));
            }
        }
        let empty = counts.iter().map(|c| *c == 0).collect();
        let geo = GeoTags {
            pixel_scale: f64s(&mut dec, Tag::ModelPixelScaleTag),
            tiepoints: f64s(&mut dec, Tag::ModelTiepointTag),
            transformation: f64s(&mut dec, Tag::ModelTransformationTag),
            keys: dec.find_tag(Tag::GeoKeyDirectoryTag).ok().flatten().and_then(|v| v.into_u16_vec().ok()),
        };
        let nodata = dec
            .find_tag(Tag::GdalNodata)
            .ok()
            .flatten()
            .and_then(|v| v.into_string().ok())
            .and_then(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).parse::<f64>().ok());
        let extra = dec.find_tag_unsigned_vec::<u16>(Tag::ExtraSamples).ok().flatten().unwrap_or_default();
        let validity = Validity {
            nodata: nodata.map(|v| v as f32),
            alpha: nodata::alpha_index(samples, &extra),
            nan: matches!(sample, SampleKind::F16 | SampleKind::F32 | SampleKind::F64),
            mask: false,
        };
        // One band: its plane is the image (a palette's colours are interleaved by the lookup).
        let planar = planar && samples > 1 && expand.is_none();
        Ok(TiffRaster {
            dec,
            path: path.to_path_buf(),
            file_len,
            expand,
            width,
            height,
            samples: out_samples,
            sample,
            rgb,
            geo,
            nodata,
            compression,
            planar,
            tiled,
            chunk_w,
            chunk_h,
            across,
            down,
            empty,
            bands: [0, 0, 0],
            stretch: Stretch::identity(),
            rows: BTreeMap::new(),
            peak: 0,
            validity,
            mask: None,
            masks: BTreeMap::new(),
        })
    }

    /// Reads `mask` (an internal mask of this image) alongside; refused unless it has this image's
    /// size and chunk layout.
    pub fn attach_mask(&mut self, mask: MaskPlane) -> Result<(), String> {
        if (mask.width, mask.height) != (self.width, self.height)
            || !mask.matches(self.chunk_w, self.chunk_h, self.tiled)
        {
            return Err(format!(
                "the internal mask ({}x{}, chunks {:?}) is not laid out like the image ({}x{}, chunks {}x{}); ignored",
                mask.width, mask.height, mask.chunk, self.width, self.height, self.chunk_w, self.chunk_h
            ));
        }
        self.mask = Some(Box::new(mask));
        self.validity.mask = true;
        Ok(())
    }

    /// Sets the no-data value (an overview level takes level 0's when it declares none).
    pub fn set_nodata(&mut self, v: Option<f64>) {
        self.nodata = v;
        self.validity.nodata = v.map(|x| x as f32);
    }

    /// Drops the cached rows, so that the next pass starts afresh.
    pub fn rewind(&mut self) {
        self.rows.clear();
        self.masks.clear();
    }

    /// `"tiled 256x256"` or `"striped, 16 rows"`, chunky or planar.
    #[must_use]
    pub fn layout(&self) -> String {
        let kind = if self.tiled {
            format!("tiled {}x{}", self.chunk_w, self.chunk_h)
        } else {
            format!("striped, {} rows per strip", self.chunk_h)
        };
        format!("{kind}, {}", if self.planar { "planar" } else { "chunky" })
    }

    /// Most bytes held at once so far (cached RGB rows plus one raw chunk).
    #[must_use]
    pub fn peak_bytes(&self) -> u64 {
        self.peak
    }

    fn chunk_raw_bytes(&self) -> u64 {
        let per = if self.planar { 1 } else { self.samples as u64 };
        u64::from(self.chunk_w) * u64::from(self.chunk_h) * per * self.sample.bytes()
    }

    /// Chunk index of chunk row `cr`, column `cc`, plane `plane`.
    fn index(&self, cr: u32, cc: u32, plane: usize) -> u32 {
        plane as u32 * self.across * self.down + cr * self.across + cc
    }

    fn read(&mut self, idx: u32) -> Result<Option<(DecodingResult, u32, u32)>, Problem> {
        if self.empty.get(idx as usize).copied().unwrap_or(true) {
            return Ok(None); // sparse chunk: no data, drawn black
        }
        let (w, h) = self.chunk_dims(idx);
        let r = self.dec.read_chunk(idx).map_err(|e| self.chunk_problem(idx, (w, h), &e))?;
        match &self.expand {
            Some(x) => Ok(Some((x.apply(&r, w, h)?, w, h))),
            None => Ok(Some((r, w, h))),
        }
    }

    /// Why chunk `idx` did not decode. Its bytes were inside the file when it was opened, so running
    /// out of them means the file was cut short since (truncated) or, when it is still as long, that
    /// the compressed data holds fewer pixels than the chunk (corrupt).
    fn chunk_problem(&self, idx: u32, (w, h): (u32, u32), e: &TiffError) -> Problem {
        let eof = matches!(e, TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof);
        let still_whole = std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.file_len);
        if eof && still_whole {
            return Problem::new(
                Reason::Corrupt,
                format!("chunk {idx} decompresses to fewer bytes than its {w}x{h} pixels need ({e})"),
            );
        }
        problem(e)
    }

    fn chunk_dims(&self, idx: u32) -> (u32, u32) {
        let i = idx % (self.across * self.down);
        let (cr, cc) = (i / self.across, i % self.across);
        let w = self.chunk_w.min(self.width - cc * self.chunk_w);
        let h = self.chunk_h.min(self.height - cr * self.chunk_h);
        (w, h)
    }

    /// Selects the bands drawn as R, G, B (0-based) and computes the stretch: identity for 8-bit
    /// samples, else percentiles from up to [`STRETCH_MAX_CHUNKS`] chunks spread over the scene.
    pub fn prepare(&mut self, bands: [usize; 3]) -> Result<Stretch, Problem> {
        self.bands = bands;
        self.rows.clear();
        let nodata = self.nodata.map(|v| v as f32);
        if self.sample == SampleKind::U8 {
            self.stretch = Stretch { nodata: None, ..Stretch::identity() };
            return Ok(self.stretch);
        }
        let n = self.across * self.down;
        let chunk_px = (u64::from(self.chunk_w) * u64::from(self.chunk_h)).max(1);
        let want = (STRETCH_SAMPLES as u64 * 4 / chunk_px).clamp(16, STRETCH_MAX_CHUNKS as u64) as u32;
        let picks = want.min(n);
        let total_px = chunk_px * u64::from(picks);
        let step = (total_px / STRETCH_SAMPLES as u64).max(1) as usize;
        let mut acc: [Vec<f32>; 3] = Default::default();
        for k in 0..picks {
            let i = (u64::from(k) * u64::from(n) / u64::from(picks)) as u32;
            let (cr, cc) = (i / self.across, i % self.across);
            // Pixels masked out (alpha 0, internal mask) are left out of the statistics.
            let masked = self.validity.alpha.is_some() || self.mask.is_some();
            let valid = if masked { Some(self.chunk_mask(cr, cc)?) } else { None };
            if self.planar {
                for (c, &band) in bands.iter().enumerate() {
                    let idx = self.index(cr, cc, band);
                    let Some((r, _, _)) = self.read(idx)? else { continue };
                    let mut one: [Vec<f32>; 3] = Default::default();
                    match &valid {
                        Some(m) => {
                            with_samples!(&r, s => nodata::collect_masked(s, 1, [0, 0, 0], step, nodata, m, &mut one));
                        }
                        None => with_samples!(&r, s => collect(s, 1, [0, 0, 0], step, nodata, &mut one)),
                    }
                    if let (Some(a), Some(src)) = (acc.get_mut(c), one.first_mut()) {
                        a.append(src);
                    }
                }
            } else {
                let idx = self.index(cr, cc, 0);
                let Some((r, _, _)) = self.read(idx)? else { continue };
                let spp = self.samples;
                match &valid {
                    Some(m) => with_samples!(&r, s => nodata::collect_masked(s, spp, bands, step, nodata, m, &mut acc)),
                    None => with_samples!(&r, s => collect(s, spp, bands, step, nodata, &mut acc)),
                }
            }
        }
        self.stretch = Stretch::from_samples(acc, nodata);
        Ok(self.stretch)
    }

    /// The validity mask of chunk (`cr`, `cc`) from its alpha band and the internal mask only (no-data
    /// values are left to the statistics' own filter).
    fn chunk_mask(&mut self, cr: u32, cc: u32) -> Result<Vec<u8>, Problem> {
        let (w, h) = self.chunk_dims(self.index(cr, cc, 0));
        let mut m = vec![0u8; w as usize * h as usize];
        let only_alpha = Validity { nodata: None, nan: false, ..self.validity };
        if let Some(a) = self.validity.alpha {
            let plane = if self.planar { a } else { 0 };
            let idx = self.index(cr, cc, plane);
            match self.read(idx)? {
                Some((r, rw, rh)) if self.planar => {
                    with_samples!(&r, s => nodata::mark_zero(s, rw as usize, rh as usize, &mut m, w as usize, (0, 0)));
                }
                Some((r, rw, rh)) => {
                    let spp = self.samples;
                    with_samples!(&r, s => nodata::mark(s, spp, rw as usize, rh as usize, [a; 3], &only_alpha, &mut m, w as usize, (0, 0)));
                }
                None => nodata::mark_all(w as usize, h as usize, &mut m, w as usize, (0, 0)),
            }
        }
        if let Some(mask) = self.mask.as_mut() {
            mask.mark(cr * self.across + cc, &mut m, w as usize, (0, 0))?;
        }
        Ok(m)
    }

    /// Decodes chunk row `cr` into 8-bit RGB, and its validity mask when pixels may be no-data.
    fn build_row(&mut self, cr: u32) -> Result<(RgbImage, Option<Vec<u8>>), Problem> {
        let rows = self.chunk_h.min(self.height - cr * self.chunk_h);
        let mut img = RgbImage::new(self.width, rows);
        let out_w = self.width as usize;
        let (bands, stretch, spp, v) = (self.bands, self.stretch, self.samples, self.validity);
        let mut mask = v.any().then(|| vec![0u8; out_w * rows as usize]);
        for cc in 0..self.across {
            let x0 = (cc * self.chunk_w) as usize;
            let (cw, chh) = self.chunk_dims(self.index(cr, cc, 0));
            if self.planar {
                for (c, &band) in bands.iter().enumerate() {
                    let idx = self.index(cr, cc, band);
                    let Some((r, w, h)) = self.read(idx)? else {
                        if let (Some(m), true) = (mask.as_mut(), v.sparse_invalid()) {
                            nodata::mark_all(cw as usize, chh as usize, m, out_w, (x0, 0));
                        }
                        continue;
                    };
                    check_len(&r, w, h, 1)?;
                    let out: &mut [u8] = &mut img;
                    with_samples!(&r, s => blit_plane(s, w as usize, h as usize, c, &stretch, out, out_w, (x0, 0)));
                    if let Some(m) = mask.as_mut() {
                        with_samples!(&r, s => nodata::mark_plane(s, w as usize, h as usize, &v, m, out_w, (x0, 0)));
                    }
                }
                if let (Some(a), Some(m)) = (v.alpha, mask.as_mut()) {
                    let idx = self.index(cr, cc, a);
                    match self.read(idx)? {
                        Some((r, w, h)) => {
                            with_samples!(&r, s => nodata::mark_zero(s, w as usize, h as usize, m, out_w, (x0, 0)));
                        }
                        None => nodata::mark_all(cw as usize, chh as usize, m, out_w, (x0, 0)),
                    }
                }
            } else {
                let idx = self.index(cr, cc, 0);
                let Some((r, w, h)) = self.read(idx)? else {
                    if let (Some(m), true) = (mask.as_mut(), v.sparse_invalid()) {
                        nodata::mark_all(cw as usize, chh as usize, m, out_w, (x0, 0));
                    }
                    continue;
                };
                check_len(&r, w, h, spp)?;
                let out: &mut [u8] = &mut img;
                with_samples!(&r, s => blit(s, spp, w as usize, h as usize, bands, &stretch, out, out_w, (x0, 0)));
                if let Some(m) = mask.as_mut() {
                    with_samples!(&r, s => nodata::mark(s, spp, w as usize, h as usize, bands, &v, m, out_w, (x0, 0)));
                }
            }
            if let (Some(mp), Some(m)) = (self.mask.as_mut(), mask.as_mut()) {
                mp.mark(cr * self.across + cc, m, out_w, (x0, 0))?;
            }
        }
        Ok((img, mask))
    }

    /// The window `[x, y, w, h]` (inside the scene) as 8-bit RGB, after [`TiffRaster::prepare`].
    #[expect(clippy::many_single_char_names, reason = "x, y, w, h name a window")]
    pub fn read_rgb(&mut self, win: [u32; 4]) -> Result<RgbImage, Problem> {
        let [x, y, w, h] = win;
        if w == 0 || h == 0 || x + w > self.width || y + h > self.height {
            return Err(Problem::new(
                Reason::Corrupt,
                format!("window {win:?} outside {}x{}", self.width, self.height),
            ));
        }
        let (first, last) = (y / self.chunk_h, (y + h - 1) / self.chunk_h);
        self.rows.retain(|&k, _| k >= first);
        self.masks.retain(|&k, _| k >= first);
        for cr in first..=last {
            if !self.rows.contains_key(&cr) {
                let held: u64 = self.rows.values().map(|r| r.len() as u64).sum();
                self.peak =
                    self.peak.max(held + self.chunk_raw_bytes() + u64::from(self.width) * u64::from(self.chunk_h) * 3);
                let (row, mask) = self.build_row(cr)?;
                self.rows.insert(cr, row);
                if let Some(m) = mask {
                    self.masks.insert(cr, m);
                }
            }
        }
        let held: u64 = self.rows.values().map(|r| r.len() as u64).sum::<u64>()
            + self.masks.values().map(|m| m.len() as u64).sum::<u64>()
            + u64::from(w) * u64::from(h) * 3;
        self.peak = self.peak.max(held);
        let mut out = RgbImage::new(w, h);
        let (sw, ch) = (self.width as usize, self.chunk_h);
        let dst: &mut [u8] = &mut out;
        for oy in 0..h {
            let sy = y + oy;
            let Some(row) = self.rows.get(&(sy / ch)) else { continue };
            let ry = (sy % ch) as usize;
            let src = row.as_raw().get((ry * sw + x as usize) * 3..(ry * sw + (x + w) as usize) * 3);
            let d = dst.get_mut(oy as usize * w as usize * 3..(oy as usize + 1) * w as usize * 3);
            if let (Some(src), Some(d)) = (src, d) {
                d.copy_from_slice(src);
            }
        }
        Ok(out)
    }

    /// The window as 8-bit RGB and, when pixels may be no-data, its validity mask (one byte per
    /// pixel, see [`super::nodata`]).
    #[expect(clippy::many_single_char_names, reason = "x, y, w, h name a window")]
    pub fn read_rgb_valid(&mut self, win: [u32; 4]) -> Result<(RgbImage, Option<Vec<u8>>), Problem> {
        let img = self.read_rgb(win)?;
        if !self.validity.any() {
            return Ok((img, None));
        }
        let [x, y, w, h] = win;
        let (sw, ch) = (self.width as usize, self.chunk_h);
        let mut out = vec![nodata::INVALID; w as usize * h as usize];
        for oy in 0..h {
            let sy = y + oy;
            let Some(row) = self.masks.get(&(sy / ch)) else { continue };
            let ry = (sy % ch) as usize;
            let src = row.get(ry * sw + x as usize..ry * sw + (x + w) as usize);
            let d = out.get_mut(oy as usize * w as usize..(oy as usize + 1) * w as usize);
            if let (Some(src), Some(d)) = (src, d) {
                d.copy_from_slice(src);
            }
        }
        Ok((img, Some(out)))
    }
}

fn check_len(r: &DecodingResult, w: u32, h: u32, spp: usize) -> Result<(), Problem> {
    let len = match r {
        DecodingResult::U8(v) => v.len(),
        DecodingResult::U16(v) => v.len(),
        DecodingResult::U32(v) => v.len(),
        DecodingResult::U64(v) => v.len(),
        DecodingResult::F16(v) => v.len(),
        DecodingResult::F32(v) => v.len(),
        DecodingResult::F64(v) => v.len(),
        DecodingResult::I8(v) => v.len(),
        DecodingResult::I16(v) => v.len(),
        DecodingResult::I32(v) => v.len(),
        DecodingResult::I64(v) => v.len(),
    };
    let need = w as usize * h as usize * spp;
    if len < need {
        return Err(Problem::new(Reason::Corrupt, format!("a chunk decoded to {len} samples, {need} expected")));
    }
    Ok(())
}
