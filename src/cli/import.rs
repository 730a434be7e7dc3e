//! `skysift import`: an archive of imagery into a collection, with a progress line, a report and an
//! exit status that says whether anything was skipped.
//!
//! Exit codes: 0 every file imported or already in; 4 some file skipped or failed (see the report);
//! 130 stopped by Ctrl-C after committing what was encoded (run the same command again to continue);
//! 1 the import could not run (database locked, other model, unreadable archive).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use skysift::Db;
use skysift::encode::{Encoder, Towers};
use skysift::ingest::report::Observer;
use skysift::ingest::{ImportOptions, Progress, ReportWriter, Status, Summary, Tiling, import};
use skysift::schema::FieldType;

/// Problems printed to stderr when no `--report` file is given.
const PRINTED_PROBLEMS: usize = 50;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory (created when missing).
    db: PathBuf,
    /// Folder of imagery (JPEG, PNG, TIFF, `GeoTIFF`) and metadata (STAC JSON, sidecars, CSV).
    archive: PathBuf,
    /// Collection to import into (created when missing).
    #[arg(long, default_value = "images")]
    collection: String,
    #[arg(
        long,
        help = "Model directory (holding manifest.json); default: $SKYSIFT_MODEL_DIR, ./models/demo, then \
                ~/.cache/skysift/models/demo (where scripts/setup_models.sh installs the demo model)"
    )]
    model: Option<PathBuf>,
    /// Where the encoder runs: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Tile side in pixels for scenes larger than --chip-max.
    #[arg(long, default_value_t = 512)]
    tile: u32,
    /// Pixels shared by neighbouring tiles.
    #[arg(long, default_value_t = 0)]
    overlap: u32,
    /// Resample tiles to this ground resolution (metres per pixel) when the source's is known.
    #[arg(long)]
    gsd: Option<f64>,
    /// Images no larger than this (pixels, both sides) are one record each, not tiled.
    #[arg(long, default_value_t = 1024)]
    chip_max: u32,
    /// Tiles with a smaller share of valid pixels (not no-data, alpha or mask) are not encoded;
    /// partly valid tiles get their no-data pixels filled with the tile's mean colour.
    #[arg(long, default_value_t = skysift::ingest::nodata::DEFAULT_MIN_VALID, value_parser = parse_min_valid)]
    min_valid: f64,
    /// Bands drawn as red, green, blue, 1-based (e.g. 4,3,2 for Sentinel-2); default: per sensor.
    #[arg(long)]
    bands: Option<String>,
    /// Metadata field types overriding inference: name:type[,name:type...].
    #[arg(long)]
    schema: Option<String>,
    /// Write the report (one JSON object per file, then a summary) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the summary as JSON (with `peak_rss_mb`, the process's peak resident memory on Linux).
    #[arg(long)]
    json: bool,
    /// Decode workers (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Tiles per encoder run.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Commit after this many records (a commit also happens every 2 s while records arrive).
    #[arg(long, default_value_t = 1024)]
    commit_every: usize,
    /// Encoder threads (default: ONNX Runtime's choice; 1 per session with several --encoder-sessions).
    #[arg(long)]
    threads: Option<usize>,
    /// Image-encoder sessions that encode the parts of each batch side by side (0: one per core on
    /// the CPU, 1 on CUDA)
    #[arg(long, default_value_t = 0)]
    encoder_sessions: usize,
    /// Never draw the progress line.
    #[arg(long)]
    no_progress: bool,
}

fn parse_min_valid(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share of valid pixels between 0 and 1 (e.g. 0.5)")),
    }
}

fn parse_bands(s: &str) -> anyhow::Result<[usize; 3]> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().with_context(|| format!("--bands entry {p:?} is not a band number")))
        .collect::<anyhow::Result<_>>()?;
    match v.as_slice() {
        &[red, green, blue] if red >= 1 && green >= 1 && blue >= 1 => Ok([red - 1, green - 1, blue - 1]),
        _ => bail!("--bands takes three 1-based band numbers, e.g. 4,3,2"),
    }
}

fn parse_schema(s: Option<&str>) -> anyhow::Result<Vec<(String, FieldType)>> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            // Names may hold ':' (eo:cloud_cover), so the type is after the last one.
            let (n, t) = p.rsplit_once(':').with_context(|| format!("--schema entry {p:?} is not name:type"))?;
            let ty = FieldType::from_name(t.trim()).with_context(|| {
                format!("unknown type {t:?} in --schema; use keyword, integer, float, timestamp, bool or text")
            })?;
            Ok((n.trim().to_owned(), ty))
        })
        .collect()
}

/// The import's progress bar on standard error: bytes of imagery finished out of all (the ETA
/// follows them), with files, tiles and problems in its message; hidden when `show` is false.
fn import_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{wide_bar} {binary_bytes}/{binary_total_bytes}  {msg}  ETA {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Moves `bar` with the import's counters until `done`, then clears it.
fn follow(bar: &ProgressBar, p: &Progress, started: Instant, done: &AtomicBool) {
    while !done.load(Ordering::Relaxed) {
        bar.set_length(p.bytes_total.load(Ordering::Relaxed));
        bar.set_position(p.bytes_done.load(Ordering::Relaxed));
        let (files, total) = (p.files_done.load(Ordering::Relaxed), p.files_total.load(Ordering::Relaxed));
        let tiles = p.tiles_written.load(Ordering::Relaxed);
        let reused = p.tiles_reused.load(Ordering::Relaxed);
        let problems = p.problems.load(Ordering::Relaxed);
        let rate = tiles as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "files {files}/{total}  tiles {tiles} (+{reused} already in)  {rate:.1} tiles/s  skipped {problems}"
        ));
        std::thread::sleep(Duration::from_millis(250));
    }
    bar.finish_and_clear();
}

fn print_summary(s: &Summary) -> std::io::Result<()> {
    let rate = s.tiles_written as f64 / s.seconds.max(1e-3);
    super::outln!(
        "{}: {} imported, {} unchanged, {} skipped, {} failed, {} interrupted of {} files; {} tiles written, {} already in, \
         {} stale records removed; {:.1} s ({rate:.1} tiles/s, encoder busy {:.0}%)",
        s.collection,
        s.count(Status::Imported),
        s.count(Status::Unchanged),
        s.count(Status::Skipped),
        s.count(Status::Failed),
        s.count(Status::Interrupted),
        s.files,
        s.tiles_written,
        s.tiles_reused,
        s.records_deleted,
        s.seconds,
        s.encoder_busy() * 100.0
    );
    if !s.by_reason.is_empty() {
        let r: Vec<String> = s.by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
        super::outln!("  reasons: {}", r.join(", "));
    }
    if s.not_started > 0 {
        super::outln!("  {} files not reached; run the same command again to continue", s.not_started);
    }
    let f: Vec<String> = s.fields.iter().map(|(n, t)| format!("{n}:{t}")).collect();
    super::outln!("  schema: {}", f.join(", "));
    for n in &s.metadata_notes {
        super::outln!("  note: {n}");
    }
    Ok(())
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let bands = a.bands.as_deref().map(parse_bands).transpose()?;
    let schema = parse_schema(a.schema.as_deref())?;
    if a.tile == 0 {
        bail!("--tile must be at least 1");
    }
    if a.gsd.is_some_and(|g| !(g.is_finite() && g > 0.0)) {
        bail!("--gsd must be a positive number of metres");
    }
    if !a.archive.is_dir() {
        bail!("{} is not a folder", a.archive.display());
    }
    let db = Db::builder(&a.db).open().with_context(|| format!("cannot open database {}", a.db.display()))?;
    let model = skysift::encode::locate::model_dir_or_default(a.model.as_deref()).map_err(anyhow::Error::msg)?;
    let mut b = Encoder::builder(&model)
        .device(super::query::device(&a.device)?)
        .batch_size(a.batch_size)
        .towers(Towers::Image);
    b = b.image_sessions(a.encoder_sessions);
    if let Some(t) = a.threads {
        b = b.threads(t);
    }
    let enc = b.build().with_context(|| format!("cannot load the model in {}", model.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // A second Ctrl-C ends the process at once; committed data is safe either way.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping: committing what was encoded (Ctrl-C again to quit at once)");
        });
    }
    let model_dir = std::fs::canonicalize(&model).unwrap_or_else(|_| model.clone());
    let opts = ImportOptions {
        collection: a.collection.clone(),
        tiling: Tiling { tile: a.tile, overlap: a.overlap, gsd: a.gsd, chip_max: a.chip_max },
        bands,
        schema,
        workers: a.workers,
        commit_rows: a.commit_every.max(1),
        min_valid: a.min_valid,
        stop: Arc::clone(&stop),
        params: vec![(skysift::session::MODEL_DIR_PARAM.to_string(), model_dir.display().to_string())],
        ..ImportOptions::default()
    };
    let bar = import_bar(!a.no_progress && !a.json && std::io::stderr().is_terminal());
    let printed = std::sync::atomic::AtomicUsize::new(0);
    let to_file = a.report.is_some();
    let above = bar.clone();
    let observer: Observer = Box::new(move |v: &serde_json::Value| {
        let status = v.get("status").and_then(serde_json::Value::as_str).unwrap_or("imported");
        if to_file || matches!(status, "imported" | "unchanged") {
            return;
        }
        let n = printed.fetch_add(1, Ordering::Relaxed);
        let get = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        // Printed above the progress bar, which is drawn again below.
        above.suspend(|| {
            if n < PRINTED_PROBLEMS {
                eprintln!("{status}: {}: {}: {}", get("path"), get("reason"), get("detail"));
            } else if n == PRINTED_PROBLEMS {
                eprintln!("... more problems: use --report FILE to see them all");
            }
        });
    });
    let mut report = match &a.report {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create report {}", p.display()))?;
            ReportWriter::new(Box::new(BufWriter::new(f)))
        }
        None => ReportWriter::none(),
    }
    .observe(observer);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let summary = std::thread::scope(|s| {
        if !bar.is_hidden() {
            s.spawn(|| follow(&bar, &opts.progress, started, &done));
        }
        let r = import(&db, &enc, &a.archive, &opts, &mut report);
        done.store(true, Ordering::Relaxed);
        r
    })?;
    drop(report);
    if a.json {
        // The process's peak resident memory (Linux), for the memory bound of hostile imports.
        let mut v = serde_json::to_value(&summary)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("peak_rss_mb".into(), super::proc_status_kb("VmHWM").map(|kb| kb as f64 / 1e3).into());
        }
        super::outln!("{v}");
    } else {
        print_summary(&summary)?;
    }
    std::io::stdout().flush()?;
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else if summary.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}
