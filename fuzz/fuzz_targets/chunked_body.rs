#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// However the input is split: the same body, verdict and stopping point (checks::chunked_body).
fuzz_target!(|input: (u8, &[u8])| checks::chunked_body(input.0, input.1));
