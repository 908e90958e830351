//! Fuzz the workflow-file parser: any text gives a workflow or a located error, never a panic.
//! The checks live in `fuzz/checks/workflow_parse.rs`, which `tests/it/fuzz_replay.rs` runs too.
#![no_main]

#[path = "../checks/workflow_parse.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::one_input(data));
