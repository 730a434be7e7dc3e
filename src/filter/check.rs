//! Typing a filter against a collection schema: [`Filter`], whose predicate is in negation normal
//! form with every literal converted to the field's key space.
//!
//! Semantics are SQL's three-valued logic: a comparison on a null value is *unknown*, and a row
//! passes only when the whole filter is *true*. `NOT` is pushed down to the predicates (De Morgan
//! holds in Kleene logic); a negated predicate is true exactly when the field has a value and the
//! predicate is false, so `NOT (x = 1)`, `x != 1` and `x NOT IN (1)` never pass a null `x`,
//! while `x IS NULL` and `x IS NOT NULL` are never unknown.
//!
//! | field type | predicates |
//! | --- | --- |
//! | keyword, text | `=`, `!=`, `IN`, `NOT IN`, `IS [NOT] NULL` with 'strings' |
//! | integer | comparisons, `BETWEEN`, `IN` with integers (or floats with no fraction) |
//! | float | comparisons, `BETWEEN`, `IN` with numbers |
//! | timestamp | comparisons, `BETWEEN`, `IN` with 'RFC 3339 or YYYY-MM-DD' strings or integer microseconds |
//! | bool | `=`, `!=`, `IN` with TRUE/FALSE, or the bare field name |
//! | geo bbox | `intersects(f, bbox(..) / polygon(..))`, `within(f, bbox(..))` |
//! | window, blob | `IS [NOT] NULL` |
//! | `id` | comparisons, `BETWEEN`, `IN` with non-negative integers |

use std::fmt;
use std::ops::Bound;

use skysift_storage::schema::{FieldType, Schema};
use skysift_storage::segment::ranges::{key_f64, key_i64};

use super::ast::{CmpOp, Expr, GeoOp, Literal};
use super::error::{FilterError, closest};
use super::geo::GeoShape;
use super::parser::{LeafSpan, MAX_DEPTH, parse};

/// A filter checked against a schema, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Option<Expr>,
    pub(crate) pred: Pred,
}

/// What a predicate tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The record id.
    Id,
    /// A schema field.
    Field {
        /// Index in the schema.
        index: usize,
        /// Its type.
        ty: FieldType,
    },
}

/// An inclusive-or-exclusive interval of keys.
pub(crate) type KeyRange = (Bound<u64>, Bound<u64>);

/// The test of one predicate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    /// The field has no value.
    IsNull,
    /// The keyword or text value is one of these (sorted, distinct).
    Strings(Vec<String>),
    /// The key of the value (or the id) lies in one of these intervals.
    Keys(Vec<KeyRange>),
    /// The bbox value intersects (or lies within) the shape.
    Geo(GeoOp, GeoShape),
}

/// One predicate of the normal form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub target: Target,
    pub test: Test,
    /// True when the field has a value and `test` fails.
    pub negated: bool,
}

/// A predicate in negation normal form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pred {
    /// Every row.
    All,
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Leaf(Leaf),
}

impl Filter {
    /// Parses `text` and checks it against `schema`.
    pub fn parse(text: &str, schema: &Schema) -> Result<Filter, FilterError> {
        let parsed = parse(text)?;
        check(parsed.expr, schema, Some((text, &parsed.spans)))
    }

    /// Checks a built AST against `schema`.
    pub fn new(expr: Expr, schema: &Schema) -> Result<Filter, FilterError> {
        check(expr, schema, None)
    }

    /// A filter that passes every row.
    #[must_use]
    pub fn all() -> Filter {
        Filter { expr: None, pred: Pred::All }
    }

    /// Whether this filter passes every row (see [`Filter::all`]).
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.pred == Pred::All
    }

    /// The AST as given (`None` for [`Filter::all`]).
    #[must_use]
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }
}

/// What the library accepts as a filter: text, a built [`Expr`], or a checked [`Filter`].
pub trait IntoFilter {
    /// Checks against `schema` (a [`Filter`] is taken as it is).
    fn into_filter(self, schema: &Schema) -> Result<Filter, FilterError>;
}

impl IntoFilter for &str {
    fn into_filter(self, schema: &Schema) -> Result<Filter, FilterError> {
        Filter::parse(self, schema)
    }
}
impl IntoFilter for &String {
    fn into_filter(self, schema: &Schema) -> Result<Filter, FilterError> {
        Filter::parse(self, schema)
    }
}
impl IntoFilter for Expr {
    fn into_filter(self, schema: &Schema) -> Result<Filter, FilterError> {
        Filter::new(self, schema)
    }
}
impl IntoFilter for &Expr {
    fn into_filter(self, schema: &Schema) -> Result<Filter, FilterError> {
        Filter::new(self.clone(), schema)
    }
}
impl IntoFilter for Filter {
    fn into_filter(self, _: &Schema) -> Result<Filter, FilterError> {
        Ok(self)
    }
}
impl IntoFilter for &Filter {
    fn into_filter(self, _: &Schema) -> Result<Filter, FilterError> {
        Ok(self.clone())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Some(e) => write!(f, "{e}"),
            None => f.write_str("(all rows)"),
        }
    }
}

fn depth(e: &Expr) -> usize {
    let mut max = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => stack.extend([(&**a, d + 1), (&**b, d + 1)]),
            Expr::Not(a) => stack.push((a, d + 1)),
            _ => {}
        }
    }
    max
}

struct Checker<'a> {
    schema: &'a Schema,
    src: Option<(&'a str, &'a [LeafSpan])>,
    leaf: usize,
}

fn check(expr: Expr, schema: &Schema, src: Option<(&str, &[LeafSpan])>) -> Result<Filter, FilterError> {
    if depth(&expr) > MAX_DEPTH * 2 {
        return Err(FilterError::new(format!("the filter nests more than {} levels deep", MAX_DEPTH * 2)));
    }
    let mut c = Checker { schema, src, leaf: 0 };
    let pred = c.lower(&expr, false)?;
    Ok(Filter { expr: Some(expr), pred })
}

fn and(mut parts: Vec<Pred>) -> Pred {
    let mut flat = Vec::with_capacity(parts.len());
    for p in parts.drain(..) {
        match p {
            Pred::And(inner) => flat.extend(inner),
            Pred::All => {}
            p => flat.push(p),
        }
    }
    match flat.len() {
        0 => Pred::All,
        1 => flat.pop().unwrap_or(Pred::All),
        _ => Pred::And(flat),
    }
}

fn or(parts: Vec<Pred>) -> Pred {
    let mut flat = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Pred::Or(inner) => flat.extend(inner),
            Pred::All => return Pred::All,
            p => flat.push(p),
        }
    }
    if flat.len() == 1 { flat.pop().unwrap_or(Pred::All) } else { Pred::Or(flat) }
}

/// Which literal of a predicate an error is about (for the caret).
#[derive(Clone, Copy)]
enum At {
    Field,
    Value(usize),
}

impl Checker<'_> {
    fn err(&self, at: At, message: impl Into<String>) -> FilterError {
        let e = FilterError::new(message);
        let Some((text, spans)) = self.src else { return e };
        let span = spans.get(self.leaf).and_then(|s| match at {
            At::Field => Some(s.field.clone()),
            At::Value(i) => s.values.get(i).cloned(),
        });
        e.located(text, span)
    }

    fn lower(&mut self, e: &Expr, neg: bool) -> Result<Pred, FilterError> {
        Ok(match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let (a, b) = (self.lower(a, neg)?, self.lower(b, neg)?);
                // De Morgan: under NOT, AND becomes OR and OR becomes AND.
                let conjunction = matches!(e, Expr::And(..)) ^ neg;
                if conjunction { and(vec![a, b]) } else { or(vec![a, b]) }
            }
            Expr::Not(a) => self.lower(a, !neg)?,
            _ => {
                let leaf = self.leaf(e, neg)?;
                self.leaf += 1;
                Pred::Leaf(leaf)
            }
        })
    }

    fn target(&self, name: &str) -> Result<Target, FilterError> {
        if name == "id" {
            return Ok(Target::Id);
        }
        let Some(index) = self.schema.field_index(name) else {
            let names: Vec<&str> = self.schema.fields.iter().map(|f| f.name.as_str()).chain(["id"]).collect();
            let all = format!("fields: {}", names.join(", "));
            let hint = match closest(name, names.iter().copied()) {
                Some(c) => format!("did you mean `{c}`? {all}"),
                None => all,
            };
            return Err(self.err(At::Field, format!("unknown field `{name}`")).help(hint));
        };
        Ok(Target::Field { index, ty: self.schema.fields.get(index).map_or(FieldType::Blob, |f| f.ty) })
    }

    fn type_name(t: Target) -> String {
        match t {
            Target::Id => "the record id".into(),
            Target::Field { ty, .. } => format!("a {} field", ty.name()),
        }
    }

    /// The key of `lit` in the key space of `t` (for Keys tests).
    fn key(&self, t: Target, name: &str, lit: &Literal, at: At) -> Result<u64, FilterError> {
        let bad = |expected: &str| {
            self.err(at, format!("`{name}` is {}, {lit} does not compare with it", Self::type_name(t)))
                .expected(expected.to_owned())
        };
        let integral = |v: f64| (v.fract() == 0.0 && v >= -(2f64.powi(63)) && v < 2f64.powi(63)).then_some(v as i64);
        Ok(match (t, lit) {
            (Target::Id, Literal::Int(v)) if *v >= 0 => v.unsigned_abs(),
            (Target::Id, Literal::Float(v)) if *v >= 0.0 && integral(*v).is_some() => {
                integral(*v).unwrap_or(0).unsigned_abs()
            }
            (Target::Id, _) => return Err(bad("a non-negative integer")),
            (Target::Field { ty: FieldType::Integer | FieldType::Timestamp, .. }, Literal::Int(v)) => key_i64(*v),
            (Target::Field { ty: FieldType::Integer, .. }, Literal::Float(v)) if integral(*v).is_some() => {
                key_i64(integral(*v).unwrap_or(0))
            }
            (Target::Field { ty: FieldType::Integer, .. }, _) => return Err(bad("an integer")),
            (Target::Field { ty: FieldType::Float, .. }, Literal::Int(v)) => key_f64(*v as f64),
            (Target::Field { ty: FieldType::Float, .. }, Literal::Float(v)) if v.is_finite() => key_f64(*v),
            (Target::Field { ty: FieldType::Float, .. }, _) => return Err(bad("a number")),
            (Target::Field { ty: FieldType::Timestamp, .. }, Literal::Str(s)) => {
                match crate::time::parse_timestamp(s) {
                    Some(us) => key_i64(us),
                    None => {
                        return Err(self
                            .err(at, format!("'{s}' is not a timestamp"))
                            .expected("'YYYY-MM-DD' or RFC 3339 such as '2021-06-01T10:30:00Z'"));
                    }
                }
            }
            (Target::Field { ty: FieldType::Timestamp, .. }, _) => {
                return Err(bad("a quoted date ('2021-06-01') or integer microseconds"));
            }
            (Target::Field { ty: FieldType::Bool, .. }, Literal::Bool(b)) => key_i64(i64::from(*b)),
            (Target::Field { ty: FieldType::Bool, .. }, _) => return Err(bad("TRUE or FALSE")),
            (Target::Field { ty, .. }, _) => {
                return Err(self.err(at, format!("`{name}` is a {} field and has no ordered values", ty.name())));
            }
        })
    }

    fn string(&self, t: Target, name: &str, lit: &Literal, at: At) -> Result<String, FilterError> {
        match lit {
            Literal::Str(s) => Ok(s.clone()),
            other => Err(self
                .err(at, format!("`{name}` is {}, {other} does not compare with it", Self::type_name(t)))
                .expected("a 'quoted string'")),
        }
    }

    fn ordered(t: Target) -> bool {
        matches!(t, Target::Id)
            || matches!(
                t,
                Target::Field {
                    ty: FieldType::Integer | FieldType::Float | FieldType::Timestamp | FieldType::Bool,
                    ..
                }
            )
    }

    fn stringly(t: Target) -> bool {
        matches!(t, Target::Field { ty: FieldType::Keyword | FieldType::Text, .. })
    }

    fn no_values(&self, t: Target, name: &str) -> FilterError {
        let ty = match t {
            Target::Field { ty, .. } => ty.name(),
            Target::Id => "id",
        };
        let hint = if ty == FieldType::GeoBbox.name() {
            format!("test it with intersects({name}, bbox(...)), within({name}, bbox(...)) or IS [NOT] NULL")
        } else {
            "only IS NULL and IS NOT NULL apply to it".to_owned()
        };
        self.err(At::Field, format!("`{name}` is a {ty} field and cannot be compared with values")).help(hint)
    }

    /// The test of `field op value` (for `!=`, the test of `=`, negated by the caller).
    fn cmp(&self, field: &str, op: CmpOp, value: &Literal) -> Result<(Target, Test), FilterError> {
        let t = self.target(field)?;
        if Self::stringly(t) {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(self
                    .err(At::Field, format!("`{field}` is {} and is compared only with = and !=", Self::type_name(t)))
                    .help(format!("to match several values write `{field} IN ('a', 'b')`")));
            }
            let s = self.string(t, field, value, At::Value(0))?;
            return Ok((t, Test::Strings(vec![s])));
        }
        if !Self::ordered(t) {
            return Err(self.no_values(t, field));
        }
        if matches!(t, Target::Field { ty: FieldType::Bool, .. }) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(self.err(At::Field, format!("`{field}` is a bool field: compare it with = or !=")));
        }
        let k = self.key(t, field, value, At::Value(0))?;
        let range = match op {
            CmpOp::Eq | CmpOp::Ne => (Bound::Included(k), Bound::Included(k)),
            CmpOp::Lt => (Bound::Unbounded, Bound::Excluded(k)),
            CmpOp::Le => (Bound::Unbounded, Bound::Included(k)),
            CmpOp::Gt => (Bound::Excluded(k), Bound::Unbounded),
            CmpOp::Ge => (Bound::Included(k), Bound::Unbounded),
        };
        Ok((t, Test::Keys(vec![range])))
    }

    /// The test of `field IN (values)`: the distinct values, sorted.
    fn one_of(&self, field: &str, values: &[Literal]) -> Result<(Target, Test), FilterError> {
        let t = self.target(field)?;
        if values.is_empty() {
            return Err(self.err(At::Field, format!("`{field} IN ()` has no values")));
        }
        if Self::stringly(t) {
            let set = sorted_set(values, |i, v| self.string(t, field, v, At::Value(i)))?;
            return Ok((t, Test::Strings(set)));
        }
        if !Self::ordered(t) {
            return Err(self.no_values(t, field));
        }
        let keys = sorted_set(values, |i, v| self.key(t, field, v, At::Value(i)))?;
        Ok((t, Test::Keys(keys.into_iter().map(|k| (Bound::Included(k), Bound::Included(k))).collect())))
    }

    fn leaf(&self, e: &Expr, neg: bool) -> Result<Leaf, FilterError> {
        let leaf = |target, test, negated: bool| Ok(Leaf { target, test, negated: negated != neg });
        match e {
            Expr::IsNull { field, negated } => leaf(self.target(field)?, Test::IsNull, *negated),
            Expr::Flag(field) => {
                let t = self.target(field)?;
                if !matches!(t, Target::Field { ty: FieldType::Bool, .. }) {
                    return Err(self
                        .err(
                            At::Field,
                            format!("`{field}` is {}, not a bool, so it cannot stand alone", Self::type_name(t)),
                        )
                        .expected(format!("a comparison such as `{field} = ...`")));
                }
                let k = key_i64(1);
                leaf(t, Test::Keys(vec![(Bound::Included(k), Bound::Included(k))]), false)
            }
            Expr::Cmp { field, op, value } => {
                let (t, test) = self.cmp(field, *op, value)?;
                leaf(t, test, *op == CmpOp::Ne)
            }
            Expr::Between { field, low, high, negated } => {
                let t = self.target(field)?;
                if !Self::ordered(t) || matches!(t, Target::Field { ty: FieldType::Bool, .. }) {
                    return Err(if Self::stringly(t) {
                        self.err(
                            At::Field,
                            format!("`{field}` is {}: BETWEEN needs numbers or timestamps", Self::type_name(t)),
                        )
                    } else {
                        self.no_values(t, field)
                    });
                }
                let lo = self.key(t, field, low, At::Value(0))?;
                let hi = self.key(t, field, high, At::Value(1))?;
                let ranges = if lo <= hi { vec![(Bound::Included(lo), Bound::Included(hi))] } else { Vec::new() };
                leaf(t, Test::Keys(ranges), *negated)
            }
            Expr::In { field, values, negated } => {
                let (t, test) = self.one_of(field, values)?;
                leaf(t, test, *negated)
            }
            Expr::Geo { op, field, shape } => {
                let t = self.target(field)?;
                if !matches!(t, Target::Field { ty: FieldType::GeoBbox, .. }) {
                    return Err(self.err(
                        At::Field,
                        format!("`{field}` is {}; intersects and within need a geo_bbox field", Self::type_name(t)),
                    ));
                }
                let g = GeoShape::new(shape).map_err(|m| self.err(At::Value(0), m))?;
                leaf(t, Test::Geo(*op, g), false)
            }
            Expr::And(..) | Expr::Or(..) | Expr::Not(_) => Err(FilterError::new("internal: not a predicate")),
        }
    }
}

/// The distinct values `f` makes of `values` (given each one's position), sorted.
fn sorted_set<T: Ord>(
    values: &[Literal],
    f: impl Fn(usize, &Literal) -> Result<T, FilterError>,
) -> Result<Vec<T>, FilterError> {
    let mut out = values.iter().enumerate().map(|(i, v)| f(i, v)).collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        crate::fuzzing::filter_schema().unwrap()
    }

    #[test]
    fn errors_point_at_the_problem() {
        let s = schema();
        let e = Filter::parse("year > 2019 AND clas = 'Port'", &s).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("unknown field `clas` at column 17"), "{text}");
        assert!(text.contains("did you mean `class`?"), "{text}");
        assert!(text.contains("\n                  ^^^^"), "{text}");
        let e = Filter::parse("year = 'x'", &s).unwrap_err();
        assert_eq!(e.span, Some(7..10), "{e}");
        let e = Filter::parse("acquired >= '2021-13-01'", &s).unwrap_err();
        assert!(e.to_string().contains("not a timestamp"), "{e}");
        assert!(Filter::parse("class < 'a'", &s).is_err());
        assert!(Filter::parse("footprint = 1", &s).is_err());
        assert!(Filter::parse("year", &s).is_err());
        assert!(Filter::parse("within(footprint, polygon((0 0, 1 0, 1 1)))", &s).is_ok());
        assert!(Filter::parse("within(footprint, polygon((0 0, 1 0, 0 0)))", &s).is_err(), "two distinct points");
        assert!(Filter::parse("intersects(year, bbox(0, 0, 1, 1))", &s).is_err());
        assert!(Filter::parse("intersects(footprint, bbox(2, 0, 1, 1))", &s).is_err());
        assert!(Filter::parse("id = -1", &s).is_err());
        assert!(Filter::parse("year = 2020.5", &s).is_err());
    }

    #[test]
    fn not_is_pushed_down() {
        let s = schema();
        let f = Filter::parse("NOT (year = 1 OR class != 'a') AND cloudy AND year IS NOT NULL", &s).unwrap();
        let Pred::And(parts) = &f.pred else { panic!("{:?}", f.pred) };
        assert_eq!(parts.len(), 4);
        assert!(matches!(&parts[0], Pred::Leaf(Leaf { negated: true, test: Test::Keys(_), .. })));
        assert!(matches!(&parts[1], Pred::Leaf(Leaf { negated: false, test: Test::Strings(_), .. })));
        assert!(matches!(&parts[3], Pred::Leaf(Leaf { negated: true, test: Test::IsNull, .. })));
        assert!(Filter::parse("acquired >= '2021-06-01' AND cloud_cover < 10 AND id IN (1, 2)", &s).is_ok());
    }
}
