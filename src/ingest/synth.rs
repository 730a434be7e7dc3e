//! Synthetic TIFF/`GeoTIFF` scenes for tests and benchmarks, written with the `tiff` crate's encoder:
//! any size, 1..N bands of u8, u16 or f32, striped or tiled, chunky or planar, with `GeoTIFF` tags
//! (tiepoint, pixel scale, key directory) and a GDAL no-data tag.
//!
//! Scenes are written chunk by chunk, so writing a 10,980 x 10,980 x 13-band scene holds one chunk in
//! memory. Samples come from a function `(x, y, band) -> f64`, converted to the sample type.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;

use tiff::encoder::{DirectoryEncoder, TiffEncoder, TiffKind};
use tiff::tags::Tag;

use super::bands::SampleKind;

/// How samples are grouped into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunks {
    /// Strips of this many rows.
    Strips(u32),
    /// Tiles of this width and height (multiples of 16).
    Tiles(u32, u32),
}

/// Georeferencing of a synthetic scene: a north-up grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthGeo {
    /// EPSG code (4326 is written as a geographic CRS, anything else as projected).
    pub epsg: u16,
    /// CRS coordinates of the top-left corner of pixel (0, 0).
    pub origin: (f64, f64),
    /// Pixel size (x, y), positive.
    pub pixel: (f64, f64),
}

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthTiff {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel.
    pub bands: usize,
    /// `U8`, `U16` or `F32`.
    pub sample: SampleKind,
    /// Strips or tiles.
    pub chunks: Chunks,
    /// One plane per band instead of interleaved samples.
    pub planar: bool,
    /// Photometric RGB (needs 3 or 4 bands) instead of min-is-black.
    pub rgb: bool,
    /// `GeoTIFF` tags.
    pub geo: Option<SynthGeo>,
    /// GDAL no-data value.
    pub nodata: Option<f64>,
    /// Overrides the photometric interpretation written (tests of unsupported layouts).
    pub photometric: Option<u16>,
}

impl SynthTiff {
    /// A chunky, striped, min-is-black scene without georeferencing.
    #[must_use]
    pub fn new(width: u32, height: u32, bands: usize, sample: SampleKind) -> Self {
        SynthTiff {
            width,
            height,
            bands,
            sample,
            chunks: Chunks::Strips(16),
            planar: false,
            rgb: false,
            geo: None,
            nodata: None,
            photometric: None,
        }
    }
}

/// Writes the tags of the chunk layout: tiles of `cw` x `ch` pixels or strips of `ch` rows, at
/// `offsets`, of `counts` bytes each (also the COG writer's).
pub(super) fn chunk_tags<W: Write + Seek, K: TiffKind>(
    dir: &mut DirectoryEncoder<'_, W, K>,
    tiled: bool,
    (cw, ch): (u32, u32),
    offsets: &[u32],
    counts: &[u32],
) -> io::Result<()> {
    if tiled {
        dir.write_tag(Tag::TileWidth, cw).map_err(tiff_err)?;
        dir.write_tag(Tag::TileLength, ch).map_err(tiff_err)?;
        dir.write_tag(Tag::TileOffsets, offsets).map_err(tiff_err)?;
        dir.write_tag(Tag::TileByteCounts, counts).map_err(tiff_err)?;
    } else {
        dir.write_tag(Tag::RowsPerStrip, ch).map_err(tiff_err)?;
        dir.write_tag(Tag::StripOffsets, offsets).map_err(tiff_err)?;
        dir.write_tag(Tag::StripByteCounts, counts).map_err(tiff_err)?;
    }
    Ok(())
}

/// A TIFF encoder's error as an I/O error (also the COG writer's).
#[expect(clippy::needless_pass_by_value, reason = "a map_err function")]
pub(super) fn tiff_err(e: tiff::TiffError) -> io::Error {
    io::Error::other(e.to_string())
}

fn push(out: &mut Vec<u8>, sample: SampleKind, v: f64) {
    match sample {
        SampleKind::U16 => out.extend_from_slice(&(v.clamp(0.0, 65535.0) as u16).to_le_bytes()),
        SampleKind::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        _ => out.push(v.clamp(0.0, 255.0) as u8),
    }
}

/// Writes `spec` to `path` with samples from `value(x, y, band)`.
pub fn write(path: &Path, spec: &SynthTiff, value: impl Fn(u32, u32, usize) -> f64) -> io::Result<()> {
    if !cfg!(target_endian = "little") {
        return Err(io::Error::other("synthetic TIFFs are written little-endian only"));
    }
    let (bits, format): (u16, u16) = match spec.sample {
        SampleKind::U16 => (16, 1),
        SampleKind::F32 => (32, 3),
        _ => (8, 1),
    };
    let (cw, ch) = match spec.chunks {
        Chunks::Strips(rows) => (spec.width, rows.clamp(1, spec.height)),
        Chunks::Tiles(w, h) => (w, h),
    };
    let (across, down) = (spec.width.div_ceil(cw), spec.height.div_ceil(ch));
    let planes = if spec.planar { spec.bands } else { 1 };
    let per_pixel = if spec.planar { 1 } else { spec.bands };
    let tiled = matches!(spec.chunks, Chunks::Tiles(..));
    let mut enc = TiffEncoder::new(BufWriter::new(File::create(path)?)).map_err(tiff_err)?;
    let mut dir = enc.image_directory().map_err(tiff_err)?;
    let (mut offsets, mut counts) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    for plane in 0..planes {
        for cy in 0..down {
            for cx in 0..across {
                buf.clear();
                let rows = if tiled { ch } else { ch.min(spec.height - cy * ch) };
                for r in 0..rows {
                    for c in 0..cw {
                        let (x, y) = (cx * cw + c, cy * ch + r);
                        for b in 0..per_pixel {
                            let band = if spec.planar { plane } else { b };
                            let v = if x < spec.width && y < spec.height { value(x, y, band) } else { 0.0 };
                            push(&mut buf, spec.sample, v);
                        }
                    }
                }
                offsets
                    .push(u32::try_from(dir.write_data(buf.as_slice()).map_err(tiff_err)?).map_err(io::Error::other)?);
                counts.push(u32::try_from(buf.len()).map_err(io::Error::other)?);
            }
        }
    }
    let n = spec.bands;
    dir.write_tag(Tag::ImageWidth, spec.width).map_err(tiff_err)?;
    dir.write_tag(Tag::ImageLength, spec.height).map_err(tiff_err)?;
    dir.write_tag(Tag::BitsPerSample, vec![bits; n].as_slice()).map_err(tiff_err)?;
    dir.write_tag(Tag::Compression, 1u16).map_err(tiff_err)?;
    let photometric = spec.photometric.unwrap_or(if spec.rgb { 2 } else { 1 });
    dir.write_tag(Tag::PhotometricInterpretation, photometric).map_err(tiff_err)?;
    dir.write_tag(Tag::SamplesPerPixel, u16::try_from(n).map_err(io::Error::other)?).map_err(tiff_err)?;
    dir.write_tag(Tag::PlanarConfiguration, if spec.planar { 2u16 } else { 1u16 }).map_err(tiff_err)?;
    dir.write_tag(Tag::SampleFormat, vec![format; n].as_slice()).map_err(tiff_err)?;
    if spec.rgb && n > 3 {
        dir.write_tag(Tag::ExtraSamples, vec![2u16; n - 3].as_slice()).map_err(tiff_err)?;
    }
    chunk_tags(&mut dir, tiled, (cw, ch), &offsets, &counts)?;
    if let Some(g) = spec.geo {
        dir.write_tag(Tag::ModelPixelScaleTag, &[g.pixel.0, g.pixel.1, 0.0][..]).map_err(tiff_err)?;
        dir.write_tag(Tag::ModelTiepointTag, &[0.0, 0.0, 0.0, g.origin.0, g.origin.1, 0.0][..]).map_err(tiff_err)?;
        let keys: Vec<u16> = if g.epsg == 4326 {
            vec![1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326]
        } else {
            vec![1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, g.epsg]
        };
        dir.write_tag(Tag::GeoKeyDirectoryTag, keys.as_slice()).map_err(tiff_err)?;
    }
    if let Some(nd) = spec.nodata {
        dir.write_tag(Tag::GdalNodata, format!("{nd}").as_str()).map_err(tiff_err)?;
    }
    dir.finish().map_err(tiff_err)?;
    Ok(())
}
