//! Integration tests: one binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::type_complexity,
    clippy::float_cmp,
    reason = "test code panics on failure by design"
)]

mod analyst;
mod attach;
mod cli;
mod common;
mod concurrency;
mod corruption;
mod crash;
mod crash_rewrite;
mod encode;
mod export;
mod faults;
mod filter;
mod fixtures;
#[cfg(feature = "fuzzing")]
mod fuzz_corpus;
mod imagery;
mod index;
mod ingest;
mod lang;
mod model;
mod repl;
#[path = "support/rng.rs"]
mod rng;
