//! `FilterError`: what is wrong with a filter, where, and what was expected.
//!
//! Rendered with the source line and a caret under the offending span:
//!
//! ```text
//! unknown field `clas` at column 1
//!   clas = 'Port' AND year > 2019
//!   ^^^^
//!   did you mean `class`? fields: class, year, cloud_cover, id, ...
//! ```

use std::fmt;
use std::ops::Range;

/// A filter that does not parse or does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// What is wrong.
    pub message: String,
    /// What would have been accepted at that point, when known.
    pub expected: Option<String>,
    /// A hint (closest field name, the right syntax).
    pub help: Option<String>,
    /// Byte span of the offending text in `source`.
    pub span: Option<Range<usize>>,
    /// The filter text, when the filter was parsed from text.
    pub source: Option<String>,
}

impl std::error::Error for FilterError {}

impl From<FilterError> for crate::error::Error {
    fn from(e: FilterError) -> Self {
        crate::error::Error::Filter(Box::new(e))
    }
}

impl FilterError {
    /// An error without a position (filters built as an AST).
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        FilterError { message: message.into(), expected: None, help: None, span: None, source: None }
    }

    /// An error at `span` of `source`.
    #[must_use]
    pub fn at(source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        FilterError {
            message: message.into(),
            expected: None,
            help: None,
            span: Some(span),
            source: Some(source.to_owned()),
        }
    }

    /// Adds what was expected.
    #[must_use]
    pub fn expected(mut self, what: impl Into<String>) -> Self {
        self.expected = Some(what.into());
        self
    }

    /// Adds a hint.
    #[must_use]
    pub fn help(mut self, hint: impl Into<String>) -> Self {
        self.help = Some(hint.into());
        self
    }

    /// Places an error found without a position at `span` of `source` (when it has none yet).
    #[must_use]
    pub fn located(mut self, source: &str, span: Option<Range<usize>>) -> Self {
        if self.span.is_none() && span.is_some() {
            self.span = span;
            self.source = Some(source.to_owned());
        }
        self
    }

    /// 1-based line and column (in characters) of the start of the span.
    #[must_use]
    pub fn line_col(&self) -> Option<(usize, usize)> {
        let (src, span) = (self.source.as_deref()?, self.span.as_ref()?);
        let before = src.get(..span.start.min(src.len()))?;
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, col))
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(e) = &self.expected {
            write!(f, "; expected {e}")?;
        }
        if let (Some(src), Some(span), Some((line, col))) = (&self.source, &self.span, self.line_col()) {
            if src.contains('\n') {
                write!(f, " at line {line}, column {col}")?;
            } else {
                write!(f, " at column {col}")?;
            }
            let text = src.lines().nth(line - 1).unwrap_or("");
            let start = col - 1;
            let width = src
                .get(span.start..span.end.min(span.start + text.len()))
                .map_or(1, |s| s.split('\n').next().map_or(1, |s| s.chars().count().max(1)));
            write!(f, "\n  {text}\n  {}{}", " ".repeat(start), "^".repeat(width))?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n  {h}")?;
        }
        Ok(())
    }
}

/// Levenshtein distance (in characters, case-insensitive).
#[must_use]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        if let Some(c0) = cur.first_mut() {
            *c0 = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// The candidate closest to `name`, when it is close enough to be a likely typo.
#[must_use]
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= (name.chars().count().max(c.chars().count()) / 2).max(1) + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestion() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("clas", ["year", "class", "cloud"]), Some("class"));
        assert_eq!(closest("zzzzzz", ["year", "class"]), None);
    }

    #[test]
    fn caret_under_the_span() {
        let e = FilterError::at("year > 'x'", 7..10, "bad value").expected("a number");
        assert_eq!(e.to_string(), "bad value; expected a number at column 8\n  year > 'x'\n         ^^^");
    }
}
