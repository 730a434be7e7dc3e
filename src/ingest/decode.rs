//! Opening a file as a raster: the format from its signature (never its name), limits checked on
//! declared sizes before anything is allocated, and one interface for JPEG/PNG (decoded whole, within
//! [`Limits::max_memory_pixels`]) and TIFF (read window by window, [`super::tiff`]).
//!
//! Invariants: every failure is a [`Problem`] with a [`Reason`], never a panic of ours (decoder
//! panics are caught one level up, in the pipeline); no decode starts before the declared width and
//! height are checked.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageError, ImageFormat, ImageReader, RgbImage};

use super::bands::{Sample, SampleKind, Stretch, blit, collect};
use super::geo::GeoTags;
use super::nodata;
use super::report::{Problem, Reason};
use super::tiff::TiffRaster;

pub use super::limits::Limits;

/// A file format, from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG.
    Png,
    /// TIFF or `BigTIFF`, either byte order.
    Tiff,
}

/// The format of a file starting with `head`; `None` when unknown.
#[must_use]
pub fn sniff(head: &[u8]) -> Option<Format> {
    match head {
        [0xFF, 0xD8, 0xFF, ..] => Some(Format::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Format::Png),
        [b'I', b'I', 42 | 43, 0, ..] | [b'M', b'M', 0, 42 | 43, ..] => Some(Format::Tiff),
        _ => None,
    }
}

/// A JPEG or PNG decoded whole.
#[derive(Debug)]
pub struct MemRaster {
    src: Option<DynamicImage>,
    rgb: Option<RgbImage>,
    width: u32,
    height: u32,
    channels: usize,
    sample: SampleKind,
    peak: u64,
    /// Validity mask from the alpha channel (see [`super::nodata`]), after `prepare`.
    valid: Option<Vec<u8>>,
}

/// An open raster of any supported format.
#[derive(Debug)]
pub enum Raster {
    /// JPEG or PNG.
    Memory(MemRaster),
    /// TIFF or `GeoTIFF`.
    Tiff(Box<TiffRaster>),
}

fn image_problem(e: &ImageError) -> Problem {
    let d = e.to_string();
    let eof = d.contains("EOF") || d.contains("end of") || d.contains("unexpected end") || d.contains("No more bytes");
    match e {
        ImageError::Limits(_) => Problem::new(Reason::TooLarge, d),
        ImageError::Unsupported(_) => Problem::new(Reason::UnsupportedFormat, d),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Problem::new(Reason::Truncated, d),
        _ if eof => Problem::new(Reason::Truncated, d),
        ImageError::IoError(_) => Problem::new(Reason::Unreadable, d),
        _ => Problem::new(Reason::Corrupt, d),
    }
}

fn reader<'b>(bytes: &'b [u8], format: ImageFormat, limits: &Limits) -> ImageReader<Cursor<&'b [u8]>> {
    let mut r = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_memory_pixels.saturating_mul(16));
    r.limits(l);
    r
}

impl MemRaster {
    /// Decodes a JPEG or PNG held in `bytes`, after checking its declared size.
    pub fn decode(bytes: &[u8], format: Format, limits: &Limits) -> Result<MemRaster, Problem> {
        let fmt = match format {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Tiff => return Err(Problem::new(Reason::UnsupportedFormat, "TIFF is read by the TIFF reader")),
        };
        // PNG's header is read here, not by the decoder: it wants more than the header before it says
        // how large the image is, and a bomb may have nothing after it.
        let (w, h) = match (format, png_size(bytes)) {
            (Format::Png, Some(wh)) => wh,
            _ => reader(bytes, fmt, limits).into_dimensions().map_err(|e| image_problem(&e))?,
        };
        if w == 0 || h == 0 {
            return Err(Problem::new(Reason::Corrupt, format!("declares {w}x{h} pixels")));
        }
        if u64::from(w) * u64::from(h) > limits.max_memory_pixels {
            return Err(Problem::new(
                Reason::TooLarge,
                format!("declares {w}x{h} pixels, over the limit of {} for JPEG/PNG", limits.max_memory_pixels),
            ));
        }
        if format == Format::Jpeg && !has_jpeg_end(bytes) {
            return Err(Problem::new(Reason::Truncated, "no end-of-image marker: the JPEG is cut short"));
        }
        let img = reader(bytes, fmt, limits).decode().map_err(|e| image_problem(&e))?;
        let color = img.color();
        let sample = match (color.bytes_per_pixel() / color.channel_count().max(1), color.has_alpha()) {
            (1, _) => SampleKind::U8,
            (2, _) => SampleKind::U16,
            _ => SampleKind::F32,
        };
        let peak = img.as_bytes().len() as u64;
        Ok(MemRaster {
            width: img.width(),
            height: img.height(),
            channels: usize::from(color.channel_count()),
            sample,
            src: Some(img),
            rgb: None,
            peak,
            valid: None,
        })
    }

    fn prepare(&mut self, bands: [usize; 3]) -> Result<Stretch, Problem> {
        let Some(src) = self.src.take() else {
            return Err(Problem::new(Reason::Corrupt, "image already prepared"));
        };
        // 8-bit RGB in its own order (most JPEGs): the decoded buffer is the image, nothing to copy.
        if bands == [0, 1, 2] && matches!(src, DynamicImage::ImageRgb8(_)) {
            self.rgb = Some(src.into_rgb8());
            return Ok(Stretch::identity());
        }
        let (w, h, spp) = (self.width as usize, self.height as usize, self.channels);
        let mut out = RgbImage::new(self.width, self.height);
        let buf: &mut [u8] = &mut out;
        let pixels = w * h;
        let step = (pixels / super::bands::STRETCH_SAMPLES).max(1);
        // An alpha channel (the last of 2 or 4) marks the pixels with no data; the stretch leaves them out.
        let alpha = src.color().has_alpha().then(|| spp - 1);
        let v = nodata::Validity { alpha, ..nodata::Validity::default() };
        let mut valid = alpha.map(|_| vec![0u8; pixels]);
        if let Some(m) = valid.as_mut() {
            if let Some(s) = src.as_flat_samples_u8() {
                nodata::mark(s.samples, spp, w, h, bands, &v, m, w, (0, 0));
            } else if let Some(s) = src.as_flat_samples_u16() {
                nodata::mark(s.samples, spp, w, h, bands, &v, m, w, (0, 0));
            } else if let Some(s) = src.as_flat_samples_f32() {
                nodata::mark(s.samples, spp, w, h, bands, &v, m, w, (0, 0));
            }
        }
        let stretch = if let Some(s) = src.as_flat_samples_u8() {
            let st = Stretch::identity();
            blit(s.samples, spp, w, h, bands, &st, buf, w, (0, 0));
            st
        } else if let Some(s) = src.as_flat_samples_u16() {
            stretch_into(s.samples, (w, h, spp), bands, step, valid.as_deref(), buf)
        } else if let Some(s) = src.as_flat_samples_f32() {
            stretch_into(s.samples, (w, h, spp), bands, step, valid.as_deref(), buf)
        } else {
            return Err(Problem::new(Reason::UnsupportedBandLayout, format!("pixel type {:?}", src.color())));
        };
        self.peak = self.peak.max(src.as_bytes().len() as u64 + out.len() as u64);
        self.rgb = Some(out);
        self.valid = valid;
        Ok(stretch)
    }
}

/// Fits a stretch to every `step`-th pixel of `samples` (`w` x `h`, `spp` samples a pixel; where
/// `valid` is given, only its nonzero pixels) and blits `bands` through it into `buf`.
fn stretch_into<T: Sample>(
    samples: &[T],
    (w, h, spp): (usize, usize, usize),
    bands: [usize; 3],
    step: usize,
    valid: Option<&[u8]>,
    buf: &mut [u8],
) -> Stretch {
    let mut acc: [Vec<f32>; 3] = Default::default();
    match valid {
        Some(m) => nodata::collect_masked(samples, spp, bands, step, None, m, &mut acc),
        None => collect(samples, spp, bands, step, None, &mut acc),
    }
    let st = Stretch::from_samples(acc, None);
    blit(samples, spp, w, h, bands, &st, buf, w, (0, 0));
    st
}

impl MemRaster {
    fn color_has_alpha(&self) -> bool {
        self.valid.is_some() || self.src.as_ref().is_some_and(|s| s.color().has_alpha())
    }
}

/// Width and height from a PNG's IHDR chunk (bytes 16..24, big-endian).
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((w, h))
}

/// Whether a JPEG ends with its end-of-image marker (some writers pad after it: the last 64 KiB are
/// searched).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = bytes.get(bytes.len().saturating_sub(64 << 10)..).unwrap_or(bytes);
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

impl Raster {
    /// Opens `path`: JPEG/PNG from `bytes` (the file's content, already read), TIFF window by window.
    pub fn open(
        path: &Path,
        bytes: Option<&[u8]>,
        format: Format,
        file_len: u64,
        limits: &Limits,
    ) -> Result<Raster, Problem> {
        match format {
            Format::Tiff => Ok(Raster::Tiff(Box::new(TiffRaster::open(path, file_len, limits)?))),
            Format::Jpeg | Format::Png => {
                let bytes = bytes.ok_or_else(|| Problem::new(Reason::Unreadable, "file content not read"))?;
                Ok(Raster::Memory(MemRaster::decode(bytes, format, limits)?))
            }
        }
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        match self {
            Raster::Memory(m) => m.width,
            Raster::Tiff(t) => t.width,
        }
    }

    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        match self {
            Raster::Memory(m) => m.height,
            Raster::Tiff(t) => t.height,
        }
    }

    /// Samples (bands) per pixel.
    #[must_use]
    pub fn samples(&self) -> usize {
        match self {
            Raster::Memory(m) => m.channels,
            Raster::Tiff(t) => t.samples,
        }
    }

    /// Sample type.
    #[must_use]
    pub fn sample(&self) -> SampleKind {
        match self {
            Raster::Memory(m) => m.sample,
            Raster::Tiff(t) => t.sample,
        }
    }

    /// Whether the first three samples are R, G, B by the file's own declaration.
    #[must_use]
    pub fn rgb(&self) -> bool {
        match self {
            Raster::Memory(m) => m.channels >= 3,
            Raster::Tiff(t) => t.rgb,
        }
    }

    /// `GeoTIFF` tags, when a TIFF has any.
    #[must_use]
    pub fn geo_tags(&self) -> Option<&GeoTags> {
        match self {
            Raster::Memory(_) => None,
            Raster::Tiff(t) => t.geo.any().then_some(&t.geo),
        }
    }

    /// Selects the bands drawn as RGB and computes the stretch; call once before reading windows.
    pub fn prepare(&mut self, bands: [usize; 3]) -> Result<Stretch, Problem> {
        match self {
            Raster::Memory(m) => m.prepare(bands),
            Raster::Tiff(t) => t.prepare(bands),
        }
    }

    /// The window `[x, y, w, h]` as 8-bit RGB.
    pub fn read_rgb(&mut self, win: [u32; 4]) -> Result<RgbImage, Problem> {
        self.read_rgb_as(win, false)
    }

    /// [`Raster::read_rgb`]; `last`: no read of this raster follows, so a whole in-memory image is
    /// handed over instead of copied.
    fn read_rgb_as(&mut self, win: [u32; 4], last: bool) -> Result<RgbImage, Problem> {
        match self {
            Raster::Memory(m) => {
                let [x, y, w, h] = win;
                let rgb = m.rgb.as_ref().ok_or_else(|| Problem::new(Reason::Corrupt, "image not prepared"))?;
                if w == 0 || h == 0 || x + w > m.width || y + h > m.height {
                    return Err(Problem::new(
                        Reason::Corrupt,
                        format!("window {win:?} outside {}x{}", m.width, m.height),
                    ));
                }
                if (x, y, w, h) == (0, 0, m.width, m.height) {
                    return Ok(if last { m.rgb.take().unwrap_or_default() } else { rgb.clone() });
                }
                Ok(image::imageops::crop_imm(rgb, x, y, w, h).to_image())
            }
            Raster::Tiff(t) => t.read_rgb(win),
        }
    }

    /// Whether some pixels may be no-data (a no-data value, NaN samples, an alpha band or a mask).
    #[must_use]
    pub fn may_have_nodata(&self) -> bool {
        match self {
            Raster::Memory(m) => m.color_has_alpha(),
            Raster::Tiff(t) => t.validity.any(),
        }
    }

    /// The window as 8-bit RGB and, when pixels may be no-data, its validity mask (one byte per pixel,
    /// see [`super::nodata`]).
    pub fn read_rgb_valid(&mut self, win: [u32; 4]) -> Result<(RgbImage, Option<Vec<u8>>), Problem> {
        self.read_rgb_valid_as(win, false)
    }

    /// [`Raster::read_rgb_valid`] for the last read of this raster: a whole in-memory image is
    /// handed over instead of copied (a later read of it fails).
    pub fn last_rgb_valid(&mut self, win: [u32; 4]) -> Result<(RgbImage, Option<Vec<u8>>), Problem> {
        self.read_rgb_valid_as(win, true)
    }

    #[expect(clippy::many_single_char_names, reason = "x, y, w, h name a window")]
    fn read_rgb_valid_as(&mut self, win: [u32; 4], last: bool) -> Result<(RgbImage, Option<Vec<u8>>), Problem> {
        match self {
            Raster::Tiff(t) => t.read_rgb_valid(win),
            Raster::Memory(_) => {
                let img = self.read_rgb_as(win, last)?;
                let Raster::Memory(m) = self else { return Ok((img, None)) };
                let Some(valid) = m.valid.as_ref() else { return Ok((img, None)) };
                let [x, y, w, h] = win;
                let mut out = Vec::with_capacity(w as usize * h as usize);
                for r in y..y + h {
                    let at = r as usize * m.width as usize + x as usize;
                    out.extend_from_slice(valid.get(at..at + w as usize).unwrap_or_default());
                }
                Ok((img, Some(out)))
            }
        }
    }

    /// Most bytes of pixels held at once.
    #[must_use]
    pub fn peak_bytes(&self) -> u64 {
        match self {
            Raster::Memory(m) => m.peak,
            Raster::Tiff(t) => t.peak_bytes(),
        }
    }

    /// A one-line description for reports (`tiff u16 x13, tiled 256x256, chunky`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Raster::Memory(m) => format!("{}x{} {} x{}", m.width, m.height, m.sample.name(), m.channels),
            Raster::Tiff(t) => format!("{}x{} {} x{}, {}", t.width, t.height, t.sample.name(), t.samples, t.layout()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"II*\0...."), Some(Format::Tiff));
        assert_eq!(sniff(b"MM\0*...."), Some(Format::Tiff));
        assert_eq!(sniff(b"II+\0...."), Some(Format::Tiff));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn png_bomb_is_refused_before_decoding() {
        // A PNG header declaring 100,000 x 100,000 pixels, and nothing else.
        let mut png = Vec::new();
        png.extend_from_slice(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(b"IHDR");
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let e = MemRaster::decode(&png, Format::Png, &Limits::default()).unwrap_err();
        assert_eq!(e.reason, Reason::TooLarge, "{e}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
}
