//! Storage benchmarks, each next to its baseline in the same run:
//!
//! - `load_d512`: rows/s through write transactions (WAL + fsync per batch + flush) vs. writing
//!   the same f32 bytes to one file with one fsync (the disk's floor);
//! - `open`: time to open a collection of 10k vs. 200k rows (1M with `SKYSIFT_BENCH_1M=1`):
//!   must stay flat, since segments are mapped, not read;
//! - `exact_search_d512`: SIMD scan (simsimd) vs. a plain scalar loop over the same snapshot.
//!
//! Run: `cargo bench --bench storage` (criterion; figures in `target/criterion`).

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skysift::schema::Metric;
use skysift::{CollectionSpec, Db, IndexParams, NewRecord, SearchScratch};

#[path = "../tests/support/rng.rs"]
mod rng;

const DIM: usize = 512;

fn vectors(n: usize, seed: u64) -> Vec<f32> {
    rng::Rng(seed | 1).centred_vec(n * DIM)
}

/// A collection spec without graphs: these benchmarks measure storage, not index construction
/// (graph search is benchmarked by `benches/ann/sweep.py` against hnswlib).
fn spec() -> CollectionSpec {
    CollectionSpec::new(DIM as u32, Metric::Cosine)
        .index(IndexParams { min_rows: usize::MAX, ..IndexParams::default() })
}

fn build(dir: &Path, rows: usize) -> Db {
    let db = Db::builder(dir).flush_rows(usize::MAX).open().expect("open");
    db.create_collection("c", spec()).expect("create");
    let data = vectors(rows, 42);
    for (b, chunk) in data.chunks(DIM * 10_000).enumerate() {
        let mut tx = db.begin_write("c").expect("begin");
        for (i, v) in chunk.chunks_exact(DIM).enumerate() {
            tx.insert(NewRecord::new((b * 10_000 + i) as u64, v.to_vec())).expect("insert");
        }
        tx.commit().expect("commit");
    }
    db.flush("c").expect("flush");
    db
}

fn load(c: &mut Criterion) {
    let rows = 20_000;
    let data = vectors(rows, 7);
    let mut g = c.benchmark_group("load_d512");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(rows as u64));
    g.bench_function("skysift_batches_of_1000", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::builder(dir.path()).flush_rows(usize::MAX).open().expect("open");
            db.create_collection("c", spec()).expect("create");
            for (bi, chunk) in data.chunks(DIM * 1000).enumerate() {
                let mut tx = db.begin_write("c").expect("begin");
                for (i, v) in chunk.chunks_exact(DIM).enumerate() {
                    tx.insert(NewRecord::new((bi * 1000 + i) as u64, v.to_vec())).expect("insert");
                }
                tx.commit().expect("commit");
            }
            db.flush("c").expect("flush");
        });
    });
    g.bench_function("baseline_raw_write_one_fsync", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut f = std::fs::File::create(dir.path().join("raw")).expect("create");
            let mut buf = Vec::with_capacity(data.len() * 4);
            for x in &data {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            f.write_all(&buf).expect("write");
            f.sync_all().expect("sync");
        });
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut sizes = vec![10_000, 200_000];
    if std::env::var_os("SKYSIFT_BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    let mut g = c.benchmark_group("open");
    g.sample_size(20);
    for rows in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(build(dir.path(), rows));
        g.bench_with_input(BenchmarkId::from_parameter(rows), &rows, |b, _| {
            b.iter(|| {
                let db = Db::builder(dir.path()).read_only(true).open().expect("open");
                black_box(db.snapshot().collection("c").expect("collection").count())
            });
        });
    }
    g.finish();
}

fn search(c: &mut Criterion) {
    let rows = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = build(dir.path(), rows);
    let col = db.snapshot().collection("c").expect("collection");
    let queries = vectors(16, 99);
    let mut g = c.benchmark_group("exact_search_d512_100k");
    g.sample_size(10).throughput(Throughput::Elements(16));
    g.bench_function("simd_scan", |b| {
        let mut scratch = SearchScratch::default();
        b.iter(|| {
            for q in queries.chunks_exact(DIM) {
                black_box(col.search_exact(q, 10, &mut scratch).expect("search"));
            }
        });
    });
    g.bench_function("baseline_scalar_loop", |b| {
        b.iter(|| {
            for q in queries.chunks_exact(DIM) {
                let q = col.prepare_query(q).expect("query");
                black_box(skysift::index::exact::scan_scalar(col.state(), &q, 10));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, load, open, search);
criterion_main!(benches);
