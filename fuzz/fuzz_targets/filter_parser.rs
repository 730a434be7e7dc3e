//! Fuzz target: arbitrary text through the filter parser and type checker; whatever parses must
//! print to text that parses back to the same AST (`skysift::fuzzing::filter_parser`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift::fuzzing::filter_parser(data));
