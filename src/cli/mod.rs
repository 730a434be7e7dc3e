//! Subcommands. Each file parses nothing itself: clap does that here; they call the library
//! and print.
//!
//! Exit codes: 0 success; 1 error (message on stderr); 2 usage error (clap); 3 `verify`
//! found damage; 4 `import` skipped or failed some files; 130 `import` stopped by Ctrl-C.

mod attach;
mod change;
mod classify;
mod export;
mod heatmap;
mod import;
mod info;
mod load;
mod query;
mod repl;
mod search;

/// `println!` that returns the write error (a closed pipe ends the command quietly, see `main`)
/// instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}
pub(crate) use outln;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// skysift: find remote-sensing images by text, by image and by example, offline.
#[derive(Debug, Parser)]
#[command(name = "skysift", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load precomputed embeddings (.npy float32 2-D, or .fbin) with optional JSON-lines metadata,
    /// or an embedding product (`GeoParquet` / Parquet with an embedding column) with --from.
    Load(load::Args),
    /// Count live records of a collection.
    Count {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Count only records passing this filter, e.g. "year >= 2020 AND class = 'Port'".
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// Print per segment the passing rows (estimated and actual) and the time spent.
        #[arg(long)]
        explain: bool,
    },
    /// Show collections, schemas, segments and sizes.
    Info(info::InfoArgs),
    /// Read every byte and check every checksum; exit code 0 only when all is intact.
    Verify(info::VerifyArgs),
    /// Merge a collection's segments and drop deleted rows.
    Compact {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
    },
    /// Run a batch of query vectors and write one JSON line of results per query.
    Search(search::Args),
    /// Ask a question in natural language (or by image, or by record) and see ranked results.
    Query(query::Args),
    /// Give every record its best labels from a label list (zero-shot, image -> text).
    Label(query::LabelArgs),
    /// Interactive shell: questions, filters, galleries.
    Repl(repl::Args),
    /// Import an archive of imagery (JPEG, PNG, TIFF, `GeoTIFF`) with its metadata; resumable.
    Import(import::Args),
    /// Attach shards built elsewhere (same schema and model) to a collection in one commit.
    Attach(attach::Args),
    /// Draw how similar each tile of an imported scene is to a text query.
    Heatmap(heatmap::Args),
    /// Score every record with a classifier trained on a few good and bad examples.
    Classify(classify::Args),
    /// Rank places by how much better they match a text query after a date than before another.
    Change(change::Args),
    /// Write a collection to `GeoParquet` (or `GeoJSON`, CSV, JSON lines) with a STAC Collection.
    Export(export::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(a) => load::run(&a),
        Command::Count { db, collection, json, filter, explain } => match filter {
            Some(f) => count_where(&db, &collection, &f, json, explain),
            None => count(&db, &collection, json),
        },
        Command::Info(a) => info::info(&a),
        Command::Verify(a) => info::verify(&a),
        Command::Compact { db, collection } => compact(&db, &collection),
        Command::Search(a) => search::run(&a),
        Command::Query(a) => query::run(&a),
        Command::Label(a) => query::label(&a),
        Command::Repl(a) => repl::run(&a),
        Command::Import(a) => import::run(&a),
        Command::Heatmap(a) => heatmap::run(&a),
        Command::Attach(a) => attach::run(&a),
        Command::Classify(a) => classify::run(&a),
        Command::Change(a) => change::run(&a),
        Command::Export(a) => export::run(&a),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`| head`): stop quietly, as other tools do.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A progress bar on standard error for a long command (hidden when standard error is not a
/// terminal).
pub(crate) fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} rows ({per_sec}, {eta} left)")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// Runs `store` (a batched rewrite that reports `(done, total)` records) under a [`progress_bar`],
/// hidden when `quiet` (JSON output).
pub(crate) fn with_store_progress<T>(
    what: &str,
    quiet: bool,
    store: impl FnOnce(&mut dyn FnMut(usize, usize)) -> skysift::Result<T>,
) -> skysift::Result<T> {
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { progress_bar(what) };
    let out = store(&mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    out
}

/// Opens an existing database read-only (for commands that only read).
pub(crate) fn open_read(db: &std::path::Path) -> anyhow::Result<skysift::Db> {
    if !db.join("MANIFEST").exists() {
        anyhow::bail!("{} is not a skysift database (no MANIFEST); create one with `skysift load`", db.display());
    }
    Ok(skysift::Db::builder(db).read_only(true).open()?)
}

/// Opens an existing database for writing; says so when another process holds the writer.
pub(crate) fn open_write(db: &std::path::Path) -> anyhow::Result<skysift::Db> {
    if !db.join("MANIFEST").exists() {
        anyhow::bail!("{} is not a skysift database (no MANIFEST); create one with `skysift load`", db.display());
    }
    Ok(skysift::Db::builder(db).create(false).open()?)
}

fn count(db: &std::path::Path, collection: &str, json: bool) -> anyhow::Result<ExitCode> {
    let db = open_read(db)?;
    let n = db.snapshot().collection(collection)?.count();
    if json {
        outln!("{}", serde_json::json!({ "collection": collection, "count": n }));
    } else {
        outln!("{n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn count_where(
    db: &std::path::Path,
    collection: &str,
    filter: &str,
    json: bool,
    explain: bool,
) -> anyhow::Result<ExitCode> {
    let db = open_read(db)?;
    let col = db.snapshot().collection(collection)?;
    let t = std::time::Instant::now();
    let prepared = col.prepare_filter(filter)?;
    let secs = t.elapsed().as_secs_f64();
    let n = prepared.count();
    if explain {
        eprintln!("filter: {}", prepared.filter());
        for ((s, a), info) in col.state().segments.iter().zip(prepared.segments()).zip(col.segments()) {
            let est = skysift::filter::eval::estimate(prepared.filter(), &s.segment)?;
            eprintln!(
                "segment {}: {} rows, {} live; passing: estimated {est:.0}, actual {} ({:.3} ms)",
                info.id,
                info.rows,
                info.live,
                a.rows.len(),
                a.eval_time.as_secs_f64() * 1e3
            );
        }
        eprintln!("in memory: {} live rows, evaluated row by row", col.memory_rows());
        eprintln!("total: {:.3} ms", secs * 1e3);
    }
    if json {
        outln!("{}", serde_json::json!({ "collection": collection, "count": n, "filter": filter, "seconds": secs }));
    } else {
        outln!("{n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn compact(db: &std::path::Path, collection: &str) -> anyhow::Result<ExitCode> {
    let db = open_write(db)?;
    let before = db.snapshot().collection(collection)?;
    let t = std::time::Instant::now();
    db.compact(collection)?;
    let after = db.snapshot().collection(collection)?;
    outln!(
        "compacted {collection}: {} segments ({} rows) -> {} segments ({} rows) in {:.2}s",
        before.segments().len(),
        before.segments().iter().map(|s| s.rows).sum::<u64>() + before.memory_rows() as u64,
        after.segments().len(),
        after.segments().iter().map(|s| s.rows).sum::<u64>(),
        t.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// A `kB` line of `/proc/self/status` (Linux; `None` elsewhere): resident memory, mapped pages
/// touched included, for summary lines.
pub(crate) fn proc_status_kb(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
