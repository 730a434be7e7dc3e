//! Fuzz target: arbitrary bytes as a model's `manifest.json` must never panic, and every path it
//! accepts must stay inside the model directory (`skysift::fuzzing::model_manifest`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift::fuzzing::model_manifest(data));
