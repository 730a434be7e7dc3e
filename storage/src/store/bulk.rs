//! Appending a batch of rows as one new segment, without the WAL: the bulk path of loads.
//!
//! A commit writes its rows to the WAL and the in-memory table, and a flush writes them again,
//! into a segment: every byte twice. A load of a file that is already durable elsewhere needs
//! neither the log nor the table. Protocol ([`WriteGuard::append_rows`]):
//! 1. flush the collection, so that every live row is in a segment and the collisions below are
//!    decided against segments only;
//! 2. check every row before anything is written: the schema (dimension, finite components,
//!    value types), ids unique in the batch, and ids live in the collection (refused, or with
//!    `upsert` rows to replace);
//! 3. write the rows as segment `col-<id>/seg-<n>.seg` (with the graph and codes the indexer
//!    builds for any segment), sync the file and the directory;
//! 4. publish one manifest that names it (with, under `upsert`, tombstones for the rows it
//!    replaces).
//!
//! A crash before step 4 leaves an orphan file that the next writer open removes: none of the
//! batch is visible. After it, all of it is, as after a commit and a flush.

use std::collections::HashSet;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::{Location, SegmentHandle, Store, WriteGuard, collection_dir, segment_path};
use crate::error::{Error, Result};
use crate::schema::Value;
use crate::segment::{RowSource, Segment, write_segment};

/// Rows in memory, row-major (id, `dim` components, one value slot per field): what
/// [`WriteGuard::append_rows`] writes as one segment. Values are in the order of the
/// collection's schema fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowBatch {
    dim: usize,
    fields: usize,
    ids: Vec<u64>,
    vectors: Vec<f32>,
    values: Vec<Option<Value>>,
}

impl RowBatch {
    /// An empty batch of `dim`-wide vectors with `fields` value slots per row.
    #[must_use]
    pub fn new(dim: usize, fields: usize) -> RowBatch {
        RowBatch { dim, fields, ..RowBatch::default() }
    }

    /// Appends a row with every value null and returns its value slots (schema order).
    ///
    /// # Errors
    /// `Invalid` when `vector` is not `dim` wide.
    pub fn push(&mut self, id: u64, vector: &[f32]) -> Result<&mut [Option<Value>]> {
        if vector.len() != self.dim {
            return Err(Error::Invalid(format!(
                "record {id}: vector has {} components, the batch holds {}",
                vector.len(),
                self.dim
            )));
        }
        self.ids.push(id);
        self.vectors.extend_from_slice(vector);
        let at = self.values.len();
        self.values.resize(at + self.fields, None);
        Ok(self.values.get_mut(at..).unwrap_or_default())
    }

    /// Makes room for `rows` more rows (a load that knows its size grows the buffers once).
    pub fn reserve(&mut self, rows: usize) {
        self.ids.reserve(rows);
        self.vectors.reserve(rows.saturating_mul(self.dim));
        self.values.reserve(rows.saturating_mul(self.fields));
    }

    /// Rows held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no row is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Vector width.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The ids, in row order.
    #[must_use]
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// The vector of `row`, to change in place (normalising, say); empty past the end.
    pub fn vector_mut(&mut self, row: usize) -> &mut [f32] {
        self.vectors.get_mut(row * self.dim..(row + 1) * self.dim).unwrap_or_default()
    }

    /// The value slots of `row` (schema order); empty past the end.
    #[must_use]
    pub fn values(&self, row: usize) -> &[Option<Value>] {
        self.values.get(row * self.fields..(row + 1) * self.fields).unwrap_or_default()
    }

    /// Removes every row, keeping the allocations.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.vectors.clear();
        self.values.clear();
    }
}

impl RowSource for RowBatch {
    fn rows(&self) -> usize {
        self.ids.len()
    }
    fn id(&self, row: usize) -> u64 {
        self.ids.get(row).copied().unwrap_or(u64::MAX)
    }
    fn vector(&self, row: usize) -> &[f32] {
        self.vectors.get(row * self.dim..(row + 1) * self.dim).unwrap_or_default()
    }
    fn value(&self, row: usize, field: usize) -> Result<Option<Value>> {
        Ok(if field < self.fields { self.values.get(row * self.fields + field).cloned().flatten() } else { None })
    }
    fn vector_block(&self, start: usize, n: usize) -> Option<&[f32]> {
        self.vectors.get(start * self.dim..(start + n) * self.dim)
    }
}

/// What [`WriteGuard::append_rows`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// The number of the segment written (`None` for an empty batch).
    pub segment: Option<u64>,
    /// Rows written.
    pub rows: u64,
    /// Live rows of the collection replaced by rows of the batch (`upsert` only).
    pub replaced: u64,
}

impl WriteGuard<'_> {
    /// Writes `batch` into collection `name` as one new segment, published in one manifest
    /// commit, without the WAL (protocol in the module docs). Refused, with nothing changed,
    /// when a row breaks the schema, an id appears twice in the batch, or an id is live in the
    /// collection (unless `upsert`: the batch's row replaces it).
    pub fn append_rows(&mut self, name: &str, batch: &RowBatch, upsert: bool) -> Result<AppendReport> {
        self.flush(name)?;
        let (state, col) = self.collection(name)?;
        let schema = &col.schema;
        if batch.dim != schema.dim as usize || batch.fields != schema.fields.len() {
            return Err(Error::Invalid(format!(
                "the batch holds {}-wide vectors and {} fields, collection {name:?} has {} and {}",
                batch.dim,
                batch.fields,
                schema.dim,
                schema.fields.len()
            )));
        }
        let mut seen = HashSet::with_capacity(batch.len());
        let mut replace = Vec::new();
        for (row, &id) in batch.ids.iter().enumerate() {
            schema.check_row(id, batch.vector(row), batch.values(row)).map_err(Error::Invalid)?;
            if !seen.insert(id) {
                return Err(Error::Invalid(format!("record id {id} appears twice in the batch")));
            }
            match col.locate(id)? {
                None => {}
                Some(_) if !upsert => {
                    return Err(Error::Invalid(format!(
                        "record id {id} already exists in collection {name:?} (an upsert replaces it)"
                    )));
                }
                Some(Location::Segment { segment, row }) => replace.push((segment, row)),
                // The flush above emptied the in-memory table.
                Some(Location::Mem { .. }) => {
                    return Err(Error::Invalid(format!("record id {id} is still in memory after a flush")));
                }
            }
        }
        drop(seen);
        let mut report = AppendReport { segment: None, rows: batch.len() as u64, replaced: replace.len() as u64 };
        if batch.is_empty() {
            return Ok(report);
        }
        let store: &Store = self.store;
        Store::guarded(&mut self.w, |w| {
            let vfs = &*store.opts.vfs;
            let mut c = (*col).clone();
            for (segment, row) in &replace {
                if let Some(h) = c.segments.get_mut(*segment) {
                    Arc::make_mut(&mut h.tombstones).insert(*row);
                }
            }
            let seg_id = c.next_segment_id;
            let path = segment_path(&store.dir, col.id, seg_id);
            let extra = store.index_sections(&col, batch)?;
            write_segment(vfs, &path, seg_id, &col.schema, batch, &extra)?;
            vfs.sync_dir(&collection_dir(&store.dir, col.id))?;
            let mut seg = Segment::open(&path, vfs.map(&path)?)?;
            seg.bind_schema(&col.schema)?;
            c.segments.push(SegmentHandle { segment: Arc::new(seg), tombstones: Arc::new(RoaringBitmap::new()) });
            c.next_segment_id += 1;
            store.replace_collection(&state, c)?;
            store.retry_deletes(w);
            report.segment = Some(seg_id);
            Ok(())
        })?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::schema;
    use crate::schema::Record;
    use crate::store::StoreOptions;
    use crate::wal::Op;

    fn batch(ids: std::ops::Range<u64>) -> RowBatch {
        let mut b = RowBatch::new(4, schema().fields.len());
        for id in ids {
            b.push(id, &[id as f32, 2.0, 0.0, 0.0]).unwrap();
        }
        b
    }

    #[test]
    fn a_batch_is_one_segment_and_one_publication_that_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        s.create_collection("c", schema(), Vec::new()).unwrap();
        let values = vec![None; schema().fields.len()];
        let ops =
            (0..5).map(|id| Op::Put(Record { id, vector: vec![id as f32, 1.0, 0.0, 0.0], values: values.clone() }));
        s.commit("c", ops.collect()).unwrap();
        let before = s.snapshot().generation;
        let r = s.try_begin_write().unwrap().append_rows("c", &batch(5..50), false).unwrap();
        assert_eq!((r.rows, r.replaced), (45, 0));
        // the flush of the 5 committed rows, then the batch's publication
        assert_eq!(s.snapshot().generation, before + 2);
        assert_eq!(s.snapshot().collections["c"].segments.len(), 2);
        assert_eq!(s.snapshot().collections["c"].count(), 50);

        let err = s.try_begin_write().unwrap().append_rows("c", &batch(49..60), false).unwrap_err();
        assert!(err.to_string().contains("record id 49 already exists"), "{err}");
        let err = s.try_begin_write().unwrap().append_rows("c", &batch(0..3), true);
        assert_eq!(err.unwrap().replaced, 3);
        let mut twice = batch(70..72);
        twice.push(70, &[0.0; 4]).unwrap();
        let err = s.try_begin_write().unwrap().append_rows("c", &twice, true).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let mut bad = batch(80..81);
        bad.vector_mut(0)[1] = f32::NAN;
        let err = s.try_begin_write().unwrap().append_rows("c", &bad, false).unwrap_err();
        assert!(err.to_string().contains("not finite"), "{err}");
        assert!(RowBatch::new(4, 0).push(1, &[0.0; 3]).is_err());
        assert_eq!(s.snapshot().collections["c"].count(), 50);
        drop(s);

        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let c = &s.snapshot().collections["c"];
        assert_eq!(c.count(), 50);
        assert_eq!(c.get(1).unwrap().unwrap().vector, vec![1.0, 2.0, 0.0, 0.0], "the upserted row");
        assert_eq!(c.get(7).unwrap().unwrap().vector, vec![7.0, 2.0, 0.0, 0.0]);
        assert_eq!(c.get(4).unwrap().unwrap().vector, vec![4.0, 1.0, 0.0, 0.0], "a committed row");
        drop(s);
        assert!(crate::verify::verify(&crate::io::RealVfs, dir.path()).ok());
    }
}
