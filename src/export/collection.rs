//! [`export_collection`]: every live row of a collection passing an optional filter, streamed
//! through one of the writers into a file, and (for `GeoParquet`) a STAC Collection beside it.
//!
//! Invariant: the output appears under its name only when complete ([`FileExport`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use skysift_storage::schema::Value;

use super::columns::{Columns, ExportRow};
use super::stac::{EmbeddingInfo, StacExtent, stac_collection};
use super::{FileExport, Format, write_error};
use crate::db::CollectionSnapshot;
use crate::error::Result;

/// Rows between two calls of the progress callback.
pub const PROGRESS_EVERY: u64 = 4096;

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The file format (default `GeoParquet`).
    pub format: Format,
    /// Carry each record's embedding (default off).
    pub with_vectors: bool,
    /// Only rows passing this filter (default: every live row).
    pub filter: Option<String>,
    /// Write a STAC Collection beside the file ([`stac_path`]; default on).
    pub stac: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { format: Format::GeoParquet, with_vectors: false, filter: None, stac: true }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// Rows written.
    pub rows: u64,
    /// Bytes of the output file.
    pub bytes: u64,
    /// The STAC Collection written, if any.
    pub stac: Option<PathBuf>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Where the STAC Collection of an export to `out` goes: `NAME.stac.json` beside it
/// (`scenes.parquet` -> `scenes.stac.json`).
#[must_use]
pub fn stac_path(out: &Path) -> PathBuf {
    out.with_extension("stac.json")
}

fn media_type(format: Format) -> &'static str {
    match format {
        Format::GeoParquet => "application/vnd.apache.parquet",
        Format::GeoJson => "application/geo+json",
        Format::Csv => "text/csv",
        Format::Jsonl => "application/x-ndjson",
    }
}

/// Exports `col` to `out`. `progress(done, total)` is called every 4096 rows and at
/// the end.
pub fn export_collection(
    col: &CollectionSnapshot,
    out: &Path,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary> {
    let t0 = Instant::now();
    let prepared = opts.filter.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
    let total = crate::analyst::rows::passing(col, prepared.as_ref());
    let emb = EmbeddingInfo::of(col)?;
    let columns = Columns::of(col.schema(), false, opts.with_vectors);
    let metadata = vec![
        (super::EMB_METADATA_KEY.to_owned(), serde_json::Value::Object(emb.to_json()).to_string()),
        ("skysift:collection".to_owned(), col.name().to_owned()),
    ];
    let mut file = FileExport::create(out, opts.format, columns, &metadata)?;
    let mut extent = StacExtent { bbox: None, interval: (None, None), rows: 0 };
    let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
    let mut done = 0u64;
    crate::analyst::rows::visit(col, prepared.as_ref(), &mut |id, vector, row| {
        let fields = row.fields(col)?;
        for (n, v) in &fields {
            match v {
                Value::GeoBbox(b) if n == super::FOOTPRINT_FIELD => {
                    extent.bbox = Some(
                        extent.bbox.map_or(*b, |e| [e[0].min(b[0]), e[1].min(b[1]), e[2].max(b[2]), e[3].max(b[3])]),
                    );
                }
                Value::Timestamp(t) if n == "datetime" => {
                    first = Some(first.map_or(*t, |f| f.min(*t)));
                    last = Some(last.map_or(*t, |l| l.max(*t)));
                }
                _ => {}
            }
        }
        file.write_row(&ExportRow { id, rank: None, score: None, fields: &fields, vector: Some(vector) })?;
        done += 1;
        if done.is_multiple_of(PROGRESS_EVERY) {
            progress(done, total);
        }
        Ok(())
    })?;
    let rows = file.finish()?;
    progress(rows, total);
    extent.rows = rows;
    extent.interval = (first.map(crate::time::format_timestamp), last.map(crate::time::format_timestamp));
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    let stac = if opts.stac {
        let p = stac_path(out);
        let href = out.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let doc = stac_collection(col.name(), &href, media_type(opts.format), &emb, &extent);
        let text = serde_json::to_string_pretty(&doc).map_err(|e| write_error(&std::io::Error::other(e)))?;
        std::fs::write(&p, text + "\n").map_err(|e| write_error(&e))?;
        Some(p)
    } else {
        None
    };
    Ok(ExportSummary { rows, bytes, stac, seconds: t0.elapsed().as_secs_f64() })
}
