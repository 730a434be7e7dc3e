//! [`GeoJsonWriter`]: a `FeatureCollection` (RFC 7946) written feature by feature.
//!
//! Each feature: `id` (the record id), `geometry` (the footprint's polygon, exterior ring
//! counter-clockwise, `[lon, lat]`; `null` without a footprint), `bbox`, and `properties`: `id`,
//! `rank` and `score` for results, then every field column (timestamps as RFC 3339 text). No `crs`
//! member: RFC 7946 coordinates are WGS84 longitude/latitude.

use std::io::Write;

use super::columns::{Columns, ExportRow, geojson_polygon};
use super::{RowWriter, write_error};
use crate::error::Result;
use crate::present::json_value;

/// A streamed `GeoJSON` `FeatureCollection`.
pub struct GeoJsonWriter<W: Write> {
    out: W,
    columns: Columns,
    rows: u64,
}

impl<W: Write> std::fmt::Debug for GeoJsonWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoJsonWriter").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl<W: Write> GeoJsonWriter<W> {
    /// Starts the collection.
    pub fn new(mut out: W, columns: Columns) -> Result<Self> {
        out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[").map_err(|e| write_error(&e))?;
        Ok(GeoJsonWriter { out, columns, rows: 0 })
    }
}

/// The properties of a row: id, rank, score, then the field columns that are not null.
pub(crate) fn properties(columns: &Columns, row: &ExportRow<'_>) -> serde_json::Map<String, serde_json::Value> {
    let mut p = serde_json::Map::new();
    p.insert("id".into(), row.id.into());
    if let Some(r) = row.rank {
        p.insert("rank".into(), r.into());
    }
    if let Some(s) = row.score {
        p.insert(
            "score".into(),
            serde_json::Number::from_f64(f64::from(s)).map_or(serde_json::Value::Null, Into::into),
        );
    }
    for ((name, _), v) in columns.fields.iter().zip(columns.values(row)) {
        if let Some(v) = v {
            p.insert(name.clone(), json_value(v));
        }
    }
    p
}

impl<W: Write> RowWriter for GeoJsonWriter<W> {
    fn write_row(&mut self, row: &ExportRow<'_>) -> Result<()> {
        let fp = row.footprint();
        let mut feature = serde_json::Map::new();
        feature.insert("type".into(), "Feature".into());
        feature.insert("id".into(), row.id.into());
        if let Some(b) = fp {
            feature.insert("bbox".into(), serde_json::json!(b));
        }
        feature.insert("geometry".into(), fp.map_or(serde_json::Value::Null, geojson_polygon));
        feature.insert("properties".into(), properties(&self.columns, row).into());
        if self.rows > 0 {
            self.out.write_all(b",").map_err(|e| write_error(&e))?;
        }
        self.out.write_all(b"\n").map_err(|e| write_error(&e))?;
        serde_json::to_writer(&mut self.out, &serde_json::Value::Object(feature))
            .map_err(|e| write_error(&std::io::Error::other(e)))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.out.write_all(b"\n]}\n").map_err(|e| write_error(&e))?;
        self.out.flush().map_err(|e| write_error(&e))?;
        Ok(self.rows)
    }
}
