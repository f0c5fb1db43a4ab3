//! See `daygle::fuzzing::cursor` (the same body is replayed over the corpus by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| daygle::fuzzing::cursor(data));
