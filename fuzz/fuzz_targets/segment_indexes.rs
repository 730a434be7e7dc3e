//! Fuzz target: arbitrary bytes as a range-index or geo-index section must parse to an error or a
//! view whose every query returns, never panic or loop (`skysift_storage::fuzzing::segment_indexes`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift_storage::fuzzing::segment_indexes(data));
