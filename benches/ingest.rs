//! Import benchmarks with the demo model on the CPU (issue 6).
//!
//! Criterion part, each next to its baseline:
//! - `import/pipeline_64_chips`: `skysift::ingest::import` of 64 `samples/aid-mini` chips into a fresh
//!   database (walk, hash, decode, thumbnails, preprocessing in workers; batched encoder; writer);
//! - `import/naive_64_chips`: the same chips decoded and encoded one batch after another on one thread,
//!   nothing written (what the pipeline has to beat).
//!
//! Figures part (printed, and written to `target/ingest-bench.json`): images/s, tiles/s and the fraction
//! of time the encoder is busy for the 300 sample chips and for a 4096 x 4096 x 13-band 16-bit scene, and
//! the peak resident memory (sampled from `/proc/self/status` every 10 ms, above the level before the
//! import) for a large scene: 10,980 x 10,980 x 13 bands of u16, tiled 256 (a Sentinel-2 L1C granule at
//! 10 m, 3.1 GB uncompressed). `SKYSIFT_BENCH_SCENE=N` makes the large scene N x N (default 10980);
//! `SKYSIFT_BENCH_FIGURES_ONLY=1` skips the criterion part; `SKYSIFT_BENCH_DEVICE=cuda` runs on a GPU.
//!
//! Needs `scripts/setup_ort.sh` and `scripts/setup_models.sh`. Run: `cargo bench --bench ingest`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use skysift::Db;
use skysift::encode::{Device, Encoder, load_rgb};
use skysift::ingest::bands::SampleKind;
use skysift::ingest::synth::{Chunks, SynthGeo, SynthTiff, write};
use skysift::ingest::{ImportOptions, ReportWriter, Summary, Tiling, import};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn device() -> Device {
    match std::env::var("SKYSIFT_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda,
        Ok("auto") => Device::Auto,
        _ => Device::Cpu,
    }
}

fn encoder() -> Encoder {
    Encoder::builder(repo().join("models/demo"))
        .device(device())
        .batch_size(32)
        .build()
        .unwrap_or_else(|e| panic!("run scripts/setup_ort.sh and scripts/setup_models.sh first: {e}"))
}

/// The sample chips, sorted (the first `n`).
fn chips(n: usize) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let root = repo().join("samples/aid-mini");
    for class in std::fs::read_dir(&root).expect("samples/aid-mini") {
        let class = class.expect("entry").path();
        if class.is_dir() {
            for f in std::fs::read_dir(&class).expect("class folder") {
                let f = f.expect("entry").path();
                if f.extension().is_some_and(|e| e == "jpg") {
                    v.push(f);
                }
            }
        }
    }
    v.sort();
    v.truncate(n);
    v
}

fn archive_of(paths: &[PathBuf], dir: &Path) {
    std::fs::create_dir_all(dir).expect("archive dir");
    for (i, p) in paths.iter().enumerate() {
        std::fs::copy(p, dir.join(format!("{i:04}.jpg"))).expect("copy chip");
    }
}

fn run_import(enc: &Encoder, archive: &Path, db: &Path, tiling: Tiling) -> Summary {
    let db = Db::open(db).expect("db");
    let opts = ImportOptions { tiling, ..ImportOptions::default() };
    import(&db, enc, archive, &opts, &mut ReportWriter::none()).expect("import")
}

fn criterion_part(c: &mut Criterion, enc: &Encoder) {
    let tmp = tempfile::tempdir().expect("tmp");
    let paths = chips(64);
    let arch = tmp.path().join("chips");
    archive_of(&paths, &arch);
    let mut g = c.benchmark_group("import");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(paths.len() as u64));
    let mut k = 0u32;
    g.bench_function("pipeline_64_chips", |b| {
        b.iter(|| {
            k += 1;
            let s = run_import(enc, &arch, &tmp.path().join(format!("db{k}")), Tiling::default());
            assert_eq!(s.tiles_written, 64);
        });
    });
    g.bench_function("naive_64_chips", |b| {
        b.iter(|| {
            let mut n = 0;
            for chunk in paths.chunks(enc.batch_size()) {
                let imgs: Vec<_> = chunk.iter().map(|p| load_rgb(p).expect("decode")).collect();
                n += enc.encode_images(&imgs).expect("encode").len();
            }
            assert_eq!(n, 64);
        });
    });
    g.finish();
}

/// Current resident set size, bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Runs `f` while sampling the resident set; returns its result and the peak above the start.
fn with_peak_rss<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let base = rss();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let out = f();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    (out, peak.load(Ordering::Relaxed).saturating_sub(base))
}

fn figure(name: &str, files: u64, s: &Summary, peak: u64) -> serde_json::Value {
    let v = serde_json::json!({
        "case": name,
        "files": files,
        "tiles": s.tiles_written,
        "seconds": s.seconds,
        "images_per_s": files as f64 / s.seconds,
        "tiles_per_s": s.tiles_written as f64 / s.seconds,
        "encoder_busy": s.encoder_busy(),
        "peak_rss_above_start_mb": peak as f64 / 1e6,
        "peak_reader_mb": s.peak_reader_bytes as f64 / 1e6,
    });
    println!(
        "{name:<28} {files:>5} files {:>6} tiles {:>8.2} s {:>8.1} img/s {:>8.1} tiles/s  encoder busy {:>5.1}%  peak RSS +{:.0} MB (reader {:.1} MB)",
        s.tiles_written,
        s.seconds,
        files as f64 / s.seconds,
        s.tiles_written as f64 / s.seconds,
        s.encoder_busy() * 100.0,
        peak as f64 / 1e6,
        s.peak_reader_bytes as f64 / 1e6
    );
    v
}

fn scene(path: &Path, side: u32) {
    let spec = SynthTiff {
        chunks: Chunks::Tiles(256, 256),
        geo: Some(SynthGeo { epsg: 32632, origin: (300_000.0, 5_000_000.0), pixel: (10.0, 10.0) }),
        ..SynthTiff::new(side, side, 13, SampleKind::U16)
    };
    // Smooth fields per band with some texture: compressible neither by design nor by accident.
    write(path, &spec, |x, y, b| {
        let t = f64::from((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 97);
        800.0 + f64::from(x % 1024) * 1.5 + f64::from(y % 777) * 2.0 + (b as f64) * 120.0 + t * 4.0
    })
    .expect("write scene");
}

fn figures(enc: &Encoder) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut out = Vec::new();
    println!("\nimport figures ({:?}, batch {}):", enc.device(), enc.batch_size());

    let paths = chips(300);
    let arch = tmp.path().join("chips");
    archive_of(&paths, &arch);
    let (s, peak) = with_peak_rss(|| run_import(enc, &arch, &tmp.path().join("db_chips"), Tiling::default()));
    out.push(figure("300 chips (150 px JPEG)", paths.len() as u64, &s, peak));

    let mid = tmp.path().join("mid");
    std::fs::create_dir_all(&mid).expect("dir");
    scene(&mid.join("scene_4096.tif"), 4096);
    let t = Tiling { tile: 256, ..Tiling::default() };
    let (s, peak) = with_peak_rss(|| run_import(enc, &mid, &tmp.path().join("db_mid"), t));
    out.push(figure("4096^2 x13 u16, tile 256", 1, &s, peak));
    std::fs::remove_dir_all(&mid).ok();

    let side = std::env::var("SKYSIFT_BENCH_SCENE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_980u32);
    let big = tmp.path().join("big");
    std::fs::create_dir_all(&big).expect("dir");
    let w0 = Instant::now();
    scene(&big.join("S2_L1C.tif"), side);
    println!("  (wrote the {side}^2 x13 scene in {:.1} s)", w0.elapsed().as_secs_f64());
    let t = Tiling { tile: 512, ..Tiling::default() };
    let (s, peak) = with_peak_rss(|| run_import(enc, &big, &tmp.path().join("db_big"), t));
    out.push(figure(&format!("{side}^2 x13 u16, tile 512"), 1, &s, peak));

    let path = repo().join("target/ingest-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json")).ok();
    println!("figures written to {}", path.display());
}

fn main() {
    let enc = encoder();
    if std::env::var_os("SKYSIFT_BENCH_FIGURES_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_part(&mut c, &enc);
        c.final_summary();
    }
    figures(&enc);
}
