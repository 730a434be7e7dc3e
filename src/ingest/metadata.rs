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

/// Fields that map to reserved columns.
const RESERVED: [&str; 3] = ["source", "scene", "window"];

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

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Parses `YYYY-MM-DD` or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a missing zone is
/// UTC) to microseconds since 1970-01-01T00:00:00Z.
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let date = s.get(..10)?;
    let (y, m, d) = (digits(date.get(..4)?)?, digits(date.get(5..7)?)?, digits(date.get(8..10)?)?);
    if date.as_bytes().get(4) != Some(&b'-') || date.as_bytes().get(7) != Some(&b'-') || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if d < 1 || d > *mdays.get((m - 1) as usize)? {
        return None;
    }
    let mut micros = days_from_civil(y, m, d) * 86_400_000_000;
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return Some(micros);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hh, mm, ss) = (digits(rest.get(..2)?)?, digits(rest.get(3..5)?)?, digits(rest.get(6..8)?)?);
    if rest.as_bytes().get(2) != Some(&b':') || rest.as_bytes().get(5) != Some(&b':') || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    micros += ((hh * 60 + mm) * 60 + ss) * 1_000_000;
    let mut tail = rest.get(8..)?;
    if let Some(frac) = tail.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let f = frac.get(..n)?;
        let mut us = 0i64;
        for (i, c) in f.bytes().take(6).enumerate() {
            us += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        micros += us;
        tail = frac.get(n..)?;
    }
    match tail {
        "" | "Z" | "z" => Some(micros),
        z => {
            let sign = match z.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (digits(z.get(1..3)?)?, digits(z.get(4..6)?)?);
            if z.len() != 6 || z.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            Some(micros - sign * (oh * 3600 + om * 60) * 1_000_000)
        }
    }
}

/// Formats microseconds since 1970 as RFC 3339 UTC.
#[must_use]
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1970-01-02T00:00:01Z"), Some(86_401_000_000));
        assert_eq!(parse_timestamp("2021-06-01T12:00:00+02:00"), parse_timestamp("2021-06-01T10:00:00Z"));
        assert_eq!(parse_timestamp("2020-02-30"), None);
        assert_eq!(parse_timestamp("Port"), None);
        assert_eq!(
            parse_timestamp("2021-06-01T10:00:00.5Z"),
            Some(parse_timestamp("2021-06-01T10:00:00Z").unwrap() + 500_000)
        );
        for t in ["2021-06-01T10:00:00Z", "1969-12-31T23:59:59Z", "2000-02-29T00:00:00Z"] {
            assert_eq!(format_timestamp(parse_timestamp(t).unwrap()), t);
        }
    }

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
