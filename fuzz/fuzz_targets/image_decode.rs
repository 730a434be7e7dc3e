//! Fuzz target: arbitrary bytes as an imagery file through the import's decode path (limits, tile
//! windows, thumbnails) must be refused or read, never panic (`skysift::fuzzing::image_decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift::fuzzing::image_decode(data));
