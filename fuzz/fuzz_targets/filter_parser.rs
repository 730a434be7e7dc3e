//! Fuzz target: the filter parser and type checker on arbitrary text.
//!
//! Properties: no input panics or overflows the stack; whatever parses prints (`Display`) to
//! text that parses back to the same AST; checking against a schema never panics.
//!
//! Needs a `fuzz/Cargo.toml` (cargo-fuzz, `libfuzzer-sys`) with a `[[bin]]` named
//! `filter_parser` at this path; run with `cargo fuzz run filter_parser`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skysift::filter::{Filter, parse};
use skysift::schema::{FieldDef, FieldType, Metric, Schema};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(parsed) = parse(text) else { return };
    let printed = parsed.expr.to_string();
    let again = parse(&printed).expect("Display output parses");
    assert_eq!(again.expr, parsed.expr, "{text:?} -> {printed:?}");
    let f = |name: &str, ty| FieldDef { name: name.into(), ty };
    let schema = Schema::new(
        4,
        Metric::Cosine,
        vec![
            f("class", FieldType::Keyword),
            f("year", FieldType::Integer),
            f("cloud_cover", FieldType::Float),
            f("acquired", FieldType::Timestamp),
            f("cloudy", FieldType::Bool),
            f("footprint", FieldType::GeoBbox),
        ],
    )
    .expect("schema");
    let _ = Filter::parse(text, &schema);
});
