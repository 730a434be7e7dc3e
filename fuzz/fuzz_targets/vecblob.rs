//! Fuzz target: arbitrary bytes as a vecblob must decode to an error or a safe value, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift_storage::fuzzing::vecblob(data));
