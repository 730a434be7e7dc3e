//! Overviews against full resolution (issue 20): `skysift::ingest::import` at `--gsd 60` of a
//! 10,980 x 10,980 x 3-band u16 scene at 10 m (a Sentinel-2 granule's size), tiled 512, written twice
//! in the same run by [`skysift::ingest::synth_cog`]: once as a COG with three overview levels (20, 40
//! and 80 m) and once without overviews (the baseline: decoded at full resolution and resampled, as
//! before overviews were read). Both imports use the demo model on the CPU with the same tiling, so
//! they encode the same 16 tiles; the difference is what is decoded.
//!
//! Printed, and written to `target/imagery-bench.json`: seconds per import (best of
//! `SKYSIFT_BENCH_REPEAT` runs, default 2, each into a fresh database), the overview level read and
//! the speed-up; the target is at least 5x. `SKYSIFT_BENCH_SCENE=N` makes the scene N x N
//! (default 10980). The files (about 1.7 GB together) are written to a temporary folder and removed.
//!
//! Needs `scripts/setup_ort.sh` and `scripts/setup_models.sh`. Run: `cargo bench --bench imagery`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use skysift::Db;
use skysift::encode::{Device, Encoder};
use skysift::ingest::synth::SynthGeo;
use skysift::ingest::synth_cog::{CogSpec, write_cog};
use skysift::ingest::{ImportOptions, ReportWriter, Summary, Tiling, import};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn encoder() -> Encoder {
    Encoder::builder(repo().join("models/demo"))
        .device(Device::Cpu)
        .batch_size(16)
        .build()
        .unwrap_or_else(|e| panic!("run scripts/setup_ort.sh and scripts/setup_models.sh first: {e}"))
}

fn scene(path: &Path, side: u32, overviews: usize) {
    let spec = CogSpec {
        tile: Some(512),
        overviews,
        geo: Some(SynthGeo { epsg: 32632, origin: (300_000.0, 5_000_000.0), pixel: (10.0, 10.0) }),
        ..CogSpec::new(side, side, 3)
    };
    write_cog(
        path,
        &spec,
        |x, y, b| {
            let t = f64::from((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 97);
            800.0 + f64::from(x % 1024) * 1.5 + f64::from(y % 777) * 2.0 + (b as f64) * 120.0 + t * 4.0
        },
        |_, _| true,
    )
    .expect("write scene");
}

/// Best of `repeat` imports of `archive`, each into a fresh database; the summary and the report's
/// overview level.
fn timed(enc: &Encoder, archive: &Path, work: &Path, repeat: usize) -> (f64, Summary, Option<u64>) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for i in 0..repeat.max(1) {
        let db_dir = work.join(format!("db-{i}"));
        let db = Db::open(&db_dir).expect("db");
        let opts = ImportOptions {
            tiling: Tiling { tile: 512, overlap: 0, gsd: Some(60.0), chip_max: 1024 },
            ..ImportOptions::default()
        };
        let report = work.join("report.jsonl");
        let mut w = ReportWriter::new(Box::new(std::fs::File::create(&report).expect("report")));
        let t0 = Instant::now();
        let s = import(&db, enc, archive, &opts, &mut w).expect("import");
        best = best.min(t0.elapsed().as_secs_f64());
        drop(w);
        let level = std::fs::read_to_string(&report)
            .expect("report")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["kind"] == "file")
            .and_then(|v| v["level"].as_u64());
        last = Some((s, level));
        drop(db);
        std::fs::remove_dir_all(&db_dir).ok();
    }
    let (s, level) = last.expect("one run");
    (best, s, level)
}

fn main() {
    let side = std::env::var("SKYSIFT_BENCH_SCENE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_980u32);
    let repeat = std::env::var("SKYSIFT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(2usize);
    let enc = encoder();
    let tmp = tempfile::tempdir().expect("tmp");
    let (cog, flat) = (tmp.path().join("cog"), tmp.path().join("flat"));
    std::fs::create_dir_all(&cog).expect("dir");
    std::fs::create_dir_all(&flat).expect("dir");
    let w0 = Instant::now();
    scene(&cog.join("scene.tif"), side, 3);
    scene(&flat.join("scene.tif"), side, 0);
    println!("wrote the {side}^2 x3 u16 scenes in {:.1} s", w0.elapsed().as_secs_f64());
    let (t_flat, s_flat, _) = timed(&enc, &flat, tmp.path(), repeat);
    let (t_cog, s_cog, level) = timed(&enc, &cog, tmp.path(), repeat);
    let speedup = t_flat / t_cog.max(1e-9);
    println!(
        "import --gsd 60 of {side}^2 x3 u16: without overviews {t_flat:.2} s ({} tiles), with overviews {t_cog:.2} s \
         ({} tiles, level {level:?}): {speedup:.1}x (target >= 5x: {})",
        s_flat.tiles_written,
        s_cog.tiles_written,
        if speedup >= 5.0 { "met" } else { "NOT met" }
    );
    // What both imports pay whatever is decoded: the encoder, and hashing the whole file (the ledger).
    let file_len = |p: &Path| std::fs::metadata(p.join("scene.tif")).map_or(0, |m| m.len());
    println!(
        "  encoder busy: {:.2} s / {:.2} s; file sizes {} / {} MB (hashed whole by the ledger)",
        s_flat.encoder_seconds,
        s_cog.encoder_seconds,
        file_len(&flat) >> 20,
        file_len(&cog) >> 20
    );
    let out = serde_json::json!({
        "scene": format!("{side}x{side}x3 u16, 10 m, tiled 512"),
        "gsd": 60.0,
        "repeat": repeat,
        "without_overviews_s": t_flat,
        "with_overviews_s": t_cog,
        "level_read": level,
        "tiles": [s_flat.tiles_written, s_cog.tiles_written],
        "speedup": speedup,
        "encoder_s": [s_flat.encoder_seconds, s_cog.encoder_seconds],
        "target": 5.0,
    });
    let path = repo().join("target/imagery-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json")).ok();
    println!("figures written to {}", path.display());
}
