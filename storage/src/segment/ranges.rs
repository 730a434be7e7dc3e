//! The range index of one integer, float, timestamp or bool field: its non-null rows sorted by
//! value, plus one roaring bitmap per run of `bucket_rows` consecutive sorted positions.
//!
//! Little-endian. The section starts 64-byte aligned and every array below starts 8-byte aligned.
//!
//! ```text
//! | version u32 | kind u32 (1 = i64 keys, 2 = f64 keys) | count u64 | bucket_rows u32 | buckets u32 |
//! | keys: count x u64, ascending (order-preserving encoding of the values, see [`key_i64`]) |
//! | rows: count x u32 (the row of each key; ascending among equal keys) | zero pad to 8 |
//! | bucket offsets: (buckets + 1) x u64, into the bitmap data |
//! | bitmap data: buckets roaring bitmaps (portable serialization); bucket b holds the rows of |
//! |              sorted positions [b * bucket_rows, min((b + 1) * bucket_rows, count))       |
//! ```
//!
//! A range predicate `lo <= v <= hi` is two binary searches over `keys`, giving the sorted
//! positions `[a, b)`; the answer is the union of the buckets inside `[a, b)` plus the rows of
//! the at most two partial buckets at the edges, so no query reads more than
//! `2 * bucket_rows` individual rows whatever its selectivity.
//!
//! The section is checksummed at open like every small section. The view still bounds-checks
//! every read, so a malformed section yields errors or wrong rows, never a panic.

use std::ops::{Bound, Range};

use roaring::{MultiOps, RoaringBitmap};

use super::RowSource;
use crate::codec::{Enc, u32_at, u64_at};
use crate::error::{Error, Result};
use crate::schema::{FieldType, Value};

/// Range index layout version. v1: first format.
pub const RANGES_VERSION: u32 = 1;
/// Keys encode `i64` values (integer, timestamp, bool as 0/1).
pub const KIND_I64: u32 = 1;
/// Keys encode `f64` values (float).
pub const KIND_F64: u32 = 2;

const KIND_OFFSET: usize = 4;
const COUNT_OFFSET: usize = KIND_OFFSET + 4;
const BUCKET_ROWS_OFFSET: usize = COUNT_OFFSET + 8;
const BUCKETS_OFFSET: usize = BUCKET_ROWS_OFFSET + 4;
const HEADER_LEN: usize = BUCKETS_OFFSET + 4;

/// Fewest sorted positions per bucket.
pub const MIN_BUCKET_ROWS: usize = 1024;
/// Most buckets per section (more rows make buckets larger).
pub const MAX_BUCKETS: usize = 256;

/// Order-preserving key of an `i64`: `a < b` exactly when `key_i64(a) < key_i64(b)`.
#[must_use]
pub fn key_i64(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// Order-preserving key of a finite `f64` (`-0.0` and `0.0` share a key, as they compare equal).
#[must_use]
pub fn key_f64(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

/// Builds a range section.
#[derive(Debug, Clone)]
pub struct RangesWriter {
    kind: u32,
    pairs: Vec<(u64, u32)>,
}

impl RangesWriter {
    /// An empty index of keys of `kind` ([`KIND_I64`] or [`KIND_F64`]).
    #[must_use]
    pub fn new(kind: u32) -> Self {
        RangesWriter { kind, pairs: Vec::new() }
    }

    /// Records that `row` holds the value of key `key`.
    pub fn push(&mut self, row: u32, key: u64) {
        self.pairs.push((key, row));
    }

    /// Encodes the section.
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        self.pairs.sort_unstable();
        let count = self.pairs.len();
        let bucket_rows = MIN_BUCKET_ROWS.max(count.div_ceil(MAX_BUCKETS));
        let buckets = count.div_ceil(bucket_rows);
        let mut e = Enc::default();
        e.u32(RANGES_VERSION);
        e.u32(self.kind);
        e.u64(count as u64);
        e.u32(bucket_rows as u32);
        e.u32(buckets as u32);
        e.buf.reserve(count * 12 + 16);
        self.pairs.iter().for_each(|(k, _)| e.u64(*k));
        self.pairs.iter().for_each(|(_, r)| e.u32(*r));
        e.buf.resize(e.buf.len().next_multiple_of(8), 0);
        let mut data = Vec::new();
        let mut offsets = vec![0u64];
        for chunk in self.pairs.chunks(bucket_rows) {
            let mut rows: Vec<u32> = chunk.iter().map(|(_, r)| *r).collect();
            rows.sort_unstable();
            let bitmap = RoaringBitmap::from_sorted_iter(rows).map_err(|e| e.to_string())?;
            bitmap.serialize_into(&mut data).map_err(|e| e.to_string())?;
            offsets.push(data.len() as u64);
        }
        for o in &offsets {
            e.u64(*o);
        }
        e.buf.extend_from_slice(&data);
        Ok(e.buf)
    }
}

/// The order-preserving key of a value of an indexed type (bools are 0 and 1).
#[must_use]
pub fn key_of(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(x) | Value::Timestamp(x) => Some(key_i64(*x)),
        Value::Bool(b) => Some(key_i64(i64::from(*b))),
        Value::Float(x) => Some(key_f64(*x)),
        _ => None,
    }
}

/// The key kind of a field type with a range index, `None` for the other types.
#[must_use]
pub fn kind_of(ty: FieldType) -> Option<u32> {
    match ty {
        FieldType::Integer | FieldType::Timestamp | FieldType::Bool => Some(KIND_I64),
        FieldType::Float => Some(KIND_F64),
        _ => None,
    }
}

/// The range section of `field` of the rows of `src`, when its type has one.
pub fn index_field(src: &dyn RowSource, field: usize, ty: FieldType) -> Result<Option<Vec<u8>>> {
    let Some(kind) = kind_of(ty) else { return Ok(None) };
    let mut w = RangesWriter::new(kind);
    for row in 0..src.rows() {
        if let Some(key) = src.value(row, field)?.as_ref().and_then(key_of) {
            w.push(row as u32, key);
        }
    }
    w.finish().map(Some).map_err(Error::Invalid)
}

/// A read view of a range section.
#[derive(Debug, Clone, Copy)]
pub struct RangesView<'a> {
    kind: u32,
    rows: usize,
    bucket_rows: usize,
    keys: &'a [u64],
    row_of: &'a [u32],
    offsets: &'a [u64],
    data: &'a [u8],
}

impl<'a> RangesView<'a> {
    /// Parses the section of a segment of `rows` rows. Checks the header and the sizes (O(1)
    /// plus the bucket offsets), not the order of the keys.
    pub fn parse(b: &'a [u8], rows: usize) -> Result<RangesView<'a>, &'static str> {
        if u32_at(b, 0) != Some(RANGES_VERSION) {
            return Err("unsupported range index version");
        }
        let kind = u32_at(b, KIND_OFFSET).ok_or("range index truncated")?;
        if kind != KIND_I64 && kind != KIND_F64 {
            return Err("unknown range key kind");
        }
        let count = usize::try_from(u64_at(b, COUNT_OFFSET).ok_or("range index truncated")?)
            .map_err(|_| "range index too large")?;
        if count > rows {
            return Err("range index holds more rows than the segment");
        }
        let bucket_rows = u32_at(b, BUCKET_ROWS_OFFSET).ok_or("range index truncated")? as usize;
        let buckets = u32_at(b, BUCKETS_OFFSET).ok_or("range index truncated")? as usize;
        if bucket_rows == 0 || buckets != count.div_ceil(bucket_rows) {
            return Err("range index buckets do not fit its rows");
        }
        let keys_end = HEADER_LEN + count * 8;
        let rows_end = keys_end + count * 4;
        let offsets_start = rows_end.next_multiple_of(8);
        let offsets_end = offsets_start + (buckets + 1) * 8;
        let cast_u64 = |r: Range<usize>| -> Result<&'a [u64], &'static str> {
            bytemuck::try_cast_slice(b.get(r).ok_or("range index truncated")?).map_err(|_| "range index misaligned")
        };
        let keys = cast_u64(HEADER_LEN..keys_end)?;
        let row_of: &[u32] = bytemuck::try_cast_slice(b.get(keys_end..rows_end).ok_or("range index truncated")?)
            .map_err(|_| "range index misaligned")?;
        let offsets = cast_u64(offsets_start..offsets_end)?;
        let data = b.get(offsets_end..).ok_or("range index truncated")?;
        if offsets.first() != Some(&0)
            || offsets.windows(2).any(|w| w.first() > w.get(1))
            || offsets.last() != Some(&(data.len() as u64))
        {
            return Err("range index bucket offsets are malformed");
        }
        Ok(RangesView { kind, rows, bucket_rows, keys, row_of, offsets, data })
    }

    /// [`KIND_I64`] or [`KIND_F64`].
    #[must_use]
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// Non-null rows indexed.
    #[must_use]
    pub fn count(&self) -> usize {
        self.keys.len()
    }

    /// Sorted keys (ascending).
    #[must_use]
    pub fn keys(&self) -> &'a [u64] {
        self.keys
    }

    /// Sorted positions whose keys lie between `lo` and `hi`: two binary searches.
    #[must_use]
    pub fn positions(&self, lo: Bound<u64>, hi: Bound<u64>) -> Range<usize> {
        let start = match lo {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.keys.partition_point(|x| *x < k),
            Bound::Excluded(k) => self.keys.partition_point(|x| *x <= k),
        };
        let end = match hi {
            Bound::Unbounded => self.keys.len(),
            Bound::Included(k) => self.keys.partition_point(|x| *x <= k),
            Bound::Excluded(k) => self.keys.partition_point(|x| *x < k),
        };
        start..end.max(start)
    }

    fn bucket(&self, b: usize) -> Result<RoaringBitmap, &'static str> {
        let (s, e) = (self.offsets.get(b).copied().unwrap_or(0), self.offsets.get(b + 1).copied().unwrap_or(0));
        let bytes = self.data.get(s as usize..e as usize).ok_or("range bucket out of bounds")?;
        RoaringBitmap::deserialize_from(bytes).map_err(|_| "range bucket is not a roaring bitmap")
    }

    /// Rows at the sorted positions `pos`: whole buckets from their bitmaps, the edges from the
    /// sorted rows.
    pub fn rows_at(&self, pos: Range<usize>) -> Result<RoaringBitmap, &'static str> {
        let pos = pos.start.min(self.count())..pos.end.min(self.count());
        if pos.is_empty() {
            return Ok(RoaringBitmap::new());
        }
        let first_full = pos.start.div_ceil(self.bucket_rows);
        let end_full = if pos.end == self.count() { self.offsets.len() - 1 } else { pos.end / self.bucket_rows };
        let mut loose: Vec<u32> = Vec::new();
        let mut out = if first_full < end_full {
            let head = pos.start..(first_full * self.bucket_rows);
            let tail = (end_full * self.bucket_rows).min(pos.end)..pos.end;
            loose.extend(self.row_of.get(head).unwrap_or(&[]));
            loose.extend(self.row_of.get(tail).unwrap_or(&[]));
            (first_full..end_full).map(|b| self.bucket(b)).collect::<Result<Vec<_>, _>>()?.union()
        } else {
            loose.extend(self.row_of.get(pos).unwrap_or(&[]));
            RoaringBitmap::new()
        };
        loose.sort_unstable();
        loose.dedup();
        out |= RoaringBitmap::from_sorted_iter(loose).map_err(|_| "range rows out of order")?;
        if out.max().is_some_and(|m| m as usize >= self.rows) {
            return Err("range index names a row outside the segment");
        }
        Ok(out)
    }

    /// Rows whose keys lie between `lo` and `hi`.
    pub fn rows_between(&self, lo: Bound<u64>, hi: Bound<u64>) -> Result<RoaringBitmap, &'static str> {
        self.rows_at(self.positions(lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        assert!(ints.windows(2).all(|w| key_i64(w[0]) < key_i64(w[1])));
        let floats = [f64::MIN, -1e9, -1.5, -f64::MIN_POSITIVE, 0.0, f64::MIN_POSITIVE, 2.5, f64::MAX];
        assert!(floats.windows(2).all(|w| key_f64(w[0]) < key_f64(w[1])));
        assert_eq!(key_f64(-0.0), key_f64(0.0));
    }

    fn model(values: &[Option<i64>], lo: i64, hi: i64) -> RoaringBitmap {
        values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some_and(|v| (lo..=hi).contains(&v)))
            .map(|(r, _)| r as u32)
            .collect()
    }

    #[test]
    fn ranges_match_a_scan_at_every_bucket_edge() {
        let values: Vec<Option<i64>> =
            (0..5000u64).map(|r| (r % 7 != 3).then(|| ((r * 2_654_435_761) % 600) as i64 - 300)).collect();
        let mut w = RangesWriter::new(KIND_I64);
        for (r, v) in values.iter().enumerate() {
            if let Some(v) = v {
                w.push(r as u32, key_i64(*v));
            }
        }
        let bytes = w.finish().unwrap();
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
        let b = &bytemuck::cast_slice::<u64, u8>(&aligned)[..bytes.len()];
        let view = RangesView::parse(b, values.len()).unwrap();
        for (lo, hi) in [(-300, 299), (-1000, 1000), (0, 0), (-17, 45), (100, 50), (298, 400), (-301, -300)] {
            let got = view.rows_between(Bound::Included(key_i64(lo)), Bound::Included(key_i64(hi))).unwrap();
            assert_eq!(got, model(&values, lo, hi), "range {lo}..={hi}");
        }
        for start in (0..view.count()).step_by(97) {
            for len in [0, 1, 1023, 1024, 1025, 3000] {
                let got = view.rows_at(start..start + len).unwrap();
                assert_eq!(got.len() as usize, len.min(view.count() - start));
            }
        }
        assert!(RangesView::parse(&b[..b.len() - 1], values.len()).is_err());
        assert!(RangesView::parse(b, 10).is_err());
    }
}
