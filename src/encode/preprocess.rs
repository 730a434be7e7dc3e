//! Image preprocessing: 8-bit RGB pixels -> the image tower's input tensor, exactly as the reference Python
//! pipeline (`scripts/model/common.py: preprocess`, Pillow + numpy) computes it.
//!
//! Steps: resize (Pillow's `Image.resize`: separable convolution, horizontal pass then vertical, filter widened
//! by the scale when shrinking, coefficients in 22-bit fixed point, each pass rounded and clipped to `u8`) ->
//! centre crop when the manifest asks for one (torchvision `CenterCrop` offsets) -> `x * rescale_factor`
//! (computed as `x / 255` when the factor is 1/255, as numpy does) -> `(x - mean) / std` in `f32` -> NCHW
//! (or NHWC) in the manifest's channel order.
//!
//! Invariants: output length is always `3 * height * width` of the manifest's `size`; any input size
//! (>= 1x1) is accepted; the resize stage is bit-exact with Pillow for the bilinear, bicubic and lanczos
//! filters (checked against Pillow's output in `tests/encode.rs` via `models/demo/fixtures/`). Decoding is not
//! bit-exact: the `image` crate's JPEG decoder and libjpeg-turbo (Pillow's) differ by a level or two on some
//! pixels, so the full pipeline is checked to a tolerance.

use std::path::Path;

use image::{DynamicImage, ImageReader, RgbImage};

use super::error::{EncodeError, EncodeResult};
use super::manifest::{ChannelOrder, ImageSpec, Interpolation, Layout, ResizeMode};

/// Bits of fraction in Pillow's fixed-point coefficients (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Largest image accepted by [`load_rgb`], in pixels (decoding more is the ingestion pipeline's job, which
/// tiles large scenes first).
pub const MAX_DECODE_PIXELS: u64 = 256 * 1024 * 1024;

/// The preprocessing of one model, built from its manifest.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    height: u32,
    width: u32,
    resize: ResizeMode,
    resize_to: u32,
    interpolation: Interpolation,
    antialias: bool,
    divisor: Option<f32>,
    rescale: f32,
    mean: [f32; 3],
    std: [f32; 3],
    channels: ChannelOrder,
    layout: Layout,
}

impl Preprocessor {
    /// From a validated manifest section.
    #[must_use]
    pub fn new(spec: &ImageSpec) -> Self {
        let inverse = 1.0 / spec.rescale_factor;
        // numpy divides by 255 (exactly rounded) where a factor 1/255 is written; keep that bit for bit.
        let divisor =
            ((inverse - inverse.round()).abs() < 1e-9 && inverse.round() >= 1.0).then_some(inverse.round() as f32);
        Preprocessor {
            height: spec.size[0],
            width: spec.size[1],
            resize: spec.resize,
            resize_to: spec.resize_to.unwrap_or(spec.size[0].min(spec.size[1])),
            interpolation: spec.interpolation,
            antialias: spec.antialias,
            divisor,
            rescale: spec.rescale_factor as f32,
            mean: spec.mean,
            std: spec.std,
            channels: spec.channels,
            layout: spec.layout,
        }
    }

    /// `(height, width)` of the tower input.
    #[must_use]
    pub fn size(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    /// Number of `f32` values per image (`3 * height * width`).
    #[must_use]
    pub fn input_len(&self) -> usize {
        3 * self.height as usize * self.width as usize
    }

    /// Resize (and crop) to the tower's size, still 8-bit: the first half of [`Self::preprocess`].
    pub fn resize_rgb(&self, img: &RgbImage) -> EncodeResult<RgbImage> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(EncodeError::Image { what: "input".into(), reason: "image has no pixels".into() });
        }
        match self.resize {
            ResizeMode::Exact => Ok(resample(img, self.width, self.height, self.interpolation, self.antialias)),
            ResizeMode::ShortestEdge => {
                // torchvision `Resize(int)`: the shorter side becomes resize_to, the longer one
                // int(resize_to * long / short).
                let to = self.resize_to;
                let (nw, nh) = if w <= h {
                    (to, ((f64::from(to) * f64::from(h) / f64::from(w)) as u32).max(1))
                } else {
                    (((f64::from(to) * f64::from(w) / f64::from(h)) as u32).max(1), to)
                };
                let resized = if (nw, nh) == (w, h) {
                    img.clone()
                } else {
                    resample(img, nw, nh, self.interpolation, self.antialias)
                };
                Ok(center_crop(&resized, self.width, self.height))
            }
        }
    }

    /// The tower input of one image, `input_len()` values.
    pub fn preprocess(&self, img: &RgbImage) -> EncodeResult<Vec<f32>> {
        let mut out = vec![0.0; self.input_len()];
        self.preprocess_into(img, &mut out)?;
        Ok(out)
    }

    /// Writes the tower input of one image into `out` (`input_len()` values).
    pub fn preprocess_into(&self, img: &RgbImage, out: &mut [f32]) -> EncodeResult<()> {
        if out.len() != self.input_len() {
            return Err(EncodeError::Invalid(format!(
                "preprocess_into: buffer of {} values, need {}",
                out.len(),
                self.input_len()
            )));
        }
        let resized = self.resize_rgb(img)?;
        self.normalize_into(&resized, out);
        Ok(())
    }

    /// Rescale, normalise and lay out an image already at the tower's size.
    pub(crate) fn normalize_into(&self, img: &RgbImage, out: &mut [f32]) {
        let plane = self.height as usize * self.width as usize;
        let order: [usize; 3] = match self.channels {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        // Each output slot takes one source channel through `(scaled - mean) / std`: a table of
        // its 256 values, the same arithmetic as per pixel.
        let lut: [[f32; 256]; 3] = order.map(|c| {
            let mean = self.mean.get(c).copied().unwrap_or(0.0);
            let std = self.std.get(c).copied().unwrap_or(1.0);
            std::array::from_fn(|v| {
                let v = f32::from(v as u8);
                let scaled = match self.divisor {
                    Some(d) => v / d,
                    None => v * self.rescale,
                };
                (scaled - mean) / std
            })
        });
        let [c0, c1, c2] = order;
        let [l0, l1, l2] = &lut;
        let pixels = img.as_raw().chunks_exact(3).take(plane);
        match self.layout {
            Layout::Nchw => {
                let (p0, rest) = out.split_at_mut(plane.min(out.len()));
                let (p1, p2) = rest.split_at_mut(plane.min(rest.len()));
                for (((px, o0), o1), o2) in pixels.zip(p0).zip(p1).zip(p2) {
                    let at = |c: usize| usize::from(px.get(c).copied().unwrap_or(0));
                    *o0 = l0.get(at(c0)).copied().unwrap_or(0.0);
                    *o1 = l1.get(at(c1)).copied().unwrap_or(0.0);
                    *o2 = l2.get(at(c2)).copied().unwrap_or(0.0);
                }
            }
            Layout::Nhwc => {
                for (px, o) in pixels.zip(out.chunks_exact_mut(3)) {
                    for ((slot, &c), table) in o.iter_mut().zip(&order).zip(&lut) {
                        *slot = table.get(usize::from(px.get(c).copied().unwrap_or(0))).copied().unwrap_or(0.0);
                    }
                }
            }
        }
    }
}

/// Decodes an image file (JPEG, PNG, TIFF) to 8-bit RGB: grey is replicated, alpha dropped, 16-bit scaled,
/// as Pillow's `convert("RGB")` does. Refuses images over [`MAX_DECODE_PIXELS`].
pub fn load_rgb(path: impl AsRef<Path>) -> EncodeResult<RgbImage> {
    let path = path.as_ref();
    let what = || path.display().to_string();
    let reader = ImageReader::open(path)
        .map_err(|e| EncodeError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| EncodeError::io(path, e))?;
    let (w, h) = reader.into_dimensions().map_err(|e| EncodeError::Image { what: what(), reason: e.to_string() })?;
    if u64::from(w) * u64::from(h) > MAX_DECODE_PIXELS {
        return Err(EncodeError::Image {
            what: what(),
            reason: format!("{w}x{h} is over {MAX_DECODE_PIXELS} pixels; tile it first (skysift import does)"),
        });
    }
    let reader = ImageReader::open(path)
        .map_err(|e| EncodeError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| EncodeError::io(path, e))?;
    let img = reader.decode().map_err(|e| EncodeError::Image { what: what(), reason: e.to_string() })?;
    Ok(to_rgb8(img))
}

/// 8-bit RGB view of any decoded image (a copy unless it already is RGB8).
#[must_use]
pub fn to_rgb8(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    }
}

fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    // torchvision: int(round((size - crop) / 2.0)), Python's round is half-to-even.
    let offset = |size: u32, crop: u32| -> u32 {
        let d = size.saturating_sub(crop);
        let half = d / 2;
        if d % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
    };
    let (left, top) = (offset(w, width), offset(h, height));
    RgbImage::from_fn(width, height, |x, y| {
        let sx = (left + x).min(w - 1);
        let sy = (top + y).min(h - 1);
        *img.get_pixel(sx, sy)
    })
}

impl Interpolation {
    fn support(self) -> f64 {
        match self {
            Interpolation::Nearest => 0.5,
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
            Interpolation::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Nearest => f64::from(u8::from(x < 0.5)),
            Interpolation::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Interpolation::Lanczos => {
                if x < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Per output position: first input index, and fixed-point weights of the inputs from there.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

impl Coefficients {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `(0, in_size)`.
    fn new(in_size: u32, out_size: u32, filter: Interpolation, antialias: bool) -> Coefficients {
        let scale = f64::from(in_size) / f64::from(out_size);
        let filterscale = if antialias { scale.max(1.0) } else { 1.0 };
        let support = filter.support() * filterscale;
        let ksize = (support.ceil() as usize) * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size as usize);
        let mut weights = vec![0i32; out_size as usize * ksize];
        let mut k = vec![0f64; ksize];
        for (xx, row) in (0..out_size).zip(weights.chunks_mut(ksize)) {
            let center = (f64::from(xx) + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // `(int)` in C truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let count = usize::try_from(xmax - xmin).unwrap_or(0).min(ksize);
            let mut total = 0.0;
            for (x, slot) in k.iter_mut().enumerate().take(count) {
                let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
                *slot = w;
                total += w;
            }
            for (x, out) in row.iter_mut().enumerate().take(count) {
                let mut w = k.get(x).copied().unwrap_or(0.0);
                if total != 0.0 {
                    w /= total;
                }
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                *out = if w < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            bounds.push((xmin as usize, count));
        }
        Coefficients { bounds, ksize, weights }
    }

    fn row(&self, i: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds.get(i).copied().unwrap_or((0, 0));
        let w = self.weights.get(i * self.ksize..i * self.ksize + count).unwrap_or(&[]);
        (start, w)
    }
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow-exact resize of an RGB8 image to `out_w x out_h` (the whole image as the box).
///
/// Two passes through 8-bit intermediates, as Pillow does: horizontal then vertical, except that since
/// Pillow 13 (python-pillow/Pillow#9549) the vertical pass runs first when the height shrinks by more than
/// twice as many pixels as the width does (`in_h - out_h > 2 * (in_w - out_w)`). The order changes the
/// rounding of the intermediate, so it is part of being exact.
#[must_use]
pub fn resample(src: &RgbImage, out_w: u32, out_h: u32, filter: Interpolation, antialias: bool) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    if (in_w, in_h) == (out_w, out_h) {
        return src.clone();
    }
    if out_w == 0 || out_h == 0 || in_w == 0 || in_h == 0 {
        return RgbImage::new(out_w, out_h);
    }
    if filter == Interpolation::Nearest {
        return nearest(src, out_w, out_h);
    }
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let vertical_first = need_h
        && need_v
        && out_h < in_h
        && i64::from(in_h) - i64::from(out_h) > 2 * (i64::from(in_w) - i64::from(out_w));
    let horiz = Coefficients::new(in_w, out_w, filter, antialias);
    let vert = Coefficients::new(in_h, out_h, filter, antialias);
    let raw = src.as_raw();
    let out = if vertical_first {
        let tmp = vertical_pass(raw, in_w, &vert, out_h, 0);
        horizontal_pass(&tmp, in_w, &horiz, out_w, 0..out_h as usize)
    } else if need_h {
        // Only the source rows the vertical pass reads are resampled horizontally.
        let first = if need_v { vert.bounds.first().map_or(0, |b| b.0) } else { 0 };
        let last = if need_v { vert.bounds.last().map_or(in_h as usize, |b| b.0 + b.1) } else { in_h as usize };
        let tmp = horizontal_pass(raw, in_w, &horiz, out_w, first..last);
        if need_v { vertical_pass(&tmp, out_w, &vert, out_h, first) } else { tmp }
    } else {
        vertical_pass(raw, in_w, &vert, out_h, 0)
    };
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

/// Rounding offset of a fixed-point sum. Sums are `i32` as in Pillow (`ImagingResample*_8bpc`):
/// a normalised kernel's weights add up to `2^22`, so `255 ×` their absolute sum stays below
/// `2^31` for every filter here (wrapping arithmetic all the same, so that no input can panic).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// One tap of a fixed-point sum.
fn tap(acc: i32, value: u8, weight: i32) -> i32 {
    acc.wrapping_add(i32::from(value).wrapping_mul(weight))
}

/// Resamples rows `rows` of an RGB8 buffer `in_w` wide to `out_w` columns.
fn horizontal_pass(src: &[u8], in_w: u32, coeffs: &Coefficients, out_w: u32, rows: std::ops::Range<usize>) -> Vec<u8> {
    let in_stride = in_w as usize * 3;
    let out_stride = out_w as usize * 3;
    let mut out = vec![0u8; rows.len() * out_stride];
    for (r, out_row) in rows.zip(out.chunks_exact_mut(out_stride)) {
        let src_row = src.get(r * in_stride..(r + 1) * in_stride).unwrap_or(&[]);
        for (xx, px) in out_row.chunks_exact_mut(3).enumerate() {
            let (start, ws) = coeffs.row(xx);
            // The coefficients' bounds lie inside the row (`xmax <= in_size`).
            let taps = src_row.get(start * 3..(start + ws.len()) * 3).unwrap_or(&[]);
            let mut acc = [HALF; 3];
            for (p, &w) in taps.chunks_exact(3).zip(ws) {
                for (a, &v) in acc.iter_mut().zip(p) {
                    *a = tap(*a, v, w);
                }
            }
            for (o, a) in px.iter_mut().zip(acc) {
                *o = clip8(a);
            }
        }
    }
    out
}

/// Resamples an RGB8 buffer `width` wide to `out_h` rows; `row_offset` is the source row of `src`'s row 0.
/// Each output row sums whole source rows (a loop the compiler vectorises).
fn vertical_pass(src: &[u8], width: u32, coeffs: &Coefficients, out_h: u32, row_offset: usize) -> Vec<u8> {
    let stride = width as usize * 3;
    let mut out = vec![0u8; out_h as usize * stride];
    let mut acc = vec![HALF; stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (start, ws) = coeffs.row(yy);
        let start = start - row_offset.min(start);
        acc.fill(HALF);
        for (y, &w) in ws.iter().enumerate() {
            let Some(row) = src.get((start + y) * stride..(start + y + 1) * stride) else { continue };
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = tap(*a, v, w);
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Pillow's NEAREST resize: source index `floor((x + 0.5) * scale)`.
fn nearest(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    let sx = f64::from(in_w) / f64::from(out_w);
    let sy = f64::from(in_h) / f64::from(out_h);
    RgbImage::from_fn(out_w, out_h, |x, y| {
        let ix = (((f64::from(x) + 0.5) * sx) as u32).min(in_w - 1);
        let iy = (((f64::from(y) + 0.5) * sy) as u32).min(in_h - 1);
        *src.get_pixel(ix, iy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]))
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 10, 99]));
        for f in [Interpolation::Bilinear, Interpolation::Bicubic, Interpolation::Lanczos, Interpolation::Nearest] {
            for (w, h) in [(160, 160), (10, 7), (37, 50)] {
                let out = resample(&img, w, h, f, true);
                assert_eq!(out.dimensions(), (w, h));
                assert!(out.pixels().all(|p| p.0 == [200, 10, 99]), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn every_filter_matches_pillow_output() {
        // Checksums of Pillow 13 `Image.resize` output for a 9x7 test pattern (computed with
        // `np.asarray(im.resize(size, filter))`: byte sum and sum of (index + 1) * byte). Cases (20, 3), (8, 2),
        // (12, 3) and (8, 3) take Pillow 13's vertical-first order.
        let img = RgbImage::from_fn(9, 7, |x, y| {
            image::Rgb([
                ((x * 37 + y * 11) % 256) as u8,
                ((x * x * 5 + y * 29) % 256) as u8,
                (((x + 1) * (y + 3) * 13) % 256) as u8,
            ])
        });
        let cases = [
            (Interpolation::Bicubic, 4, 3, 4232, 83700),
            (Interpolation::Bicubic, 13, 10, 45869, 9_663_080),
            (Interpolation::Lanczos, 5, 11, 19377, 1_732_234),
            (Interpolation::Bilinear, 20, 3, 21112, 2_048_613),
            (Interpolation::Nearest, 4, 10, 14648, 963_624),
            (Interpolation::Bilinear, 3, 2, 2136, 21305),
            (Interpolation::Lanczos, 9, 3, 9502, 420_041),
            (Interpolation::Bicubic, 8, 2, 5637, 147_652),
            (Interpolation::Lanczos, 12, 3, 12666, 743_962),
            (Interpolation::Bilinear, 8, 3, 8475, 331_326),
        ];
        for (filter, w, h, sum, weighted) in cases {
            let out = resample(&img, w, h, filter, true);
            let bytes = out.as_raw();
            let s: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
            let ws: u64 = bytes.iter().enumerate().map(|(i, &b)| (i as u64 + 1) * u64::from(b)).sum();
            assert_eq!((s, ws), (sum, weighted), "{filter:?} to {w}x{h}");
        }
    }

    #[test]
    fn halving_with_bilinear_averages_pairs_like_pillow() {
        // Pillow: a 4x1 row [0, 100, 200, 250] halved with BILINEAR (support 2 when antialiased) gives
        // weights (1/8, 3/8, 3/8, 1/8) around each centre.
        let img = RgbImage::from_fn(4, 1, |x, _| {
            let v = [0u8, 100, 200, 250][x as usize];
            image::Rgb([v, v, v])
        });
        let out = resample(&img, 2, 1, Interpolation::Bilinear, true);
        // centre 1.0: x=0..3 -> weights for x=0: 1-|0-1+0.5|/2=0.75, x=1: 0.75, x=2: 0.25 -> normalised.
        let expect0 = ((0.75 * 0.0 + 0.75 * 100.0 + 0.25 * 200.0) / 1.75_f64).round() as u8;
        assert_eq!(out.get_pixel(0, 0).0[0], expect0);
    }

    #[test]
    fn shortest_edge_and_center_crop() {
        let spec: ImageSpec = serde_json::from_str(
            r#"{"onnx": "i.onnx", "size": [8, 8], "resize": "shortest_edge", "resize_to": 10, "crop": "center",
                "interpolation": "bicubic", "mean": [0, 0, 0], "std": [1, 1, 1]}"#,
        )
        .unwrap();
        let p = Preprocessor::new(&spec);
        let out = p.resize_rgb(&gradient(40, 20)).unwrap();
        assert_eq!(out.dimensions(), (8, 8));
        let v = p.preprocess(&gradient(3, 90)).unwrap();
        assert_eq!(v.len(), 3 * 64);
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    }

    #[test]
    fn normalisation_layouts() {
        let mut spec: ImageSpec = serde_json::from_str(
            r#"{"onnx": "i.onnx", "size": [2, 2], "resize": "exact", "interpolation": "bilinear",
                "mean": [0.5, 0.25, 0.0], "std": [0.5, 0.5, 2.0]}"#,
        )
        .unwrap();
        let img = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 51]));
        let chw = Preprocessor::new(&spec).preprocess(&img).unwrap();
        assert_eq!(&chw[..4], &[1.0; 4]);
        assert_eq!(&chw[4..8], &[-0.5; 4]);
        assert!((chw[8] - 0.1).abs() < 1e-6);
        spec.layout = Layout::Nhwc;
        spec.channels = ChannelOrder::Bgr;
        let hwc = Preprocessor::new(&spec).preprocess(&img).unwrap();
        assert!((hwc[0] - 0.1).abs() < 1e-6 && (hwc[1] + 0.5).abs() < 1e-6 && (hwc[2] - 1.0).abs() < 1e-6);
    }
}
