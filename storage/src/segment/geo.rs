//! The spatial index of one geo bbox field: a static, packed R-tree (Hilbert-sorted leaves, fixed
//! fan-out, after flatbush), so that an area query visits only the nodes near the area, then tests
//! the candidate boxes exactly.
//!
//! Little-endian. The section starts 64-byte aligned and every array below starts 8-byte aligned.
//!
//! ```text
//! | version u32 | node_size u32 | count u64 | levels u32 | reserved u32 |
//! | level_end: levels x u64 — exclusive end of each level in the box array (level 0 = items)  |
//! | boxes: level_end[levels - 1] x [min_lon, min_lat, max_lon, max_lat] f64                   |
//! | index: level_end[levels - 1] x u32 — level 0: the row; above: position of the first child |
//! ```
//!
//! Level 0 holds one box per non-null row, exactly as stored in the row's column, ordered along a
//! Hilbert curve of the box centres; each upper level holds one box per run of `node_size`
//! boxes of the level below (their union). The last level holds the root alone. A node's
//! children are the positions `index[p] .. min(index[p] + node_size, level_end[level - 1])`.
//!
//! The section is checksummed at open like every small section; the view still bounds-checks
//! every read, so a malformed section yields errors or wrong candidates, never a panic or a loop.

use std::ops::Range;

use super::RowSource;
use crate::codec::{Enc, u32_at, u64_at};
use crate::error::Result;
use crate::schema::{FieldType, Value};

/// Geo index layout version. v1: first format.
pub const GEO_VERSION: u32 = 1;
/// Children per inner node.
pub const NODE_SIZE: usize = 16;
/// Most levels accepted (16^16 boxes is far beyond any segment).
pub const MAX_LEVELS: usize = 16;

const NODE_SIZE_OFFSET: usize = 4;
const COUNT_OFFSET: usize = NODE_SIZE_OFFSET + 4;
const LEVELS_OFFSET: usize = COUNT_OFFSET + 8;
const HEADER_LEN: usize = LEVELS_OFFSET + 8;

/// A WGS84 box `[min_lon, min_lat, max_lon, max_lat]`.
pub type GeoBox = [f64; 4];

/// Whether two closed boxes share at least one point.
#[must_use]
pub fn boxes_intersect(a: &GeoBox, b: &GeoBox) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// Position of `(x, y)` (each in `0..2^16`) along a Hilbert curve.
fn hilbert(mut x: u32, mut y: u32) -> u32 {
    const N: u32 = 1 << 16;
    let mut d = 0u32;
    let mut s = N / 2;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d = d.wrapping_add(s.wrapping_mul(s).wrapping_mul((3 * rx) ^ ry));
        if ry == 0 {
            if rx == 1 {
                x = (N - 1).wrapping_sub(x) & (N - 1);
                y = (N - 1).wrapping_sub(y) & (N - 1);
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
}

fn union(boxes: &[(GeoBox, u32)]) -> GeoBox {
    boxes.iter().fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |u, (b, _)| {
        [u[0].min(b[0]), u[1].min(b[1]), u[2].max(b[2]), u[3].max(b[3])]
    })
}

/// Builds a geo section.
#[derive(Debug, Clone, Default)]
pub struct GeoWriter {
    items: Vec<(GeoBox, u32)>,
}

impl GeoWriter {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        GeoWriter::default()
    }

    /// Records that `row` holds the box `b`.
    pub fn push(&mut self, row: u32, b: GeoBox) {
        self.items.push((b, row));
    }

    /// Encodes the section.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        let grid = |v: f64, lo: f64, span: f64| (((v - lo) / span).clamp(0.0, 1.0) * f64::from(u16::MAX)) as u32;
        self.items.sort_by_cached_key(|(b, row)| {
            let (cx, cy) = (f64::midpoint(b[0], b[2]), f64::midpoint(b[1], b[3]));
            (hilbert(grid(cx, -180.0, 360.0), grid(cy, -90.0, 180.0)), *row)
        });
        let mut levels: Vec<Vec<(GeoBox, u32)>> = vec![self.items];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map_or(&[][..], Vec::as_slice);
            let base: usize = levels.iter().rev().skip(1).map(Vec::len).sum();
            let up =
                below.chunks(NODE_SIZE).enumerate().map(|(i, c)| (union(c), (base + i * NODE_SIZE) as u32)).collect();
            levels.push(up);
        }
        let mut e = Enc::default();
        e.u32(GEO_VERSION);
        e.u32(NODE_SIZE as u32);
        e.u64(levels.first().map_or(0, Vec::len) as u64);
        e.u32(levels.len() as u32);
        e.u32(0);
        let mut end = 0u64;
        for l in &levels {
            end += l.len() as u64;
            e.u64(end);
        }
        levels.iter().flatten().for_each(|(b, _)| b.iter().for_each(|x| e.f64(*x)));
        levels.iter().flatten().for_each(|(_, i)| e.u32(*i));
        e.buf
    }
}

/// The geo section of `field` of the rows of `src`, when it is a geo bbox field.
pub fn index_field(src: &dyn RowSource, field: usize, ty: FieldType) -> Result<Option<Vec<u8>>> {
    if ty != FieldType::GeoBbox {
        return Ok(None);
    }
    let mut w = GeoWriter::new();
    for row in 0..src.rows() {
        if let Some(Value::GeoBbox(b)) = src.value(row, field)? {
            w.push(row as u32, b);
        }
    }
    Ok(Some(w.finish()))
}

/// A read view of a geo section.
#[derive(Debug, Clone, Copy)]
pub struct GeoView<'a> {
    rows: usize,
    node_size: usize,
    level_end: &'a [u64],
    boxes: &'a [[f64; 4]],
    index: &'a [u32],
}

impl<'a> GeoView<'a> {
    /// Parses the section of a segment of `rows` rows.
    pub fn parse(b: &'a [u8], rows: usize) -> Result<GeoView<'a>, &'static str> {
        if u32_at(b, 0) != Some(GEO_VERSION) {
            return Err("unsupported geo index version");
        }
        let node_size = u32_at(b, NODE_SIZE_OFFSET).ok_or("geo index truncated")? as usize;
        let count = usize::try_from(u64_at(b, COUNT_OFFSET).ok_or("geo index truncated")?)
            .map_err(|_| "geo index too large")?;
        let levels = u32_at(b, LEVELS_OFFSET).ok_or("geo index truncated")? as usize;
        if node_size < 2 || levels == 0 || levels > MAX_LEVELS || count > rows {
            return Err("geo index header is malformed");
        }
        let boxes_start = HEADER_LEN + levels * 8;
        let level_end: &[u64] = bytemuck::try_cast_slice(b.get(HEADER_LEN..boxes_start).ok_or("geo index truncated")?)
            .map_err(|_| "geo index misaligned")?;
        let total = usize::try_from(level_end.last().copied().unwrap_or(0)).map_err(|_| "geo index too large")?;
        if level_end.first() != Some(&(count as u64)) || total > rows.saturating_mul(2).saturating_add(1) {
            return Err("geo index levels do not fit its rows");
        }
        // Each level must hold exactly one box per run of node_size boxes below it, ending in one root.
        let mut prev = 0u64;
        let mut below = 0u64;
        for (l, end) in level_end.iter().enumerate() {
            let len = end.checked_sub(prev).ok_or("geo index levels go backwards")?;
            let want = if l == 0 { count as u64 } else { below.div_ceil(node_size as u64) };
            if len != want || (l + 1 == levels) != (len <= 1) {
                return Err("geo index levels do not fit its rows");
            }
            below = len;
            prev = *end;
        }
        let boxes_end = boxes_start + total * 32;
        let boxes: &[f64] = bytemuck::try_cast_slice(b.get(boxes_start..boxes_end).ok_or("geo index truncated")?)
            .map_err(|_| "geo index misaligned")?;
        let index: &[u32] =
            bytemuck::try_cast_slice(b.get(boxes_end..boxes_end + total * 4).ok_or("geo index truncated")?)
                .map_err(|_| "geo index misaligned")?;
        Ok(GeoView { rows, node_size, level_end, boxes: boxes.as_chunks::<4>().0, index })
    }

    /// Non-null rows indexed.
    #[must_use]
    pub fn count(&self) -> usize {
        self.level_end.first().copied().unwrap_or(0) as usize
    }

    fn level_range(&self, level: usize) -> Range<usize> {
        let start = if level == 0 { 0 } else { self.level_end.get(level - 1).copied().unwrap_or(0) as usize };
        start..self.level_end.get(level).copied().unwrap_or(0) as usize
    }

    /// Every indexed `(row, box)`, in index order.
    pub fn items(&self) -> impl Iterator<Item = (u32, GeoBox)> + 'a {
        let n = self.count();
        self.index.iter().zip(self.boxes).take(n).map(|(r, b)| (*r, *b))
    }

    /// Calls `f(row, box)` for every indexed box that intersects the closed box `q`, visiting
    /// only nodes whose union box intersects `q`. Returns the number of nodes visited, or an
    /// error when the index names a child or row out of bounds.
    pub fn search(&self, q: &GeoBox, mut f: impl FnMut(u32, &GeoBox)) -> Result<usize, &'static str> {
        let top = self.level_end.len() - 1;
        let mut stack: Vec<(usize, usize)> = self.level_range(top).map(|p| (top, p)).collect();
        let mut visited = 0usize;
        while let Some((level, p)) = stack.pop() {
            visited += 1;
            let bx = self.boxes.get(p).ok_or("geo node out of bounds")?;
            if !boxes_intersect(bx, q) {
                continue;
            }
            let i = *self.index.get(p).ok_or("geo node out of bounds")?;
            if level == 0 {
                if i as usize >= self.rows {
                    return Err("geo index names a row outside the segment");
                }
                f(i, bx);
                continue;
            }
            let below = self.level_range(level - 1);
            let first = i as usize;
            if !below.contains(&first) {
                return Err("geo child out of its level");
            }
            let children = first..(first + self.node_size).min(below.end);
            stack.extend(children.map(|c| (level - 1, c)));
        }
        Ok(visited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(bytes: &[u8]) -> Vec<u64> {
        let mut a = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut a)[..bytes.len()].copy_from_slice(bytes);
        a
    }

    #[test]
    fn search_finds_exactly_the_intersecting_boxes() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut boxes = Vec::new();
        let mut w = GeoWriter::new();
        for row in 0..3000u32 {
            let (lon, lat) = (next() * 360.0 - 180.0, next() * 180.0 - 90.0);
            let (w_, h) = (next() * 3.0, next() * 3.0);
            let b = [lon, lat, (lon + w_).min(180.0), (lat + h).min(90.0)];
            if row % 5 != 0 {
                boxes.push((row, b));
                w.push(row, b);
            }
        }
        let bytes = w.finish();
        let a = aligned(&bytes);
        let b = &bytemuck::cast_slice::<u64, u8>(&a)[..bytes.len()];
        let view = GeoView::parse(b, 3000).unwrap();
        assert_eq!(view.count(), boxes.len());
        for q in
            [[0.0, 0.0, 10.0, 10.0], [-180.0, -90.0, 180.0, 90.0], [5.0, 5.0, 5.0, 5.0], [170.0, 80.0, 180.0, 90.0]]
        {
            let mut got = Vec::new();
            let visited = view.search(&q, |r, _| got.push(r)).unwrap();
            got.sort_unstable();
            let want: Vec<u32> = boxes.iter().filter(|(_, b)| boxes_intersect(b, &q)).map(|(r, _)| *r).collect();
            assert_eq!(got, want, "query {q:?}");
            if q[2] - q[0] < 20.0 {
                assert!(visited < boxes.len() / 4, "a small area visits few nodes ({visited})");
            }
        }
        assert!(GeoView::parse(&b[..b.len() - 4], 3000).is_err());
        let empty = GeoWriter::new().finish();
        let a = aligned(&empty);
        let view = GeoView::parse(&bytemuck::cast_slice::<u64, u8>(&a)[..empty.len()], 0).unwrap();
        assert_eq!(view.search(&[0.0, 0.0, 1.0, 1.0], |_, _| panic!("empty")).unwrap(), 0);
    }
}
