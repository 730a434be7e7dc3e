//! Figures for docs/SCALE.md that do not depend on the encoder:
//! `cargo run --release --example scale_figures [ROWS_PER_SHARD] [DIM]` (default 100000 x 128).
//!
//! 1. Manifest bytes and read-only open time against the number of live segments (1 to 1,000
//!    segments of 8 rows each, one flush per segment).
//! 2. Attach: a shard of `ROWS_PER_SHARD` x `DIM` (no graph: the copy is what is measured) attached
//!    to an empty collection; bytes copied per second, against `std::fs::copy` of the same
//!    file in the same run (the baseline).
//!
//! Works in a temporary directory (set TMPDIR to put it on the disk you want to measure).

use std::time::Instant;

use skysift::schema::{FieldType, Metric, Value};
use skysift::{CollectionSpec, Db, IndexParams, NewRecord};

#[path = "../tests/support/rng.rs"]
mod rng;

fn spec(dim: u32) -> CollectionSpec {
    let no_graph = IndexParams { min_rows: usize::MAX, ..IndexParams::default() };
    CollectionSpec::new(dim, Metric::Cosine)
        .index(no_graph)
        .field("acquired", FieldType::Timestamp)
        .field("class", FieldType::Keyword)
}

fn vector(id: u64, dim: usize) -> Vec<f32> {
    rng::Rng(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).centred_vec(dim)
}

fn record(id: u64, dim: usize) -> NewRecord {
    NewRecord::new(id, vector(id, dim))
        .with("acquired", Value::Timestamp(1_500_000_000_000 + id as i64))
        .with("class", Value::Keyword(format!("c{}", id % 30)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let dim: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;

    println!("segments  manifest_bytes  bytes_per_segment  read_only_open_ms");
    let db = Db::open(tmp.path().join("manifest"))?;
    db.create_collection("c", spec(8))?;
    let mut next = 0u64;
    let mut have = 0usize;
    for target in [1usize, 10, 100, 1000] {
        while have < target {
            let mut tx = db.begin_write("c")?;
            for _ in 0..8 {
                tx.insert(record(next, 8))?;
                next += 1;
            }
            tx.commit()?;
            db.flush("c")?;
            have += 1;
        }
        let bytes = std::fs::metadata(tmp.path().join("manifest/MANIFEST"))?.len();
        let t = Instant::now();
        let ro = Db::builder(tmp.path().join("manifest")).read_only(true).open()?;
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(ro.snapshot().collection("c")?.segments().len(), target);
        println!("{target:>8}  {bytes:>14}  {:>17.0}  {open_ms:>17.2}", bytes as f64 / target as f64);
    }
    drop(db);

    let shard = Db::open(tmp.path().join("shard"))?;
    shard.create_collection("c", spec(dim as u32))?;
    let mut tx = shard.begin_write("c")?;
    for id in 0..rows {
        tx.insert(record(id, dim))?;
    }
    tx.commit()?;
    shard.flush("c")?;
    let seg = shard.snapshot().collection("c")?.state().segments[0].segment.path().to_path_buf();
    let bytes = std::fs::metadata(&seg)?.len();
    drop(shard);
    let t = Instant::now();
    std::fs::copy(&seg, tmp.path().join("copy.seg"))?;
    let f = std::fs::File::open(tmp.path().join("copy.seg"))?;
    f.sync_all()?;
    let copy_s = t.elapsed().as_secs_f64();
    let db = Db::open(tmp.path().join("main"))?;
    db.create_collection("c", spec(dim as u32))?;
    let t = Instant::now();
    let done = db.attach("c", &[tmp.path().join("shard")], false)?;
    let attach_s = t.elapsed().as_secs_f64();
    assert_eq!(done.rows(), rows);
    let mb = bytes as f64 / 1e6;
    println!(
        "attach {rows} x {dim} ({mb:.1} MB): {attach_s:.3} s = {:.0} MB/s (checksums, id checks, copy, fsync); \
         fs::copy + fsync of the same file {copy_s:.3} s = {:.0} MB/s; ratio {:.2}x",
        mb / attach_s,
        mb / copy_s,
        attach_s / copy_s
    );
    Ok(())
}
