//! Recursive-descent parser: text to [`Expr`], with the spans the type checker points at.
//!
//! ```text
//! filter    := or
//! or        := and (OR and)*                      left-associative
//! and       := not (AND not)*                     left-associative
//! not       := NOT not | primary
//! primary   := '(' or ')' | geo | predicate
//! geo       := (intersects | within) '(' field ',' shape ')'
//! shape     := bbox '(' num ',' num ',' num ',' num ')' | polygon '(' '(' num num (',' num num)* ')' ')'
//! predicate := field ( cmp literal | [NOT] BETWEEN literal AND literal | [NOT] IN '(' literal (',' literal)* ')'
//!                    | IS [NOT] NULL | <nothing: a bool field> )
//! literal   := integer | float | 'string' | TRUE | FALSE
//! ```
//!
//! Invariant: nesting (parentheses, `NOT`, chains of `AND`/`OR`) is at most [`MAX_DEPTH`] deep,
//! so that every recursive walk of a parsed AST is bounded.

use std::ops::Range;

use super::ast::{CmpOp, Expr, GeoOp, Literal, Shape};
use super::error::FilterError;
use super::lexer::{Tok, Token, tokenize};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 512;

/// Where the parts of one predicate are in the source (predicates in textual order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpan {
    /// The field name.
    pub field: Range<usize>,
    /// Each literal or the shape, in order.
    pub values: Vec<Range<usize>>,
}

/// A parsed filter and the spans of its predicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The AST.
    pub expr: Expr,
    /// One entry per predicate, in the order [`Expr::walk`] visits them.
    pub spans: Vec<LeafSpan>,
}

/// Parses filter text.
pub fn parse(src: &str) -> Result<Parsed, FilterError> {
    let toks = tokenize(src)?;
    let mut p = Parser { src, toks, pos: 0, spans: Vec::new() };
    if p.peek() == &Tok::End {
        return Err(p.error_here("the filter is empty").expected("a condition such as `year >= 2020`"));
    }
    let expr = p.or(0)?;
    if p.peek() != &Tok::End {
        let what = if p.peek() == &Tok::RParen { "`)` without a matching `(`" } else { "unexpected input" };
        return Err(p
            .error_here(format!("{what}: {}", p.peek().describe()))
            .expected("AND, OR or the end of the filter"));
    }
    Ok(Parsed { expr, spans: p.spans })
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    spans: Vec<LeafSpan>,
}

const END: Token = Token { tok: Tok::End, span: 0..0 };

impl Parser<'_> {
    fn token(&self) -> &Token {
        self.toks.get(self.pos).or_else(|| self.toks.last()).unwrap_or(&END)
    }

    fn peek(&self) -> &Tok {
        &self.token().tok
    }

    fn peek2(&self) -> &Tok {
        self.toks.get(self.pos + 1).map_or(&Tok::End, |t| &t.tok)
    }

    fn span(&self) -> Range<usize> {
        self.token().span.clone()
    }

    fn bump(&mut self) -> Token {
        let t = self.token().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, message: impl Into<String>) -> FilterError {
        FilterError::at(self.src, self.span(), message)
    }

    fn unexpected(&self, expected: &str) -> FilterError {
        let found = match self.peek() {
            Tok::End => "the filter ends too early".to_owned(),
            t => format!("unexpected {}", t.describe()),
        };
        self.error_here(found).expected(expected)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Keyword(x) if *x == k)
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<Range<usize>, FilterError> {
        if self.peek() == tok { Ok(self.bump().span) } else { Err(self.unexpected(what)) }
    }

    fn deep(&self, depth: usize) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return Err(self.error_here(format!("the filter nests more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn or(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut chain = 0;
        let mut left = self.and(depth + 1)?;
        while self.keyword("OR") {
            chain += 1;
            self.deep(depth + chain)?;
            self.bump();
            let right = self.and(depth + 1)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut chain = 0;
        let mut left = self.not(depth + 1)?;
        while self.keyword("AND") {
            chain += 1;
            self.deep(depth + chain)?;
            self.bump();
            let right = self.not(depth + 1)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Expr, FilterError> {
        self.deep(depth)?;
        if self.keyword("NOT") {
            self.bump();
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        match self.peek().clone() {
            Tok::LParen => {
                let open = self.bump().span;
                let e = self.or(depth + 1)?;
                if self.peek() != &Tok::RParen {
                    let col = FilterError::at(self.src, open, "").line_col().map_or(0, |(_, c)| c);
                    return Err(self.unexpected(&format!("`)` to close the `(` at column {col}, AND or OR")));
                }
                self.bump();
                Ok(e)
            }
            Tok::Ident(name)
                if self.peek2() == &Tok::LParen
                    && (name.eq_ignore_ascii_case("intersects") || name.eq_ignore_ascii_case("within")) =>
            {
                let op = if name.eq_ignore_ascii_case("within") { GeoOp::Within } else { GeoOp::Intersects };
                self.geo(op)
            }
            Tok::Ident(name) | Tok::Quoted(name) => {
                let span = self.bump().span;
                self.predicate(name, span)
            }
            _ => Err(self.unexpected("a field name, `(`, NOT, intersects(...) or within(...)")),
        }
    }

    fn field(&mut self) -> Result<(String, Range<usize>), FilterError> {
        match self.peek().clone() {
            Tok::Ident(name) | Tok::Quoted(name) => Ok((name, self.bump().span)),
            _ => Err(self.unexpected("a field name")),
        }
    }

    fn predicate(&mut self, field: String, field_span: Range<usize>) -> Result<Expr, FilterError> {
        let mut values = Vec::new();
        let expr = match self.peek().clone() {
            Tok::Op(o) => {
                self.bump();
                let op = match o {
                    "=" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let (value, s) = self.literal(&field)?;
                values.push(s);
                Expr::Cmp { field, op, value }
            }
            Tok::Keyword("IS") => {
                self.bump();
                let negated = self.keyword("NOT");
                if negated {
                    self.bump();
                }
                if !self.keyword("NULL") {
                    return Err(self.unexpected(if negated { "NULL" } else { "NULL or NOT NULL" }));
                }
                self.bump();
                Expr::IsNull { field, negated }
            }
            Tok::Keyword(k @ ("NOT" | "BETWEEN" | "IN")) => {
                let negated = k == "NOT";
                if negated {
                    self.bump();
                }
                if self.keyword("BETWEEN") {
                    self.bump();
                    let (low, a) = self.literal(&field)?;
                    if !self.keyword("AND") {
                        return Err(self.unexpected("AND between the two ends of BETWEEN"));
                    }
                    self.bump();
                    let (high, b) = self.literal(&field)?;
                    values.extend([a, b]);
                    Expr::Between { field, low, high, negated }
                } else if self.keyword("IN") {
                    self.bump();
                    self.expect(&Tok::LParen, "`(` to open the IN list")?;
                    let mut list = Vec::new();
                    loop {
                        let (v, s) = self.literal(&field)?;
                        list.push(v);
                        values.push(s);
                        if self.peek() == &Tok::Comma {
                            self.bump();
                            continue;
                        }
                        self.expect(&Tok::RParen, "`,` or `)` in the IN list")?;
                        break;
                    }
                    Expr::In { field, values: list, negated }
                } else {
                    return Err(self.unexpected("BETWEEN or IN after NOT"));
                }
            }
            Tok::End | Tok::RParen | Tok::Keyword("AND" | "OR") => Expr::Flag(field),
            _ => {
                return Err(self.unexpected(&format!(
                    "an operator (=, !=, <, <=, >, >=), BETWEEN, IN or IS [NOT] NULL after `{field}`"
                )));
            }
        };
        self.spans.push(LeafSpan { field: field_span, values });
        Ok(expr)
    }

    fn literal(&mut self, field: &str) -> Result<(Literal, Range<usize>), FilterError> {
        let t = self.token().clone();
        let lit = match t.tok {
            Tok::Int(v) => Literal::Int(v),
            Tok::Float(v) => Literal::Float(v),
            Tok::Str(s) => Literal::Str(s),
            Tok::Keyword("TRUE") => Literal::Bool(true),
            Tok::Keyword("FALSE") => Literal::Bool(false),
            Tok::Keyword("NULL") => {
                return Err(self
                    .unexpected("a value: a number, a 'quoted string', TRUE or FALSE")
                    .help(format!("comparisons with NULL are never true; write `{field} IS NULL`")));
            }
            Tok::Ident(ref s) | Tok::Quoted(ref s) => {
                return Err(self
                    .unexpected("a value: a number, a 'quoted string', TRUE or FALSE")
                    .help(format!("strings take single quotes: '{s}'")));
            }
            _ => return Err(self.unexpected("a value: a number, a 'quoted string', TRUE or FALSE")),
        };
        self.bump();
        Ok((lit, t.span))
    }

    fn number(&mut self) -> Result<f64, FilterError> {
        match self.peek() {
            Tok::Int(v) => {
                let v = *v as f64;
                self.bump();
                Ok(v)
            }
            Tok::Float(v) => {
                let v = *v;
                self.bump();
                Ok(v)
            }
            _ => Err(self.unexpected("a number (degrees)")),
        }
    }

    fn geo(&mut self, op: GeoOp) -> Result<Expr, FilterError> {
        self.bump();
        self.expect(&Tok::LParen, "`(`")?;
        let (field, field_span) = self.field()?;
        self.expect(&Tok::Comma, "`,` after the field name")?;
        let start = self.span().start;
        let shape = match self.peek().clone() {
            Tok::Ident(s) if s.eq_ignore_ascii_case("bbox") => {
                self.bump();
                self.expect(&Tok::LParen, "`(` after bbox")?;
                let mut v = [0.0; 4];
                for (i, slot) in v.iter_mut().enumerate() {
                    if i > 0 {
                        self.expect(
                            &Tok::Comma,
                            "`,` between the four bbox numbers (min_lon, min_lat, max_lon, max_lat)",
                        )?;
                    }
                    *slot = self.number()?;
                }
                self.expect(&Tok::RParen, "`)` after the four bbox numbers")?;
                Shape::Bbox(v)
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("polygon") => {
                self.bump();
                self.expect(&Tok::LParen, "`(` after polygon")?;
                self.expect(&Tok::LParen, "`(` to open the ring: polygon((lon lat, lon lat, ...))")?;
                let mut points = Vec::new();
                loop {
                    let x = self.number()?;
                    let y = self.number()?;
                    points.push([x, y]);
                    if self.peek() == &Tok::Comma {
                        self.bump();
                        continue;
                    }
                    self.expect(&Tok::RParen, "`,` or `)` in the polygon ring")?;
                    break;
                }
                self.expect(&Tok::RParen, "`)` to close polygon(...)")?;
                Shape::Polygon(points)
            }
            _ => return Err(self.unexpected("bbox(min_lon, min_lat, max_lon, max_lat) or polygon((lon lat, ...))")),
        };
        let shape_span = start..self.toks.get(self.pos.saturating_sub(1)).map_or(start, |t| t.span.end);
        self.expect(&Tok::RParen, "`)` to close the geo predicate")?;
        self.spans.push(LeafSpan { field: field_span, values: vec![shape_span] });
        Ok(Expr::Geo { op, field, shape })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ast::field;

    #[test]
    fn precedence_and_forms() {
        let e = parse("class = 'Port' AND year BETWEEN 2019 AND 2023 OR NOT cloud < 10 AND sensor IN ('S2A','S2B')")
            .unwrap()
            .expr;
        let want = field("class")
            .eq("Port")
            .and(field("year").between(2019, 2023))
            .or(field("cloud").lt(10).not().and(field("sensor").is_in(["S2A", "S2B"])));
        assert_eq!(e, want);
        let e = parse("intersects(footprint, bbox(1, 2, 3.5, 4)) AND within(\"foot print\", polygon((0 0, 1 0, 1 1)))")
            .unwrap()
            .expr;
        assert_eq!(
            e,
            field("footprint")
                .intersects(Shape::Bbox([1.0, 2.0, 3.5, 4.0]))
                .and(field("foot print").within(Shape::Polygon(vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])))
        );
        assert_eq!(
            parse("x IS NOT NULL and y not in (1)").unwrap().expr,
            field("x").is_not_null().and(Expr::In { field: "y".into(), values: vec![Literal::Int(1)], negated: true })
        );
        assert_eq!(parse("cloudy OR (flag)").unwrap().expr, Expr::Flag("cloudy".into()).or(Expr::Flag("flag".into())));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = parse("year >").unwrap_err();
        assert!(e.to_string().contains("expected a value"), "{e}");
        let e = parse("(year > 1").unwrap_err();
        assert!(e.to_string().contains("`)` to close the `(` at column 1"), "{e}");
        let e = parse("class = Port").unwrap_err();
        assert!(e.to_string().contains("'Port'"), "{e}");
        let e = parse("x = NULL").unwrap_err();
        assert!(e.to_string().contains("x IS NULL"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("a = 1)").is_err());
        assert!(parse(&"(".repeat(10_000)).is_err());
        assert!(parse(&"NOT ".repeat(10_000)).is_err());
        let long = vec!["a = 1"; 2000].join(" AND ");
        assert!(parse(&long).is_err());
    }
}
