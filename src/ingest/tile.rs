//! Cutting scenes into tiles, and the record ids of tiles.
//!
//! Rules:
//! - a scene no larger than `chip_max` on both sides is one record (a chip), window `[0, 0, w, h]`;
//! - a larger scene is cut into tiles of `tile` output pixels with `overlap` pixels shared between
//!   neighbours, in row-major order; the last row and column are shifted inward to end at the scene's
//!   edge, so every tile is whole and inside the scene;
//! - with a target ground resolution (`gsd`) and a known source resolution, windows are measured in
//!   source pixels covering `tile * gsd` metres and are resampled to `tile` pixels (a chip is resampled
//!   to the same ground resolution);
//! - upsampling is bounded, so that no output is much larger than a tile or a chip: a chip that would
//!   grow past `max(chip_max, tile)` pixels is cut into tiles, and a source pixel larger than a whole
//!   tile (a wrong georeference, usually) turns resampling off;
//! - the id of tile `i` of file `path` is the first 63 bits of SHA-256 over a domain tag, the path and
//!   `i`, so ids are stable across runs and machines and any tile's record can be found from its path.

use sha2::{Digest, Sha256};

/// How scenes are cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tiling {
    /// Tile side in output pixels. Default: 512.
    pub tile: u32,
    /// Pixels shared by neighbouring tiles (output pixels). Default: 0.
    pub overlap: u32,
    /// Target ground resolution in metres per pixel; `None` keeps the source resolution.
    pub gsd: Option<f64>,
    /// Scenes no larger than this (source pixels, both sides) are one record. Default: 1024.
    pub chip_max: u32,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling { tile: 512, overlap: 0, gsd: None, chip_max: 1024 }
    }
}

impl Tiling {
    /// A canonical description, stored with each record: a change re-imports the file.
    #[must_use]
    pub fn describe(&self) -> String {
        let gsd = self.gsd.map_or_else(|| "source".to_string(), |g| format!("{g}"));
        format!("tile={},overlap={},gsd={gsd},chip_max={}", self.tile, self.overlap, self.chip_max)
    }
}

/// The tiles of one scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Source windows `[x, y, w, h]`, row-major.
    pub windows: Vec<[u32; 4]>,
    /// Output size of each tile when resampled (`None`: the window's own size).
    pub out: Option<(u32, u32)>,
    /// Output pixels per source pixel side (1 when not resampled).
    pub scale: f64,
}

fn starts(size: u32, win: u32, stride: u32) -> Vec<u32> {
    if size <= win {
        return vec![0];
    }
    let mut v: Vec<u32> = (0..=size / stride.max(1)).map(|i| i * stride).take_while(|&p| p + win < size).collect();
    let last = size - win;
    if v.last() != Some(&last) {
        v.push(last);
    }
    v
}

/// Plans the tiles of a `width` x `height` scene whose pixels are `src_gsd` metres (when known).
#[must_use]
pub fn plan(width: u32, height: u32, t: &Tiling, src_gsd: Option<f64>) -> Plan {
    // Source pixels per output pixel.
    let ratio = match (t.gsd, src_gsd) {
        (Some(g), Some(s)) if g > 0.0 && s > 0.0 && (g / s - 1.0).abs() > 1e-6 => Some(g / s),
        _ => None,
    };
    // Each window covers at least one source pixel, so outputs stay within 1.5 tiles.
    let ratio = ratio.filter(|r| r * f64::from(t.tile.max(1)) >= 1.0);
    let resampled = ratio.is_some();
    let ratio = ratio.unwrap_or(1.0);
    let grown = |side: u32| f64::from(side) / ratio > f64::from(t.chip_max.max(t.tile));
    if width <= t.chip_max && height <= t.chip_max && !grown(width) && !grown(height) {
        let out = resampled.then(|| {
            (((f64::from(width) / ratio).round() as u32).max(1), ((f64::from(height) / ratio).round() as u32).max(1))
        });
        return Plan { windows: vec![[0, 0, width, height]], out, scale: 1.0 / ratio };
    }
    let tile = t.tile.max(1);
    let win = ((f64::from(tile) * ratio).round() as u32).max(1);
    let overlap = (f64::from(t.overlap.min(tile - 1)) * ratio).round() as u32;
    let stride = win.saturating_sub(overlap).max(1);
    let (ww, wh) = (win.min(width), win.min(height));
    let mut windows = Vec::new();
    for y in starts(height, wh, stride) {
        for x in starts(width, ww, stride) {
            windows.push([x, y, ww, wh]);
        }
    }
    let out = resampled
        .then(|| (((f64::from(ww) / ratio).round() as u32).max(1), ((f64::from(wh) / ratio).round() as u32).max(1)));
    Plan { windows, out, scale: 1.0 / ratio }
}

/// The record id of tile `tile` of the file at `path` (relative to the archive root).
#[must_use]
pub fn record_id(path: &str, tile: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(b"skysift-tile\0");
    h.update(path.as_bytes());
    h.update([0]);
    h.update(tile.to_le_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(b) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chips_tiles_and_edges() {
        let t = Tiling { tile: 100, overlap: 0, gsd: None, chip_max: 150 };
        assert_eq!(plan(150, 120, &t, None).windows, vec![[0, 0, 150, 120]]);
        let p = plan(250, 160, &t, None);
        assert_eq!(
            p.windows,
            vec![
                [0, 0, 100, 100],
                [100, 0, 100, 100],
                [150, 0, 100, 100],
                [0, 60, 100, 100],
                [100, 60, 100, 100],
                [150, 60, 100, 100]
            ]
        );
        let t = Tiling { overlap: 20, ..t };
        assert_eq!(starts(300, 100, 80), vec![0, 80, 160, 200]);
        assert_eq!(plan(300, 100, &t, None).windows.len(), 4);
        // 10 m source, 20 m target: windows of 200 source pixels resampled to 100.
        let t = Tiling { tile: 100, overlap: 0, gsd: Some(20.0), chip_max: 150 };
        let p = plan(400, 400, &t, Some(10.0));
        assert_eq!(p.windows, vec![[0, 0, 200, 200], [200, 0, 200, 200], [0, 200, 200, 200], [200, 200, 200, 200]]);
        assert_eq!(p.out, Some((100, 100)));
        assert!((p.scale - 0.5).abs() < 1e-12);
        // 10 m source, 1 m target: the chip would grow to 1000 pixels, so it is cut into tiles of
        // 10 source pixels resampled to 100.
        let t = Tiling { tile: 100, overlap: 0, gsd: Some(1.0), chip_max: 150 };
        let p = plan(100, 100, &t, Some(10.0));
        assert_eq!((p.windows.len(), p.windows[0], p.out), (100, [0, 0, 10, 10], Some((100, 100))));
        // A source pixel of 1,000 km (a wrong georeference) is larger than a tile: no resampling.
        let p = plan(20, 20, &t, Some(1e6));
        assert_eq!((p.windows, p.out), (vec![[0, 0, 20, 20]], None));
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(record_id("a/b.tif", 0), record_id("a/b.tif", 0));
        assert_ne!(record_id("a/b.tif", 0), record_id("a/b.tif", 1));
        assert_ne!(record_id("a/b.tif", 0), record_id("a/c.tif", 0));
        assert!(record_id("x", 7) < 1 << 63);
    }
}
