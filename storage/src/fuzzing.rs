//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and the regression test
//! that replays the committed corpus (`tests/fuzz_corpus.rs`): each takes arbitrary bytes,
//! decodes them, and exercises every accessor of what decoded. They must return (any result)
//! and never panic, abort, hang or allocate without bound.

use std::ops::Bound;
use std::path::Path;

use crate::bytes::Bytes;
use crate::manifest::Manifest;
use crate::schema::{FieldDef, FieldType, Metric, Schema};
use crate::segment::Segment;
use crate::segment::codes::CodesView;
use crate::segment::geo::GeoView;
use crate::segment::graph::GraphView;
use crate::segment::ranges::RangesView;
use crate::{vecblob, wal};

/// A schema with one field of every type, dimension 4.
#[must_use]
pub fn schema() -> Schema {
    let fields = [
        ("k", FieldType::Keyword),
        ("i", FieldType::Integer),
        ("f", FieldType::Float),
        ("t", FieldType::Timestamp),
        ("b", FieldType::Bool),
        ("g", FieldType::GeoBbox),
    ]
    .into_iter()
    .map(|(n, ty)| FieldDef { name: n.into(), ty })
    .collect();
    Schema::new(4, Metric::InnerProduct, fields).unwrap_or(Schema {
        dim: 4,
        metric: Metric::InnerProduct,
        fields: Vec::new(),
    })
}

/// A segment file.
pub fn segment(data: &[u8]) {
    let Ok(seg) = Segment::open(Path::new("fuzz.seg"), Bytes::copy_from(data)) else { return };
    let rows = seg.rows().min(4096);
    for row in 0..rows {
        let _ = seg.vector(row);
        let id = seg.id(row);
        let _ = seg.row_of(id);
        for f in 0..seg.field_count() {
            let _ = seg.value(row, f);
        }
    }
    for f in 0..seg.field_count() {
        if let Ok(values) = seg.keyword_values(f) {
            for (v, _) in values.iter().take(64) {
                let _ = seg.keyword_rows(f, v);
            }
        }
    }
    if let Some(Ok(g)) = seg.graph() {
        graph_walk(&g);
    }
    if let Some(Ok(c)) = seg.codes() {
        for row in 0..rows {
            let _ = c.row(row);
        }
    }
    let _ = seg.verify();
}

fn graph_walk(g: &GraphView<'_>) {
    for level in 0..=g.levels() {
        for node in g.level_nodes(level).iter().take(256) {
            let _ = g.neighbours(level, *node);
        }
        for node in 0..g.rows().min(256) {
            let _ = g.neighbours(level, node);
        }
    }
    let _ = g.anchors();
}

/// A graph section for a segment of `rows` rows (the first byte of `data` picks `rows`).
pub fn graph(data: &[u8]) {
    let Some((&r, rest)) = data.split_first() else { return };
    let b = Bytes::copy_from(rest);
    if let Ok(g) = GraphView::parse(b.as_slice(), usize::from(r)) {
        graph_walk(&g);
    }
    let _ = CodesView::parse(b.as_slice(), usize::from(r), 4)
        .map(|c| (0..usize::from(r)).map(|i| c.row(i).len()).sum::<usize>());
}

/// A WAL file, replayed against [`schema`].
pub fn wal(data: &[u8]) {
    let _ = wal::replay(Path::new("fuzz.log"), data, &schema());
}

/// A manifest file.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::decode(Path::new("MANIFEST"), data) {
        let _ = m.encode();
    }
}

/// A vector blob.
pub fn vecblob(data: &[u8]) {
    let _ = vecblob::decode(Path::new("fuzz.bin"), data);
}

/// A range-index or geo-index section (`segment/{ranges,geo}.rs`) of a segment of `16 * rows` rows
/// (the first byte of `data` picks `rows`): every query on what parses returns, never loops.
pub fn segment_indexes(data: &[u8]) {
    let Some((&r, rest)) = data.split_first() else { return };
    let rows = usize::from(r) * 16;
    let b = Bytes::copy_from(rest);
    if let Ok(v) = RangesView::parse(b.as_slice(), rows) {
        let keys = v.keys();
        let probe = [0, u64::MAX, keys.first().copied().unwrap_or(7), keys.last().copied().unwrap_or(9)];
        for lo in probe {
            for hi in probe {
                let _ = v.rows_between(Bound::Included(lo), Bound::Excluded(hi));
            }
        }
        let _ = v.rows_at(0..v.count());
    }
    if let Ok(g) = GeoView::parse(b.as_slice(), rows) {
        let _ = g.items().count();
        let _ = g.search(&[-180.0, -90.0, 180.0, 90.0], |_, _| {});
        let _ = g.search(&[0.0, 0.0, 1.0, 1.0], |_, _| {});
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: [(&str, Target); 6] = [
    ("segment", segment),
    ("graph", graph),
    ("wal", wal),
    ("manifest", manifest),
    ("vecblob", vecblob),
    ("segment_indexes", segment_indexes),
];
