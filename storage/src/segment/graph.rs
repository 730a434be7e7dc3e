//! The frozen HNSW graph of a segment, searched in place from the map.
//!
//! Little-endian `u32` throughout; the section starts 64-byte aligned.
//!
//! ```text
//! | version u32 | rows u32 | slots0 u32 | slots u32 | levels u32 | entry u32 | base0 u32 | reserved u32 |
//! | layer 0: rows x slots0 u32 neighbour rows, unused slots = u32::MAX                                 |
//! | for l in 1..levels: | count_l u32 | nodes_l: count_l u32, sorted | adj_l: count_l x slots u32     |
//! | anchor_count u32 | anchors: anchor_count u32 (layer-0 entry candidates learned from queries)    |
//! ```
//!
//! `slots0` = `base0` HNSW neighbours (2·M) plus extra query-guided edges; `slots` = M for upper
//! layers. `entry` is a node of the top level.
//!
//! The section is *bulk* (checksummed by `verify`, not at open), so the view never trusts it:
//! every neighbour id is bounds-checked by the reader of [`GraphView::neighbours`], and a
//! malformed header yields an error, never a panic.

use crate::codec::{Enc, u32_at};

/// Graph layout version. v1: first format.
pub const GRAPH_VERSION: u32 = 1;
/// Marks an unused neighbour slot.
pub const EMPTY: u32 = u32::MAX;
const HEADER_LEN: usize = 32;
/// Most levels accepted.
pub const MAX_LEVELS: u32 = 32;
/// Most slots per node accepted.
pub const MAX_SLOTS: u32 = 1024;

/// A graph to freeze: adjacency per level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphData {
    /// Nodes (rows) in the segment.
    pub rows: u32,
    /// Slots per node on layer 0.
    pub slots0: u32,
    /// Of `slots0`, how many hold HNSW edges (the rest hold query-guided edges).
    pub base0: u32,
    /// Slots per node on upper layers.
    pub slots: u32,
    /// Entry node (on the top level).
    pub entry: u32,
    /// Layer 0 adjacency, `rows x slots0`, padded with [`EMPTY`].
    pub layer0: Vec<u32>,
    /// Upper layers: (sorted nodes, adjacency `nodes x slots` padded with [`EMPTY`]).
    pub upper: Vec<(Vec<u32>, Vec<u32>)>,
    /// Extra layer-0 entry candidates (the nearest rows of sample queries).
    pub anchors: Vec<u32>,
}

impl GraphData {
    /// Encodes the section.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u32(GRAPH_VERSION);
        e.u32(self.rows);
        e.u32(self.slots0);
        e.u32(self.slots);
        e.u32(self.upper.len() as u32 + 1);
        e.u32(self.entry);
        e.u32(self.base0);
        e.u32(0);
        e.buf.reserve(self.layer0.len() * 4);
        for x in &self.layer0 {
            e.u32(*x);
        }
        for (nodes, adj) in &self.upper {
            e.u32(nodes.len() as u32);
            for x in nodes.iter().chain(adj) {
                e.u32(*x);
            }
        }
        e.u32(self.anchors.len() as u32);
        for x in &self.anchors {
            e.u32(*x);
        }
        e.buf
    }
}

/// A read view of a frozen graph.
#[derive(Debug, Clone, Copy)]
pub struct GraphView<'a> {
    rows: u32,
    slots0: u32,
    base0: u32,
    slots: u32,
    entry: u32,
    layer0: &'a [u32],
    /// Byte slice of the upper layers, parsed on demand.
    upper: &'a [u32],
    levels: u32,
    anchors: &'a [u32],
}

/// Why a graph section was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError(pub &'static str);

fn words(b: &[u8]) -> &[u32] {
    bytemuck::try_cast_slice(b).unwrap_or(&[])
}

impl<'a> GraphView<'a> {
    /// Parses the header and checks that the layers fit in the section.
    pub fn parse(b: &'a [u8], rows: usize) -> Result<GraphView<'a>, GraphError> {
        let h = |i: usize| u32_at(b, i * 4).ok_or(GraphError("graph header truncated"));
        if h(0)? != GRAPH_VERSION {
            return Err(GraphError("unsupported graph version"));
        }
        let (grows, slots0, slots, levels, entry, base0) = (h(1)?, h(2)?, h(3)?, h(4)?, h(5)?, h(6)?);
        if grows as usize != rows || slots0 > MAX_SLOTS || slots > MAX_SLOTS || base0 > slots0 {
            return Err(GraphError("graph header does not fit the segment"));
        }
        if levels == 0 || levels > MAX_LEVELS || (rows > 0 && entry >= grows) {
            return Err(GraphError("bad level count or entry point"));
        }
        if !b.len().is_multiple_of(4) || !(b.as_ptr() as usize).is_multiple_of(4) {
            return Err(GraphError("graph section misaligned"));
        }
        let all = words(b.get(HEADER_LEN..).unwrap_or(&[]));
        let n0 = rows.checked_mul(slots0 as usize).ok_or(GraphError("layer 0 too large"))?;
        let layer0 = all.get(..n0).ok_or(GraphError("layer 0 truncated"))?;
        let upper = all.get(n0..).unwrap_or(&[]);
        // Walk the upper layers once to check that they fit.
        let mut at = 0usize;
        for _ in 1..levels {
            let count = *upper.get(at).ok_or(GraphError("upper layer truncated"))? as usize;
            let need = count.checked_mul(1 + slots as usize).ok_or(GraphError("upper layer too large"))?;
            at = at.checked_add(1 + need).ok_or(GraphError("upper layer too large"))?;
            if at > upper.len() {
                return Err(GraphError("upper layer truncated"));
            }
        }
        let count = *upper.get(at).ok_or(GraphError("anchor list truncated"))? as usize;
        let anchors = upper.get(at + 1..at + 1 + count).ok_or(GraphError("anchor list truncated"))?;
        if upper.len() != at + 1 + count {
            return Err(GraphError("trailing bytes after the anchor list"));
        }
        let upper = upper.get(..at).unwrap_or(&[]);
        Ok(GraphView { rows: grows, slots0, base0, slots, entry, layer0, upper, levels, anchors })
    }

    /// Number of levels (1 = layer 0 only).
    #[must_use]
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// The entry node.
    #[must_use]
    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// Slots per node on layer 0 (HNSW edges plus query-guided edges).
    #[must_use]
    pub fn slots0(&self) -> u32 {
        self.slots0
    }

    /// Of [`GraphView::slots0`], the HNSW edges.
    #[must_use]
    pub fn base0(&self) -> u32 {
        self.base0
    }

    /// Slots per node on upper layers.
    #[must_use]
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Layer-0 entry candidates learned from a query sample (may hold ids out of range in a
    /// damaged file: callers skip ids `>= rows`).
    #[must_use]
    pub fn anchors(&self) -> &'a [u32] {
        self.anchors
    }

    /// Nodes.
    #[must_use]
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Neighbour slots of `node` on `level` (may hold [`EMPTY`] or, in a damaged file, ids out
    /// of range: callers skip ids `>= rows`). Empty when the node is not on that level.
    #[must_use]
    pub fn neighbours(&self, level: u32, node: u32) -> &'a [u32] {
        if level == 0 {
            let s = self.slots0 as usize;
            let start = node as usize * s;
            return self.layer0.get(start..start + s).unwrap_or(&[]);
        }
        let mut at = 0usize;
        for l in 1..self.levels {
            let count = self.upper.get(at).copied().unwrap_or(0) as usize;
            let nodes = self.upper.get(at + 1..at + 1 + count).unwrap_or(&[]);
            let adj_start = at + 1 + count;
            if l == level {
                let Ok(i) = nodes.binary_search(&node) else { return &[] };
                let s = self.slots as usize;
                return self.upper.get(adj_start + i * s..adj_start + (i + 1) * s).unwrap_or(&[]);
            }
            at = adj_start + count * self.slots as usize;
        }
        &[]
    }

    /// Sorted nodes of an upper level (empty for level 0 or out of range).
    #[must_use]
    pub fn level_nodes(&self, level: u32) -> &'a [u32] {
        let mut at = 0usize;
        for l in 1..self.levels {
            let count = self.upper.get(at).copied().unwrap_or(0) as usize;
            if l == level {
                return self.upper.get(at + 1..at + 1 + count).unwrap_or(&[]);
            }
            at += 1 + count + count * self.slots as usize;
        }
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Bytes;

    fn sample() -> GraphData {
        GraphData {
            rows: 4,
            slots0: 3,
            base0: 2,
            slots: 2,
            entry: 2,
            layer0: vec![1, 2, EMPTY, 0, 2, 3, 0, 1, EMPTY, 2, EMPTY, EMPTY],
            upper: vec![(vec![0, 2], vec![2, EMPTY, 0, EMPTY])],
            anchors: vec![3],
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let b = Bytes::copy_from(&sample().encode());
        let g = GraphView::parse(b.as_slice(), 4).unwrap();
        assert_eq!(g.levels(), 2);
        assert_eq!(g.neighbours(0, 1), &[0, 2, 3]);
        assert_eq!(g.neighbours(1, 2), &[0, EMPTY]);
        assert_eq!(g.neighbours(1, 1), &[] as &[u32]);
        assert_eq!(g.level_nodes(1), &[0, 2]);
        assert_eq!(g.anchors(), &[3]);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_a_safe_view() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            let b = Bytes::copy_from(&bytes[..n]);
            if let Ok(g) = GraphView::parse(b.as_slice(), 4) {
                for l in 0..=g.levels() {
                    for node in 0..6 {
                        let _ = g.neighbours(l, node);
                    }
                }
            }
        }
        for i in 0..bytes.len() {
            let mut c = bytes.clone();
            c[i] ^= 0xff;
            let b = Bytes::copy_from(&c);
            if let Ok(g) = GraphView::parse(b.as_slice(), 4) {
                for l in 0..=g.levels() {
                    for node in 0..6 {
                        let _ = g.neighbours(l, node);
                    }
                }
            }
        }
    }
}
