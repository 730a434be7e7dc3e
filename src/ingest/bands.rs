//! From N bands of any sample type to 8-bit RGB: band selection (sensor defaults, `--bands`), the
//! 2-98 percentile stretch, and the per-sample conversions both decoders share.
//!
//! Invariants:
//! - 8-bit data is never stretched (values pass through unchanged);
//! - 16-bit, 32-bit and float data map `[p2, p98]` of each selected band linearly onto `0..=255`,
//!   with the percentiles estimated once per scene, so that neighbouring tiles match;
//! - NaN and the no-data value are excluded from the percentiles and drawn black.

/// Lower percentile of the stretch.
pub const STRETCH_LOW: f64 = 0.02;
/// Upper percentile of the stretch.
pub const STRETCH_HIGH: f64 = 0.98;
/// Most samples per band kept to estimate percentiles.
pub const STRETCH_SAMPLES: usize = 1 << 20;

/// A pixel sample type as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// IEEE half float.
    F16,
    /// IEEE single float.
    F32,
    /// IEEE double float.
    F64,
}

impl SampleKind {
    /// Short name (`u8`, `u16`, `f32`...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::U8 => "u8",
            SampleKind::U16 => "u16",
            SampleKind::U32 => "u32",
            SampleKind::I8 => "i8",
            SampleKind::I16 => "i16",
            SampleKind::I32 => "i32",
            SampleKind::F16 => "f16",
            SampleKind::F32 => "f32",
            SampleKind::F64 => "f64",
        }
    }

    /// Bytes per sample.
    #[must_use]
    pub fn bytes(self) -> u64 {
        match self {
            SampleKind::U8 | SampleKind::I8 => 1,
            SampleKind::U16 | SampleKind::I16 | SampleKind::F16 => 2,
            SampleKind::U32 | SampleKind::I32 | SampleKind::F32 => 4,
            SampleKind::F64 => 8,
        }
    }
}

/// A sample convertible to `f32`.
pub trait Sample: Copy {
    /// The value as `f32`.
    fn to_f32(self) -> f32;
}

macro_rules! sample_from {
    ($($t:ty),*) => { $(impl Sample for $t { fn to_f32(self) -> f32 { f32::from(self) } })* };
}
macro_rules! sample_as {
    ($($t:ty),*) => { $(impl Sample for $t { fn to_f32(self) -> f32 { self as f32 } })* };
}
sample_from!(u8, u16, i8, i16, f32);
sample_as!(u32, u64, i32, i64, f64);

/// Per-band linear mapping onto `0..=255`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    /// Value drawn as 0, per output channel.
    pub lo: [f32; 3],
    /// Value drawn as 255, per output channel.
    pub hi: [f32; 3],
    /// Values drawn black and excluded from statistics.
    pub nodata: Option<f32>,
}

impl Stretch {
    /// 8-bit data: values unchanged.
    #[must_use]
    pub fn identity() -> Self {
        Stretch { lo: [0.0; 3], hi: [255.0; 3], nodata: None }
    }

    /// Whether this is [`Stretch::identity`].
    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.lo.map(f32::to_bits) == [0f32.to_bits(); 3] && self.hi.map(f32::to_bits) == [255f32.to_bits(); 3]
    }

    /// Maps `v` of output channel `c`.
    #[inline]
    #[must_use]
    pub fn map(&self, c: usize, v: f32) -> u8 {
        if v.is_nan() || self.nodata == Some(v) {
            return 0;
        }
        let (lo, hi) = (self.lo.get(c).copied().unwrap_or(0.0), self.hi.get(c).copied().unwrap_or(255.0));
        ((v - lo) * (255.0 / (hi - lo))).round().clamp(0.0, 255.0) as u8
    }

    /// The stretch of percentiles estimated from `samples` (one list per output channel).
    #[must_use]
    pub fn from_samples(mut samples: [Vec<f32>; 3], nodata: Option<f32>) -> Self {
        let mut s = Stretch { lo: [0.0; 3], hi: [1.0; 3], nodata };
        for (c, v) in samples.iter_mut().enumerate() {
            if v.is_empty() {
                continue;
            }
            let at = |v: &mut Vec<f32>, q: f64| -> f32 {
                let i = ((v.len() - 1) as f64 * q).round() as usize;
                *v.select_nth_unstable_by(i, f32::total_cmp).1
            };
            let lo = at(v, STRETCH_LOW);
            let hi = at(v, STRETCH_HIGH);
            s.lo[c] = lo;
            s.hi[c] = if hi > lo { hi } else { lo + 1.0 };
        }
        s
    }

    /// `lo..hi` per channel, for reports.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.is_identity() {
            return "none".into();
        }
        (0..3).map(|c| format!("{}..{}", self.lo[c], self.hi[c])).collect::<Vec<_>>().join(",")
    }
}

/// Copies pixels of a chunky buffer (`spp` samples per pixel, `width` pixels per row) into 8-bit RGB:
/// the rectangle `rows` x `width` starting at `out[(out_y * out_w + out_x) * 3]`.
#[expect(clippy::too_many_arguments, reason = "a flat blit keeps the inner loop simple")]
pub fn blit<T: Sample>(
    src: &[T],
    spp: usize,
    width: usize,
    rows: usize,
    bands: [usize; 3],
    stretch: &Stretch,
    out: &mut [u8],
    out_w: usize,
    out_pos: (usize, usize),
) {
    for_each_row(src, width * spp, width, rows, out, out_w, out_pos, |line, dst| {
        for (px, o) in line.chunks_exact(spp).zip(dst.chunks_exact_mut(3)) {
            for (c, &band) in bands.iter().enumerate() {
                let v = px.get(band).map_or(0.0, |s| s.to_f32());
                if let Some(slot) = o.get_mut(c) {
                    *slot = stretch.map(c, v);
                }
            }
        }
    });
}

/// Like [`blit`] for one plane of a planar image, writing output channel `c` only.
#[expect(clippy::too_many_arguments, reason = "a flat blit keeps the inner loop simple")]
pub fn blit_plane<T: Sample>(
    src: &[T],
    width: usize,
    rows: usize,
    c: usize,
    stretch: &Stretch,
    out: &mut [u8],
    out_w: usize,
    out_pos: (usize, usize),
) {
    for_each_row(src, width, width, rows, out, out_w, out_pos, |line, dst| {
        for (v, o) in line.iter().zip(dst.chunks_exact_mut(3)) {
            if let Some(slot) = o.get_mut(c) {
                *slot = stretch.map(c, v.to_f32());
            }
        }
    });
}

/// Calls `each` with source row `r` (`stride` samples) and its `width` RGB pixels of `out` at
/// `out[((out_y + r) * out_w + out_x) * 3]`, for `r` below `rows`; stops at the first row that
/// either buffer is too short for.
#[expect(clippy::too_many_arguments, reason = "the blits' geometry, passed through as they take it")]
fn for_each_row<T>(
    src: &[T],
    stride: usize,
    width: usize,
    rows: usize,
    out: &mut [u8],
    out_w: usize,
    (out_x, out_y): (usize, usize),
    mut each: impl FnMut(&[T], &mut [u8]),
) {
    for r in 0..rows {
        let at = ((out_y + r) * out_w + out_x) * 3;
        let (Some(line), Some(dst)) = (src.get(r * stride..(r + 1) * stride), out.get_mut(at..at + width * 3)) else {
            return;
        };
        each(line, dst);
    }
}

/// Appends every `step`-th pixel's selected samples (NaN and `nodata` left out) to `acc`.
pub fn collect<T: Sample>(
    src: &[T],
    spp: usize,
    bands: [usize; 3],
    step: usize,
    nodata: Option<f32>,
    acc: &mut [Vec<f32>; 3],
) {
    for px in src.chunks_exact(spp).step_by(step.max(1)) {
        for (c, a) in acc.iter_mut().enumerate() {
            if let Some(v) = px.get(bands[c]).map(|s| s.to_f32())
                && !v.is_nan()
                && nodata != Some(v)
                && a.len() < STRETCH_SAMPLES
            {
                a.push(v);
            }
        }
    }
}

/// Default RGB bands (0-based) for `samples` bands, from band names, then the platform, then the
/// band count. Returns the bands and a note saying which rule chose them.
#[must_use]
pub fn default_bands(
    samples: usize,
    rgb_photometric: bool,
    platform: Option<&str>,
    names: &[String],
) -> ([usize; 3], String) {
    if samples < 3 {
        return ([0, 0, 0], "single band drawn as grey".into());
    }
    if rgb_photometric {
        return ([0, 1, 2], "RGB image".into());
    }
    if names.len() == samples {
        let find = |n: &str| names.iter().position(|x| x == n);
        if let (Some(r), Some(g), Some(b)) = (find("red"), find("green"), find("blue")) {
            return ([r, g, b], "bands named red, green, blue in the metadata".into());
        }
    }
    let p = platform.unwrap_or_default().to_ascii_lowercase();
    let (bands, why): ([usize; 3], &str) = if p.starts_with("sentinel-2")
        || (p.is_empty() && matches!(samples, 12 | 13))
    {
        ([3, 2, 1], "Sentinel-2 order (B4, B3, B2)")
    } else if p.starts_with("landsat-8") || p.starts_with("landsat-9") || (p.is_empty() && samples == 11) {
        ([3, 2, 1], "Landsat 8/9 order (B4, B3, B2)")
    } else if p.starts_with("landsat") {
        ([2, 1, 0], "Landsat TM/ETM+ order (B3, B2, B1)")
    } else if (p.starts_with("planetscope") || p.starts_with("superdove")) && samples >= 8 {
        ([5, 3, 1], "PlanetScope 8-band order (coastal, blue, green I, green, yellow, red, ...)")
    } else if p.starts_with("worldview") && samples >= 8 {
        ([4, 2, 1], "WorldView 8-band order (coastal, blue, green, yellow, red, ...)")
    } else if (p.starts_with("planetscope") || p.starts_with("worldview") || p.starts_with("superdove")) && samples == 4
    {
        ([2, 1, 0], "4-band order blue, green, red, NIR")
    } else {
        ([0, 1, 2], "bands 1, 2, 3 taken as red, green, blue")
    };
    (bands, why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_and_defaults() {
        let s = Stretch::identity();
        assert_eq!(s.map(0, 17.0), 17);
        let v: Vec<f32> = (0..=100).map(|x| x as f32).collect();
        let s = Stretch::from_samples([v.clone(), v.clone(), v], Some(-1.0));
        assert_eq!((s.lo[0], s.hi[0]), (2.0, 98.0));
        assert_eq!(s.map(0, 2.0), 0);
        assert_eq!(s.map(0, 98.0), 255);
        assert_eq!(s.map(0, 50.0), 128);
        assert_eq!(s.map(0, -1.0), 0);
        assert_eq!(default_bands(13, false, None, &[]).0, [3, 2, 1]);
        assert_eq!(default_bands(4, false, Some("PlanetScope"), &[]).0, [2, 1, 0]);
        assert_eq!(default_bands(8, false, Some("worldview-3"), &[]).0, [4, 2, 1]);
        assert_eq!(default_bands(8, false, Some("planetscope"), &[]).0, [5, 3, 1]);
        assert_eq!(default_bands(4, false, None, &[]).0, [0, 1, 2]);
        assert_eq!(default_bands(1, false, None, &[]).0, [0, 0, 0]);
        let names: Vec<String> = ["nir", "blue", "green", "red"].iter().map(|s| (*s).to_string()).collect();
        assert_eq!(default_bands(4, false, None, &names).0, [3, 2, 1]);
    }
}
