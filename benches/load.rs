//! Queries under import load (issue 8): latency and recall of text queries while an import runs,
//! against the same queries on the idle database, in one run.
//!
//! 1. Imports scene A (a synthetic RGB `GeoTIFF`, tiled) with the demo model, so the collection
//!    has indexed segments.
//! 2. Idle: runs the query set (text queries encoded once) for `SKYSIFT_LOAD_SECONDS` (default 10)
//!    with graph search, recording each latency and its recall@10 against an exact scan of the
//!    same snapshot (the exact scan is not timed).
//! 3. Load: imports scene B in another thread while the same loop runs on the live database,
//!    each query on the snapshot current at that moment, until the import ends.
//!
//! Prints, per phase, queries, errors, QPS, p50/p99/max latency and mean recall, then the ratios
//! load/idle, and writes them to `target/load-bench.json`. `SKYSIFT_LOAD_SCENE=N` sets the scene
//! side in pixels (default 1536; tiles of 32 px, so 2,304 tiles per scene).
//!
//! Needs `scripts/setup_ort.sh` and `scripts/setup_models.sh`. Run: `cargo bench --bench load`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use skysift::encode::{Device, Encoder};
use skysift::ingest::bands::SampleKind;
use skysift::ingest::synth::{Chunks, SynthGeo, SynthTiff, write};
use skysift::ingest::{ImportOptions, ReportWriter, Tiling, import};
use skysift::{Db, SearchParams, SearchScratch};

const COLLECTION: &str = "images";
const K: usize = 10;
const TILE: u32 = 32;
const QUERIES: [&str; 12] = [
    "a forest",
    "a river crossing farmland",
    "a dense residential area",
    "an airport with planes",
    "a beach by the sea",
    "a desert with dunes",
    "a port with boats",
    "a stadium",
    "green meadow",
    "bare land",
    "an industrial area",
    "a parking lot with many cars",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A scene of smooth colour regions with textures of different frequencies, so tiles differ.
fn write_scene(path: &Path, side: u32, seed: u32) {
    let spec = SynthTiff {
        chunks: Chunks::Tiles(256, 256),
        geo: Some(SynthGeo { epsg: 4326, origin: (10.0 + f64::from(seed), 50.0), pixel: (1e-4, 1e-4) }),
        ..SynthTiff::new(side, side, 3, SampleKind::U8)
    };
    write(path, &spec, |x, y, b| {
        let (rx, ry) = ((x / 96 + seed) % 7, (y / 96 + 2 * seed) % 5);
        let freq = f64::from(1 + (rx * 5 + ry) % 9) * 0.07;
        let base = f64::from((rx * 37 + ry * 53 + b as u32 * 71) % 200);
        let wave = ((f64::from(x) * freq).sin() * (f64::from(y) * freq * 0.7).cos() + 1.0) * 25.0;
        base + wave
    })
    .expect("write scene");
}

#[derive(Debug, Default)]
struct Phase {
    latencies: Vec<Duration>,
    recall_hits: usize,
    recall_want: usize,
    errors: usize,
    seconds: f64,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self.latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i.min(v.len() - 1)]
    }

    fn recall(&self) -> f64 {
        if self.recall_want == 0 { 1.0 } else { self.recall_hits as f64 / self.recall_want as f64 }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "queries": self.latencies.len(),
            "errors": self.errors,
            "qps": self.latencies.len() as f64 / self.seconds.max(1e-9),
            "p50_ms": self.percentile(0.5),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
            "recall_at_10": self.recall(),
        })
    }
}

/// Runs queries round-robin until `done` returns true; graph search timed, exact scan for recall.
fn query_loop(db: &Db, queries: &[Vec<f32>], done: &dyn Fn() -> bool) -> Phase {
    let mut ph = Phase::default();
    let mut scratch = SearchScratch::default();
    let t0 = Instant::now();
    let mut i = 0;
    while !done() {
        let q = &queries[i % queries.len()];
        i += 1;
        let snap = db.snapshot();
        let Ok(col) = snap.collection(COLLECTION) else {
            ph.errors += 1;
            continue;
        };
        let t = Instant::now();
        let hits = col.search(q, &SearchParams::k(K), &mut scratch);
        let took = t.elapsed();
        let exact = col.search_exact(q, K, &mut scratch);
        match (hits, exact) {
            (Ok(h), Ok(e)) => {
                ph.latencies.push(took);
                let want: std::collections::HashSet<u64> = e.iter().map(|x| x.id).collect();
                ph.recall_hits += h.iter().filter(|x| want.contains(&x.id)).count();
                ph.recall_want += want.len();
            }
            _ => ph.errors += 1,
        }
    }
    ph.seconds = t0.elapsed().as_secs_f64();
    ph
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let side = env_u64("SKYSIFT_LOAD_SCENE", 1536) as u32;
    let idle_for = Duration::from_secs(env_u64("SKYSIFT_LOAD_SECONDS", 10));
    let enc = Encoder::builder(repo().join("models/demo"))
        .device(Device::Cpu)
        .batch_size(32)
        .build()
        .unwrap_or_else(|e| panic!("run scripts/setup_ort.sh and scripts/setup_models.sh first: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).expect("dir");
    std::fs::create_dir_all(&b).expect("dir");
    write_scene(&a.join("scene_a.tif"), side, 0);
    write_scene(&b.join("scene_b.tif"), side, 3);
    let db = Db::builder(dir.path().join("db")).flush_rows(2048).open().expect("db");
    let tiling = Tiling { tile: TILE, chip_max: TILE, ..Tiling::default() };
    let opts = ImportOptions { tiling, collection: COLLECTION.into(), ..ImportOptions::default() };
    let t = Instant::now();
    let first = import(&db, &enc, &a, &opts, &mut ReportWriter::none()).expect("import scene A");
    println!("scene A: {} tiles in {:.1}s", first.tiles_written, t.elapsed().as_secs_f64());
    db.flush(COLLECTION).expect("flush");
    let texts: Vec<&str> = QUERIES.to_vec();
    let queries = enc.encode_texts(&texts).expect("encode queries");

    let until = Instant::now() + idle_for;
    let idle = query_loop(&db, &queries, &|| Instant::now() >= until);

    let finished = AtomicBool::new(false);
    let (load, tiles_b) = std::thread::scope(|s| {
        let importer = s.spawn(|| {
            let r = import(&db, &enc, &b, &opts, &mut ReportWriter::none());
            finished.store(true, Ordering::SeqCst);
            r
        });
        let load = query_loop(&db, &queries, &|| finished.load(Ordering::SeqCst));
        (load, importer.join().expect("importer thread").expect("import scene B").tiles_written)
    });
    let rows = db.snapshot().collection(COLLECTION).expect("collection").count();

    println!("scene B: {tiles_b} tiles imported while querying; {rows} records in the end");
    println!(
        "{:<6} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "phase", "queries", "errors", "QPS", "p50 ms", "p99 ms", "max ms", "recall"
    );
    for (name, ph) in [("idle", &idle), ("import", &load)] {
        println!(
            "{name:<6} {:>8} {:>7} {:>8.0} {:>9.3} {:>9.3} {:>9.3} {:>8.3}",
            ph.latencies.len(),
            ph.errors,
            ph.latencies.len() as f64 / ph.seconds.max(1e-9),
            ph.percentile(0.5),
            ph.percentile(0.99),
            ph.percentile(1.0),
            ph.recall()
        );
    }
    let ratio = |f: &dyn Fn(&Phase) -> f64| f(&load) / f(&idle).max(1e-9);
    println!(
        "import/idle: p50 x{:.2}, p99 x{:.2}, recall {:.3} vs {:.3}",
        ratio(&|p| p.percentile(0.5)),
        ratio(&|p| p.percentile(0.99)),
        load.recall(),
        idle.recall()
    );
    let out = serde_json::json!({
        "scene_side": side, "tile": TILE, "tiles_a": first.tiles_written, "tiles_b": tiles_b,
        "idle": idle.json(), "import": load.json(),
    });
    let path = repo().join("target/load-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json")).ok();
    println!("figures written to {}", path.display());
}
