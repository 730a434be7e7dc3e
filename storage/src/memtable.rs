//! The mutable segment: committed records not yet flushed, rebuilt from the WAL on open.
//!
//! It is a persistent structure: the writer changes it through `Arc::make_mut`, so a reader's
//! snapshot keeps the version it took while the writer moves on (the copy happens only when a
//! snapshot still holds the old version, and copies chunk pointers, not vectors).
//!
//! Invariant: `index` maps every live id to its newest row; `deleted` holds every other row.

use std::collections::HashMap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::schema::Record;

/// Committed, unflushed records.
#[derive(Debug, Clone, Default)]
pub struct MemTable {
    chunks: Vec<Arc<[Record]>>,
    /// First row of each chunk.
    starts: Vec<u32>,
    rows: u32,
    index: HashMap<u64, u32>,
    deleted: RoaringBitmap,
}

impl MemTable {
    /// Rows ever appended (live and deleted).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    /// Live rows.
    #[must_use]
    pub fn live(&self) -> usize {
        self.index.len()
    }

    /// The record at `row`.
    #[must_use]
    pub fn record(&self, row: usize) -> Option<&Record> {
        let c = self.starts.partition_point(|s| *s as usize <= row).checked_sub(1)?;
        let start = *self.starts.get(c)? as usize;
        self.chunks.get(c)?.get(row - start)
    }

    /// Whether `row` is live.
    #[must_use]
    pub fn is_live(&self, row: usize) -> bool {
        (row as u32) < self.rows && !self.deleted.contains(row as u32)
    }

    /// Deleted rows.
    #[must_use]
    pub fn deleted(&self) -> &RoaringBitmap {
        &self.deleted
    }

    /// The live row holding `id`.
    #[must_use]
    pub fn row_of(&self, id: u64) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// Appends records (their ids must not be live here: the caller deletes first).
    pub fn append(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        self.starts.push(self.rows);
        for r in &records {
            self.index.insert(r.id, self.rows);
            self.rows += 1;
        }
        self.chunks.push(records.into());
    }

    /// Deletes the live row of `id`; returns whether there was one.
    pub fn delete(&mut self, id: u64) -> bool {
        match self.index.remove(&id) {
            Some(row) => {
                self.deleted.insert(row);
                true
            }
            None => false,
        }
    }

    /// Live rows in row order.
    pub fn live_rows(&self) -> impl Iterator<Item = (usize, &Record)> {
        self.chunks
            .iter()
            .zip(&self.starts)
            .flat_map(|(c, s)| c.iter().enumerate().map(move |(i, r)| (*s as usize + i, r)))
            .filter(|(row, _)| !self.deleted.contains(*row as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> Record {
        Record { id, vector: vec![id as f32], values: vec![] }
    }

    #[test]
    fn append_delete_and_lookup() {
        let mut m = MemTable::default();
        m.append(vec![rec(1), rec(2)]);
        m.append(vec![rec(3)]);
        assert_eq!(m.record(2).unwrap().id, 3);
        assert!(m.delete(2));
        assert!(!m.delete(2));
        m.append(vec![rec(2)]);
        assert_eq!(m.row_of(2), Some(3));
        assert_eq!(m.live(), 3);
        let ids: Vec<u64> = m.live_rows().map(|(_, r)| r.id).collect();
        assert_eq!(ids, vec![1, 3, 2]);
        assert!(!m.is_live(1));
    }
}
