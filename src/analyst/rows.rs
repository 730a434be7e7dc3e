//! A streamed visit of every live row that passes a prepared filter (every live row without
//! one): segments in snapshot order, rows ascending, then the in-memory rows. The visitor gets
//! the id, the stored vector (borrowed from the map, never copied) and a [`Row`] to read fields
//! from; memory does not grow with the number of rows.

use std::sync::Arc;

use skysift_storage::schema::{Record, Value};
use skysift_storage::segment::Segment;

use crate::db::CollectionSnapshot;
use crate::error::{Error, Result};
use crate::query::PreparedFilter;

/// One visited row: where its fields are read from.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// Row `row` of a mapped segment.
    Segment {
        /// The segment.
        segment: &'a Segment,
        /// The row inside it.
        row: usize,
    },
    /// A row still in memory.
    Memory(&'a Record),
}

impl Row<'_> {
    /// The value of schema field number `field` (`None`: null).
    pub fn value(&self, field: usize) -> Result<Option<Value>> {
        match self {
            Row::Segment { segment, row } => Ok(segment.value(*row, field)?),
            Row::Memory(r) => Ok(r.values.get(field).cloned().flatten()),
        }
    }

    /// Every non-null field but blobs (thumbnails), in schema order, named.
    pub fn fields(&self, col: &CollectionSnapshot) -> Result<Vec<(String, Value)>> {
        let mut out = Vec::new();
        for (i, f) in col.schema().fields.iter().enumerate() {
            if f.ty == skysift_storage::schema::FieldType::Blob {
                continue;
            }
            if let Some(v) = self.value(i)? {
                out.push((f.name.clone(), v));
            }
        }
        Ok(out)
    }
}

/// Checks that `filter` was prepared on `col`'s snapshot.
pub(crate) fn check_filter(col: &CollectionSnapshot, filter: &PreparedFilter) -> Result<()> {
    if Arc::ptr_eq(&filter.state, col.state()) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the filter was prepared on another snapshot of {:?}; prepare it on this one",
            col.name()
        )))
    }
}

/// What [`visit`] calls for each row: `(id, vector, row)`.
pub type Visitor<'a> = dyn FnMut(u64, &[f32], Row<'_>) -> Result<()> + 'a;

/// Calls `visit(id, vector, row)` for every live row passing `filter` (every live row when
/// `None`). Returns the rows visited. An error from `visit` stops the visit and is returned.
pub fn visit(col: &CollectionSnapshot, filter: Option<&PreparedFilter>, visit: &mut Visitor<'_>) -> Result<u64> {
    let state = col.state();
    let mut n = 0u64;
    if let Some(f) = filter {
        check_filter(col, f)?;
        for (s, allowed) in state.segments.iter().zip(f.segments()) {
            let seg = &*s.segment;
            let ids = seg.ids();
            for row in &allowed.rows {
                let row = row as usize;
                let Some(&id) = ids.get(row) else { continue };
                visit(id, seg.vector(row), Row::Segment { segment: seg, row })?;
                n += 1;
            }
        }
        for &row in &f.mem {
            if let Some(r) = state.mem.record(row as usize) {
                visit(r.id, &r.vector, Row::Memory(r))?;
                n += 1;
            }
        }
    } else {
        for s in &state.segments {
            let seg = &*s.segment;
            let ids = seg.ids();
            let dim = seg.dim();
            for (row, v) in seg.vectors().chunks_exact(dim.max(1)).enumerate() {
                if !s.tombstones.is_empty() && s.tombstones.contains(row as u32) {
                    continue;
                }
                let Some(&id) = ids.get(row) else { continue };
                visit(id, v, Row::Segment { segment: seg, row })?;
                n += 1;
            }
        }
        for (_, r) in state.mem.live_rows() {
            visit(r.id, &r.vector, Row::Memory(r))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Live rows passing `filter` (all live rows without one).
#[must_use]
pub fn passing(col: &CollectionSnapshot, filter: Option<&PreparedFilter>) -> u64 {
    filter.map_or_else(|| col.count(), PreparedFilter::count)
}

/// The `n`-th live row (`0..count`), in the order [`visit`] uses without a filter: its id
/// and vector. Used to draw random rows without listing every id.
pub(crate) fn nth_live(col: &CollectionSnapshot, mut n: u64) -> Option<(u64, Vec<f32>)> {
    let state = col.state();
    for s in &state.segments {
        let live = s.live();
        if n < live {
            // Tombstones are few next to live rows: walk forward from the n-th row, skipping them.
            let seg = &*s.segment;
            if s.tombstones.is_empty() {
                let row = usize::try_from(n).ok()?;
                return Some((seg.id(row), seg.vector(row).to_vec()));
            }
            let mut seen = 0u64;
            for row in 0..seg.rows() {
                if s.tombstones.contains(row as u32) {
                    continue;
                }
                if seen == n {
                    return Some((seg.id(row), seg.vector(row).to_vec()));
                }
                seen += 1;
            }
            return None;
        }
        n -= live;
    }
    state.mem.live_rows().nth(usize::try_from(n).ok()?).map(|(_, r)| (r.id, r.vector.clone()))
}
