//! Semantic localisation: how similar each tile of an imported scene is to a query, drawn as a heat map
//! over the scene (assembled from the tiles' own thumbnails, so no file outside the database is read).
//!
//! A scene's tiles are found through their ids ([`record_id`]`(scene, i)` for `i < tile_count`), so no
//! scan or filter is needed. Scores are cosine similarities (stored vectors are normalised); colours are
//! scaled between the scene's lowest and highest tile score.
//!
//! No data: tiles with too few valid pixels have no record (see [`crate::ingest::nodata`]), so the parts of
//! the scene no tile covers are drawn hatched, never as a low or high score; [`with_legend`] adds a
//! strip that says so (the colour ramp from LOW to HIGH, and a hatched NO DATA swatch).

use image::{Rgb, RgbImage};
use skysift_storage::schema::Value;

use crate::db::CollectionSnapshot;
use crate::error::{Error, Result};
use crate::ingest::fields;
use crate::ingest::tile::record_id;

/// Opacity of the heat layer over the scene.
pub const HEAT_ALPHA: f32 = 0.55;
/// The two colours of the no-data hatching.
pub const HATCH: [[u8; 3]; 2] = [[96, 96, 96], [160, 160, 160]];
/// Height of the legend strip, pixels.
pub const LEGEND_HEIGHT: u32 = 20;

/// The hatching colour of pixel (`x`, `y`): diagonal stripes 4 pixels wide.
#[must_use]
pub fn hatch(x: u32, y: u32) -> Rgb<u8> {
    Rgb(HATCH[(((x + y) / 4) % 2) as usize])
}

/// One tile of a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneTile {
    /// Record id.
    pub id: u64,
    /// Tile index in the scene.
    pub index: u32,
    /// Window `[x, y, w, h]` in scene pixels.
    pub window: [u32; 4],
    /// WGS84 footprint.
    pub footprint: Option<[f64; 4]>,
    /// JPEG thumbnail.
    pub thumbnail: Option<Vec<u8>>,
    /// Stored (normalised) vector.
    pub vector: Vec<f32>,
    /// Share of valid pixels (collections made before no-data was tracked have none).
    pub valid_fraction: Option<f64>,
}

/// The tiles of `scene` (its path relative to the archive root, as in the `scene` field), in order.
pub fn scene_tiles(col: &CollectionSnapshot, scene: &str) -> Result<Vec<SceneTile>> {
    let Some(first) = col.get(record_id(scene, 0))? else {
        return Err(Error::Invalid(format!(
            "no scene {scene:?} in collection {:?}; a scene is the imported file's path relative to the archive root",
            col.name()
        )));
    };
    let count = first
        .fields
        .iter()
        .find_map(|(n, v)| if let (true, Value::Integer(c)) = (n == fields::TILE_COUNT, v) { Some(*c) } else { None })
        .unwrap_or(1)
        .clamp(1, i64::from(u32::MAX)) as u32;
    let mut out = Vec::new();
    for i in 0..count {
        let Some(r) = col.get(record_id(scene, i))? else { continue };
        let mut t = SceneTile {
            id: r.id,
            index: i,
            window: [0; 4],
            footprint: None,
            thumbnail: None,
            vector: r.vector,
            valid_fraction: None,
        };
        for (n, v) in r.fields {
            match (n.as_str(), v) {
                (fields::WINDOW, Value::Window(w)) => t.window = w,
                (fields::FOOTPRINT, Value::GeoBbox(b)) => t.footprint = Some(b),
                (fields::THUMBNAIL, Value::Blob(b)) => t.thumbnail = Some(b),
                (fields::VALID_FRACTION, Value::Float(f)) => t.valid_fraction = Some(f),
                _ => {}
            }
        }
        out.push(t);
    }
    Ok(out)
}

/// The WGS84 footprint of the whole picture [`render`] draws (pixels `0..sw` by `0..sh`, the tiles'
/// extent): the tiles' footprints stretched linearly from the pixels they cover to the whole scene,
/// so that tiles missing at an edge (no data) do not shrink it. `None` when no tile has a footprint.
#[must_use]
pub fn scene_footprint(tiles: &[SceneTile]) -> Option<[f64; 4]> {
    let sw = f64::from(tiles.iter().map(|t| t.window[0] + t.window[2]).max()?.max(1));
    let sh = f64::from(tiles.iter().map(|t| t.window[1] + t.window[3]).max()?.max(1));
    let geo = tiles.iter().filter_map(|t| t.footprint.map(|f| (f, t.window)));
    let (u, p) = geo.fold(None, |acc: Option<([f64; 4], [f64; 4])>, (f, [x, y, w, h])| {
        let q = [f64::from(x), f64::from(y), f64::from(x + w), f64::from(y + h)];
        Some(match acc {
            None => (f, q),
            Some((u, p)) => (
                [u[0].min(f[0]), u[1].min(f[1]), u[2].max(f[2]), u[3].max(f[3])],
                [p[0].min(q[0]), p[1].min(q[1]), p[2].max(q[2]), p[3].max(q[3])],
            ),
        })
    })?;
    if p[2] <= p[0] || p[3] <= p[1] {
        return Some(u);
    }
    let (dx, dy) = ((u[2] - u[0]) / (p[2] - p[0]), (u[3] - u[1]) / (p[3] - p[1]));
    let (west, north) = (u[0] - p[0] * dx, u[3] + p[1] * dy);
    Some([west.max(-180.0), (north - sh * dy).max(-90.0), (west + sw * dx).min(180.0), north.min(90.0)])
}

/// Cosine similarity of each tile with `query` (normalised here).
#[must_use]
pub fn scores(tiles: &[SceneTile], query: &[f32]) -> Vec<f32> {
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    tiles.iter().map(|t| t.vector.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() / norm).collect()
}

/// A perceptual dark-to-bright ramp (close to matplotlib's "inferno"), `t` in 0..=1 to RGB 0..=255;
/// the gallery's map colours footprints with it too.
#[expect(clippy::many_single_char_names, reason = "interpolation symbols")]
#[must_use]
pub fn ramp(t: f32) -> [f32; 3] {
    const STOPS: [[f32; 3]; 5] =
        [[0.0, 0.0, 4.0], [87.0, 16.0, 110.0], [188.0, 55.0, 84.0], [249.0, 142.0, 9.0], [252.0, 255.0, 164.0]];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let (a, b) = (STOPS.get(i).copied().unwrap_or_default(), STOPS.get(i + 1).copied().unwrap_or_default());
    [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
}

/// Draws the scene from its tiles' thumbnails, longest side `max_side`, with the scores as a heat layer.
#[expect(clippy::many_single_char_names, reason = "x, y, w, h name a window")]
#[must_use]
pub fn render(tiles: &[SceneTile], scores: &[f32], max_side: u32) -> RgbImage {
    let sw = tiles.iter().map(|t| t.window[0] + t.window[2]).max().unwrap_or(1).max(1);
    let sh = tiles.iter().map(|t| t.window[1] + t.window[3]).max().unwrap_or(1).max(1);
    let scale = f64::from(max_side.max(1)) / f64::from(sw.max(sh));
    let (cw, ch) = (((f64::from(sw) * scale).round() as u32).max(1), ((f64::from(sh) * scale).round() as u32).max(1));
    let mut base = RgbImage::new(cw, ch);
    let mut sum = vec![0f32; cw as usize * ch as usize];
    let mut cover = vec![0u16; cw as usize * ch as usize];
    let lo = scores.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let px = |v: u32| (f64::from(v) * scale).round() as u32;
    for (t, s) in tiles.iter().zip(scores) {
        let [x, y, w, h] = t.window;
        let (x0, y0, x1, y1) = (px(x).min(cw), px(y).min(ch), px(x + w).min(cw), px(y + h).min(ch));
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        if let Some(img) = t.thumbnail.as_ref().and_then(|b| image::load_from_memory(b).ok()) {
            let small =
                image::imageops::resize(&img.to_rgb8(), x1 - x0, y1 - y0, image::imageops::FilterType::Triangle);
            image::imageops::replace(&mut base, &small, i64::from(x0), i64::from(y0));
        }
        let v = (s - lo) / span;
        for yy in y0..y1 {
            for xx in x0..x1 {
                let i = yy as usize * cw as usize + xx as usize;
                if let (Some(a), Some(c)) = (sum.get_mut(i), cover.get_mut(i)) {
                    *a += v;
                    *c = c.saturating_add(1);
                }
            }
        }
    }
    for (i, p) in base.pixels_mut().enumerate() {
        let c = cover.get(i).copied().unwrap_or(0);
        if c == 0 {
            // No tile here: no data (or too little of it to be encoded).
            *p = hatch(i as u32 % cw, i as u32 / cw);
            continue;
        }
        let heat = ramp(sum.get(i).copied().unwrap_or(0.0) / f32::from(c));
        let Rgb(old) = *p;
        *p = Rgb([0, 1, 2]
            .map(|k| (f32::from(old[k]) * (1.0 - HEAT_ALPHA) + heat[k] * HEAT_ALPHA).round().clamp(0.0, 255.0) as u8));
    }
    base
}

/// 3x5 glyphs of the legend's words, one row of 3 bits per line, top first.
fn glyph(c: char) -> [u8; 5] {
    match c {
        'L' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'O' => [0b111, 0b101, 0b101, 0b101, 0b111],
        'W' => [0b101, 0b101, 0b101, 0b111, 0b101],
        'H' => [0b101, 0b101, 0b111, 0b101, 0b101],
        'I' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'G' => [0b111, 0b100, 0b101, 0b101, 0b111],
        'N' => [0b111, 0b101, 0b101, 0b101, 0b101],
        'D' => [0b110, 0b101, 0b101, 0b101, 0b110],
        'A' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'T' => [0b111, 0b010, 0b010, 0b010, 0b010],
        _ => [0; 5],
    }
}

/// Writes `text` at (`x`, `y`) in white, 2 pixels per glyph pixel; returns the x after it.
fn text(img: &mut RgbImage, x: u32, y: u32, s: &str) -> u32 {
    let mut cx = x;
    for ch in s.chars() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (px, py) = (cx + col * 2 + dx, y + row as u32 * 2 + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, Rgb([255, 255, 255]));
                        }
                    }
                }
            }
        }
        cx += 8;
    }
    cx
}

/// `img` (a [`render`]) with a legend strip below it: LOW, the colour ramp, HIGH, then a hatched
/// swatch and NO DATA (parts of the scene without a tile: no-data, or too little data to be encoded).
#[must_use]
pub fn with_legend(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = RgbImage::from_pixel(w, h + LEGEND_HEIGHT, Rgb([24, 24, 24]));
    image::imageops::replace(&mut out, img, 0, 0);
    let y = h + 5;
    let x = text(&mut out, 4, y, "LOW") + 4;
    let bar = (w / 3).max(16);
    for bx in 0..bar {
        let c = ramp(bx as f32 / (bar - 1).max(1) as f32).map(|v| v.round().clamp(0.0, 255.0) as u8);
        for by in 0..10 {
            if x + bx < w {
                out.put_pixel(x + bx, y + by, Rgb(c));
            }
        }
    }
    let x = text(&mut out, x + bar + 4, y, "HIGH") + 12;
    for bx in 0..20 {
        for by in 0..10 {
            if x + bx < w {
                out.put_pixel(x + bx, y + by, hatch(bx, by));
            }
        }
    }
    text(&mut out, x + 24, y, "NO DATA");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hottest_tile_is_brightest() {
        let tile = |i: u32, x: u32, v: Vec<f32>| SceneTile {
            id: u64::from(i),
            index: i,
            window: [x, 0, 10, 10],
            footprint: None,
            thumbnail: None,
            vector: v,
            valid_fraction: None,
        };
        let tiles = vec![tile(0, 0, vec![1.0, 0.0]), tile(1, 10, vec![0.0, 1.0])];
        let s = scores(&tiles, &[0.0, 2.0]);
        assert_eq!(s, vec![0.0, 1.0]);
        let img = render(&tiles, &s, 20);
        assert_eq!(img.dimensions(), (20, 10));
        let l = |p: &Rgb<u8>| p.0.iter().map(|&c| u32::from(c)).sum::<u32>();
        assert!(l(img.get_pixel(15, 5)) > l(img.get_pixel(5, 5)));
        // A scene whose middle tile has no record: the gap is hatched, not scored.
        let tiles = vec![tile(0, 0, vec![1.0, 0.0]), tile(2, 20, vec![0.0, 1.0])];
        let img = render(&tiles, &scores(&tiles, &[0.0, 1.0]), 30);
        assert_eq!(*img.get_pixel(12, 5), hatch(12, 5));
        assert_eq!(*img.get_pixel(14, 1), hatch(14, 1));
        assert_eq!(with_legend(&img).height(), 10 + LEGEND_HEIGHT);
        // Its footprint is the whole scene's, though the third tile is missing at the edge.
        let mut tiles = tiles;
        tiles[0].footprint = Some([10.0, 40.0, 10.1, 40.1]);
        tiles[1].window = [10, 0, 10, 10];
        tiles[1].footprint = Some([10.1, 40.0, 10.2, 40.1]);
        tiles.push(SceneTile { window: [20, 0, 10, 10], ..tiles[0].clone() });
        tiles[2].footprint = None;
        let f = scene_footprint(&tiles).unwrap();
        assert!(f.iter().zip([10.0, 40.0, 10.3, 40.1]).all(|(a, b)| (a - b).abs() < 1e-9), "{f:?}");
        assert_eq!(scene_footprint(&tiles[2..]), None);
    }
}
