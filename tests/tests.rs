//! Integration tests: one binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::type_complexity,
    reason = "test code panics on failure by design"
)]

mod cli;
mod common;
mod concurrency;
mod corruption;
mod crash;
mod encode;
mod faults;
mod fixtures;
mod filter;
mod fuzz_corpus;
mod index;
mod ingest;
mod model;
mod repl;
