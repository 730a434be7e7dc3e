//! Fuzz target: arbitrary bytes as a STAC item, JSON sidecar and CSV manifest must never panic, and
//! no href may resolve outside the archive root (`skysift::fuzzing::sidecar`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift::fuzzing::sidecar(data));
