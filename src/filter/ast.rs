//! The untyped filter AST: what the parser produces and what a program builds directly.
//!
//! Invariant: for every AST whose literals are finite, `Display` prints text that parses back to
//! an equal AST (binary operators associate to the left, so only a right operand of the same
//! operator, an `OR` under an `AND`, or a binary operand of `NOT` gets parentheses).

use std::fmt;

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer: `2020`, `-3`.
    Int(i64),
    /// A number with a fraction or an exponent: `10.5`, `1e-3`.
    Float(f64),
    /// A quoted string: `'Port'` (a quote inside is doubled: `'it''s'`).
    Str(String),
    /// `TRUE` or `FALSE`.
    Bool(bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=` (also `==`).
    Eq,
    /// `!=` (also `<>`).
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CmpOp {
    /// The operator as written.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A spatial predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoOp {
    /// The footprint and the shape share at least one point.
    Intersects,
    /// The footprint lies inside the shape (boundary included).
    Within,
}

/// A query shape in WGS84 degrees.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `bbox(min_lon, min_lat, max_lon, max_lat)`.
    Bbox([f64; 4]),
    /// `polygon((lon lat, lon lat, ...))`: one ring; closing it (last = first) is optional.
    Polygon(Vec<[f64; 2]>),
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
    /// `NOT a`.
    Not(Box<Expr>),
    /// `field op value`.
    Cmp {
        /// Field name (or `id`).
        field: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        value: Literal,
    },
    /// `field [NOT] BETWEEN low AND high` (both ends included).
    Between {
        /// Field name.
        field: String,
        /// Lower end.
        low: Literal,
        /// Upper end.
        high: Literal,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `field [NOT] IN (v, ...)`.
    In {
        /// Field name.
        field: String,
        /// The values (at least one).
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `field IS [NOT] NULL`.
    IsNull {
        /// Field name.
        field: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `intersects(field, shape)` or `within(field, shape)`.
    Geo {
        /// Predicate.
        op: GeoOp,
        /// Geo bbox field.
        field: String,
        /// Query shape.
        shape: Shape,
    },
    /// A bool field used as a condition: `cloudy` means `cloudy = TRUE`.
    Flag(String),
}

/// Starts a predicate on `name`: `field("year").ge(2019).and(field("class").eq("Port"))`.
#[must_use]
pub fn field(name: impl Into<String>) -> FieldRef {
    FieldRef(name.into())
}

/// A field name waiting for its predicate; see [`field`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef(String);

impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(i64::from(v))
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Str(v.to_owned())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Str(v)
    }
}

impl FieldRef {
    fn cmp(self, op: CmpOp, value: impl Into<Literal>) -> Expr {
        Expr::Cmp { field: self.0, op, value: value.into() }
    }
    /// `field = value`.
    #[must_use]
    pub fn eq(self, value: impl Into<Literal>) -> Expr {
        self.cmp(CmpOp::Eq, value)
    }
    /// `field != value`.
    #[must_use]
    pub fn ne(self, value: impl Into<Literal>) -> Expr {
        self.cmp(CmpOp::Ne, value)
    }
    /// `field < value`.
    #[must_use]
    pub fn lt(self, value: impl Into<Literal>) -> Expr {
        self.cmp(CmpOp::Lt, value)
    }
    /// `field <= value`.
    #[must_use]
    pub fn le(self, value: impl Into<Literal>) -> Expr {
        self.cmp(CmpOp::Le, value)
    }
    /// `field > value`.
    #[must_use]
    pub fn gt(self, value: impl Into<Literal>) -> Expr {
        self.cmp(CmpOp::Gt, value)
    }
    /// `field >= value`.
    #[must_use]
    pub fn ge(self, value: impl Into<Literal>) -> Expr {
        self.cmp(CmpOp::Ge, value)
    }
    /// `field BETWEEN low AND high`.
    #[must_use]
    pub fn between(self, low: impl Into<Literal>, high: impl Into<Literal>) -> Expr {
        Expr::Between { field: self.0, low: low.into(), high: high.into(), negated: false }
    }
    /// `field IN (values...)`.
    #[must_use]
    pub fn is_in<L: Into<Literal>>(self, values: impl IntoIterator<Item = L>) -> Expr {
        Expr::In { field: self.0, values: values.into_iter().map(Into::into).collect(), negated: false }
    }
    /// `field IS NULL`.
    #[must_use]
    pub fn is_null(self) -> Expr {
        Expr::IsNull { field: self.0, negated: false }
    }
    /// `field IS NOT NULL`.
    #[must_use]
    pub fn is_not_null(self) -> Expr {
        Expr::IsNull { field: self.0, negated: true }
    }
    /// `intersects(field, shape)`.
    #[must_use]
    pub fn intersects(self, shape: Shape) -> Expr {
        Expr::Geo { op: GeoOp::Intersects, field: self.0, shape }
    }
    /// `within(field, shape)`.
    #[must_use]
    pub fn within(self, shape: Shape) -> Expr {
        Expr::Geo { op: GeoOp::Within, field: self.0, shape }
    }
    /// The bool field itself as a condition.
    #[must_use]
    pub fn is_true(self) -> Expr {
        Expr::Flag(self.0)
    }
}

impl Expr {
    /// `self AND other`.
    #[must_use]
    pub fn and(self, other: Expr) -> Expr {
        Expr::And(Box::new(self), Box::new(other))
    }
    /// `self OR other`.
    #[must_use]
    pub fn or(self, other: Expr) -> Expr {
        Expr::Or(Box::new(self), Box::new(other))
    }
    /// `NOT self`.
    #[must_use]
    #[expect(clippy::should_implement_trait, reason = "reads like the SQL keyword; `!expr` would be obscure")]
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// Field names used, in order of appearance (with repeats).
    #[must_use]
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| match e {
            Expr::Cmp { field, .. }
            | Expr::Between { field, .. }
            | Expr::In { field, .. }
            | Expr::IsNull { field, .. }
            | Expr::Geo { field, .. }
            | Expr::Flag(field) => out.push(field.as_str()),
            Expr::And(..) | Expr::Or(..) | Expr::Not(_) => {}
        });
        out
    }

    /// Visits every node, parents before children, left to right.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Not(a) => a.walk(f),
            _ => {}
        }
    }
}

/// Words the lexer reserves: a field with one of these names is written in double quotes.
pub const KEYWORDS: [&str; 9] = ["AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE"];

/// Whether `name` prints bare (an identifier that is not a keyword).
fn bare(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'))
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// Writes a field name, quoting it when needed.
pub(crate) struct FieldName<'a>(pub &'a str);

impl fmt::Display for FieldName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if bare(self.0) { f.write_str(self.0) } else { write!(f, "\"{}\"", self.0.replace('"', "\"\"")) }
    }
}

/// Writes a number so that it parses back to the same `f64` (and as a float, not an integer).
pub(crate) struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            Literal::Float(v) => write!(f, "{}", Num(*v)),
            Literal::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Bbox([a, b, c, d]) => write!(f, "bbox({}, {}, {}, {})", Num(*a), Num(*b), Num(*c), Num(*d)),
            Shape::Polygon(points) => {
                f.write_str("polygon((")?;
                for (i, [x, y]) in points.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} {}", Num(*x), Num(*y))?;
                }
                f.write_str("))")
            }
        }
    }
}

fn list(f: &mut fmt::Formatter<'_>, values: &[Literal]) -> fmt::Result {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{v}")?;
    }
    Ok(())
}

impl Expr {
    fn binary(&self) -> bool {
        matches!(self, Expr::And(..) | Expr::Or(..))
    }
}

struct Paren<'a>(&'a Expr, bool);

impl fmt::Display for Paren<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 { write!(f, "({})", self.0) } else { write!(f, "{}", self.0) }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => {
                let left = matches!(**a, Expr::Or(..));
                let right = b.binary();
                write!(f, "{} AND {}", Paren(a, left), Paren(b, right))
            }
            Expr::Or(a, b) => write!(f, "{} OR {}", a, Paren(b, matches!(**b, Expr::Or(..)))),
            Expr::Not(a) => write!(f, "NOT {}", Paren(a, a.binary())),
            Expr::Cmp { field, op, value } => write!(f, "{} {} {value}", FieldName(field), op.symbol()),
            Expr::Between { field, low, high, negated } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{} {not}BETWEEN {low} AND {high}", FieldName(field))
            }
            Expr::In { field, values, negated } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{} {not}IN (", FieldName(field))?;
                list(f, values)?;
                f.write_str(")")
            }
            Expr::IsNull { field, negated } => {
                write!(f, "{} IS {}NULL", FieldName(field), if *negated { "NOT " } else { "" })
            }
            Expr::Geo { op, field, shape } => {
                let name = match op {
                    GeoOp::Intersects => "intersects",
                    GeoOp::Within => "within",
                };
                write!(f, "{name}({}, {shape})", FieldName(field))
            }
            Expr::Flag(field) => write!(f, "{}", FieldName(field)),
        }
    }
}
