//! Export of result rows and whole collections to files other tools read: `GeoJSON`
//! (RFC 7946), `GeoParquet` 1.1, CSV and JSON lines, plus a STAC Collection describing an exported
//! collection and its embeddings (`emb:` fields).
//!
//! | file | responsibility |
//! | --- | --- |
//! | `columns.rs` | [`Columns`]: which schema fields become columns, the footprint field, the rows' shape ([`ExportRow`]) |
//! | `geojson.rs` | [`GeoJsonWriter`]: a streamed `FeatureCollection`, footprints as counter-clockwise polygons |
//! | `csv.rs` | [`CsvWriter`]: RFC 4180 rows, footprints as WKT polygons |
//! | `jsonl.rs` | [`JsonlWriter`]: one JSON object per row, footprints as `GeoJSON` geometry |
//! | `geoparquet.rs` | [`GeoParquetWriter`]: `GeoParquet` 1.1, WKB geometry, bbox covering, embeddings as a fixed-size list (feature `parquet`) |
//! | `stac.rs` | [`stac_collection`]: a STAC Collection for an exported file, with the collection's provenance as `emb:` fields |
//! | `file.rs` | [`FileExport`]: an output file that appears only when complete |
//! | `products.rs` | [`products::ProductReader`]: embedding products (`GeoParquet` or Parquet with an embedding column) read back as records, streamed (feature `parquet`) |
//! | `collection.rs` | [`export_collection`]: every live row passing a filter, streamed through a writer into a file |
//!
//! Invariants:
//! - every writer is streamed: memory does not grow with the number of rows (`GeoParquet`
//!   holds one row group of bounded size);
//! - a footprint is written as the polygon of its bbox, exterior ring counter-clockwise, longitude
//!   before latitude, closed; there is no CRS member (WGS84 longitude/latitude is implied);
//! - a file written by [`export_collection`] appears under its name only when complete (written
//!   beside it, then renamed).

mod collection;
mod columns;
mod csv;
mod file;
mod geojson;
#[cfg(feature = "parquet")]
mod geoparquet;
mod jsonl;
#[cfg(feature = "parquet")]
pub mod products;
mod stac;

pub use collection::{ExportOptions, ExportSummary, export_collection, stac_path};
pub use columns::{Columns, ExportRow, FOOTPRINT_FIELD, bbox_ring, wkt_polygon};
pub use csv::CsvWriter;
pub use file::FileExport;
pub use geojson::GeoJsonWriter;
#[cfg(feature = "parquet")]
pub use geoparquet::{GeoParquetWriter, TYPE_METADATA_KEY, geo_metadata};
pub use jsonl::JsonlWriter;
pub use stac::{EMB_METADATA_KEY, EmbeddingInfo, StacExtent, stac_collection};

use std::io::Write;

use crate::error::{Error, Result};

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A `GeoJSON` `FeatureCollection` (RFC 7946).
    GeoJson,
    /// `GeoParquet` 1.1 (feature `parquet`).
    GeoParquet,
    /// CSV with a header row (RFC 4180).
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Parses `geojson`, `geoparquet` (or `parquet`), `csv`, `jsonl`.
    pub fn parse(s: &str) -> Result<Format> {
        match s.to_ascii_lowercase().as_str() {
            "geojson" => Ok(Format::GeoJson),
            "geoparquet" | "parquet" => Ok(Format::GeoParquet),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            other => {
                Err(Error::Invalid(format!("unknown export format {other:?}; use geojson, geoparquet, csv or jsonl")))
            }
        }
    }

    /// The lower-case name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::GeoJson => "geojson",
            Format::GeoParquet => "geoparquet",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    /// Whether the format is binary (it needs an output file, not a terminal).
    #[must_use]
    pub fn is_binary(self) -> bool {
        self == Format::GeoParquet
    }
}

/// A streamed writer of export rows.
pub trait RowWriter {
    /// Writes one row.
    fn write_row(&mut self, row: &ExportRow<'_>) -> Result<()>;
    /// Ends the file (footers, metadata) and flushes it. Returns the rows written.
    fn finish(self: Box<Self>) -> Result<u64>;
}

/// A writer of `format` into `out` for rows of `columns`; `metadata` goes into the file
/// metadata where the format has some (`GeoParquet`).
pub fn writer(
    format: Format,
    columns: Columns,
    out: Box<dyn Write + Send>,
    metadata: &[(String, String)],
) -> Result<Box<dyn RowWriter>> {
    Ok(match format {
        Format::GeoJson => Box::new(GeoJsonWriter::new(out, columns)?),
        Format::Csv => Box::new(CsvWriter::new(out, columns)?),
        Format::Jsonl => Box::new(JsonlWriter::new(out, columns)),
        #[cfg(feature = "parquet")]
        Format::GeoParquet => {
            let mut w = GeoParquetWriter::new(out, columns)?;
            for (k, v) in metadata {
                w.set_metadata(k.clone(), v.clone());
            }
            Box::new(w)
        }
        #[cfg(not(feature = "parquet"))]
        Format::GeoParquet => {
            let _ = metadata;
            return Err(Error::Invalid(
                "this build of skysift has no GeoParquet support; rebuild with the `parquet` feature".into(),
            ));
        }
    })
}

/// The embedding column of exported files (`GeoParquet`, JSON lines, CSV).
pub const VECTOR_COLUMN: &str = "vector";

/// An I/O error while writing an export, as the crate's error.
pub(crate) fn write_error(e: &std::io::Error) -> Error {
    Error::Invalid(format!("writing the export failed: {e}; check that the output's disk has room and is writable"))
}
