//! JSON-lines metadata: one object per row, typed by inference or by the caller.
//!
//! Inference (every row is read once before anything is written):
//! - `id` (non-negative integer) is the record id; `source` (string), `scene` (string) and
//!   `window` (`[x, y, w, h]`) fill the reserved fields;
//! - a string field is a `timestamp` when every value parses as RFC 3339 or `YYYY-MM-DD`,
//!   otherwise a `keyword`;
//! - integers are `integer`, unless some row holds a fraction (then `float`); `true`/`false`
//!   are `bool`; an array of four numbers is a `geo_bbox` `[min_lon, min_lat, max_lon, max_lat]`;
//! - `null` is a missing value; nested objects and other arrays are refused with the line
//!   and field named.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use skysift_storage::schema::{FieldType, Value};

use crate::error::{Error, Result};
use crate::time::parse_timestamp;

/// Fields that map to reserved columns.
const RESERVED: [&str; 3] = super::fields::RESERVED_COLUMNS;

/// Longest metadata line accepted.
pub const MAX_LINE: usize = 16 << 20;

/// What inference found.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// User fields and their types, in first-seen order.
    pub fields: Vec<(String, FieldType)>,
    /// Rows (non-empty lines).
    pub rows: usize,
    /// Whether rows carry an `id`.
    pub has_id: bool,
}

fn kind_of(v: &Json) -> Option<&'static str> {
    Some(match v {
        Json::Null => return None,
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_i64() || n.is_u64() => "int",
        Json::Number(_) => "float",
        Json::String(_) => "string",
        Json::Array(a) if a.len() == 4 && a.iter().all(Json::is_number) => "bbox",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    })
}

fn read_lines(path: &Path) -> Result<Lines<BufReader<File>>> {
    let f = File::open(path).map_err(|e| Error::bad_input(path, format!("cannot open: {e}")))?;
    Ok(BufReader::new(f).lines())
}

fn parse_line(
    path: &Path,
    line_no: usize,
    line: std::io::Result<String>,
) -> Result<Option<serde_json::Map<String, Json>>> {
    let line = line.map_err(|e| Error::bad_input(path, format!("line {line_no}: {e} (is the file UTF-8?)")))?;
    if line.len() > MAX_LINE {
        return Err(Error::bad_input(path, format!("line {line_no}: longer than {MAX_LINE} bytes")));
    }
    if line.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Json>(&line) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(Error::bad_input(path, format!("line {line_no}: expected a JSON object"))),
        Err(e) => Err(Error::bad_input(path, format!("line {line_no}: malformed JSON: {e}"))),
    }
}

/// Reads every row once and infers field types. `overrides` fix types by name.
pub fn infer(path: &Path, overrides: &[(String, FieldType)]) -> Result<Inferred> {
    let mut seen: BTreeMap<String, (usize, Vec<&'static str>, bool)> = BTreeMap::new();
    let mut order = 0usize;
    let mut rows = 0usize;
    let mut has_id = false;
    for (i, line) in read_lines(path)?.enumerate() {
        let line_no = i + 1;
        let Some(obj) = parse_line(path, line_no, line)? else { continue };
        rows += 1;
        for (k, v) in &obj {
            if k == "id" {
                if !v.is_u64() {
                    return Err(Error::bad_input(
                        path,
                        format!("line {line_no}, field \"id\": must be a non-negative integer, got {v}"),
                    ));
                }
                has_id = true;
                continue;
            }
            let Some(kind) = kind_of(v) else { continue };
            if matches!(kind, "object" | "array") && !RESERVED.contains(&k.as_str()) {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "line {line_no}, field {k:?}: nested {kind}s are not supported; flatten it into scalar fields"
                    ),
                ));
            }
            let e = seen.entry(k.clone()).or_insert_with(|| {
                order += 1;
                (order, Vec::new(), true)
            });
            if !e.1.contains(&kind) {
                e.1.push(kind);
            }
            if let Json::String(s) = v
                && parse_timestamp(s).is_none()
            {
                e.2 = false;
            }
        }
    }
    if has_id && rows == 0 {
        has_id = false;
    }
    let mut fields: Vec<(usize, String, FieldType)> = Vec::new();
    for (name, (pos, kinds, all_time)) in seen {
        if RESERVED.contains(&name.as_str()) {
            continue;
        }
        let ty = if let Some((_, t)) = overrides.iter().find(|(n, _)| *n == name) {
            *t
        } else {
            match kinds.as_slice() {
                ["bool"] => FieldType::Bool,
                ["int"] => FieldType::Integer,
                ["int", "float"] | ["float", "int"] | ["float"] => FieldType::Float,
                ["string"] if all_time => FieldType::Timestamp,
                ["string"] => FieldType::Keyword,
                ["bbox"] => FieldType::GeoBbox,
                _ => {
                    return Err(Error::bad_input(
                        path,
                        format!(
                            "field {name:?} holds mixed kinds ({}); give its type with --schema {name}:TYPE",
                            kinds.join(", ")
                        ),
                    ));
                }
            }
        };
        fields.push((pos, name, ty));
    }
    for (name, ty) in overrides {
        if !fields.iter().any(|(_, n, _)| n == name) && !RESERVED.contains(&name.as_str()) {
            fields.push((usize::MAX, name.clone(), *ty));
        }
    }
    fields.sort_by_key(|(p, _, _)| *p);
    Ok(Inferred { fields: fields.into_iter().map(|(_, n, t)| (n, t)).collect(), rows, has_id })
}

/// Converts a JSON value to a typed value of `ty`.
pub fn convert(name: &str, ty: FieldType, v: &Json) -> std::result::Result<Option<Value>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let want = |what: &str| format!("field {name:?} is {}, got {v} ({what} expected)", ty.name());
    Ok(Some(match ty {
        FieldType::Keyword => Value::Keyword(v.as_str().ok_or_else(|| want("a string"))?.to_owned()),
        FieldType::Text => Value::Text(v.as_str().ok_or_else(|| want("a string"))?.to_owned()),
        FieldType::Integer => Value::Integer(v.as_i64().ok_or_else(|| want("an integer"))?),
        FieldType::Float => Value::Float(v.as_f64().ok_or_else(|| want("a number"))?),
        FieldType::Bool => Value::Bool(v.as_bool().ok_or_else(|| want("true or false"))?),
        FieldType::Timestamp => match v {
            Json::String(s) => {
                Value::Timestamp(parse_timestamp(s).ok_or_else(|| want("an RFC 3339 time or YYYY-MM-DD"))?)
            }
            Json::Number(n) => {
                Value::Timestamp(n.as_i64().ok_or_else(|| want("seconds since 1970"))?.saturating_mul(1_000_000))
            }
            _ => return Err(want("a time")),
        },
        FieldType::GeoBbox => {
            let a =
                v.as_array().filter(|a| a.len() == 4).ok_or_else(|| want("[min_lon, min_lat, max_lon, max_lat]"))?;
            let mut b = [0.0; 4];
            for (slot, x) in b.iter_mut().zip(a) {
                *slot = x.as_f64().ok_or_else(|| want("four numbers"))?;
            }
            Value::GeoBbox(b)
        }
        FieldType::Window => {
            let a = v.as_array().filter(|a| a.len() == 4).ok_or_else(|| want("[x, y, w, h]"))?;
            let mut w = [0u32; 4];
            for (slot, x) in w.iter_mut().zip(a) {
                *slot =
                    x.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| want("four non-negative integers"))?;
            }
            Value::Window(w)
        }
        FieldType::Blob => return Err(format!("field {name:?} is a blob and cannot be loaded from JSON")),
    }))
}

/// One metadata row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line number.
    pub line: usize,
    /// The `id`, when given.
    pub id: Option<u64>,
    /// Typed values by field name.
    pub fields: Vec<(String, Value)>,
}

/// Streams typed rows.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    lines: Lines<BufReader<File>>,
    line_no: usize,
    types: BTreeMap<String, FieldType>,
}

impl Reader {
    /// Opens `path` with the schema's field types (user fields and reserved ones).
    pub fn open(path: &Path, fields: &[(String, FieldType)]) -> Result<Reader> {
        Ok(Reader {
            path: path.to_path_buf(),
            lines: read_lines(path)?,
            line_no: 0,
            types: fields.iter().cloned().collect(),
        })
    }

    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            let Some(line) = self.lines.next() else { return Ok(None) };
            self.line_no += 1;
            let Some(obj) = parse_line(&self.path, self.line_no, line)? else { continue };
            let mut row = Row { line: self.line_no, id: None, fields: Vec::new() };
            for (k, v) in obj {
                if k == "id" {
                    row.id = Some(v.as_u64().ok_or_else(|| {
                        Error::bad_input(
                            &self.path,
                            format!("line {}: \"id\" must be a non-negative integer", self.line_no),
                        )
                    })?);
                    continue;
                }
                let Some(ty) = self.types.get(&k) else {
                    return Err(Error::bad_input(
                        &self.path,
                        format!(
                            "line {}: unknown field {k:?}; the collection has: {}",
                            self.line_no,
                            self.types.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                };
                let value = convert(&k, *ty, &v)
                    .map_err(|r| Error::bad_input(&self.path, format!("line {}: {r}", self.line_no)))?;
                if let Some(value) = value {
                    row.fields.push((k, value));
                }
            }
            return Ok(Some(row));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_and_errors_name_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(&p, "{\"id\": 1, \"class\": \"Port\", \"year\": 2020, \"cc\": 1, \"when\": \"2021-01-01\", \"b\": [1,2,3,4], \"ok\": true}\n\n{\"id\": 2, \"class\": null, \"cc\": 2.5}\n").unwrap();
        let inf = infer(&p, &[]).unwrap();
        assert_eq!(inf.rows, 2);
        assert!(inf.has_id);
        assert_eq!(
            inf.fields,
            vec![
                ("b".into(), FieldType::GeoBbox),
                ("cc".into(), FieldType::Float),
                ("class".into(), FieldType::Keyword),
                ("ok".into(), FieldType::Bool),
                ("when".into(), FieldType::Timestamp),
                ("year".into(), FieldType::Integer),
            ]
        );
        std::fs::write(&p, "{\"a\": 1}\n{\"a\": \"x\"}\n").unwrap();
        assert!(infer(&p, &[]).unwrap_err().to_string().contains("mixed kinds"));
        std::fs::write(&p, "{\"a\": 1}\n{\"a\": 2\n").unwrap();
        assert!(infer(&p, &[]).unwrap_err().to_string().contains("line 2"));
        let mut r = Reader::open(&p, &[("a".into(), FieldType::Integer)]).unwrap();
        r.next_row().unwrap().unwrap();
        assert!(r.next_row().unwrap_err().to_string().contains("line 2: malformed JSON"));
        std::fs::write(&p, "{\"zz\": 1}\n").unwrap();
        let mut r = Reader::open(&p, &[("a".into(), FieldType::Integer)]).unwrap();
        assert!(r.next_row().unwrap_err().to_string().contains("unknown field \"zz\""));
    }
}
