//! Which pixels hold data: the GDAL no-data value (`GDAL_NODATA`, tag 42113), NaN, an alpha band
//! (`ExtraSamples` 1 or 2), an internal mask (an IFD with `NewSubfileType` 4, read by
//! [`super::overview::MaskPlane`]) and, for JPEG/PNG, an alpha channel.
//!
//! A validity mask is one byte per pixel: 0 is valid; a pixel is invalid from [`INVALID_AT`] up. Chunky
//! samples and masks mark a pixel invalid at once ([`INVALID`]); planar samples add one per output
//! channel whose sample is no-data, so a pixel is invalid when all three drawn bands are.
//!
//! Rules:
//! - a pixel is no-data when every drawn band equals the no-data value (or is NaN), when its alpha is
//!   0, or when the mask says so; a sparse chunk (no bytes) is no-data when the scene declares a
//!   no-data value or an alpha band;
//! - the share of valid pixels of a tile is its `valid_fraction`; tiles under `--min-valid` are not
//!   encoded;
//! - before encoding, the invalid pixels of a partly valid tile are filled with the mean colour of its
//!   valid pixels (a neutral fill: black would read as water or shadow to the encoder).

use image::RgbImage;

use super::bands::Sample;

/// Mask value of a pixel known to be invalid.
pub const INVALID: u8 = u8::MAX;
/// Mask values from this one up are invalid (three planar channels of no-data).
pub const INVALID_AT: u8 = 3;
/// Default `--min-valid`: tiles with a smaller share of valid pixels are not encoded.
pub const DEFAULT_MIN_VALID: f64 = 0.5;

/// What makes a pixel of one scene no-data.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Validity {
    /// GDAL no-data value.
    pub nodata: Option<f32>,
    /// Sample index of an alpha band.
    pub alpha: Option<usize>,
    /// Float samples: NaN is no-data.
    pub nan: bool,
    /// An internal mask is read alongside.
    pub mask: bool,
}

impl Validity {
    /// Whether any pixel may be invalid (otherwise no mask is kept).
    #[must_use]
    pub fn any(&self) -> bool {
        self.nodata.is_some() || self.alpha.is_some() || self.nan || self.mask
    }

    /// Whether a sparse chunk (no bytes in the file) is no-data.
    #[must_use]
    pub fn sparse_invalid(&self) -> bool {
        self.nodata.is_some() || self.alpha.is_some()
    }

    /// A short description for reports (`nodata=0, alpha band 4, internal mask`).
    #[must_use]
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(n) = self.nodata {
            v.push(format!("nodata={n}"));
        }
        if let Some(a) = self.alpha {
            v.push(format!("alpha band {}", a + 1));
        }
        if self.mask {
            v.push("internal mask".to_string());
        }
        if self.nan {
            v.push("NaN".to_string());
        }
        v.join(", ")
    }

    fn no_data(&self, v: f32) -> bool {
        v.is_nan() || self.nodata == Some(v)
    }
}

/// The sample index of the alpha band declared by `ExtraSamples` (1 associated, 2 unassociated alpha):
/// extra samples are the last ones of a pixel.
#[must_use]
pub fn alpha_index(samples: usize, extra: &[u16]) -> Option<usize> {
    let first_extra = samples.checked_sub(extra.len())?;
    extra.iter().position(|&e| e == 1 || e == 2).map(|i| first_extra + i)
}

/// Whether mask value `m` is invalid.
#[inline]
#[must_use]
pub fn is_invalid(m: u8) -> bool {
    m >= INVALID_AT
}

fn rows_of(out: &mut [u8], out_w: usize, (x, y): (usize, usize), width: usize, r: usize) -> Option<&mut [u8]> {
    out.get_mut((y + r) * out_w + x..(y + r) * out_w + x + width)
}

/// Marks the invalid pixels of a chunky buffer (`spp` samples per pixel, `width` x `rows`) into the
/// mask `out` (`out_w` pixels per row) at `out_pos`.
#[expect(clippy::too_many_arguments, reason = "mirrors bands::blit")]
pub fn mark<T: Sample>(
    src: &[T],
    spp: usize,
    width: usize,
    rows: usize,
    bands: [usize; 3],
    v: &Validity,
    out: &mut [u8],
    out_w: usize,
    out_pos: (usize, usize),
) {
    for r in 0..rows {
        let (Some(line), Some(dst)) =
            (src.get(r * width * spp..(r + 1) * width * spp), rows_of(out, out_w, out_pos, width, r))
        else {
            return;
        };
        for (px, m) in line.chunks_exact(spp.max(1)).zip(dst.iter_mut()) {
            let alpha0 = v.alpha.is_some_and(|a| px.get(a).is_some_and(|s| s.to_f32() <= 0.0));
            let empty =
                (v.nodata.is_some() || v.nan) && bands.iter().all(|&b| px.get(b).is_none_or(|s| v.no_data(s.to_f32())));
            if alpha0 || empty {
                *m = INVALID;
            }
        }
    }
}

/// Adds one to the mask of each pixel of a plane (output channel) whose sample is no-data.
pub fn mark_plane<T: Sample>(
    src: &[T],
    width: usize,
    rows: usize,
    v: &Validity,
    out: &mut [u8],
    out_w: usize,
    out_pos: (usize, usize),
) {
    if v.nodata.is_none() && !v.nan {
        return;
    }
    for r in 0..rows {
        let (Some(line), Some(dst)) = (src.get(r * width..(r + 1) * width), rows_of(out, out_w, out_pos, width, r))
        else {
            return;
        };
        for (s, m) in line.iter().zip(dst.iter_mut()) {
            if v.no_data(s.to_f32()) {
                *m = m.saturating_add(1);
            }
        }
    }
}

/// Marks invalid every pixel whose value in a one-sample plane (an alpha plane, an 8-bit mask) is 0.
pub fn mark_zero<T: Sample>(
    src: &[T],
    width: usize,
    rows: usize,
    out: &mut [u8],
    out_w: usize,
    out_pos: (usize, usize),
) {
    for r in 0..rows {
        let (Some(line), Some(dst)) = (src.get(r * width..(r + 1) * width), rows_of(out, out_w, out_pos, width, r))
        else {
            return;
        };
        for (s, m) in line.iter().zip(dst.iter_mut()) {
            if s.to_f32() <= 0.0 {
                *m = INVALID;
            }
        }
    }
}

/// Marks invalid every pixel whose bit is 0 in a 1-bit mask (rows padded to whole bytes, most
/// significant bit first).
pub fn mark_bits(src: &[u8], width: usize, rows: usize, out: &mut [u8], out_w: usize, out_pos: (usize, usize)) {
    let stride = width.div_ceil(8);
    for r in 0..rows {
        let (Some(line), Some(dst)) = (src.get(r * stride..(r + 1) * stride), rows_of(out, out_w, out_pos, width, r))
        else {
            return;
        };
        for (i, m) in dst.iter_mut().enumerate() {
            let bit = line.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
            if !bit {
                *m = INVALID;
            }
        }
    }
}

/// Marks a `width` x `rows` rectangle invalid.
pub fn mark_all(width: usize, rows: usize, out: &mut [u8], out_w: usize, out_pos: (usize, usize)) {
    for r in 0..rows {
        if let Some(dst) = rows_of(out, out_w, out_pos, width, r) {
            dst.fill(INVALID);
        }
    }
}

/// Like [`super::bands::collect`], leaving out the pixels `mask` marks invalid (one byte per pixel of
/// `src`).
pub fn collect_masked<T: Sample>(
    src: &[T],
    spp: usize,
    bands: [usize; 3],
    step: usize,
    nodata: Option<f32>,
    mask: &[u8],
    acc: &mut [Vec<f32>; 3],
) {
    for (px, _) in src.chunks_exact(spp.max(1)).zip(mask).step_by(step.max(1)).filter(|(_, m)| !is_invalid(**m)) {
        for (c, a) in acc.iter_mut().enumerate() {
            if let Some(v) = px.get(bands[c]).map(|s| s.to_f32())
                && !v.is_nan()
                && nodata != Some(v)
                && a.len() < super::bands::STRETCH_SAMPLES
            {
                a.push(v);
            }
        }
    }
}

/// The share of valid pixels of a mask (1 for an empty one).
#[must_use]
pub fn valid_fraction(mask: &[u8]) -> f64 {
    if mask.is_empty() {
        return 1.0;
    }
    mask.iter().filter(|&&m| !is_invalid(m)).count() as f64 / mask.len() as f64
}

/// The bounding box `[x, y, w, h]` of the valid pixels of a `width`-wide mask; `None` when none is.
#[must_use]
pub fn valid_bbox(mask: &[u8], width: u32) -> Option<[u32; 4]> {
    let w = width.max(1) as usize;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, &m) in mask.iter().enumerate() {
        if !is_invalid(m) {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != usize::MAX).then(|| [x0 as u32, y0 as u32, (x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32])
}

/// Fills the invalid pixels of `img` with the mean colour of its valid ones (mid-grey when none is).
pub fn fill_neutral(img: &mut RgbImage, mask: &[u8]) {
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for (p, &m) in img.pixels().zip(mask) {
        if !is_invalid(m) {
            for (s, &c) in sum.iter_mut().zip(&p.0) {
                *s += u64::from(c);
            }
            n += 1;
        }
    }
    let fill = if n == 0 { [128u8; 3] } else { sum.map(|s| ((s + n / 2) / n) as u8) };
    for (p, &m) in img.pixels_mut().zip(mask) {
        if is_invalid(m) {
            p.0 = fill;
        }
    }
}

/// Union of two boxes `[x, y, w, h]`.
#[must_use]
pub fn union(a: Option<[u32; 4]>, b: [u32; 4]) -> [u32; 4] {
    let Some(a) = a else { return b };
    let (x0, y0) = (a[0].min(b[0]), a[1].min(b[1]));
    let (x1, y1) = ((a[0] + a[2]).max(b[0] + b[2]), (a[1] + a[3]).max(b[1] + b[3]));
    [x0, y0, x1 - x0, y1 - y0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_fractions_and_fill() {
        let v = Validity { nodata: Some(0.0), alpha: None, nan: false, mask: false };
        // Two pixels of 3 bands: the first all no-data, the second one band 0 only.
        let src: Vec<u16> = vec![0, 0, 0, 0, 5, 7];
        let mut m = vec![0u8; 2];
        mark(&src, 3, 2, 1, [0, 1, 2], &v, &mut m, 2, (0, 0));
        assert_eq!(m, vec![INVALID, 0]);
        assert!((valid_fraction(&m) - 0.5).abs() < 1e-12);
        assert_eq!(valid_bbox(&m, 2), Some([1, 0, 1, 1]));
        let mut img = RgbImage::from_raw(2, 1, vec![0, 0, 0, 10, 20, 30]).unwrap();
        fill_neutral(&mut img, &m);
        assert_eq!(img.get_pixel(0, 0).0, [10, 20, 30]);
        let mut bits = vec![0u8; 10];
        mark_bits(&[0b1010_0000, 0b1000_0000], 10, 1, &mut bits, 10, (0, 0));
        assert_eq!(bits.iter().filter(|&&b| !is_invalid(b)).count(), 3);
        assert_eq!(alpha_index(4, &[2]), Some(3));
        assert_eq!(alpha_index(4, &[0]), None);
        assert_eq!(union(Some([0, 0, 2, 2]), [5, 5, 1, 1]), [0, 0, 6, 6]);
    }
}
