//! See `daygle::fuzzing::attachment_text` (the same body is replayed over the corpus by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| daygle::fuzzing::attachment_text(data));
