//! Presentation: how results and values reach people and programs, in one place for the CLI, the
//! REPL, the gallery, the exporters and the Python package.
//!
//! - [`Answer`] and [`AnswerRow`]: the results of one query;
//! - [`key_fields`]: the fields worth a one-line result (no bookkeeping, no blobs);
//! - [`display_value`] for people, [`json_value`] for programs;
//! - [`clean`] (one line) and [`clean_lines`] (a message): every control character escaped, so
//!   stored text cannot drive a terminal; [`html_escape`] for pages;
//! - [`render_table`] and [`answer_json`]: an answer as the table the CLI and the REPL print, and as
//!   the JSON object of `--json`.
//!
//! Invariant: every string from the database or a query goes through [`clean`], [`clean_lines`] or
//! [`html_escape`] before it is printed or written into a page.

use std::fmt::Write as _;
use std::time::Duration;

use skysift_storage::schema::{FieldType, Value};

use crate::ingest::fields;

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRow {
    /// 1-based rank.
    pub rank: usize,
    /// Record id.
    pub id: u64,
    /// Similarity.
    pub score: f32,
    /// Non-null fields (thumbnail excluded), in schema order.
    pub fields: Vec<(String, Value)>,
    /// The thumbnail, when the record has one.
    pub thumbnail: Option<Vec<u8>>,
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Results, best first.
    pub rows: Vec<AnswerRow>,
    /// Language used for the prompt ensemble, when text was encoded.
    pub language: Option<String>,
    /// Prompts encoded (after templates).
    pub prompts: Vec<String>,
    /// Time to encode the query.
    pub encode_time: Duration,
    /// Time to search.
    pub search_time: Duration,
    /// Notes for the user (fallbacks, detections).
    pub notes: Vec<String>,
}

/// Fields that import keeps for bookkeeping and that result tables leave out.
const BOOKKEEPING: [&str; 12] = [
    fields::SOURCE,
    fields::FORMAT,
    fields::CRS,
    fields::BANDS,
    fields::TILE_INDEX,
    fields::TILE_COUNT,
    fields::FILE_SIZE,
    fields::FILE_HASH,
    fields::TILING,
    "item_id",
    "skysift:generated",
    "description",
];

/// The fields worth showing in a one-line result: everything but bookkeeping and blobs, at most 6.
#[must_use]
pub fn key_fields(fields: &[(String, Value)]) -> Vec<(&str, &Value)> {
    fields
        .iter()
        .filter(|(n, v)| !BOOKKEEPING.contains(&n.as_str()) && !matches!(v, Value::Blob(_)))
        .map(|(n, v)| (n.as_str(), v))
        .take(6)
        .collect()
}

/// The key fields as `name=value` pairs on one line, cleaned.
#[must_use]
pub fn key_fields_line(fields: &[(String, Value)]) -> String {
    let pairs: Vec<String> = key_fields(fields).into_iter().map(|(n, v)| format!("{n}={}", display_value(v))).collect();
    clean(&pairs.join(" "))
}

/// Formats a value for people.
#[must_use]
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Keyword(s) | Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Timestamp(t) => crate::time::format_timestamp(*t),
        Value::Bool(b) => b.to_string(),
        Value::GeoBbox(b) => format!("[{:.4}, {:.4}, {:.4}, {:.4}]", b[0], b[1], b[2], b[3]),
        Value::Window(w) => format!("{}x{}+{}+{}", w[2], w[3], w[0], w[1]),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// A value as JSON.
#[must_use]
pub fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Keyword(s) | Value::Text(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Timestamp(t) => serde_json::Value::String(crate::time::format_timestamp(*t)),
        Value::Bool(b) => (*b).into(),
        Value::GeoBbox(b) => serde_json::json!(b),
        Value::Window(w) => serde_json::json!(w),
        Value::Blob(b) => serde_json::json!({ "bytes": b.len() }),
    }
}

/// Fields as a JSON object, names to [`json_value`]s.
#[must_use]
pub fn json_fields(fields: &[(String, Value)]) -> serde_json::Map<String, serde_json::Value> {
    fields.iter().map(|(n, v)| (n.clone(), json_value(v))).collect()
}

/// Field types shown in result tables (everything but blobs).
#[must_use]
pub fn shown(ty: FieldType) -> bool {
    ty != FieldType::Blob
}

/// Escapes every control character (line breaks too), so that stored text cannot drive the
/// terminal or break a table row: for one-line values.
#[must_use]
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`clean`] line by line, the line breaks kept: for messages of several lines (errors with a
/// caret line, descriptions).
#[must_use]
pub fn clean_lines(s: &str) -> String {
    s.split('\n').map(|l| clean(l.strip_suffix('\r').unwrap_or(l))).collect::<Vec<_>>().join("\n")
}

/// Escapes text for HTML; control characters are dropped.
#[must_use]
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Renders an answer as the table the CLI and the REPL print (no trailing newline).
pub fn render_table(out: &mut String, a: &Answer) {
    if a.rows.is_empty() {
        out.push_str("no results\n");
    }
    let _ = writeln!(out, "{:>4}  {:>7}  {:>12}  {:<40}  fields", "rank", "score", "id", "source");
    for r in &a.rows {
        let source =
            r.fields.iter().find(|(n, _)| n == fields::SOURCE).map_or(String::new(), |(_, v)| display_value(v));
        let _ = writeln!(
            out,
            "{:>4}  {:>7.4}  {:>12}  {:<40}  {}",
            r.rank,
            r.score,
            r.id,
            clean(&source),
            key_fields_line(&r.fields)
        );
    }
    let lang = a.language.as_deref().map_or(String::new(), |l| format!("language {l}, "));
    let _ = writeln!(
        out,
        "{} results ({lang}{} prompts; encode {:.1} ms, search {:.1} ms)",
        a.rows.len(),
        a.prompts.len(),
        a.encode_time.as_secs_f64() * 1e3,
        a.search_time.as_secs_f64() * 1e3
    );
    for n in &a.notes {
        for line in n.lines() {
            let _ = writeln!(out, "note: {}", clean(line));
        }
    }
    if out.ends_with('\n') {
        out.pop();
    }
}

/// An answer as one JSON object (`--json`, `--file`).
#[must_use]
pub fn answer_json(query: &str, a: &Answer) -> serde_json::Value {
    serde_json::json!({
        "query": query,
        "language": a.language,
        "prompts": a.prompts,
        "encode_ms": a.encode_time.as_secs_f64() * 1e3,
        "search_ms": a.search_time.as_secs_f64() * 1e3,
        "results": a.rows.iter().map(|r| serde_json::json!({
            "rank": r.rank, "id": r.id, "score": r.score, "fields": json_fields(&r.fields),
        })).collect::<Vec<_>>(),
        "notes": a.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_clean_for_lines_and_messages() {
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("two\nlines\tand\u{7}"), "two\\nlines\\tand\\u{7}");
        assert_eq!(clean_lines("bad filter\r\n   ^ here\u{1b}"), "bad filter\n   ^ here\\u{1b}");
        assert_eq!(html_escape("<b a='1'>&\u{1b}</b>"), "&lt;b a=&#39;1&#39;&gt;&amp;&lt;/b&gt;");
    }

    #[test]
    fn tables_leave_out_bookkeeping_and_blobs() {
        let fields = vec![
            (fields::SOURCE.to_owned(), Value::Text("a/b.tif".into())),
            (fields::FILE_HASH.to_owned(), Value::Text("00".into())),
            ("class".to_owned(), Value::Keyword("Port\n\u{1b}[1m".into())),
            ("thumb".to_owned(), Value::Blob(vec![1, 2])),
        ];
        assert_eq!(key_fields_line(&fields), "class=Port\\n\\u{1b}[1m");
        let a = Answer {
            rows: vec![AnswerRow { rank: 1, id: 7, score: 0.5, fields, thumbnail: None }],
            language: Some("en".into()),
            prompts: vec!["a port".into()],
            encode_time: Duration::ZERO,
            search_time: Duration::ZERO,
            notes: vec!["first\nsecond".into()],
        };
        let mut t = String::new();
        render_table(&mut t, &a);
        assert!(t.contains("a/b.tif") && t.contains("note: first\nnote: second") && !t.contains('\u{1b}'), "{t}");
        let j = answer_json("q", &a);
        assert_eq!(j["results"][0]["fields"]["class"], "Port\n\u{1b}[1m");
    }
}
