//! Filter and planner benchmarks, each next to its naive baseline in the same run:
//!
//! - `filter_eval`: evaluating a range, a keyword and a geo filter from the segment's indexes vs.
//!   testing every row's values one by one;
//! - `filtered_search`: the planner's choice vs. an exact scan of the passing rows vs. each
//!   graph strategy forced, at 50 %, 5 % and 0.5 % selectivity (100k rows of 128 dimensions,
//!   clustered; fixed seeds).
//!
//! Run: `cargo bench --bench filter` (criterion; figures in `target/criterion`). The ANN bench
//! data comparison against hnswlib and faiss is `benches/ann/filtered.py`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use skysift::filter::Filter;
use skysift::filter::eval::{eval_segment, eval_segment_rowwise};
use skysift::query::Strategy;
use skysift::schema::{FieldType, Metric, Value};
use skysift::{CollectionSpec, Db, IndexParams, NewRecord, SearchParams, SearchScratch};

#[path = "../tests/support/rng.rs"]
mod rng;

const DIM: usize = 128;
const ROWS: usize = 100_000;

fn build(dir: &Path) -> (Db, Vec<Vec<f32>>) {
    let mut r = rng::Rng(0x5EED);
    let centres: Vec<Vec<f32>> = (0..64).map(|_| (0..DIM).map(|_| r.centred()).collect()).collect();
    let db = Db::builder(dir).flush_rows(usize::MAX).open().expect("open");
    let spec = CollectionSpec::new(DIM as u32, Metric::Cosine)
        .field("bucket", FieldType::Integer)
        .field("class", FieldType::Keyword)
        .field("footprint", FieldType::GeoBbox)
        .index(IndexParams::default());
    db.create_collection("c", spec).expect("create");
    for batch in 0..ROWS / 10_000 {
        let mut tx = db.begin_write("c").expect("begin");
        for i in 0..10_000 {
            let id = (batch * 10_000 + i) as u64;
            let c = &centres[(r.next_u64() % 64) as usize];
            let v: Vec<f32> = c.iter().map(|x| x + 0.3 * r.centred()).collect();
            let (lon, lat) = (f64::from(r.centred()) * 359.0, f64::from(r.centred()) * 179.0);
            tx.insert(
                NewRecord::new(id, v)
                    .with("bucket", Value::Integer((r.next_u64() % 1000) as i64))
                    .with("class", Value::Keyword(format!("c{}", r.next_u64() % 200)))
                    .with("footprint", Value::GeoBbox([lon, lat, lon + 0.1, lat + 0.1])),
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
    }
    db.flush("c").expect("flush");
    let queries = (0..50).map(|_| (0..DIM).map(|_| r.centred()).collect()).collect();
    (db, queries)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, queries) = build(dir.path());
    let col = db.snapshot().collection("c").expect("collection");
    let seg = &col.state().segments[0].segment;

    let mut g = c.benchmark_group("filter_eval");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, text) in [
        ("range_50pct", "bucket < 500"),
        ("keyword_or_range", "class IN ('c1', 'c2') OR bucket BETWEEN 10 AND 19"),
        ("geo_box", "intersects(footprint, bbox(0, 0, 20, 20))"),
    ] {
        let f = Filter::parse(text, col.schema()).expect("filter");
        g.bench_with_input(BenchmarkId::new("indexes", name), &f, |b, f| {
            b.iter(|| eval_segment(f, seg).expect("eval"));
        });
        g.bench_with_input(BenchmarkId::new("row_by_row", name), &f, |b, f| {
            b.iter(|| eval_segment_rowwise(f, seg).expect("eval"));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("filtered_search");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let p = SearchParams::k(10);
    for (name, text) in [("50pct", "bucket < 500"), ("5pct", "bucket < 50"), ("0.5pct", "bucket < 5")] {
        for force in [None, Some(Strategy::Exact), Some(Strategy::Graph), Some(Strategy::TwoHop)] {
            let prepared = col.prepare_filter(text).expect("prepare").force(force);
            let label = force.map_or("planner", Strategy::name);
            g.bench_function(BenchmarkId::new(label, name), |b| {
                let mut scratch = SearchScratch::default();
                b.iter(|| {
                    for q in &queries {
                        black_box(col.search_filtered(q, &prepared, &p, &mut scratch).expect("search"));
                    }
                });
            });
        }
    }
    g.finish();
}

criterion_group!(filter, benches);
criterion_main!(filter);
