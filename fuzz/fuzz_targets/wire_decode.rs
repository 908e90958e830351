//! Fuzz the frame decoder: every byte string is either decoded or dropped and counted, never a panic.
//! The checks live in `fuzz/checks/wire_decode.rs`, which `tests/it/fuzz_replay.rs` runs too.
#![no_main]

#[path = "../checks/wire_decode.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::one_input(data));
