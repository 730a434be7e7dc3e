//! Synthetic scenes with several image file directories, written with the `tiff` crate's encoder: a
//! full-resolution image, overview levels (each half the size of the one before, `NewSubfileType` 1),
//! internal masks (`NewSubfileType` 4 or 5, 8-bit), an alpha band (`ExtraSamples` 2) and the GDAL
//! no-data tag, laid out as GDAL lays out a cloud-optimised `GeoTIFF` (image, its mask, then each
//! overview and its mask).
//!
//! Samples come from `value(x, y, band)` and validity from `valid(x, y)`, both in full-resolution
//! pixels; an overview pixel takes the values of the full-resolution pixel at its top-left corner.
//! Invalid pixels hold the no-data value (0 without one) and alpha 0. Data is written chunk by chunk,
//! so a 10,980 x 10,980 scene holds one chunk in memory.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

use tiff::encoder::TiffEncoder;
use tiff::tags::Tag;

use super::bands::SampleKind;
use super::synth::{SynthGeo, chunk_tags, tiff_err};

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CogSpec {
    /// Full-resolution width.
    pub width: u32,
    /// Full-resolution height.
    pub height: u32,
    /// Data bands (an alpha band comes on top).
    pub bands: usize,
    /// `U8` or `U16`.
    pub sample: SampleKind,
    /// Tiles of this side (a multiple of 16); `None`: strips of 16 rows.
    pub tile: Option<u32>,
    /// Overview levels after the full-resolution image.
    pub overviews: usize,
    /// `GeoTIFF` tags of the full-resolution image.
    pub geo: Option<SynthGeo>,
    /// GDAL no-data value.
    pub nodata: Option<f64>,
    /// An extra alpha band.
    pub alpha: bool,
    /// An internal mask per level.
    pub mask: bool,
}

impl CogSpec {
    /// A tiled (256) u16 scene of `bands` bands, no overviews, no-data, alpha or mask.
    #[must_use]
    pub fn new(width: u32, height: u32, bands: usize) -> Self {
        CogSpec {
            width,
            height,
            bands,
            sample: SampleKind::U16,
            tile: Some(256),
            overviews: 0,
            geo: None,
            nodata: None,
            alpha: false,
            mask: false,
        }
    }
}

fn to_u32(n: u64) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other("a synthetic scene over 4 GiB (use fewer bands or smaller)"))
}

/// One image of the file.
struct Plane<'a> {
    width: u32,
    height: u32,
    /// Full-resolution pixels per pixel of this image.
    factor: u32,
    subfile: u32,
    mask: bool,
    spec: &'a CogSpec,
}

/// Writes `spec` to `path`.
pub fn write_cog(
    path: &Path,
    spec: &CogSpec,
    value: impl Fn(u32, u32, usize) -> f64,
    valid: impl Fn(u32, u32) -> bool,
) -> io::Result<()> {
    if !cfg!(target_endian = "little") {
        return Err(io::Error::other("synthetic TIFFs are written little-endian only"));
    }
    let mut enc = TiffEncoder::new(BufWriter::new(File::create(path)?)).map_err(tiff_err)?;
    for level in 0..=spec.overviews {
        let factor = 1u32 << level;
        let (width, height) = (spec.width.div_ceil(factor).max(1), spec.height.div_ceil(factor).max(1));
        let subfile = u32::from(level > 0);
        write_plane(&mut enc, &Plane { width, height, factor, subfile, mask: false, spec }, &value, &valid)?;
        if spec.mask {
            write_plane(
                &mut enc,
                &Plane { width, height, factor, subfile: subfile | 4, mask: true, spec },
                &value,
                &valid,
            )?;
        }
    }
    Ok(())
}

fn write_plane(
    enc: &mut TiffEncoder<BufWriter<File>>,
    p: &Plane<'_>,
    value: &impl Fn(u32, u32, usize) -> f64,
    valid: &impl Fn(u32, u32) -> bool,
) -> io::Result<()> {
    let spec = p.spec;
    let sample = if p.mask { SampleKind::U8 } else { spec.sample };
    let spp = if p.mask { 1 } else { spec.bands + usize::from(spec.alpha) };
    let (cw, ch) = spec.tile.map_or((p.width, 16u32.min(p.height)), |t| (t, t));
    let tiled = spec.tile.is_some();
    let (across, down) = (p.width.div_ceil(cw), p.height.div_ceil(ch));
    let mut dir = enc.image_directory().map_err(tiff_err)?;
    let (mut offsets, mut counts) = (Vec::new(), Vec::new());
    let mut buf: Vec<u8> = Vec::new();
    let fill = spec.nodata.unwrap_or(0.0);
    for cy in 0..down {
        for cx in 0..across {
            buf.clear();
            let rows = if tiled { ch } else { ch.min(p.height - cy * ch) };
            for r in 0..rows {
                for c in 0..cw {
                    let (x, y) = (cx * cw + c, cy * ch + r);
                    let inside = x < p.width && y < p.height;
                    let (fx, fy) = (x * p.factor, y * p.factor);
                    let ok = inside && valid(fx, fy);
                    for b in 0..spp {
                        let v = if p.mask || (spec.alpha && b == spec.bands) {
                            if ok { 255.0 } else { 0.0 }
                        } else if ok {
                            value(fx, fy, b)
                        } else {
                            fill
                        };
                        match sample {
                            SampleKind::U16 => buf.extend_from_slice(&(v.clamp(0.0, 65535.0) as u16).to_le_bytes()),
                            _ => buf.push(v.clamp(0.0, 255.0) as u8),
                        }
                    }
                }
            }
            offsets.push(to_u32(dir.write_data(buf.as_slice()).map_err(tiff_err)?)?);
            counts.push(to_u32(buf.len() as u64)?);
        }
    }
    let bits: u16 = if sample == SampleKind::U16 { 16 } else { 8 };
    dir.write_tag(Tag::NewSubfileType, p.subfile).map_err(tiff_err)?;
    dir.write_tag(Tag::ImageWidth, p.width).map_err(tiff_err)?;
    dir.write_tag(Tag::ImageLength, p.height).map_err(tiff_err)?;
    dir.write_tag(Tag::BitsPerSample, vec![bits; spp].as_slice()).map_err(tiff_err)?;
    dir.write_tag(Tag::Compression, 1u16).map_err(tiff_err)?;
    let photometric: u16 = if p.mask { 4 } else { 1 };
    dir.write_tag(Tag::PhotometricInterpretation, photometric).map_err(tiff_err)?;
    dir.write_tag(Tag::SamplesPerPixel, u16::try_from(spp).map_err(io::Error::other)?).map_err(tiff_err)?;
    dir.write_tag(Tag::PlanarConfiguration, 1u16).map_err(tiff_err)?;
    dir.write_tag(Tag::SampleFormat, vec![1u16; spp].as_slice()).map_err(tiff_err)?;
    if !p.mask && spec.alpha {
        // Min-is-black with extra samples: every band but the first is "extra"; the last is alpha.
        let mut extra = vec![0u16; spp - 1];
        if let Some(last) = extra.last_mut() {
            *last = 2;
        }
        dir.write_tag(Tag::ExtraSamples, extra.as_slice()).map_err(tiff_err)?;
    }
    chunk_tags(&mut dir, tiled, (cw, ch), &offsets, &counts)?;
    if p.subfile == 0
        && let Some(g) = spec.geo
    {
        dir.write_tag(Tag::ModelPixelScaleTag, &[g.pixel.0, g.pixel.1, 0.0][..]).map_err(tiff_err)?;
        dir.write_tag(Tag::ModelTiepointTag, &[0.0, 0.0, 0.0, g.origin.0, g.origin.1, 0.0][..]).map_err(tiff_err)?;
        let keys: Vec<u16> = if g.epsg == 4326 {
            vec![1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326]
        } else {
            vec![1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, g.epsg]
        };
        dir.write_tag(Tag::GeoKeyDirectoryTag, keys.as_slice()).map_err(tiff_err)?;
    }
    if !p.mask
        && let Some(nd) = spec.nodata
    {
        dir.write_tag(Tag::GdalNodata, format!("{nd}").as_str()).map_err(tiff_err)?;
    }
    dir.finish().map_err(tiff_err)?;
    Ok(())
}
