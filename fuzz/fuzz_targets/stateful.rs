//! Fuzz target: arbitrary bytes as a sequence of database operations, with I/O faults injected on
//! demand, must keep the database equal to a model of its committed state
//! (`skysift::fuzzing::stateful`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skysift::fuzzing::stateful(data));
