//! [`JsonlWriter`]: one JSON object per row, the shape of `skysift query --json` results
//! (`rank`, `id`, `score`, `fields`) plus `geometry` (the footprint as a `GeoJSON` polygon, or
//! `null`) and `vector` when the export carries vectors.

use std::io::Write;

use super::columns::{Columns, ExportRow, geojson_polygon};
use super::{RowWriter, write_error};
use crate::error::Result;
use crate::present::json_value;

/// A streamed JSON-lines writer.
pub struct JsonlWriter<W: Write> {
    out: W,
    columns: Columns,
    rows: u64,
}

impl<W: Write> std::fmt::Debug for JsonlWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlWriter").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl<W: Write> JsonlWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W, columns: Columns) -> Self {
        JsonlWriter { out, columns, rows: 0 }
    }
}

impl<W: Write> RowWriter for JsonlWriter<W> {
    fn write_row(&mut self, row: &ExportRow<'_>) -> Result<()> {
        let mut o = serde_json::Map::new();
        if let Some(r) = row.rank {
            o.insert("rank".into(), r.into());
        }
        o.insert("id".into(), row.id.into());
        if let Some(s) = row.score {
            o.insert(
                "score".into(),
                serde_json::Number::from_f64(f64::from(s)).map_or(serde_json::Value::Null, Into::into),
            );
        }
        let fields: serde_json::Map<String, serde_json::Value> = self
            .columns
            .fields
            .iter()
            .zip(self.columns.values(row))
            .filter_map(|((n, _), v)| v.map(|v| (n.clone(), json_value(v))))
            .collect();
        o.insert("fields".into(), fields.into());
        o.insert("geometry".into(), row.footprint().map_or(serde_json::Value::Null, geojson_polygon));
        if self.columns.vector_dim.is_some()
            && let Some(v) = row.vector
        {
            o.insert("vector".into(), serde_json::json!(v));
        }
        serde_json::to_writer(&mut self.out, &serde_json::Value::Object(o))
            .map_err(|e| write_error(&std::io::Error::other(e)))?;
        self.out.write_all(b"\n").map_err(|e| write_error(&e))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.out.flush().map_err(|e| write_error(&e))?;
        Ok(self.rows)
    }
}
