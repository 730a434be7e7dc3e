//! `skysift export`: a whole collection (or the records passing a filter) to `GeoParquet` (or
//! `GeoJSON`, CSV, JSON lines), with a STAC Collection beside it.

use std::path::PathBuf;
use std::process::ExitCode;

use skysift::export::{ExportOptions, Format, export_collection};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// Collection name.
    collection: String,
    /// File format: geoparquet (default), geojson, csv or jsonl.
    #[arg(long, default_value = "geoparquet")]
    format: String,
    /// The file to write (replaced when it exists; a STAC Collection goes beside it as NAME.stac.json).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Carry each record's embedding (a fixed-size list column `vector` in `GeoParquet`).
    #[arg(long)]
    with_vectors: bool,
    /// Only records passing this filter, e.g. "datetime >= '2020-01-01'".
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// Do not write the STAC Collection.
    #[arg(long)]
    no_stac: bool,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let db = super::open_read(&a.db)?;
    let col = db.snapshot().collection(&a.collection)?;
    let opts = ExportOptions {
        format: Format::parse(&a.format)?,
        with_vectors: a.with_vectors,
        filter: a.filter.clone(),
        stac: !a.no_stac,
    };
    let bar = super::progress_bar("exporting");
    let summary = export_collection(&col, &a.output, &opts, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    super::outln!(
        "exported {} records of {} to {} ({} bytes, {:.2}s, {:.0} rows/s)",
        summary.rows,
        a.collection,
        a.output.display(),
        summary.bytes,
        summary.seconds,
        summary.rows as f64 / summary.seconds.max(1e-9)
    );
    if let Some(p) = summary.stac {
        super::outln!("wrote the STAC Collection {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
