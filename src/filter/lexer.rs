//! Tokens of the filter language, each with its byte span in the source.
//!
//! Identifiers are ASCII letters, digits, `_`, `:`, `.` and `-`, starting with a letter or `_`
//! (the schema's field-name rule); any other name is written in double quotes (`"a b"`, a quote
//! inside doubled). Keywords are case-insensitive. Strings use single quotes (`'it''s'`).
//! Numbers: `-?(digits[.digits] | .digits)([eE][+-]?digits)?`; without `.` or exponent they are
//! integers.

use std::ops::Range;

use super::error::FilterError;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare identifier that is not a keyword (field or function name).
    Ident(String),
    /// A double-quoted identifier.
    Quoted(String),
    /// A keyword, upper-cased: AND OR NOT IN BETWEEN IS NULL TRUE FALSE.
    Keyword(&'static str),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A single-quoted string.
    Str(String),
    /// `=`, `==`, `!=`, `<>`, `<`, `<=`, `>`, `>=`.
    Op(&'static str),
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// End of input.
    End,
}

impl Tok {
    /// How the token is named in "expected …, found …" messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Quoted(s) => format!("\"{s}\""),
            Tok::Keyword(k) => (*k).to_string(),
            Tok::Int(v) => format!("the number {v}"),
            Tok::Float(v) => format!("the number {v}"),
            Tok::Str(s) => format!("the string '{s}'"),
            Tok::Op(o) => format!("`{o}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::End => "the end of the filter".into(),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Kind and value.
    pub tok: Tok,
    /// Byte range in the source.
    pub span: Range<usize>,
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.' | b'-')
}

/// Splits `src` into tokens, ending with [`Tok::End`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, FilterError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    while i < b.len() {
        let c = at(i);
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = if ident_start(c) {
            while i < b.len() && ident_char(at(i)) {
                i += 1;
            }
            let word = src.get(start..i).unwrap_or("");
            match super::ast::KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(word)) {
                Some(k) => Tok::Keyword(k),
                None => Tok::Ident(word.to_owned()),
            }
        } else if c.is_ascii_digit() || c == b'.' || (c == b'-' && (at(i + 1).is_ascii_digit() || at(i + 1) == b'.')) {
            i = number_end(b, i);
            let text = src.get(start..i).unwrap_or("");
            let is_float = text.contains(['.', 'e', 'E']);
            if is_float {
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Tok::Float(v),
                    _ => return Err(FilterError::at(src, start..i, format!("`{text}` is not a finite number"))),
                }
            } else {
                match text.parse::<i64>() {
                    Ok(v) => Tok::Int(v),
                    Err(_) => {
                        return Err(FilterError::at(
                            src,
                            start..i,
                            format!("integer {text} is out of range (64-bit signed)"),
                        ));
                    }
                }
            }
        } else if c == b'\'' || c == b'"' {
            let quote = c;
            i += 1;
            let mut s = Vec::new();
            loop {
                if i >= b.len() {
                    let what = if quote == b'\'' { "string" } else { "quoted name" };
                    return Err(FilterError::at(src, start..b.len(), format!("unterminated {what}"))
                        .expected(format!("a closing {}", quote as char)));
                }
                if at(i) == quote {
                    if at(i + 1) == quote {
                        s.push(quote);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(at(i));
                i += 1;
            }
            let s = String::from_utf8(s).unwrap_or_default();
            if quote == b'\'' { Tok::Str(s) } else { Tok::Quoted(s) }
        } else {
            let two = src.get(i..i + 2).unwrap_or("");
            let (tok, len) = match two {
                "==" => (Tok::Op("="), 2),
                "!=" | "<>" => (Tok::Op("!="), 2),
                "<=" => (Tok::Op("<="), 2),
                ">=" => (Tok::Op(">="), 2),
                _ => match c {
                    b'=' => (Tok::Op("="), 1),
                    b'<' => (Tok::Op("<"), 1),
                    b'>' => (Tok::Op(">"), 1),
                    b'(' => (Tok::LParen, 1),
                    b')' => (Tok::RParen, 1),
                    b',' => (Tok::Comma, 1),
                    _ => {
                        let ch = src.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                        return Err(FilterError::at(src, i..i + ch.len_utf8(), format!("unexpected character {ch:?}"))
                            .expected("a field name, a value, an operator or a parenthesis"));
                    }
                },
            };
            i += len;
            tok
        };
        out.push(Token { tok, span: start..i });
    }
    out.push(Token { tok: Tok::End, span: b.len()..b.len() });
    Ok(out)
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    if at(i) == b'-' {
        i += 1;
    }
    while at(i).is_ascii_digit() {
        i += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while at(i).is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(at(i), b'e' | b'E') {
        let mut j = i + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            while at(j).is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            kinds("eo:cloud <= -1.5e3 and \"a b\" <> 'it''s'"),
            vec![
                Tok::Ident("eo:cloud".into()),
                Tok::Op("<="),
                Tok::Float(-1500.0),
                Tok::Keyword("AND"),
                Tok::Quoted("a b".into()),
                Tok::Op("!="),
                Tok::Str("it's".into()),
                Tok::End
            ]
        );
        assert_eq!(
            kinds("x=-9223372036854775808"),
            vec![Tok::Ident("x".into()), Tok::Op("="), Tok::Int(i64::MIN), Tok::End]
        );
        assert!(tokenize("x = 99999999999999999999").is_err());
        assert!(tokenize("x = 'open").is_err());
        assert!(tokenize("x ; 1").is_err());
        assert!(tokenize("x = 1e999").is_err());
    }
}
