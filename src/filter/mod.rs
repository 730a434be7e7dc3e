//! The filter language: `class = 'Port' AND year BETWEEN 2019 AND 2023 AND cloud_cover < 10`.
//!
//! Text (or a built [`Expr`]) becomes a [`Filter`] checked against a collection's schema, which
//! evaluates to a roaring bitmap of passing rows per segment (from the segment's indexes) and
//! row by row for the in-memory rows. The planner in [`crate::query`] decides how each segment
//! is then searched.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `lexer.rs` | tokens with byte spans |
//! | `ast.rs` | the untyped AST [`Expr`], a builder ([`field`]) and `Display` that re-parses to the same AST |
//! | `parser.rs` | recursive descent with SQL precedence (`OR` < `AND` < `NOT` < predicates) |
//! | `check.rs` | typing against a schema into [`Filter`]: negation normal form, literals as index keys |
//! | `geo.rs` | exact bbox and polygon tests shared by the index path and the row-by-row path |
//! | `eval.rs` | per-segment bitmaps from the indexes, row-by-row evaluation, cardinality estimates |
//! | `error.rs` | [`FilterError`]: position with a caret, what was expected, closest field name |
//!
//! ```
//! use skysift::filter::{Filter, field};
//! use skysift::schema::{FieldDef, FieldType, Metric, Schema};
//!
//! let schema = Schema::new(4, Metric::Cosine, vec![
//!     FieldDef { name: "class".into(), ty: FieldType::Keyword },
//!     FieldDef { name: "year".into(), ty: FieldType::Integer },
//! ]).unwrap();
//! let parsed = Filter::parse("class = 'Port' AND year >= 2020", &schema).unwrap();
//! let built = Filter::new(field("class").eq("Port").and(field("year").ge(2020)), &schema).unwrap();
//! assert_eq!(parsed, built);
//! let err = Filter::parse("clas = 'Port'", &schema).unwrap_err();
//! assert!(err.to_string().contains("did you mean `class`?"));
//! ```

mod ast;
mod check;
mod error;
pub mod eval;
mod geo;
mod lexer;
mod parser;

pub use ast::{CmpOp, Expr, FieldRef, GeoOp, Literal, Shape, field};
pub use check::{Filter, IntoFilter};
pub use error::{FilterError, closest, edit_distance};
pub use geo::{GeoShape, polygon_intersects_box};
pub use lexer::{Tok, Token, tokenize};
pub use parser::{LeafSpan, MAX_DEPTH, Parsed, parse};
