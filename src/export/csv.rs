//! [`CsvWriter`]: RFC 4180 CSV with a header row: `id`, `rank` and `score` for results, the field
//! columns in schema order, then `footprint_wkt` (the footprint as a WKT polygon,
//! counter-clockwise, longitude first; empty without one). Timestamps are RFC 3339 text, bboxes of
//! other fields and windows are JSON arrays, vectors (when carried) a JSON array in `vector`.

use std::io::Write;

use super::columns::{Columns, ExportRow, wkt_polygon};
use super::{RowWriter, write_error};
use crate::error::Result;
use crate::present::json_value;
use skysift_storage::schema::Value;

/// A streamed CSV writer.
pub struct CsvWriter<W: Write> {
    out: W,
    columns: Columns,
    rows: u64,
    line: String,
}

impl<W: Write> std::fmt::Debug for CsvWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvWriter").field("rows", &self.rows).finish_non_exhaustive()
    }
}

/// Appends `s` as one CSV cell: quoted (quotes doubled) when it holds a comma, a quote or a line
/// break.
fn push_cell(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Keyword(s) | Value::Text(s) => s.clone(),
        other => match json_value(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header row.
    pub fn new(mut out: W, columns: Columns) -> Result<Self> {
        let mut line = String::new();
        let mut names: Vec<&str> = vec!["id"];
        if columns.scored {
            names.extend(["rank", "score"]);
        }
        names.extend(columns.fields.iter().map(|(n, _)| n.as_str()));
        names.push("footprint_wkt");
        if columns.vector_dim.is_some() {
            names.push("vector");
        }
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_cell(&mut line, n);
        }
        line.push_str("\r\n");
        out.write_all(line.as_bytes()).map_err(|e| write_error(&e))?;
        Ok(CsvWriter { out, columns, rows: 0, line })
    }
}

impl<W: Write> RowWriter for CsvWriter<W> {
    fn write_row(&mut self, row: &ExportRow<'_>) -> Result<()> {
        let line = &mut self.line;
        line.clear();
        line.push_str(&row.id.to_string());
        if self.columns.scored {
            line.push(',');
            line.push_str(&row.rank.map(|r| r.to_string()).unwrap_or_default());
            line.push(',');
            line.push_str(&row.score.map(|s| s.to_string()).unwrap_or_default());
        }
        for v in self.columns.values(row) {
            line.push(',');
            if let Some(v) = v {
                push_cell(line, &cell_text(v));
            }
        }
        line.push(',');
        if let Some(b) = row.footprint() {
            push_cell(line, &wkt_polygon(b));
        }
        if self.columns.vector_dim.is_some() {
            line.push(',');
            if let Some(v) = row.vector {
                push_cell(line, &serde_json::json!(v).to_string());
            }
        }
        line.push_str("\r\n");
        self.out.write_all(line.as_bytes()).map_err(|e| write_error(&e))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.out.flush().map_err(|e| write_error(&e))?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::push_cell;

    #[test]
    fn quotes_only_when_needed() {
        let mut s = String::new();
        push_cell(&mut s, "plain");
        s.push('|');
        push_cell(&mut s, "a,\"b\"\nc");
        assert_eq!(s, "plain|\"a,\"\"b\"\"\nc\"");
    }
}
