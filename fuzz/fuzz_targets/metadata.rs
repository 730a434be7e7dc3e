//! Fuzz target: arbitrary bytes as a metadata input must be handled without a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift::fuzzing::metadata(data));
